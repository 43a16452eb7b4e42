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

// read reads the control file key under b, bounded by MaxSize, and its
// version.
func read(ctx context.Context, b *store.Bucket, key string) ([]byte, store.Version, error) {
	data, v, err := b.ReadLimit(ctx, key, MaxSize)
	if errors.Is(err, store.ErrTooLarge) || errors.Is(err, store.ErrNotRegular) {
		return nil, "", fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return data, v, err
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

// ErrFenced means another attempt has taken the step over: the status file
// no longer holds this attempt's RUNNING record, and this attempt's writes
// are refused.
var ErrFenced = errors.New("step taken over by another attempt")

// ParseStatus decodes the content of a status file. It accepts exactly
// the two formats Marin writes, and returns "" (never ran) for an empty or
// blank file:
//
//   - the modern format: one status token, SUCCESS, FAILED, RUNNING or
//     DEP_FAILED. Marin writes it with no newline; surrounding whitespace
//     (a trailing newline from an editor or echo) is allowed, as Marin's
//     reader strips it.
//   - the legacy JSON-lines event log of Marin's old executor, one
//     {"date": ..., "status": ..., "message": ...} object per line. Every
//     non-blank line must be a JSON object whose "status" is a string; the
//     last line's status wins. Its statuses are the four tokens and WAITING,
//     which the old executor wrote before a step's dependencies finished: a
//     log ending in WAITING is a step that never started, and reads as "".
//
// Anything else — several bare lines ("FAILED\nSUCCESS"), a token beside a
// line that is not one, a log line that is not a JSON object with a known
// status, an unknown token — is an error satisfying
// errors.Is(err, ErrCorrupt): guessing would risk skipping a step that never
// succeeded (issue 8). Marin's own reader is more lenient: it takes the last
// line, or skips log lines it cannot parse.
func ParseStatus(data []byte) (string, error) {
	var lines []string
	for line := range strings.SplitSeq(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			lines = append(lines, line)
		}
	}
	switch {
	case len(lines) == 0:
		return "", nil
	case len(lines) == 1 && !strings.HasPrefix(lines[0], "{"):
		if !isToken(lines[0]) {
			return "", fmt.Errorf("%w: unknown status %q (want SUCCESS, FAILED, RUNNING or DEP_FAILED)", ErrCorrupt, truncate(lines[0], 80))
		}
		return lines[0], nil
	}
	var status string
	for i, line := range lines {
		var ev map[string]json.RawMessage
		if err := json.Unmarshal([]byte(line), &ev); err != nil || ev == nil {
			return "", fmt.Errorf("%w: line %d is neither a status token alone in the file nor a JSON event: %q", ErrCorrupt, i+1, truncate(line, 80))
		}
		raw, ok := ev["status"]
		if !ok || json.Unmarshal(raw, &status) != nil {
			return "", fmt.Errorf("%w: event on line %d has no string \"status\": %q", ErrCorrupt, i+1, truncate(line, 80))
		}
		if status != legacyWaiting && !isToken(status) {
			return "", fmt.Errorf("%w: event on line %d has unknown status %q (want WAITING, SUCCESS, FAILED, RUNNING or DEP_FAILED)", ErrCorrupt, i+1, truncate(status, 80))
		}
	}
	if status == legacyWaiting {
		return "", nil
	}
	return status, nil
}

// legacyWaiting is the first event of the old executor's log: the step
// waited for its dependencies and had not started.
const legacyWaiting = "WAITING"

func isToken(s string) bool {
	switch s {
	case Success, Failed, Running, DepFailed:
		return true
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// ReadStatus returns the step's status token, or "" if it never ran.
func ReadStatus(ctx context.Context, b *store.Bucket) (string, error) {
	s, _, err := ReadStatusVersion(ctx, b)
	return s, err
}

// ReadStatusVersion is ReadStatus that also returns the status file's
// version ("" if there is none), for a conditional write that follows.
func ReadStatusVersion(ctx context.Context, b *store.Bucket) (string, store.Version, error) {
	data, v, err := read(ctx, b, StatusKey)
	if errors.Is(err, store.ErrNotExist) {
		return "", "", nil
	}
	if err != nil {
		return "", "", fmt.Errorf("%w; delete it to make the step run again", err)
	}
	s, err := ParseStatus(data)
	if err != nil {
		return "", "", fmt.Errorf("%s: %w; delete the file to make the step run again", b.URL(StatusKey), err)
	}
	return s, v, nil
}

// RunningRecord is the RUNNING status one attempt writes: a line of
// Marin's legacy JSON-lines status log, which every Marin reader reads as
// RUNNING,
//
//	{"date": "2026-11-30T00:00:00.123456", "status": "RUNNING", "message": "worker host-1-ab12cd.3"}
//
// rather than the bare token, because its content, and so its version on
// every backend (content hashes and ETags included), is unique to the
// attempt. The attempt's later status writes are conditional on that
// version: a worker that lost the step to another (which wrote its own
// RUNNING record) can never overwrite the new holder's status.
func RunningRecord(worker string, now time.Time) []byte {
	data, _ := json.Marshal(struct {
		Date    string `json:"date"`
		Status  string `json:"status"`
		Message string `json:"message"`
	}{now.UTC().Format("2006-01-02T15:04:05.000000"), Running, "worker " + worker})
	// Python's json.dumps separators.
	return []byte(strings.NewReplacer(`","`, `", "`, `":"`, `": "`).Replace(string(data)))
}

// WriteStatusIf writes data to the status file under cond and returns its
// new version. It fails with store.ErrPrecondition if cond does not hold.
func WriteStatusIf(ctx context.Context, b *store.Bucket, data []byte, cond store.Condition) (store.Version, error) {
	return b.WriteIf(ctx, StatusKey, data, cond)
}

// CommitArtifact saves data as the artifact of an attempt whose RUNNING
// record has version fence, without ever replacing an artifact that a
// later attempt saved. It creates the file if absent; an existing artifact
// (left by an attempt that saved it and then failed to finish, or by a
// worker that lost the step while it ran) is replaced only while the status
// file still holds this attempt's RUNNING record, by a delete conditional
// on the version read. It fails with an error satisfying
// errors.Is(err, ErrFenced) when another attempt owns the step.
//
// One race remains, and it needs three attempts: this one pausing between
// its status check and its delete for longer than the lease lasts, a third
// attempt taking over and saving, in that window, an artifact byte for
// byte equal to the one being deleted. It cannot happen on backends whose
// versions are generations (GCS, memory); on content-addressed ones (local
// disk, S3) it needs identical artifacts, whose loss is then harmless only
// if the replacement is identical too.
func CommitArtifact(ctx context.Context, b *store.Bucket, data []byte, fence store.Version) error {
	for range 4 {
		_, err := b.WriteIf(ctx, ArtifactKey, data, store.IfAbsent())
		if !errors.Is(err, store.ErrPrecondition) {
			return err
		}
		// The artifact changed between its read and the delete: try again.
		if err := ClearArtifact(ctx, b, fence); err != nil && !errors.Is(err, store.ErrPrecondition) {
			return err
		}
	}
	return fmt.Errorf("%w: %s keeps changing", ErrFenced, b.URL(ArtifactKey))
}

// ClearArtifact deletes the step's artifact while the status file still
// holds the RUNNING record of version fence, by a delete conditional on
// the artifact's version. No artifact is not an error. It fails with an
// error satisfying errors.Is(err, ErrFenced) if the status changed, and
// with store.ErrPrecondition if the artifact changed after it was read.
func ClearArtifact(ctx context.Context, b *store.Bucket, fence store.Version) error {
	a, err := b.Stat(ctx, ArtifactKey)
	if errors.Is(err, store.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	_, sv, err := ReadStatusVersion(ctx, b)
	if err != nil {
		return err
	}
	if sv != fence {
		return fmt.Errorf("%w: %s changed while the step ran", ErrFenced, b.URL(StatusKey))
	}
	err = b.DeleteIf(ctx, ArtifactKey, store.IfVersion(a.Version))
	if errors.Is(err, store.ErrNotExist) {
		return nil
	}
	return err
}

// EncodeArtifact returns the JSON encoding of v as WriteArtifact stores it.
func EncodeArtifact(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode artifact: %w", err)
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
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
	data, _, err := read(ctx, b, InfoKey)
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

// WriteArtifact stores the JSON encoding of v as the step's artifact,
// unconditionally.
func WriteArtifact(ctx context.Context, b *store.Bucket, v any) error {
	data, err := EncodeArtifact(v)
	if err != nil {
		return err
	}
	_, err = b.Write(ctx, ArtifactKey, data)
	return err
}

// ReadArtifact returns the raw artifact JSON. A missing artifact satisfies
// errors.Is(err, store.ErrNotExist).
func ReadArtifact(ctx context.Context, b *store.Bucket) ([]byte, error) {
	data, _, err := read(ctx, b, ArtifactKey)
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
	// Log is the key, under the step's output path, of the failed
	// attempt's log (LogKey), if it had one.
	Log string `json:"log,omitempty"`
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
	data, _, err := read(ctx, b, FailureKey)
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
