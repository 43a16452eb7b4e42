//go:build !unix

package cli

import "example.com/cairn/runrecord"

// measureUsage reports no usage on systems without getrusage(2) (Windows,
// Plan 9, js/wasm): their run records say the usage was "not recorded".
// cairn's cluster backends (local subprocesses, Slurm) run on Unix.
func measureUsage() (runrecord.Usage, bool) { return runrecord.Usage{}, false }
