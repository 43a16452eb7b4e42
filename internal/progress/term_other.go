//go:build !linux

package progress

import (
	"io"
	"os"
)

// IsTerminal reports whether w is a terminal. Outside Linux it reports
// false: the live view is not drawn, and runs log plain lines.
func IsTerminal(w io.Writer) bool { return false }

// TerminalSize returns zeros outside Linux.
func TerminalSize(f *os.File) (width, height int) { return 0, 0 }
