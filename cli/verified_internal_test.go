package cli

import (
	"os"
	"path/filepath"
	"testing"
)

// A launcher's CAIRN_VERIFIED_PROGRAM counts only for the executable it
// names.
func TestVerifiedDigest(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(exe, link); err != nil {
		t.Fatal(err)
	}
	d := "sha256:" + "ab"
	for _, tc := range []struct{ env, want string }{
		{d + " " + exe, d},
		{d + " " + link, d}, // the same file, through a link
		{d + " " + exe + "x", ""},
		{d + " /bin/sh", ""}, // another program: inherited, not ours
		{d, ""},
		{"md5:ab " + exe, ""},
		{"", ""},
	} {
		if got := verifiedDigest(tc.env); got != tc.want {
			t.Errorf("verifiedDigest(%q) = %q, want %q", tc.env, got, tc.want)
		}
	}
}
