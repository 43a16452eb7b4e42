package filestore

import (
	"errors"
	"io/fs"
	"os"
	"strconv"
	"syscall"
	"unsafe"
)

// This file holds the Linux fast paths that keep a control-file write to a
// few metadata operations. They matter because a pipeline step writes four or
// five small files: on a journaling file system each directory-entry change
// costs tens of microseconds, more than everything else cairn does per step.

// oTmpfile is Linux's O_TMPFILE (which includes O_DIRECTORY).
const oTmpfile = 0x410000

// atSymlinkFollow is AT_SYMLINK_FOLLOW for linkat(2).
const atSymlinkFollow = 0x400

// errNoTmpfile means the file system cannot create unnamed files; callers
// fall back to a named temporary file.
var errNoTmpfile = errors.New("O_TMPFILE not supported")

// createUnnamed creates p with content data only if nothing exists at p, by
// writing an unnamed file (O_TMPFILE) in dir and linking it into place with
// linkat(2), which fails with EEXIST if p exists. Unlike a named temporary
// file there is nothing to remove afterwards and nothing a crash can leave
// behind. It returns errNoTmpfile where O_TMPFILE or /proc is unavailable
// (NFS, old kernels), errExists if p exists, and an error satisfying
// errors.Is(err, fs.ErrNotExist) if dir does not exist.
func (b *bucket) createUnnamed(dir, p string, data []byte) error {
	if b.noTmpfile.Load() {
		return errNoTmpfile
	}
	fd, err := syscall.Open(dir, syscall.O_WRONLY|oTmpfile|syscall.O_CLOEXEC, 0o644)
	switch {
	case err == syscall.ENOENT || err == syscall.ENOTDIR:
		return &fs.PathError{Op: "create", Path: p, Err: err}
	case err == syscall.EOPNOTSUPP || err == syscall.EISDIR || err == syscall.EINVAL:
		b.noTmpfile.Store(true)
		return errNoTmpfile
	case err != nil:
		return &fs.PathError{Op: "create", Path: p, Err: err}
	}
	defer syscall.Close(fd)
	if err := writeAll(fd, data); err != nil {
		return &fs.PathError{Op: "write", Path: p, Err: err}
	}
	if b.sync {
		if err := syscall.Fsync(fd); err != nil {
			return &fs.PathError{Op: "fsync", Path: p, Err: err}
		}
	}
	err = linkat("/proc/self/fd/"+strconv.Itoa(fd), p)
	switch {
	case err == nil:
		return nil
	case err == syscall.EEXIST:
		return errExists
	case err == syscall.ENOENT && !procMounted():
		b.noTmpfile.Store(true)
		return errNoTmpfile
	}
	return &fs.PathError{Op: "link", Path: p, Err: err}
}

func procMounted() bool {
	_, err := os.Stat("/proc/self/fd")
	return err == nil
}

func writeAll(fd int, data []byte) error {
	for len(data) > 0 {
		n, err := syscall.Write(fd, data)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

// linkat links oldpath to newpath following oldpath if it is a symbolic
// link, as /proc/self/fd/N of an O_TMPFILE file is.
func linkat(oldpath, newpath string) error {
	o, err := syscall.BytePtrFromString(oldpath)
	if err != nil {
		return err
	}
	n, err := syscall.BytePtrFromString(newpath)
	if err != nil {
		return err
	}
	const atFDCWD = -0x64
	atfd := atFDCWD
	_, _, errno := syscall.Syscall6(syscall.SYS_LINKAT, uintptr(atfd), uintptr(unsafe.Pointer(o)),
		uintptr(atfd), uintptr(unsafe.Pointer(n)), atSymlinkFollow, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// readFile reads the whole file at p with plain system calls: os.ReadFile
// would also register the descriptor with the runtime poller and stat it,
// which doubles the system calls of reading a small control file.
func readFile(p string) ([]byte, error) {
	fd, err := syscall.Open(p, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	for err == syscall.EINTR {
		fd, err = syscall.Open(p, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	defer syscall.Close(fd)
	buf := make([]byte, 0, 512)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := syscall.Read(fd, buf[len(buf):cap(buf)])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: p, Err: err}
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}
