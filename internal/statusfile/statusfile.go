// Package statusfile reads and writes the per-step control files that sit
// beside every step's output, in Marin's formats:
//
//	.executor_status       one token: SUCCESS, FAILED, RUNNING or DEP_FAILED
//	.executor_status.lock  the lease (package lease)
//	.executor_info         step metadata, JSON, written once at launch
//	.artifact              the step's return value, JSON
//	.cairn_failure.json    cairn only: why the step last failed
//
// All writes go through [store.Bucket] and are atomic, so a reader never sees
// a torn file. Every read is bounded by [MaxSize] (store.Bucket.ReadLimit):
// a control file is small, and one that is not — or that is a directory, a
// FIFO or a symbolic link on a file system, which the store refuses with
// store.ErrNotRegular — is corrupt, not absent.
//
// The control files belong to cairn: [IsControl] names them, and the bucket
// handed to a step's own code is a store.Bucket.WithReserved view that
// cannot write them and does not list them.
package statusfile

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"example.com/cairn/store"
)

// File names under a step's output path.
const (
	StatusKey   = ".executor_status"
	LockKey     = ".executor_status.lock"
	InfoKey     = ".executor_info"
	ArtifactKey = ".artifact"
	FailureKey  = ".cairn_failure.json"
)

// MaxSize bounds the size of a control file read by this package and by
// package lease. Cairn's own records are a few hundred bytes; an info record
// with a large config stays well below it.
const MaxSize = 1 << 20

// Owner names the owner of the control files in error messages.
const Owner = "cairn (a step's control files are written only by the runner)"

// IsControl reports whether key, relative to a step's output path, is (or
// is below) one of the step's control files: its first path segment starts
// with ".executor" or ".cairn", or is ".artifact" or ".artifact.json"
// (Marin's later artifact name). Marin's runners use the same names, so the
// rule also covers files a Marin runner writes there.
func IsControl(key string) bool {
	seg, _, _ := strings.Cut(key, "/")
	return strings.HasPrefix(seg, ".executor") || strings.HasPrefix(seg, ".cairn") ||
		seg == ArtifactKey || seg == ArtifactKey+".json"
}

// read reads the control file key under b, bounded by MaxSize.
func read(ctx context.Context, b *store.Bucket, key string) ([]byte, error) {
	data, _, err := b.ReadLimit(ctx, key, MaxSize)
	if errors.Is(err, store.ErrTooLarge) || errors.Is(err, store.ErrNotRegular) {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return data, err
}

// Status tokens.
const (
	Success   = "SUCCESS"
	Failed    = "FAILED"
	Running   = "RUNNING"
	DepFailed = "DEP_FAILED"
)

// ErrCorrupt marks a control file that cannot be understood.
var ErrCorrupt = errors.New("corrupt control file")

// ParseStatus decodes the content of a status file. It returns "" for an
// empty file. It accepts the modern single-token format and the legacy
// JSON-lines event log of Marin's old executor (the status of the last line
// that has one wins). An unknown token is an error satisfying
// errors.Is(err, ErrCorrupt).
func ParseStatus(data []byte) (string, error) {
	var lines []string
	for line := range strings.SplitSeq(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			lines = append(lines, line)
		}
	}
	if len(lines) == 0 {
		return "", nil
	}
	token := lines[len(lines)-1]
	if len(lines) > 1 || strings.HasPrefix(lines[0], "{") {
		// Legacy format: {"date": ..., "status": "RUNNING", "message": null} per line.
		for _, line := range lines {
			var ev struct {
				Status *string `json:"status"`
			}
			if json.Unmarshal([]byte(line), &ev) == nil && ev.Status != nil {
				token = *ev.Status
			}
		}
	}
	switch token {
	case Success, Failed, Running, DepFailed:
		return token, nil
	}
	return "", fmt.Errorf("%w: unknown status %q (want SUCCESS, FAILED, RUNNING or DEP_FAILED)", ErrCorrupt, truncate(token, 80))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// ReadStatus returns the step's status token, or "" if it never ran.
func ReadStatus(ctx context.Context, b *store.Bucket) (string, error) {
	data, err := read(ctx, b, StatusKey)
	if errors.Is(err, store.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("%w; delete it to make the step run again", err)
	}
	s, err := ParseStatus(data)
	if err != nil {
		return "", fmt.Errorf("%s: %w; delete the file to make the step run again", b.URL(StatusKey), err)
	}
	return s, nil
}

// WriteStatus replaces the status token. It does not touch the lease.
func WriteStatus(ctx context.Context, b *store.Bucket, token string) error {
	_, err := b.Write(ctx, StatusKey, []byte(token))
	return err
}

// DeleteStatus removes the status file (the step reads as never run).
func DeleteStatus(ctx context.Context, b *store.Bucket) error {
	return b.Delete(ctx, StatusKey)
}

// Info is the `.executor_info` record the runner writes at launch (Marin's
// "step_runner" schema, §7.6 of the reference).
type Info struct {
	ExecutorVersion    string   `json:"executor_version"`
	Name               string   `json:"name"`
	FnName             string   `json:"fn_name"`
	Config             any      `json:"config"`
	Description        *string  `json:"description"`
	OverrideOutputPath *string  `json:"override_output_path"`
	Version            any      `json:"version"`
	Dependencies       []string `json:"dependencies"`
	OutputPath         string   `json:"output_path"`
}

// WriteInfoIfAbsent writes info unless an info file already exists (the
// executor layer may have written a richer one). It reports whether it wrote.
func WriteInfoIfAbsent(ctx context.Context, b *store.Bucket, info Info) (bool, error) {
	if info.Dependencies == nil {
		info.Dependencies = []string{}
	}
	if info.Version == nil {
		info.Version = map[string]any{}
	}
	data, err := marshalIndent(info)
	if err != nil {
		return false, fmt.Errorf("encode %s: %w", InfoKey, err)
	}
	_, err = b.WriteIf(ctx, InfoKey, data, store.IfAbsent())
	if errors.Is(err, store.ErrPrecondition) {
		return false, nil
	}
	return err == nil, err
}

// EncodeIndent encodes v as Python's print(json.dumps(v, indent=2)) lays
// it out: two-space indent, a final newline, no HTML escaping.
func EncodeIndent(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// marshalIndent is EncodeIndent without the final newline, as
// json.dumps(indent=2) writes a file.
func marshalIndent(v any) ([]byte, error) {
	data, err := EncodeIndent(v)
	return bytes.TrimRight(data, "\n"), err
}

// WriteInfo replaces `.executor_info` with info, encoded with EncodeIndent.
// The executor layer (package recipe) writes its richer record with it,
// every run, before the runner's write-if-absent.
func WriteInfo(ctx context.Context, b *store.Bucket, info any) error {
	data, err := EncodeIndent(info)
	if err != nil {
		return fmt.Errorf("encode %s: %w", InfoKey, err)
	}
	_, err = b.Write(ctx, InfoKey, data)
	return err
}

// ReadInfo decodes `.executor_info` into a generic map; ok is false if the
// file does not exist.
func ReadInfo(ctx context.Context, b *store.Bucket) (info map[string]any, ok bool, err error) {
	data, err := read(ctx, b, InfoKey)
	if errors.Is(err, store.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if err := json.Unmarshal(data, &info); err != nil {
		return nil, false, fmt.Errorf("%s: %w: %v", b.URL(InfoKey), ErrCorrupt, err)
	}
	return info, true, nil
}

// WriteArtifact stores the JSON encoding of v as the step's artifact.
func WriteArtifact(ctx context.Context, b *store.Bucket, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encode artifact: %w", err)
	}
	_, err := b.Write(ctx, ArtifactKey, bytes.TrimRight(buf.Bytes(), "\n"))
	return err
}

// ReadArtifact returns the raw artifact JSON. A missing artifact satisfies
// errors.Is(err, store.ErrNotExist).
func ReadArtifact(ctx context.Context, b *store.Bucket) ([]byte, error) {
	data, err := read(ctx, b, ArtifactKey)
	return data, err
}

// FailureFormat is the version of the failure record format.
const FailureFormat = 1

// Failure records why a step last failed, so that `cairn status` and a
// submitting runner can report what a worker hit.
type Failure struct {
	Format   int       `json:"format"`
	Error    string    `json:"error"`
	WorkerID string    `json:"worker_id"`
	Time     time.Time `json:"time"`
	// Stack is set when the step panicked.
	Stack string `json:"stack,omitempty"`
}

// WriteFailure records f.
func WriteFailure(ctx context.Context, b *store.Bucket, f Failure) error {
	f.Format = FailureFormat
	data, err := marshalIndent(f)
	if err != nil {
		return err
	}
	_, err = b.Write(ctx, FailureKey, data)
	return err
}

// ReadFailure returns the last failure record; ok is false if there is none.
func ReadFailure(ctx context.Context, b *store.Bucket) (f Failure, ok bool, err error) {
	data, err := read(ctx, b, FailureKey)
	if errors.Is(err, store.ErrNotExist) {
		return Failure{}, false, nil
	}
	if err != nil {
		return Failure{}, false, err
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return Failure{}, false, fmt.Errorf("%s: %w: %v", b.URL(FailureKey), ErrCorrupt, err)
	}
	return f, true, nil
}
