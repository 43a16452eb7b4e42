package main

import (
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// environment describes where a result was measured. It is in every JSON
// line, so that figures from different machines, file systems or loads are
// never compared unknowingly.
type environment struct {
	// FS is the type of the file system holding the benchmark's trees
	// ("ext4", "tmpfs", ...; the magic number in hex if unknown).
	FS string `json:"fs"`
	// Dir is the directory the trees were created in.
	Dir    string `json:"dir"`
	Kernel string `json:"kernel"`
	CPUs   int    `json:"cpus"`
	Go     string `json:"go"`
	// Load1 is the 1-minute load average read before each timed run
	// (median and maximum over the runs of the line).
	Load1    float64 `json:"load1"`
	Load1Max float64 `json:"load1_max"`
}

// fsNames maps statfs magic numbers to file system names.
var fsNames = map[int64]string{
	unix.EXT4_SUPER_MAGIC:      "ext4", // also ext2 and ext3
	unix.TMPFS_MAGIC:           "tmpfs",
	unix.XFS_SUPER_MAGIC:       "xfs",
	unix.BTRFS_SUPER_MAGIC:     "btrfs",
	unix.NFS_SUPER_MAGIC:       "nfs",
	unix.OVERLAYFS_SUPER_MAGIC: "overlayfs",
	unix.F2FS_SUPER_MAGIC:      "f2fs",
	unix.FUSE_SUPER_MAGIC:      "fuse",
}

// fsType returns the name of the file system holding dir.
func fsType(dir string) string {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return "unknown"
	}
	if name, ok := fsNames[int64(st.Type)]; ok {
		return name
	}
	return "0x" + strconv.FormatInt(int64(st.Type), 16)
}

// kernel returns the running kernel's name and release.
func kernel() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return runtime.GOOS
	}
	return unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Release[:])
}

// load1 returns the 1-minute load average, or -1 if it cannot be read.
func load1() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f, _, _ := strings.Cut(string(data), " ")
	v, err := strconv.ParseFloat(f, 64)
	if err != nil {
		return -1
	}
	return v
}

// newEnvironment describes the machine and dir, with no load yet.
func newEnvironment(dir string) environment {
	return environment{FS: fsType(dir), Dir: dir, Kernel: kernel(), CPUs: runtime.NumCPU(), Go: runtime.Version()}
}
