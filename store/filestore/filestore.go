package filestore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"example.com/cairn/store"
	"example.com/cairn/store/driver"
)

// tmpPrefix starts the name of every temporary file. Such names are reserved:
// List skips them and keys containing them are rejected.
const tmpPrefix = ".cairn-tmp-"

// maxStale bounds the consecutive ESTALE retries of one lock attempt; a
// server that keeps answering ESTALE is reported rather than spun on.
const maxStale = 16

// Options configure a bucket. A nil *Options is valid and means all
// defaults.
type Options struct {
	// Sync makes every write and delete durable before it returns: the
	// temporary file is fsynced before it is committed and the directory
	// after. It costs one or two disk flushes per write (milliseconds on most
	// disks, more on NFS). Without it, writes are still atomic against process
	// crashes, but the most recent writes may be lost in a power failure or
	// kernel crash. With it, an error from the final directory sync is
	// returned although the new content is already visible. The default is
	// false.
	Sync bool
}

// Open returns a bucket rooted at the directory dir, made absolute against
// the working directory. It performs no I/O: the directory need not exist,
// and is created, with any missing parents, by the first write. It fails only
// if dir is empty or cannot be made absolute.
//
// The bucket's String is the absolute directory. Its Close does nothing.
func Open(dir string, opts *Options) (*store.Bucket, error) {
	b, err := newBucket(dir, opts)
	if err != nil {
		return nil, err
	}
	return store.NewBucket(b, b.root, nil), nil
}

func newBucket(dir string, opts *Options) (*bucket, error) {
	if dir == "" {
		return nil, errors.New("filestore: open: empty directory name")
	}
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("filestore: open %s: %w", dir, err)
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	return &bucket{root: root, sync: o.Sync}, nil
}

// URLOpener opens "file" URLs: "file:///abs/dir" or
// "file://localhost/abs/dir". Register it on a store.URLMux under "file"; the
// mux then also routes plain local paths to it. The zero value is ready to
// use.
type URLOpener struct {
	// Options apply to every bucket opened.
	Options Options
}

// OpenBucketURL implements store.BucketURLOpener. It returns the bucket
// rooted at u's path, as [Open] does. It fails if u has a host other than
// "localhost", a relative path, or query parameters.
func (o URLOpener) OpenBucketURL(_ context.Context, u *url.URL) (*store.Bucket, error) {
	switch {
	case u.Host != "" && u.Host != "localhost":
		return nil, fmt.Errorf("filestore: open %s: remote host %q is not supported; mount it and use a local path", u.Redacted(), u.Host)
	case u.RawQuery != "":
		return nil, fmt.Errorf("filestore: open %s: query parameters are not supported", u.Redacted())
	case u.Opaque != "" || !filepath.IsAbs(filepath.FromSlash(u.Path)):
		return nil, fmt.Errorf("filestore: open %s: want an absolute path (file:///dir)", u.Redacted())
	}
	opts := o.Options
	return Open(filepath.FromSlash(u.Path), &opts)
}

// bucket is the driver.Bucket for one directory.
type bucket struct {
	root string // absolute and clean
	sync bool

	// noTmpfile is set once the file system has refused O_TMPFILE, so that
	// later writes go straight to named temporary files.
	noTmpfile atomic.Bool

	// noOpenat2 is set once the kernel has answered ENOSYS to openat2, so
	// that later lookups walk the path with openat (beneath.go).
	noOpenat2 atomic.Bool

	// afterOpen, if non-nil, is called by lockCurrent after it opens the file
	// at path and before it locks it. It is a test seam for the race between
	// opening a file and locking it.
	afterOpen func(path string)
}

var _ driver.Bucket = (*bucket)(nil)

// preconditionError reports that the condition of a write or delete did not
// hold.
type preconditionError struct {
	reason string
}

func (e *preconditionError) Error() string { return e.reason }

var (
	errExists = &preconditionError{"object exists"}
	errAbsent = &preconditionError{"object does not exist, want a version"}
)

func versionMismatch(have, want driver.Version) error {
	return &preconditionError{fmt.Sprintf("version is %s, want %s", have, want)}
}

// version returns the version of content data.
func version(data []byte) driver.Version {
	sum := sha256.Sum256(data)
	return driver.Version(hex.EncodeToString(sum[:16]))
}

// reserved reports whether name is one of the package's temporary files or
// an NFS client's ".nfs" + 24 hex digits name for a removed but open file.
func reserved(name string) bool {
	if strings.HasPrefix(name, tmpPrefix) {
		return true
	}
	hexDigits, ok := strings.CutPrefix(name, ".nfs")
	if !ok || len(hexDigits) != 24 {
		return false
	}
	_, err := hex.DecodeString(hexDigits)
	return err == nil
}

// path returns the file name of key, for messages and for the resolution
// beneath the root. Package store has validated the key; this is a second
// line of defence, and rejects the package's reserved names.
func (b *bucket) path(key string) (string, error) {
	rel := filepath.FromSlash(key)
	if !filepath.IsLocal(rel) {
		return "", fmt.Errorf("%w %q: not a local path", store.ErrInvalidKey, key)
	}
	for seg := range strings.SplitSeq(key, "/") {
		if reserved(seg) {
			return "", fmt.Errorf("%w %q: segment %q is a reserved file name", store.ErrInvalidKey, key, seg)
		}
	}
	return filepath.Join(b.root, rel), nil
}

func (b *bucket) Read(ctx context.Context, key string) ([]byte, driver.Version, error) {
	return b.read(ctx, key, -1)
}

// ReadLimit implements driver.LimitReader: it reads at most max+1 bytes.
func (b *bucket) ReadLimit(ctx context.Context, key string, max int64) ([]byte, driver.Version, error) {
	return b.read(ctx, key, max)
}

func (b *bucket) read(ctx context.Context, key string, max int64) ([]byte, driver.Version, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	p, err := b.path(key)
	if err != nil {
		return nil, "", err
	}
	fd, st, err := b.openObject("read", key, p)
	if err != nil {
		return nil, "", err
	}
	defer unix.Close(fd)
	data, err := readFd(fd, p, st.Size, max)
	if err != nil {
		return nil, "", err
	}
	return data, version(data), nil
}

func (b *bucket) Stat(ctx context.Context, key string) (driver.Attributes, error) {
	if err := ctx.Err(); err != nil {
		return driver.Attributes{}, err
	}
	p, err := b.path(key)
	if err != nil {
		return driver.Attributes{}, err
	}
	fd, st, err := b.openObject("stat", key, p)
	if err != nil {
		return driver.Attributes{}, err
	}
	defer unix.Close(fd)
	// Objects are never modified in place, so the open file's content and
	// modification time belong to one version.
	data, err := readFd(fd, p, st.Size, -1)
	if err != nil {
		return driver.Attributes{}, err
	}
	return driver.Attributes{
		Size:    int64(len(data)),
		Version: version(data),
		ModTime: st.Mtim.Nano(),
	}, nil
}

// target is the directory of a key, open beneath the root, and the key's
// final name in it.
type target struct {
	dirfd int
	dir   string // the directory's path, for messages
	name  string
	p     string // the object's path, for messages
}

func (b *bucket) Write(ctx context.Context, key string, data []byte, cond driver.Condition) (driver.Version, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if cond.Kind != driver.Always && cond.Kind != driver.IfAbsent && cond.Kind != driver.IfVersion {
		return "", fmt.Errorf("unknown condition kind %d", cond.Kind)
	}
	p, err := b.path(key)
	if err != nil {
		return "", err
	}
	dirKey, name := splitKey(key)
	// A replace needs an existing target, so it never creates directories:
	// a missing directory means a missing object.
	dirfd, err := b.openDir(dirKey, cond.Kind != driver.IfVersion)
	if err != nil {
		if cond.Kind == driver.IfVersion && isNotExist(err) {
			return "", errAbsent
		}
		return "", err
	}
	defer unix.Close(dirfd)
	t := target{dirfd: dirfd, dir: filepath.Dir(p), name: name, p: p}
	v, err := b.write(ctx, t, data, cond)
	if err != nil {
		return "", explainPermission(p, t.dir, err)
	}
	return v, nil
}

func (b *bucket) write(ctx context.Context, t target, data []byte, cond driver.Condition) (driver.Version, error) {
	switch cond.Kind {
	case driver.IfAbsent:
		err := b.createUnnamed(t, data)
		if err != errNoTmpfile {
			return b.finishWrite(t, data, err)
		}
	case driver.Always:
		var st unix.Stat_t
		if err := unix.Fstatat(t.dirfd, t.name, &st, unix.AT_SYMLINK_NOFOLLOW); err == unix.ENOENT {
			// Nothing to lock: create it like IfAbsent, and fall through to
			// the locked replace below if someone created it meanwhile.
			err := b.createUnnamed(t, data)
			if err != errNoTmpfile && err != errExists {
				return b.finishWrite(t, data, err)
			}
		}
	}

	tmp, err := b.writeTemp(t, data)
	if err != nil {
		return "", err
	}
	tmpGone := false // renamed into place, or removed
	defer func() {
		if !tmpGone {
			unix.Unlinkat(t.dirfd, tmp, 0) // best effort; List skips leftovers
		}
	}()

	switch cond.Kind {
	case driver.IfAbsent:
		err = b.create(t, tmp)
	case driver.IfVersion:
		tmpGone, err = b.replace(ctx, t, tmp, cond.Version)
	default:
		tmpGone, err = b.put(ctx, t, tmp)
	}
	if err != nil {
		return "", err
	}
	if b.sync {
		if !tmpGone {
			// Remove the temporary name first, so that the directory sync
			// covers its removal too.
			unix.Unlinkat(t.dirfd, tmp, 0)
			tmpGone = true
		}
		if err := unix.Fsync(t.dirfd); err != nil {
			return "", pathErr("fsync", t.dir, err)
		}
	}
	return version(data), nil
}

// finishWrite completes a write made by createUnnamed: it syncs the
// directory if the bucket is durable and returns the new version.
func (b *bucket) finishWrite(t target, data []byte, err error) (driver.Version, error) {
	if err != nil {
		return "", err
	}
	if b.sync {
		if err := unix.Fsync(t.dirfd); err != nil {
			return "", pathErr("fsync", t.dir, err)
		}
	}
	return version(data), nil
}

// writeTemp writes data to a new temporary file in t's directory and
// returns its name. Its mode is fileMode, as a directly created object's.
func (b *bucket) writeTemp(t target, data []byte) (string, error) {
	fd, name, err := createTemp(t)
	if err != nil {
		return "", err
	}
	err = writeAll(fd, data)
	if err == nil && b.sync {
		err = unix.Fsync(fd)
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		unix.Unlinkat(t.dirfd, name, 0)
		return "", pathErr("write", filepath.Join(t.dir, name), err)
	}
	return name, nil
}

// createTemp creates a new, empty temporary file in t's directory, with mode
// fileMode, and returns its descriptor (open for writing) and name.
func createTemp(t target) (int, string, error) {
	for {
		name := tmpPrefix + strconv.FormatUint(rand.Uint64(), 36)
		fd, err := openat(t.dirfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, fileMode)
		if err == nil {
			return fd, name, nil
		}
		if err != unix.EEXIST { // else a 64-bit random name collided; draw another
			return -1, "", pathErr("create", filepath.Join(t.dir, name), err)
		}
	}
}

// create links tmp to t's name if nothing exists there. The caller removes
// tmp.
func (b *bucket) create(t target, tmp string) error {
	err := unix.Linkat(t.dirfd, tmp, t.dirfd, t.name, 0)
	if err == unix.EEXIST {
		if sameFileAt(t.dirfd, tmp, t.name) {
			// NFS: our LINK succeeded, but its reply was lost and the
			// retransmission found our own file.
			return nil
		}
		return errExists
	}
	return pathErr("link", t.p, err)
}

// replace renames tmp over t's name if its content has version want. It
// reports whether tmp was renamed.
func (b *bucket) replace(ctx context.Context, t target, tmp string, want driver.Version) (bool, error) {
	fd, size, err := b.lockCurrentSize(ctx, t)
	if err != nil {
		if isNotExist(err) {
			return false, errAbsent
		}
		return false, err
	}
	defer unix.Close(fd) // releases the lock
	data, err := readFd(fd, t.p, size, -1)
	if err != nil {
		return false, err
	}
	if have := version(data); have != want {
		return false, versionMismatch(have, want)
	}
	if err := unix.Renameat(t.dirfd, tmp, t.dirfd, t.name); err != nil {
		return false, pathErr("rename", t.p, err)
	}
	return true, nil
}

// put installs tmp at t's name unconditionally. It reports whether tmp was
// renamed (rather than linked).
func (b *bucket) put(ctx context.Context, t target, tmp string) (bool, error) {
	for {
		fd, err := b.lockCurrent(ctx, t)
		if isNotExist(err) {
			// Nothing to lock. Create with link(2) rather than rename, so that
			// if another writer created the object meanwhile we do not replace
			// it without its lock, but start over.
			err = b.create(t, tmp)
			if err == errExists {
				continue
			}
			return false, err
		}
		if err != nil {
			return false, err // including a non-object there: not replaced
		}
		err = unix.Renameat(t.dirfd, tmp, t.dirfd, t.name)
		unix.Close(fd) // releases the lock
		return err == nil, pathErr("rename", t.p, err)
	}
}

func (b *bucket) Delete(ctx context.Context, key string, cond driver.Condition) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if cond.Kind != driver.Always && cond.Kind != driver.IfVersion {
		return fmt.Errorf("condition kind %d is not valid for delete", cond.Kind)
	}
	p, err := b.path(key)
	if err != nil {
		return err
	}
	absent := func() error {
		if cond.Kind == driver.IfVersion {
			return errAbsent
		}
		return nil
	}
	dirKey, name := splitKey(key)
	dirfd, err := b.openDir(dirKey, false)
	if isNotExist(err) {
		return absent()
	}
	if err != nil {
		return err
	}
	defer unix.Close(dirfd)
	t := target{dirfd: dirfd, dir: filepath.Dir(p), name: name, p: p}
	// Unconditional deletes lock too: removing the file between a
	// conditional writer's comparison and its rename would let the rename
	// resurrect the object.
	fd, size, err := b.lockCurrentSize(ctx, t)
	if isNotExist(err) {
		return absent()
	}
	if err != nil {
		return err // a directory or other non-object at p is not removed
	}
	defer unix.Close(fd) // releases the lock
	if cond.Kind == driver.IfVersion {
		data, err := readFd(fd, p, size, -1)
		if err != nil {
			return err
		}
		if have := version(data); have != cond.Version {
			return versionMismatch(have, cond.Version)
		}
	}
	if err := unix.Unlinkat(dirfd, name, 0); err != nil && err != unix.ENOENT {
		return explainPermission(p, t.dir, pathErr("remove", p, err))
	}
	if b.sync {
		return pathErr("fsync", t.dir, unix.Fsync(dirfd))
	}
	return nil
}

// lockCurrent opens the object at t and returns its descriptor with an
// exclusive flock held, verified to still be the file at t. Closing the
// descriptor releases the lock. If there is no object the error satisfies
// isNotExist; if something other than a regular file is there, it is a
// not-regular error.
//
// The check after locking is what makes the lock meaningful: a writer that
// opened the file and then waited for the lock while another writer replaced
// the file holds a lock on an orphaned inode, which protects nothing.
func (b *bucket) lockCurrent(ctx context.Context, t target) (int, error) {
	fd, _, err := b.lockCurrentSize(ctx, t)
	return fd, err
}

// lockCurrentSize is lockCurrent that also returns the locked file's size,
// for the read that follows to need no extra read to find its end.
func (b *bucket) lockCurrentSize(ctx context.Context, t target) (int, int64, error) {
	stale := 0
	for {
		if err := ctx.Err(); err != nil {
			return -1, 0, err
		}
		fd, err := openat(t.dirfd, t.name, objectFlags, 0)
		if err != nil {
			if err == unix.ESTALE && stale < maxStale {
				stale++
				continue
			}
			return -1, 0, pathErr("open", t.p, err)
		}
		if b.afterOpen != nil {
			b.afterOpen(t.p)
		}
		current, size, err := lockAndCheck(fd, t)
		if err != nil {
			unix.Close(fd)
			if errors.Is(err, unix.ESTALE) && stale < maxStale {
				stale++
				continue
			}
			return -1, 0, err
		}
		if current {
			return fd, size, nil
		}
		unix.Close(fd) // replaced or removed while we waited; try the new file
		stale = 0
	}
}

// lockAndCheck takes an exclusive flock on fd, opened from t, and reports
// whether fd is still the file at t. It locks only regular files.
func lockAndCheck(fd int, t target) (bool, int64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return false, 0, pathErr("fstat", t.p, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return false, 0, errNotRegular("lock", t.p, st.Mode)
	}
	if err := flockFd(fd); err != nil {
		return false, 0, pathErr("flock", t.p, err)
	}
	// Stat again after locking: on NFS, taking the lock revalidates the
	// attributes, and Nlink == 0 reveals an inode that another client has
	// replaced or removed even if our lookup of the name is stale.
	if err := unix.Fstat(fd, &st); err != nil {
		return false, 0, pathErr("fstat", t.p, err)
	}
	if st.Nlink == 0 {
		return false, 0, nil
	}
	var cur unix.Stat_t
	err := unix.Fstatat(t.dirfd, t.name, &cur, unix.AT_SYMLINK_NOFOLLOW)
	if err == unix.ENOENT {
		return false, 0, nil
	}
	if err != nil {
		return false, 0, pathErr("stat", t.p, err)
	}
	return cur.Dev == st.Dev && cur.Ino == st.Ino, st.Size, nil
}

// flockFd takes an exclusive flock(2) on fd, waiting as long as it takes.
func flockFd(fd int) error {
	for {
		// Go installs its signal handlers with SA_RESTART, which restarts
		// flock; the loop is for signal handlers installed by C code.
		if err := unix.Flock(fd, unix.LOCK_EX); err != unix.EINTR {
			return err
		}
	}
}

// flock takes an exclusive flock(2) on f, waiting as long as it takes.
func flock(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) { lerr = flockFd(int(fd)) }); err != nil {
		return err
	}
	return lerr
}

// sameFileAt reports whether the names a and b in dirfd refer to the same
// file.
func sameFileAt(dirfd int, a, b string) bool {
	var as, bs unix.Stat_t
	return unix.Fstatat(dirfd, a, &as, unix.AT_SYMLINK_NOFOLLOW) == nil &&
		unix.Fstatat(dirfd, b, &bs, unix.AT_SYMLINK_NOFOLLOW) == nil &&
		as.Dev == bs.Dev && as.Ino == bs.Ino
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// isNotExist reports whether err means that a path (or one of its parents)
// does not exist. A component that is a file where a directory was expected
// (ENOTDIR) counts: no key below a file can exist.
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR)
}

func (b *bucket) List(ctx context.Context, prefix string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		// Split "a/b/fo" into the directory "a/b/" to walk and the name
		// prefix "fo" its entries must have.
		dirKey, name := splitKey(prefix)
		if dirKey != "" {
			if _, err := b.path(dirKey); err != nil {
				yield("", err)
				return
			}
		}
		fd, err := b.openDir(dirKey, false)
		if isNotExist(err) {
			return
		}
		if err != nil {
			yield("", err)
			return
		}
		keyPrefix := ""
		if dirKey != "" {
			keyPrefix = dirKey + "/"
		}
		b.walk(ctx, fd, filepath.Join(b.root, filepath.FromSlash(dirKey)), keyPrefix, name, yield)
	}
}

// walk yields, in lexical order, the keys of the entries other than
// directories below the directory open as fd (at path dir) whose names
// start with name, prefixed by keyPrefix. It takes ownership of fd. It does
// not descend into symbolic links (a link is yielded as a key, which Read
// refuses), and it yields FIFOs, sockets and devices too, so that a control
// file in such a state is found and reported as corrupt rather than
// silently missing. It reports whether to go on.
func (b *bucket) walk(ctx context.Context, fd int, dir, keyPrefix, name string, yield func(string, error) bool) bool {
	f := os.NewFile(uintptr(fd), dir)
	defer f.Close()
	if err := ctx.Err(); err != nil {
		yield("", err)
		return false
	}
	entries, err := f.ReadDir(-1)
	if isNotExist(err) {
		return true
	}
	if err != nil {
		yield("", err)
		return false
	}
	type entry struct {
		sortKey string // the name, followed by "/" for a directory
		dir     bool
	}
	var ents []entry
	for _, e := range entries {
		n := e.Name()
		if reserved(n) || !strings.HasPrefix(n, name) {
			continue
		}
		if e.IsDir() {
			n += "/"
		}
		ents = append(ents, entry{n, e.IsDir()})
	}
	// Keys below a directory "d" all start with "d/", so ordering directories
	// by name+"/" among the files puts their keys in lexical order: "a-b" <
	// "a/x" < "a0".
	slices.SortFunc(ents, func(x, y entry) int { return strings.Compare(x.sortKey, y.sortKey) })
	for _, e := range ents {
		if e.dir {
			n := strings.TrimSuffix(e.sortKey, "/")
			sub, err := openat(fd, n, dirFlags, 0)
			if err == unix.ENOENT || err == unix.ENOTDIR || err == unix.ELOOP {
				continue // removed, or replaced by a non-directory, meanwhile
			}
			if err != nil {
				yield("", pathErr("open", filepath.Join(dir, n), err))
				return false
			}
			if !b.walk(ctx, sub, filepath.Join(dir, n), keyPrefix+e.sortKey, "", yield) {
				return false
			}
		} else if !yield(keyPrefix+e.sortKey, nil) {
			return false
		}
	}
	return true
}

func (b *bucket) ErrorCode(err error) driver.Code {
	var (
		pe *preconditionError
		nr *notRegularError
		tl *tooLargeError
	)
	switch {
	case errors.As(err, &pe):
		return driver.Precondition
	case errors.As(err, &nr):
		return driver.NotRegular
	case errors.As(err, &tl):
		return driver.TooLarge
	case isNotExist(err):
		return driver.NotExist
	case errors.Is(err, fs.ErrPermission), errors.Is(err, unix.EROFS):
		return driver.Permission
	case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR),
		errors.Is(err, unix.ESTALE), errors.Is(err, unix.ETIMEDOUT):
		return driver.Transient
	}
	return driver.Unknown
}

// Close does nothing; the bucket holds no resources.
func (b *bucket) Close() error { return nil }
