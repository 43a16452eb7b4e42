// Package driver defines the interface storage backends implement.
//
// Application code should use package store. This package is for authors of
// backends (filestore, memstore, and later object stores); the portable
// [store.Bucket] holds every piece of shared logic — key validation, error
// wrapping, retries — so that drivers stay small.
package driver

import (
	"context"
	"fmt"
	"io"
	"iter"
)

// Version identifies one stored revision of an object. It is opaque to
// callers: a content digest for local files, a generation number for GCS, an
// ETag for S3. Two reads of an unchanged object return the same Version; any
// successful write produces a Version different from every Version the key
// held before, as long as the written bytes differ.
type Version string

// ConditionKind says which precondition a write or delete carries.
type ConditionKind int

const (
	// Always applies the operation unconditionally.
	Always ConditionKind = iota
	// IfAbsent applies the operation only if the key does not exist.
	IfAbsent
	// IfVersion applies the operation only if the key exists and its current
	// Version equals Condition.Version.
	IfVersion
)

// Condition is the precondition of a Write or Delete. The zero value means
// "unconditionally".
type Condition struct {
	Kind    ConditionKind
	Version Version // used only when Kind == IfVersion
}

// Code classifies a driver error so the portable layer can wrap it once.
type Code int

const (
	// Unknown is any error the driver cannot classify; it is not retried.
	Unknown Code = iota
	// NotExist means the key does not exist.
	NotExist
	// Precondition means the Condition of a Write or Delete did not hold.
	Precondition
	// Transient means the operation may succeed if retried (timeouts, 5xx, 429).
	Transient
	// Permission means the caller is not allowed to perform the operation or
	// the bucket does not exist; retrying will not help.
	Permission
	// NotRegular means the key names something that is not an object and
	// cannot be read or replaced as one: on a file system, a directory, a
	// symbolic link, a FIFO, a socket or a device. Object stores never
	// return it.
	NotRegular
	// TooLarge means a size-limited read (LimitReader) found an object
	// larger than the limit.
	TooLarge
)

// Attributes describe a stored object without its content.
type Attributes struct {
	Size    int64
	Version Version
	// ModTime is the last modification time in Unix nanoseconds, or 0 when the
	// backend does not know it.
	ModTime int64
}

// Bucket is implemented by storage backends. Keys are slash-separated
// relative paths already validated by package store: non-empty, no leading or
// trailing slash, no empty, "." or ".." segments.
//
// Implementations must be safe for concurrent use by multiple goroutines.
type Bucket interface {
	// Read returns the object's bytes and version. If key does not exist, the
	// error must satisfy ErrorCode(err) == NotExist. A reader must never observe
	// a partially written object.
	Read(ctx context.Context, key string) ([]byte, Version, error)

	// Stat returns the object's attributes; NotExist if it does not exist.
	Stat(ctx context.Context, key string) (Attributes, error)

	// Write stores data at key if cond holds, atomically with respect to every
	// other writer of key — other goroutines and other processes alike. If the
	// condition does not hold, nothing is written and ErrorCode(err) ==
	// Precondition. On success it returns the new Version. A crash at any point
	// leaves either the old or the new content, never a mix.
	Write(ctx context.Context, key string, data []byte, cond Condition) (Version, error)

	// Delete removes key if cond holds (IfAbsent is invalid for Delete).
	// Deleting a key that does not exist with Kind == Always succeeds; with
	// Kind == IfVersion it fails with Precondition.
	Delete(ctx context.Context, key string, cond Condition) error

	// List yields every key under prefix (a key prefix ending in "/" or "" for
	// all keys), recursively, in lexical order. Backends must not yield their own
	// temporary or internal objects.
	List(ctx context.Context, prefix string) iter.Seq2[string, error]

	// ErrorCode classifies an error returned by this driver.
	ErrorCode(err error) Code

	// Close releases resources held by the bucket.
	Close() error
}

// LimitReader is an optional interface of a Bucket that can read an object
// without reading more than a given number of bytes. Package store uses it
// for [store.Bucket.ReadLimit] when the driver implements it, and otherwise
// reads the whole object and then checks its size.
type LimitReader interface {
	// ReadLimit is Read for an object of at most max bytes. If the object
	// is larger, it fails with ErrorCode(err) == TooLarge, having read at
	// most max+1 bytes of it.
	ReadLimit(ctx context.Context, key string, max int64) ([]byte, Version, error)
}

// TooLargeError is the error of a size-limited read (LimitReader) that
// found an object of Size bytes, more than Max. Drivers return it and
// classify it as TooLarge.
type TooLargeError struct{ Size, Max int64 }

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("object of %d bytes is larger than %d", e.Size, e.Max)
}

// Streamer is an optional interface of a Bucket that reads and writes
// objects as streams, without holding them in memory. Package store uses it
// for [store.Bucket.NewWriter] and [store.Bucket.NewRangeReader] when the
// driver implements it, and otherwise buffers whole objects through Read
// and Write.
type Streamer interface {
	// NewWriter starts an unconditional write of key. The object appears,
	// atomically replacing any earlier one, only when the Writer's Commit
	// succeeds: no reader ever sees a partial object. If ctx is done before
	// Commit returns, or Abort is called, nothing is written and every
	// resource the write held (a temporary file, a multipart upload) is
	// released. Every Writer must end with exactly one call of Commit or
	// Abort.
	//
	// opts is never nil. Drivers that send the object in parts should call
	// opts.Retry around each part, so that a transient failure repeats the
	// part, not the whole object.
	NewWriter(ctx context.Context, key string, opts *WriterOptions) (Writer, error)

	// NewRangeReader reads length bytes of key from offset off; a negative
	// length reads to the end. An offset at or past the end yields no
	// bytes. NotExist if the key does not exist. The returned Reader reads
	// one version of the object: a concurrent replacement never mixes
	// into it.
	NewRangeReader(ctx context.Context, key string, off, length int64) (Reader, error)
}

// WriterOptions are given by package store to [Streamer.NewWriter].
type WriterOptions struct {
	// Retry calls attempt until it succeeds or fails with an error the
	// bucket's retry policy does not retry, and returns the last error.
	// op names the request for callbacks ("write part"). attempt returns
	// the driver's own error.
	Retry func(ctx context.Context, op string, attempt func() error) error
}

// Writer is a streaming write started by [Streamer.NewWriter]. Its methods
// are called from one goroutine.
type Writer interface {
	io.Writer
	// Commit finishes the write and makes the object visible; it returns
	// its version. If it fails, nothing was written.
	Commit() (Version, error)
	// Abort abandons the write; nothing is written.
	Abort() error
}

// Reader is a streaming read started by [Streamer.NewRangeReader].
type Reader interface {
	io.ReadCloser
	// Attributes describe the whole object being read (not only the
	// range). Version may be empty when the backend cannot tell it without
	// reading the whole object (filestore's versions are content digests).
	Attributes() Attributes
}
