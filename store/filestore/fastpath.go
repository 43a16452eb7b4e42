package filestore

import (
	"errors"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// This file holds the Linux fast path that keeps a control-file create to a
// few metadata operations. It matters because a pipeline step writes four or
// five small files: on a journaling file system each directory-entry change
// costs tens of microseconds, more than everything else cairn does per step.

// errNoTmpfile means the file system cannot create unnamed files; callers
// fall back to a named temporary file.
var errNoTmpfile = errors.New("O_TMPFILE not supported")

// createUnnamed creates t's object with content data only if nothing exists
// there, by writing an unnamed file (O_TMPFILE) in t's directory and linking
// it into place with linkat(2), which fails with EEXIST if anything exists
// at the name. Unlike a named temporary file there is nothing to remove
// afterwards and nothing a crash can leave behind. The file gets mode
// fileMode masked by the umask (and the directory's default ACL), as a file
// created with open(2) would. It returns errNoTmpfile where O_TMPFILE or
// /proc is unavailable (NFS, old kernels) and errExists if the name exists.
func (b *bucket) createUnnamed(t target, data []byte) error {
	if b.noTmpfile.Load() {
		return errNoTmpfile
	}
	fd, err := openat(t.dirfd, ".", unix.O_WRONLY|unix.O_TMPFILE|unix.O_CLOEXEC, fileMode)
	switch {
	case err == unix.EOPNOTSUPP || err == unix.EISDIR || err == unix.EINVAL:
		b.noTmpfile.Store(true)
		return errNoTmpfile
	case err != nil:
		return pathErr("create", t.p, err)
	}
	defer unix.Close(fd)
	if err := writeAll(fd, data); err != nil {
		return pathErr("write", t.p, err)
	}
	if b.sync {
		if err := unix.Fsync(fd); err != nil {
			return pathErr("fsync", t.p, err)
		}
	}
	// linkat(fd, "", …, AT_EMPTY_PATH) would need CAP_DAC_READ_SEARCH; the
	// /proc magic link works for everyone.
	err = unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), t.dirfd, t.name, unix.AT_SYMLINK_FOLLOW)
	switch {
	case err == nil:
		return nil
	case err == unix.EEXIST:
		return errExists
	case err == unix.ENOENT && !procMounted():
		b.noTmpfile.Store(true)
		return errNoTmpfile
	}
	return pathErr("link", t.p, err)
}

func procMounted() bool {
	_, err := os.Stat("/proc/self/fd")
	return err == nil
}

func writeAll(fd int, data []byte) error {
	for len(data) > 0 {
		n, err := unix.Write(fd, data)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}
