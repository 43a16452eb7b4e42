package cli

import "testing"

func TestLogTail(t *testing.T) {
	for _, tc := range []struct {
		log  string
		n    int
		want string
	}{
		{"", 3, ""},
		{"a\nb\nc\n", 2, "b\nc"},
		{"a\nb\nc", 5, "a\nb\nc"},
		{"a\nb\nc\n\n", 1, "c"},
		{"a\n", 0, ""},
	} {
		if got := logTail([]byte(tc.log), tc.n); got != tc.want {
			t.Errorf("logTail(%q, %d) = %q, want %q", tc.log, tc.n, got, tc.want)
		}
	}
}
