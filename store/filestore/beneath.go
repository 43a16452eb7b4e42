package filestore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// This file resolves keys to open files and directories beneath the
// bucket's root without ever following a symbolic link (issue 8, item 7).
//
// Every operation opens the root, then opens the key's directory (or, for a
// read, the object itself) relative to it with openat2(2) and
// RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS, and works on
// the final name with *at system calls relative to that directory. Where
// openat2 is missing (Linux before 5.6, or a seccomp filter that answers
// ENOSYS), it walks the path one component at a time with openat(2) and
// O_NOFOLLOW, which gives the same guarantee one component at a time: the
// kernel, not a check before the call, refuses the symbolic link.
//
// os.Root (Go 1.24) was considered and not used: it follows symbolic links
// that stay inside the root, which would let `ln -s ../other-step/.artifact
// OUT/.artifact` or a symlinked lease make one step's control file another's,
// and it offers neither O_TMPFILE nor the flock-and-recheck on a directory
// descriptor that the write protocol needs. The root's own path is resolved
// as usual: a prefix that is itself a symbolic link is the user's choice.

// dirFlags opens a directory to use as the dirfd of *at calls (and to
// fsync). O_NOFOLLOW with O_DIRECTORY refuses a symbolic link (with ELOOP or
// ENOTDIR; see noFollowErr).
const dirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

// objectFlags opens an object to read or lock: never through a symbolic
// link, and without blocking if it is a FIFO, which the fstat that follows
// refuses (a FIFO opened for reading without O_NONBLOCK waits for a writer).
const objectFlags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC

const resolveBeneath = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// dirMode and fileMode are the modes directories and objects are created
// with, before the umask, the directory's setgid bit and default ACLs have
// their say, as for every Unix tool (issue 13). They are never changed with
// chmod afterwards.
const (
	dirMode  = 0o777
	fileMode = 0o666
)

// notRegularError says that a path names something other than an object.
type notRegularError struct {
	what string // "is a directory", "is a FIFO", …
}

func (e *notRegularError) Error() string { return e.what + ", not a regular file" }

// errNotRegular returns the error of finding a non-object at path p.
func errNotRegular(op, p string, mode uint32) error {
	what := "is not a regular file"
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		what = "is a directory"
	case unix.S_IFLNK:
		what = "is a symbolic link"
	case unix.S_IFIFO:
		what = "is a FIFO"
	case unix.S_IFSOCK:
		what = "is a socket"
	case unix.S_IFCHR, unix.S_IFBLK:
		what = "is a device"
	}
	return &fs.PathError{Op: op, Path: p, Err: &notRegularError{what}}
}

// tooLargeError says that a limited read found a larger object.
type tooLargeError struct{ max int64 }

func (e *tooLargeError) Error() string { return fmt.Sprintf("larger than %d bytes", e.max) }

// pathErr turns the errno of a resolution beneath the root into an error
// about path p. A symbolic link on the way (ELOOP from O_NOFOLLOW or
// RESOLVE_NO_SYMLINKS, EXDEV from RESOLVE_BENEATH) is a not-regular error,
// neither "does not exist" nor a generic failure.
func pathErr(op, p string, err error) error {
	switch err {
	case nil:
		return nil
	case unix.ELOOP, unix.EXDEV:
		return &fs.PathError{Op: op, Path: p, Err: &notRegularError{"is or crosses a symbolic link"}}
	case unix.ENXIO:
		// open(2) of a socket.
		return &fs.PathError{Op: op, Path: p, Err: &notRegularError{"is a socket or a device without a driver"}}
	}
	var errno unix.Errno
	if errors.As(err, &errno) {
		return &fs.PathError{Op: op, Path: p, Err: errno}
	}
	return err
}

// openat is openat(2), retried on EINTR.
func openat(dirfd int, name string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags, mode)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// openRoot opens the bucket's root directory. If create is set, a missing
// root is created with its missing parents.
func (b *bucket) openRoot(create bool) (int, error) {
	const flags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC
	fd, err := openat(unix.AT_FDCWD, b.root, flags, 0)
	if err == unix.ENOENT && create {
		// Most often only the root is missing (a new step's directory):
		// one mkdir, and the walk of MkdirAll only if a parent is missing.
		merr := unix.Mkdirat(unix.AT_FDCWD, b.root, dirMode)
		switch merr {
		case unix.ENOENT:
			merr = os.MkdirAll(b.root, dirMode)
		case unix.EEXIST:
			merr = nil // created meanwhile; the open below checks it
		case nil:
		default:
			merr = pathErr("mkdir", b.root, merr)
		}
		if merr != nil {
			return -1, merr
		}
		if b.sync {
			if err := syncDir(filepath.Dir(b.root)); err != nil {
				return -1, err
			}
		}
		fd, err = openat(unix.AT_FDCWD, b.root, flags, 0)
	}
	if err != nil {
		return -1, pathErr("open", b.root, err)
	}
	return fd, nil
}

// openBeneath opens rel, a relative slash-separated path, beneath the
// directory dirfd with flags, following no symbolic link. It returns a raw
// errno on failure.
func (b *bucket) openBeneath(dirfd int, rel string, flags int) (int, error) {
	if !b.noOpenat2.Load() {
		fd, err := openat2(dirfd, rel, flags)
		switch err {
		case unix.ENOSYS:
			b.noOpenat2.Store(true)
		case unix.EPERM:
			// A seccomp filter that answers EPERM for unknown system calls,
			// or a real EPERM: the walk below tells them apart.
		case unix.ENOTDIR:
			if flags&unix.O_DIRECTORY != 0 {
				// Intermediate symbolic links fail with ELOOP; the last
				// component is not followed and fails with ENOTDIR.
				err = noFollowErr(dirfd, rel, err)
			}
			return fd, err
		default:
			return fd, err
		}
	}
	return walkBeneath(dirfd, rel, flags)
}

// openat2 is openat2(2) with RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|
// RESOLVE_NO_MAGICLINKS, retried on EINTR and on EAGAIN, which
// RESOLVE_BENEATH answers when a concurrent rename elsewhere on the file
// system might have let the lookup escape (retrying is the documented
// remedy).
func openat2(dirfd int, rel string, flags int) (int, error) {
	for {
		fd, err := unix.Openat2(dirfd, rel, &unix.OpenHow{Flags: uint64(flags), Resolve: resolveBeneath})
		if err != unix.EINTR && err != unix.EAGAIN {
			return fd, err
		}
	}
}

// walkBeneath is openBeneath by one openat(2) with O_NOFOLLOW per path
// component.
func walkBeneath(dirfd int, rel string, flags int) (int, error) {
	segs := strings.Split(rel, "/")
	fd := dirfd
	closeFd := func() {
		if fd != dirfd {
			unix.Close(fd)
		}
	}
	for _, seg := range segs[:len(segs)-1] {
		next, err := openat(fd, seg, dirFlags, 0)
		if err != nil {
			err = noFollowErr(fd, seg, err)
			closeFd()
			return -1, err
		}
		closeFd()
		fd = next
	}
	last := segs[len(segs)-1]
	f, err := openat(fd, last, flags|unix.O_NOFOLLOW, 0)
	if err != nil && flags&unix.O_DIRECTORY != 0 {
		err = noFollowErr(fd, last, err)
	}
	closeFd()
	return f, err
}

// noFollowErr refines the error of openat(dirfd, name, O_DIRECTORY|
// O_NOFOLLOW): Linux answers ENOTDIR, not ELOOP, when name is a symbolic
// link, and a symbolic link must not read as "does not exist".
func noFollowErr(dirfd int, name string, err error) error {
	if err != unix.ENOTDIR {
		return err
	}
	var st unix.Stat_t
	if unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return unix.ELOOP
	}
	return err
}

// openDir opens the directory dirKey (a slash-separated key prefix without
// the final slash; "" for the root) beneath the root. If create is set,
// missing directories, the root included, are created. It returns an error
// about the directory's path.
func (b *bucket) openDir(dirKey string, create bool) (int, error) {
	root, err := b.openRoot(create)
	if err != nil || dirKey == "" {
		return root, err
	}
	defer unix.Close(root)
	fd, err := b.openBeneath(root, dirKey, dirFlags)
	if err == unix.ENOENT && create {
		return b.mkdirBeneath(root, dirKey)
	}
	if err != nil {
		return -1, pathErr("open", filepath.Join(b.root, filepath.FromSlash(dirKey)), err)
	}
	return fd, nil
}

// mkdirBeneath opens the directory rel beneath root, creating each missing
// component with mode dirMode, one openat/mkdirat at a time so that no
// symbolic link is followed.
func (b *bucket) mkdirBeneath(root int, rel string) (int, error) {
	fd, dir := root, b.root
	closeFd := func() {
		if fd != root {
			unix.Close(fd)
		}
	}
	for seg := range strings.SplitSeq(rel, "/") {
		p := filepath.Join(dir, seg)
		next, err := openat(fd, seg, dirFlags, 0)
		if err == unix.ENOENT {
			err = unix.Mkdirat(fd, seg, dirMode)
			if err == nil && b.sync {
				err = unix.Fsync(fd)
			}
			if err != nil && err != unix.EEXIST {
				err = explainPermission(p, dir, pathErr("mkdir", p, err))
				closeFd()
				return -1, err
			}
			next, err = openat(fd, seg, dirFlags, 0)
		}
		if err != nil {
			err = pathErr("open", p, noFollowErr(fd, seg, err))
			closeFd()
			return -1, err
		}
		closeFd()
		fd, dir = next, p
	}
	return fd, nil
}

// splitKey splits key into its directory ("" for the root) and final name.
func splitKey(key string) (dirKey, name string) {
	if i := strings.LastIndexByte(key, '/'); i >= 0 {
		return key[:i], key[i+1:]
	}
	return "", key
}

// openObject opens the object at key for reading and checks that it is a
// regular file. p is key's path, for messages.
//
// A key of one segment (every control file) is opened with one openat(2)
// of its full path and O_NOFOLLOW: the root's own path is resolved as
// openRoot resolves it, and the only component beneath the root is the
// final one, which O_NOFOLLOW refuses to follow. That is what opening the
// root and then the name with openat2 guarantees, in one system call
// instead of three: a cached step's status read is a path lookup, an
// fstat, a read and a close.
func (b *bucket) openObject(op, key, p string) (int, *unix.Stat_t, error) {
	var fd int
	var err error
	if !strings.Contains(key, "/") {
		fd, err = openat(unix.AT_FDCWD, p, objectFlags, 0)
	} else {
		root, rerr := b.openRoot(false)
		if rerr != nil {
			return -1, nil, rerr
		}
		fd, err = b.openBeneath(root, key, objectFlags)
		unix.Close(root)
	}
	if err != nil {
		return -1, nil, explainPermission(p, "", pathErr(op, p, err))
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, nil, pathErr("fstat", p, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return -1, nil, errNotRegular(op, p, st.Mode)
	}
	return fd, &st, nil
}

// readFd reads fd to its end. If max >= 0 and there are more than max
// bytes, it stops after max+1 and returns a *tooLargeError.
func readFd(fd int, p string, sizeHint int64, max int64) ([]byte, error) {
	n := int64(512)
	if sizeHint >= 0 && sizeHint+1 > n {
		n = sizeHint + 1 // one more to see the end of file in one read
	}
	if max >= 0 && n > max+1 {
		n = max + 1
	}
	buf := make([]byte, 0, n)
	for {
		if max >= 0 && int64(len(buf)) > max {
			return nil, &fs.PathError{Op: "read", Path: p, Err: &tooLargeError{max}}
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		want := buf[len(buf):cap(buf)]
		if max >= 0 && int64(len(buf)+len(want)) > max+1 {
			want = want[:max+1-int64(len(buf))]
		}
		n, err := unix.Read(fd, want)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: p, Err: err}
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
		if n < len(want) && int64(len(buf)) == sizeHint {
			// A read of a regular file returns less than asked only at
			// its end, and the size fstat gave agrees: this is the end,
			// without one more read to hear it.
			return buf, nil
		}
	}
}
