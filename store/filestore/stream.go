package filestore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"example.com/cairn/store/driver"
)

var _ driver.Streamer = (*bucket)(nil)

// NewWriter implements driver.Streamer. The bytes go to a temporary file in
// the key's directory (created beneath the root without following symbolic
// links, mode fileMode before the umask, like every object), which Commit
// installs at the key exactly as an unconditional Write does: under the
// lock of the object it replaces, by rename(2), or by link(2) if there is
// none. Abort removes the temporary file. The version, a digest of the
// content, is computed as the bytes pass.
func (b *bucket) NewWriter(ctx context.Context, key string, _ *driver.WriterOptions) (driver.Writer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := b.path(key)
	if err != nil {
		return nil, err
	}
	dirKey, name := splitKey(key)
	dirfd, err := b.openDir(dirKey, true)
	if err != nil {
		return nil, explainPermission(p, filepath.Dir(p), err)
	}
	t := target{dirfd: dirfd, dir: filepath.Dir(p), name: name, p: p}
	fd, tmp, err := createTemp(t)
	if err != nil {
		unix.Close(dirfd)
		return nil, explainPermission(p, t.dir, err)
	}
	return &writer{ctx: ctx, b: b, t: t, fd: fd, tmp: tmp, sum: sha256.New()}, nil
}

type writer struct {
	ctx context.Context
	b   *bucket
	t   target
	fd  int // the temporary file; -1 once closed
	tmp string
	sum hash.Hash
}

func (w *writer) Write(p []byte) (int, error) {
	if err := writeAll(w.fd, p); err != nil {
		return 0, pathErr("write", filepath.Join(w.t.dir, w.tmp), err)
	}
	w.sum.Write(p)
	return len(p), nil
}

func (w *writer) Commit() (driver.Version, error) {
	defer w.cleanup()
	var err error
	if w.b.sync {
		err = unix.Fsync(w.fd)
	}
	if cerr := unix.Close(w.fd); err == nil {
		err = cerr
	}
	w.fd = -1
	if err != nil {
		return "", pathErr("write", filepath.Join(w.t.dir, w.tmp), err)
	}
	if err := w.ctx.Err(); err != nil {
		return "", err
	}
	renamed, err := w.b.put(w.ctx, w.t, w.tmp)
	if err != nil {
		return "", explainPermission(w.t.p, w.t.dir, err)
	}
	if renamed {
		w.tmp = ""
	}
	if w.b.sync {
		w.removeTemp() // before the directory sync, which then covers it
		if err := unix.Fsync(w.t.dirfd); err != nil {
			return "", pathErr("fsync", w.t.dir, err)
		}
	}
	sum := w.sum.Sum(nil)
	return driver.Version(hex.EncodeToString(sum[:16])), nil
}

func (w *writer) Abort() error {
	w.cleanup()
	return nil
}

func (w *writer) removeTemp() {
	if w.tmp != "" {
		unix.Unlinkat(w.t.dirfd, w.tmp, 0) // best effort; List skips leftovers
		w.tmp = ""
	}
}

// cleanup closes the temporary file and the directory and removes the
// temporary name.
func (w *writer) cleanup() {
	if w.fd >= 0 {
		unix.Close(w.fd)
		w.fd = -1
	}
	w.removeTemp()
	if w.t.dirfd >= 0 {
		unix.Close(w.t.dirfd)
		w.t.dirfd = -1
	}
}

// NewRangeReader implements driver.Streamer. The object is opened beneath
// the root without following symbolic links; objects are replaced by
// rename, never modified in place, so the open file is one version. The
// reader's Version is empty: it is a digest of the whole content.
func (b *bucket) NewRangeReader(ctx context.Context, key string, off, length int64) (driver.Reader, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := b.path(key)
	if err != nil {
		return nil, err
	}
	fd, st, err := b.openObject("read", key, p)
	if err != nil {
		return nil, err
	}
	// The descriptor was opened with O_NONBLOCK, which does not affect
	// regular files.
	f := os.NewFile(uintptr(fd), p)
	n := st.Size - min(off, st.Size)
	if length >= 0 {
		n = min(n, length)
	}
	return &reader{
		f:     f,
		r:     io.NewSectionReader(f, min(off, st.Size), n),
		attrs: driver.Attributes{Size: st.Size, ModTime: st.Mtim.Nano()},
	}, nil
}

type reader struct {
	f     *os.File
	r     io.Reader
	attrs driver.Attributes
}

func (r *reader) Read(p []byte) (int, error)    { return r.r.Read(p) }
func (r *reader) Close() error                  { return r.f.Close() }
func (r *reader) Attributes() driver.Attributes { return r.attrs }
