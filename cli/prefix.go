package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"example.com/cairn"
	"example.com/cairn/store"
)

// isSet reports whether the flag name was given on the command line.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// resolvePrefix returns the prefix a command uses: value if the --prefix
// flag was given, else the environment's (cairn.PrefixFromEnv). An explicit
// empty --prefix is an error: silently running under ./cairn-out instead
// would surprise (issue 8).
func resolvePrefix(fs *flag.FlagSet, value string, getenv func(string) string) (string, error) {
	if !isSet(fs, "prefix") {
		return cairn.PrefixFromEnv(getenv), nil
	}
	if value == "" {
		return "", errors.New("--prefix is empty: give a directory or URL, or leave the flag out to use $CAIRN_PREFIX, $MARIN_PREFIX or ./" + cairn.DefaultLocalPrefix)
	}
	return value, nil
}

// checkPositive reports a usage error for a duration flag that must be
// positive; 0 would otherwise silently mean the default (issue 8).
func checkPositive(name string, d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("--%s must be positive, got %s", name, d)
	}
	return nil
}

// openPrefix opens the bucket at prefix, failing if no backend serves its
// scheme, and for a local prefix looks at what is there: a file is an
// error, and so is a missing directory if mustExist (status cannot list
// what is not there, and an empty table would hide the typo). Errors are
// storage errors (ExitStorage).
func openPrefix(ctx context.Context, storage *store.URLMux, prefix string, mustExist bool) (*store.Bucket, error) {
	b, err := storage.OpenBucket(ctx, prefix)
	if err != nil || !store.IsLocal(prefix) {
		return b, err
	}
	u, err := store.ParseURL(prefix)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(filepath.FromSlash(u.Path))
	switch {
	case errors.Is(err, fs.ErrNotExist) && !mustExist:
		return b, nil
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("prefix %s: no such directory (nothing has run under it)", prefix)
	case err != nil:
		return nil, fmt.Errorf("prefix %s: %w", prefix, err)
	case !fi.IsDir():
		return nil, fmt.Errorf("prefix %s: not a directory", prefix)
	}
	return b, nil
}
