package cairn

// DefaultLocalPrefix is the prefix used when none is configured: a
// directory under the working directory.
const DefaultLocalPrefix = "cairn-out"

// PrefixFromEnv returns the prefix a program should use when none was given
// explicitly: CAIRN_PREFIX, else MARIN_PREFIX, else DefaultLocalPrefix.
// getenv is usually os.Getenv; the library itself never reads the
// environment.
func PrefixFromEnv(getenv func(string) string) string {
	for _, k := range []string{"CAIRN_PREFIX", "MARIN_PREFIX"} {
		if v := getenv(k); v != "" {
			return v
		}
	}
	return DefaultLocalPrefix
}
