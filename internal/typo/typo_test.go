package typo_test

import (
	"testing"

	"example.com/cairn/internal/typo"
)

func TestClosest(t *testing.T) {
	fields := []string{"order", "vocab_size", "prefix", "max-concurrent", "dry-run"}
	for _, tc := range []struct{ name, want string }{
		{"ordr", "order"},
		{"Order", "order"},
		{"vocab", "vocab_size"}, // an abbreviation
		{"prefx", "prefix"},
		{"max-concurent", "max-concurrent"},
		{"dryrun", "dry-run"},
		{"x", ""},
		{"banana", ""},
		{"vo", ""}, // too short to be an abbreviation
	} {
		if got := typo.Closest(tc.name, fields); got != tc.want {
			t.Errorf("Closest(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{{"train", "trian", 1}, {"", "abc", 3}, {"abc", "abc", 0}, {"kitten", "sitting", 3}} {
		if got := typo.Distance(tc.a, tc.b); got != tc.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
