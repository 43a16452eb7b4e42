package cairn_test

import (
	"os"
	"path/filepath"
	"testing"

	"example.com/cairn"
)

func TestLabel(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	abs := filepath.ToSlash(filepath.Join(wd, "out"))
	for _, tc := range []struct{ prefix, id, path, want string }{
		{"out", "tok_12345678", "out/tok_12345678", "tok_12345678"},
		{"out/", "ngram/train_4406d67d", "out/ngram/train-f4606c", "ngram/train-f4606c"},
		{"out", "ngram/train_4406d67d", abs + "/ngram/train-f4606c", "ngram/train-f4606c"}, // recipe's absolute paths
		{"gs://b/p", "x_12345678", "gs://b/p/x-abcdef", "x-abcdef"},
		{"gs://b/p", "x_12345678", "gs://other/x", "x_12345678"}, // elsewhere: the ID
		{"", "x_12345678", "/abs/x", "x_12345678"},
	} {
		if got := cairn.Label(tc.prefix, tc.id, tc.path); got != tc.want {
			t.Errorf("Label(%q, %q, %q) = %q, want %q", tc.prefix, tc.id, tc.path, got, tc.want)
		}
	}
}

func TestBeneath(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	abs := filepath.ToSlash(filepath.Join(wd, "out"))
	for _, tc := range []struct {
		prefix, path, want string
		ok                 bool
	}{
		{"out", abs + "/a/b-123456", "a/b-123456", true},
		{abs + "/", abs + "/a", "a", true},
		{"out", abs, "", false},                // the prefix itself
		{"out", abs + "x/a", "", false},        // a sibling that shares its name's start
		{"s3://b/p", "s3://b/p2/a", "", false}, // ditto on an object store
		{"", "/abs/x", "", false},
	} {
		if got, ok := cairn.Beneath(tc.prefix, tc.path); got != tc.want || ok != tc.ok {
			t.Errorf("Beneath(%q, %q) = %q, %v; want %q, %v", tc.prefix, tc.path, got, ok, tc.want, tc.ok)
		}
	}
}
