package statusfile_test

import (
	"testing"

	"example.com/cairn/internal/statusfile"
)

func TestLogNumber(t *testing.T) {
	for _, tc := range []struct {
		key  string
		n    int
		want bool
	}{
		{".cairn_logs/attempt-1.log", 1, true},
		{"/x/y/attempt-12.log", 12, true},
		{"attempt-0.log", 0, false},
		{"attempt-01.log", 0, false},
		{"attempt--1.log", 0, false},
		{"attempt-1.txt", 0, false},
		{"job-1.log", 0, false},
	} {
		n, ok := statusfile.LogNumber(tc.key)
		if n != tc.n || ok != tc.want {
			t.Errorf("LogNumber(%q) = %d, %v; want %d, %v", tc.key, n, ok, tc.n, tc.want)
		}
	}
}
