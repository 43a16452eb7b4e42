//go:build !linux

package cli

import "example.com/cairn/runrecord"

// measureUsage is not implemented off Linux: run records say "not
// recorded".
func measureUsage() (runrecord.Usage, bool) { return runrecord.Usage{}, false }
