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
	prefix = strings.TrimSuffix(prefix, "/")
	if prefix == "" {
		return id
	}
	if rel, ok := strings.CutPrefix(path, prefix+"/"); ok && rel != "" {
		return rel
	}
	if store.IsLocal(prefix) && !strings.HasPrefix(prefix, "file://") {
		if abs, err := filepath.Abs(prefix); err == nil {
			abs = strings.TrimSuffix(filepath.ToSlash(abs), "/")
			if rel, ok := strings.CutPrefix(path, abs+"/"); ok && rel != "" {
				return rel
			}
		}
	}
	return id
}
