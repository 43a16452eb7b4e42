package progress

import "io"

// UseLive reports whether a run writing its log to stderr should draw the
// live view there: stderr must be a terminal, TERM not "dumb", NO_COLOR
// unset (the view is drawn with escape sequences a user who set it may
// not want) and the log format plain text (JSON logs are for machines).
// getenv looks up environment variables.
func UseLive(stderr io.Writer, getenv func(string) string, logFormat string) bool {
	if logFormat != "text" || getenv("TERM") == "dumb" || getenv("NO_COLOR") != "" {
		return false
	}
	return IsTerminal(stderr)
}
