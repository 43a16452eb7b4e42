package cairn

import (
	"path/filepath"
	"strings"

	"example.com/cairn/store"
)

// Label is how users see a step: its output directory relative to the
// run's prefix — NAME_HASH for a step at its default path, the directory a
// layer chose for a step with an OverridePath (package recipe's
// NAME-HASH6) — or, for a step whose output lies elsewhere, its ID. Logs,
// events, reports and errors name steps by their labels, so that the name
// a user reads is the directory they find under the prefix (issue 9).
func Label(prefix, id, path string) string {
	if rel, ok := Beneath(prefix, path); ok {
		return rel
	}
	return id
}

// Beneath returns path relative to prefix, and whether path lies beneath
// it. A local prefix matches in the form it was given and as an absolute
// path, so that a relative --prefix finds the steps of a layer (package
// recipe) that made its output paths absolute.
func Beneath(prefix, path string) (rel string, ok bool) {
	prefix = strings.TrimSuffix(prefix, "/")
	if prefix == "" {
		return "", false
	}
	if rel, ok := strings.CutPrefix(path, prefix+"/"); ok && rel != "" {
		return rel, true
	}
	if store.IsLocal(prefix) && !strings.HasPrefix(prefix, "file://") {
		if abs, err := filepath.Abs(prefix); err == nil {
			abs = strings.TrimSuffix(filepath.ToSlash(abs), "/")
			if rel, ok := strings.CutPrefix(path, abs+"/"); ok && rel != "" {
				return rel, true
			}
		}
	}
	return "", false
}
