package store

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// DefaultTransferConcurrency is the number of files [Bucket.UploadDir] and
// [Bucket.DownloadDir] transfer at once by default.
const DefaultTransferConcurrency = 4

// TransferOptions configure [Bucket.UploadDir] and [Bucket.DownloadDir]. A
// nil *TransferOptions means all defaults.
type TransferOptions struct {
	// Concurrency is the number of files transferred at once; 0 means
	// DefaultTransferConcurrency. Each file is streamed, so memory grows
	// with Concurrency times the backend's buffer per stream (for s3store,
	// its part size times its part concurrency), not with file sizes.
	Concurrency int
}

func (o *TransferOptions) concurrency() int {
	if o == nil || o.Concurrency <= 0 {
		return DefaultTransferConcurrency
	}
	return o.Concurrency
}

// UploadDir writes every regular file under the local directory dir to the
// key dir/REL, where REL is the file's slash-separated path relative to dir
// (dir "" writes REL at the bucket's root). Files are streamed
// ([Bucket.NewWriter]), several at once. Directories are walked; any other
// kind of file (a symbolic link, a FIFO, a device) is an error, as is a
// relative path that is not a valid key. On the first error the remaining
// transfers are cancelled and UploadDir returns it; files already written
// stay written.
func (b *Bucket) UploadDir(ctx context.Context, localDir, dir string, opts *TransferOptions) error {
	dir = strings.Trim(dir, "/")
	return transfer(ctx, opts.concurrency(), func(ctx context.Context, send func(job) bool) error {
		return filepath.WalkDir(localDir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				return nil
			}
			if !d.Type().IsRegular() {
				return fmt.Errorf("store: upload %s: not a regular file or directory", p)
			}
			rel, err := filepath.Rel(localDir, p)
			if err != nil {
				return err
			}
			key := filepath.ToSlash(rel)
			if dir != "" {
				key = dir + "/" + key
			}
			if err := ValidateKey(key); err != nil {
				return fmt.Errorf("store: upload %s: %w", p, err)
			}
			if !send(func(ctx context.Context) error { return b.uploadFile(ctx, p, key) }) {
				return ctx.Err()
			}
			return nil
		})
	})
}

func (b *Bucket) uploadFile(ctx context.Context, p, key string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	w, err := b.NewWriter(ctx, key)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, f); err != nil {
		w.Abort()
		return fmt.Errorf("store: upload %s to %s: %w", p, b.URL(key), err)
	}
	return w.Close()
}

// DownloadDir reads every object under dir (relative to b; "" for all) into
// the local directory localDir, at the object's key relative to dir,
// creating directories as needed (mode 0777 before the umask; files 0666).
// Objects are streamed ([Bucket.NewReader]), several at once. Each file is
// written to a temporary name in its directory and renamed into place when
// complete. Nothing is written outside localDir: it is opened as an
// [os.Root], so symbolic links under it that lead outside are not followed.
// On the first error the remaining transfers are cancelled and DownloadDir
// returns it.
func (b *Bucket) DownloadDir(ctx context.Context, dir, localDir string, opts *TransferOptions) error {
	dir = strings.Trim(dir, "/")
	if err := os.MkdirAll(localDir, 0o777); err != nil {
		return fmt.Errorf("store: download to %s: %w", localDir, err)
	}
	root, err := os.OpenRoot(localDir)
	if err != nil {
		return fmt.Errorf("store: download to %s: %w", localDir, err)
	}
	defer root.Close()
	return transfer(ctx, opts.concurrency(), func(ctx context.Context, send func(job) bool) error {
		for key, err := range b.List(ctx, dir) {
			if err != nil {
				return err
			}
			rel := key
			if dir != "" {
				rel = strings.TrimPrefix(key, dir+"/")
			}
			if !send(func(ctx context.Context) error { return b.downloadFile(ctx, key, root, rel) }) {
				return ctx.Err()
			}
		}
		return nil
	})
}

func (b *Bucket) downloadFile(ctx context.Context, key string, root *os.Root, rel string) error {
	if d := path.Dir(rel); d != "." {
		if err := root.MkdirAll(filepath.FromSlash(d), 0o777); err != nil {
			return fmt.Errorf("store: download %s: %w", b.URL(key), err)
		}
	}
	r, err := b.NewReader(ctx, key)
	if err != nil {
		return err
	}
	defer r.Close()
	target := filepath.FromSlash(rel)
	tmp := filepath.Join(filepath.Dir(target), ".cairn-download-"+strconv.FormatUint(rand.Uint64(), 36))
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		return fmt.Errorf("store: download %s: %w", b.URL(key), err)
	}
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Rename(tmp, target)
	}
	if err != nil {
		root.Remove(tmp)
		return fmt.Errorf("store: download %s: %w", b.URL(key), err)
	}
	return nil
}

// A job is one file transfer.
type job func(ctx context.Context) error

// transfer runs the jobs that produce sends, n at a time. The first error,
// of a job or of produce, cancels the rest and is returned.
func transfer(ctx context.Context, n int, produce func(ctx context.Context, send func(job) bool) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	jobs := make(chan job)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel(err)
	}
	for range n {
		wg.Go(func() {
			for j := range jobs {
				if ctx.Err() != nil {
					continue
				}
				if err := j(ctx); err != nil {
					fail(err)
				}
			}
		})
	}
	send := func(j job) bool {
		select {
		case jobs <- j:
			return true
		case <-ctx.Done():
			return false
		}
	}
	err := produce(ctx, send)
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if err != nil {
		return err
	}
	return ctx.Err()
}
