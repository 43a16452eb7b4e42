package filestore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
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
	"syscall"

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

// errDir is the error of treating the directory at path as an object; it
// satisfies errors.Is(err, fs.ErrNotExist).
func errDir(op, path string) error {
	return &fs.PathError{Op: op, Path: path, Err: errIsDirectory{}}
}

type errIsDirectory struct{}

func (errIsDirectory) Error() string        { return "is a directory, not an object" }
func (errIsDirectory) Is(target error) bool { return target == fs.ErrNotExist }

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

// path returns the file name of key. Package store has validated the key;
// this is a second line of defence against a path escaping the root.
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
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	p, err := b.path(key)
	if err != nil {
		return nil, "", err
	}
	data, err := readFile(p)
	if errors.Is(err, syscall.EISDIR) {
		return nil, "", errDir("read", p)
	}
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
	f, err := os.Open(p)
	if err != nil {
		return driver.Attributes{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return driver.Attributes{}, err
	}
	if fi.IsDir() {
		return driver.Attributes{}, errDir("stat", p)
	}
	// Objects are never modified in place, so the open file's content and
	// modification time belong to one version.
	data, err := io.ReadAll(f)
	if err != nil {
		return driver.Attributes{}, err
	}
	return driver.Attributes{
		Size:    int64(len(data)),
		Version: version(data),
		ModTime: fi.ModTime().UnixNano(),
	}, nil
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
	dir := filepath.Dir(p)

	switch cond.Kind {
	case driver.IfAbsent:
		err := b.createUnnamedMkdir(dir, p, data)
		if err != errNoTmpfile {
			return b.finishWrite(dir, data, err)
		}
	case driver.Always:
		if _, err := os.Lstat(p); isNotExist(err) {
			// Nothing to lock: create it like IfAbsent, and fall through to
			// the locked replace below if someone created it meanwhile.
			err := b.createUnnamedMkdir(dir, p, data)
			if err != errNoTmpfile && err != errExists {
				return b.finishWrite(dir, data, err)
			}
		}
	}

	// A replace needs an existing target, so it never creates directories:
	// a missing directory means a missing object.
	tmp, err := b.writeTemp(dir, data, cond.Kind != driver.IfVersion)
	if err != nil {
		if cond.Kind == driver.IfVersion && isNotExist(err) {
			return "", errAbsent
		}
		return "", err
	}
	tmpGone := false // renamed into place, or removed
	defer func() {
		if !tmpGone {
			os.Remove(tmp) // best effort; List skips leftovers
		}
	}()

	switch cond.Kind {
	case driver.IfAbsent:
		err = b.create(tmp, p)
	case driver.IfVersion:
		tmpGone, err = b.replace(ctx, tmp, p, cond.Version)
	default:
		tmpGone, err = b.put(ctx, tmp, p)
	}
	if err != nil {
		return "", err
	}
	if b.sync {
		if !tmpGone {
			// Remove the temporary name first, so that the directory sync
			// covers its removal too.
			os.Remove(tmp)
			tmpGone = true
		}
		if err := syncDir(dir); err != nil {
			return "", err
		}
	}
	return version(data), nil
}

// createUnnamedMkdir is createUnnamed that creates a missing dir first.
func (b *bucket) createUnnamedMkdir(dir, p string, data []byte) error {
	err := b.createUnnamed(dir, p, data)
	if isNotExist(err) {
		if err := b.mkdirAll(dir); err != nil {
			return err
		}
		err = b.createUnnamed(dir, p, data)
	}
	return err
}

// finishWrite completes a write made by createUnnamed: it syncs the
// directory if the bucket is durable and returns the new version.
func (b *bucket) finishWrite(dir string, data []byte, err error) (driver.Version, error) {
	if err != nil {
		return "", err
	}
	if b.sync {
		if err := syncDir(dir); err != nil {
			return "", err
		}
	}
	return version(data), nil
}

// writeTemp writes data to a new temporary file in dir and returns its name.
// If mkdir is set, a missing dir is created.
func (b *bucket) writeTemp(dir string, data []byte, mkdir bool) (string, error) {
	var f *os.File
	var name string
	for made := false; ; {
		name = filepath.Join(dir, tmpPrefix+strconv.FormatUint(rand.Uint64(), 36))
		var err error
		f, err = os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			break
		}
		switch {
		case errors.Is(err, fs.ErrExist):
			// A 64-bit random name collided; draw another.
		case mkdir && !made && errors.Is(err, fs.ErrNotExist):
			if err := b.mkdirAll(dir); err != nil {
				return "", err
			}
			made = true
		default:
			return "", err
		}
	}
	_, err := f.Write(data)
	if err == nil && b.sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}

// mkdirAll creates dir and its missing parents. With Sync it also syncs
// each directory from dir's parent up to the root's parent, so that the new
// entries survive a power loss along with the object.
func (b *bucket) mkdirAll(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil || !b.sync {
		return err
	}
	for d := dir; ; d = filepath.Dir(d) {
		parent := filepath.Dir(d)
		if err := syncDir(parent); err != nil {
			return err
		}
		if d == b.root || parent == d || !strings.HasPrefix(d, b.root) {
			return nil
		}
	}
}

// create links tmp to p if nothing exists at p. The caller removes tmp.
func (b *bucket) create(tmp, p string) error {
	err := os.Link(tmp, p)
	if errors.Is(err, fs.ErrExist) {
		if sameFile(tmp, p) {
			// NFS: our LINK succeeded, but its reply was lost and the
			// retransmission found our own file.
			return nil
		}
		return errExists
	}
	return err
}

// replace renames tmp over p if p's content has version want. It reports
// whether tmp was renamed.
func (b *bucket) replace(ctx context.Context, tmp, p string, want driver.Version) (bool, error) {
	f, err := b.lockCurrent(ctx, p)
	if err != nil {
		if isNotExist(err) {
			return false, errAbsent
		}
		return false, err
	}
	defer f.Close() // releases the lock
	data, err := io.ReadAll(f)
	if err != nil {
		return false, err
	}
	if have := version(data); have != want {
		return false, versionMismatch(have, want)
	}
	if err := os.Rename(tmp, p); err != nil {
		return false, err
	}
	return true, nil
}

// put installs tmp at p unconditionally. It reports whether tmp was renamed
// (rather than linked).
func (b *bucket) put(ctx context.Context, tmp, p string) (bool, error) {
	for {
		f, err := b.lockCurrent(ctx, p)
		if errors.Is(err, errIsDirectory{}) {
			// Not "does not exist": the write cannot succeed.
			return false, &fs.PathError{Op: "write", Path: p, Err: syscall.EISDIR}
		}
		if isNotExist(err) {
			// Nothing to lock. Create with link(2) rather than rename, so that
			// if another writer created p meanwhile we do not replace it
			// without its lock, but start over.
			err = b.create(tmp, p)
			if err == errExists {
				continue
			}
			return false, err
		}
		if err != nil {
			return false, err
		}
		err = os.Rename(tmp, p)
		f.Close() // releases the lock
		return err == nil, err
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
	// Unconditional deletes lock too: removing the file between a
	// conditional writer's comparison and its rename would let the rename
	// resurrect the object.
	f, err := b.lockCurrent(ctx, p)
	if isNotExist(err) { // includes a directory at p: not an object
		if cond.Kind == driver.IfVersion {
			return errAbsent
		}
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close() // releases the lock
	if cond.Kind == driver.IfVersion {
		data, err := io.ReadAll(f)
		if err != nil {
			return err
		}
		if have := version(data); have != cond.Version {
			return versionMismatch(have, cond.Version)
		}
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if b.sync {
		return syncDir(filepath.Dir(p))
	}
	return nil
}

// lockCurrent opens the file at p and returns it with an exclusive flock
// held, verified to still be the file at p. Closing the file releases the
// lock. If p does not exist the error satisfies isNotExist; if it is a
// directory, errors.Is(err, errIsDirectory{}) (and isNotExist).
//
// The check after locking is what makes the lock meaningful: a writer that
// opened the file and then waited for the lock while another writer replaced
// the file holds a lock on an orphaned inode, which protects nothing.
func (b *bucket) lockCurrent(ctx context.Context, p string) (*os.File, error) {
	stale := 0
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		f, err := os.Open(p)
		if err != nil {
			if errors.Is(err, syscall.ESTALE) && stale < maxStale {
				stale++
				continue
			}
			return nil, err
		}
		if b.afterOpen != nil {
			b.afterOpen(p)
		}
		current, err := lockAndCheck(f, p)
		if err != nil {
			f.Close()
			if errors.Is(err, syscall.ESTALE) && stale < maxStale {
				stale++
				continue
			}
			return nil, err
		}
		if current {
			return f, nil
		}
		f.Close() // replaced or removed while we waited; try the new file
		stale = 0
	}
}

// lockAndCheck takes an exclusive flock on f, opened from p, and reports
// whether f is still the file at p. It does not lock directories.
func lockAndCheck(f *os.File, p string) (bool, error) {
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	if fi.IsDir() {
		return false, errDir("lock", p)
	}
	if err := flock(f); err != nil {
		return false, &fs.PathError{Op: "flock", Path: p, Err: err}
	}
	// Stat again after locking: on NFS, taking the lock revalidates the
	// attributes, and Nlink == 0 reveals an inode that another client has
	// replaced or removed even if our lookup of p is stale.
	if fi, err = f.Stat(); err != nil {
		return false, err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink == 0 {
		return false, nil
	}
	pi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(fi, pi), nil
}

// flock takes an exclusive flock(2) on f, waiting as long as it takes.
func flock(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var lerr error
	err = rc.Control(func(fd uintptr) {
		for {
			// Go installs its signal handlers with SA_RESTART, which restarts
			// flock; the loop is for signal handlers installed by C code.
			if lerr = syscall.Flock(int(fd), syscall.LOCK_EX); lerr != syscall.EINTR {
				return
			}
		}
	})
	if err != nil {
		return err
	}
	return lerr
}

// sameFile reports whether the names a and b refer to the same file.
func sameFile(a, b string) bool {
	ai, err := os.Stat(a)
	if err != nil {
		return false
	}
	bi, err := os.Lstat(b)
	return err == nil && os.SameFile(ai, bi)
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
// does not exist, or names a directory where an object was expected.
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

func (b *bucket) List(ctx context.Context, prefix string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		// Split "a/b/fo" into the directory "a/b/" to walk and the name
		// prefix "fo" its entries must have.
		dirKey, name := "", prefix
		if i := strings.LastIndex(prefix, "/"); i >= 0 {
			dirKey, name = prefix[:i+1], prefix[i+1:]
		}
		dir := b.root
		if dirKey != "" {
			var err error
			if dir, err = b.path(strings.TrimSuffix(dirKey, "/")); err != nil {
				yield("", err)
				return
			}
		}
		b.walk(ctx, dir, dirKey, name, yield)
	}
}

// walk yields, in lexical order, the keys of the files below dir whose names
// start with name, prefixed by keyPrefix. It reports whether to go on.
func (b *bucket) walk(ctx context.Context, dir, keyPrefix, name string, yield func(string, error) bool) bool {
	if err := ctx.Err(); err != nil {
		yield("", err)
		return false
	}
	entries, err := os.ReadDir(dir)
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
			if !b.walk(ctx, filepath.Join(dir, n), keyPrefix+e.sortKey, "", yield) {
				return false
			}
		} else if !yield(keyPrefix+e.sortKey, nil) {
			return false
		}
	}
	return true
}

func (b *bucket) ErrorCode(err error) driver.Code {
	var pe *preconditionError
	switch {
	case errors.As(err, &pe):
		return driver.Precondition
	case isNotExist(err):
		return driver.NotExist
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS):
		return driver.Permission
	case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EINTR),
		errors.Is(err, syscall.ESTALE), errors.Is(err, syscall.ETIMEDOUT):
		return driver.Transient
	}
	return driver.Unknown
}

// Close does nothing; the bucket holds no resources.
func (b *bucket) Close() error { return nil }
