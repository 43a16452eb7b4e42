//go:build unix

package cli

import (
	"os"
	"runtime"
	"syscall"
	"time"

	"example.com/cairn/runrecord"
)

// measureUsage returns this process's and its waited-for children's
// resource usage, for the run record (package runrecord).
func measureUsage() (runrecord.Usage, bool) {
	var self, kids syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &self) != nil || syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids) != nil {
		return runrecord.Usage{}, false
	}
	secs := func(tv syscall.Timeval) float64 { return time.Duration(tv.Nano()).Seconds() }
	// ru_maxrss is in kilobytes on Linux and the BSDs, in bytes on Apple's
	// systems.
	rssUnit := int64(1024)
	if runtime.GOOS == "darwin" || runtime.GOOS == "ios" {
		rssUnit = 1
	}
	host, _ := os.Hostname()
	return runrecord.Usage{
		Host:        host,
		MaxRSSBytes: int64(max(self.Maxrss, kids.Maxrss)) * rssUnit,
		CPUUserS:    secs(self.Utime) + secs(kids.Utime),
		CPUSystemS:  secs(self.Stime) + secs(kids.Stime),
		Source:      "rusage",
	}, true
}
