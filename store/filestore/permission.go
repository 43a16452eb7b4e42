package filestore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"strconv"

	"golang.org/x/sys/unix"
)

// PermissionError is the error of an operation the file system refused
// (EACCES or EPERM), with what a user sharing the prefix needs to fix it:
// which file or directory refused, its owner, group and mode, and what to
// set (issue 13). It satisfies errors.Is(err, fs.ErrPermission), and so
// store.ErrPermission through a *store.Bucket; the *fs.PathError underneath
// stays reachable with errors.As.
type PermissionError struct {
	// Path is the object the operation was on.
	Path string
	// Blocker is the file or directory whose permissions refused it, with
	// its owner, group and mode, as far as they could be read.
	Blocker      string
	Owner, Group string
	Mode         fs.FileMode
	// Err is the underlying error.
	Err error
}

func (e *PermissionError) Error() string {
	if e.Blocker == "" {
		return e.Err.Error()
	}
	me := strconv.Itoa(os.Geteuid())
	if u, err := user.LookupId(me); err == nil {
		me += " (" + u.Username + ")"
	}
	return fmt.Sprintf("%v: %s is owned by %s:%s with mode %s, which does not give uid %s the access it needs; "+
		"to share a prefix, the people sharing it need a common group that can write every directory "+
		"(for example `chmod -R g+w %s` by its owner, a setgid group directory, and `umask 002` or a default ACL for everyone; see the README, \"Sharing a prefix with your team\")",
		e.Err, e.Blocker, e.Owner, e.Group, lsMode(e.Mode), me, e.Blocker)
}

// lsMode formats m as ls -l does ("drwxr-sr-x"), which is what people
// sharing a directory know, rather than as fs.FileMode.String does.
func lsMode(m fs.FileMode) string {
	b := []byte("-rwxrwxrwx")
	if m.IsDir() {
		b[0] = 'd'
	}
	for i := range 9 {
		if m&(1<<(8-i)) == 0 {
			b[i+1] = '-'
		}
	}
	special := func(i int, set bool, on, off byte) {
		if set {
			if b[i] == '-' {
				b[i] = off
			} else {
				b[i] = on
			}
		}
	}
	special(3, m&fs.ModeSetuid != 0, 's', 'S')
	special(6, m&fs.ModeSetgid != 0, 's', 'S')
	special(9, m&fs.ModeSticky != 0, 't', 'T')
	return string(b)
}

func (e *PermissionError) Unwrap() error { return e.Err }

// explainPermission turns a permission error of an operation on p into a
// *PermissionError naming the directory dir (for an operation that changes
// directory entries) or p itself (for a read, when dir is ""), or their
// nearest existing parent. Other errors
// are returned unchanged.
func explainPermission(p, dir string, err error) error {
	if err == nil || !errors.Is(err, fs.ErrPermission) || errors.As(err, new(*PermissionError)) {
		return err
	}
	e := &PermissionError{Path: p, Err: err}
	blocker := dir
	if pe, ok := errors.AsType[*fs.PathError](err); blocker == "" || ok && pe.Op == "open" && pe.Path == p {
		// A read, or a write that could not open the existing object to
		// lock it: the object's own mode is in the way.
		blocker = p
	}
	var st unix.Stat_t
	for b := blocker; ; {
		if unix.Lstat(b, &st) == nil {
			e.Blocker = b
			break
		}
		parent := dirOf(b)
		if parent == b {
			return e
		}
		b = parent
	}
	e.Owner = strconv.Itoa(int(st.Uid))
	if u, err := user.LookupId(e.Owner); err == nil {
		e.Owner = u.Username
	}
	e.Group = strconv.Itoa(int(st.Gid))
	if g, err := user.LookupGroupId(e.Group); err == nil {
		e.Group = g.Name
	}
	e.Mode = fs.FileMode(st.Mode & 0o777)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		e.Mode |= fs.ModeDir
	}
	if st.Mode&unix.S_ISGID != 0 {
		e.Mode |= fs.ModeSetgid
	}
	if st.Mode&unix.S_ISUID != 0 {
		e.Mode |= fs.ModeSetuid
	}
	if st.Mode&unix.S_ISVTX != 0 {
		e.Mode |= fs.ModeSticky
	}
	return e
}

// dirOf is filepath.Dir without cleaning surprises for a root.
func dirOf(p string) string {
	for i := len(p) - 1; i > 0; i-- {
		if p[i] == '/' {
			return p[:i]
		}
	}
	return "/"
}
