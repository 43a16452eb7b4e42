package statusfile_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"example.com/cairn/internal/statusfile"
	"example.com/cairn/lease"
	"example.com/cairn/store"
	"example.com/cairn/store/filestore"
	"example.com/cairn/store/memstore"
)

func TestParseStatus(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"token as Marin writes it", "SUCCESS", "SUCCESS"},
		{"token and newline", "FAILED\n", "FAILED"},
		{"token and spaces", "  RUNNING  ", "RUNNING"},
		{"token and CRLF", "\r\nDEP_FAILED\r\n", "DEP_FAILED"},
		{"empty", "", ""},
		{"blank lines", "\n\n", ""},
		// Scenario 45: the legacy JSON-lines event log, as the old
		// executor printed it (json.dumps per line, a final newline).
		{"legacy log", `{"date": "2024-09-28T13:29:20.780705", "status": "WAITING", "message": null, "ray_task_id": null}
{"date": "2024-09-28T13:29:21.091470", "status": "RUNNING", "message": null, "ray_task_id": null}
{"date": "2024-09-28T13:29:47.559614", "status": "SUCCESS", "message": null, "ray_task_id": null}
`, "SUCCESS"},
		{"legacy single event", `{"date": "d", "status": "FAILED", "message": "boom"}`, "FAILED"},
		{"legacy log ending waiting", `{"date": "d", "status": "WAITING", "message": null}`, ""},
	} {
		got, err := statusfile.ParseStatus([]byte(tc.in))
		if err != nil || got != tc.want {
			t.Errorf("%s: ParseStatus(%q) = %q, %v; want %q", tc.name, tc.in, got, err, tc.want)
		}
	}
	// Issue 8: anything Marin does not write is corrupt, not guessed at.
	for _, bad := range []string{
		"GARBAGE",
		"success",
		"garbage\nSUCCESS",
		"FAILED\nSUCCESS",
		"RUNNING\nFAILED",
		"SUCCESS\n{\"status\": \"SUCCESS\"}",
		"{\"status\": \"SUCCESS\"}\nSUCCESS",
		`{"status": "GARBAGE"}`,
		`{"status": "success"}`,
		`{"status": 1}`,
		`{"status": null}`,
		`{"date": "d"}`,
		`{"status": "SUCCESS"} trailing`,
		`{"status": "SUCCESS"`,
		"{\"status\": \"RUNNING\"}\nnot json\n{\"status\": \"SUCCESS\"}",
		"{\"status\": \"RUNNING\"}\n{\"date\": \"d\"}",
		"{\"status\": \"RUNNING\"}\n[\"SUCCESS\"]",
		"{\"status\": \"RUNNING\"}\nnull",
		"{\"status\": \"GARBAGE\"}\n{\"status\": \"SUCCESS\"}",
	} {
		if got, err := statusfile.ParseStatus([]byte(bad)); !errors.Is(err, statusfile.ErrCorrupt) {
			t.Errorf("ParseStatus(%q) = %q, %v; want ErrCorrupt", bad, got, err)
		}
	}
}

// A step directory written by Marin (Python) reads correctly.
func TestReadsMarinOutput(t *testing.T) {
	ctx := context.Background()
	b, err := filestore.Open("testdata/marin/tokenize_abcd1234", nil)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := statusfile.ReadStatus(ctx, b); err != nil || s != statusfile.Success {
		t.Errorf("ReadStatus = %q, %v", s, err)
	}
	rec, ok, err := lease.Inspect(ctx, b, statusfile.LockKey)
	if err != nil || !ok || rec.WorkerID != "marin-host-140230113" || rec.Timestamp.UnixMilli() != 1740000000123 {
		t.Errorf("lease = %+v, %v, %v", rec, ok, err)
	}
	info, ok, err := statusfile.ReadInfo(ctx, b)
	if err != nil || !ok || info["name"] != "tokenize" || info["executor_version"] != "step_runner" {
		t.Errorf("info = %v, %v, %v", info, ok, err)
	}
	art, err := statusfile.ReadArtifact(ctx, b)
	var payload struct {
		NumTokens int `json:"num_tokens"`
	}
	if err != nil || json.Unmarshal(art, &payload) != nil || payload.NumTokens != 42 {
		t.Errorf("artifact = %s, %v", art, err)
	}
}

// What cairn writes is what Marin reads: a bare token, and an info record
// with exactly Marin's keys.
func TestWritesMarinFormats(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b, err := filestore.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := statusfile.WriteStatus(ctx, b, statusfile.Success); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, ".executor_status")); string(data) != "SUCCESS" {
		t.Errorf(".executor_status = %q, want the bare token", data)
	}
	info := statusfile.Info{ExecutorVersion: "step_runner", Name: "tok", FnName: "main.tok",
		Config: json.RawMessage(`{"a": 1}`), OutputPath: dir}
	wrote, err := statusfile.WriteInfoIfAbsent(ctx, b, info)
	if err != nil || !wrote {
		t.Fatalf("WriteInfoIfAbsent = %v, %v", wrote, err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, ".executor_info"))
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"config", "dependencies", "description", "executor_version", "fn_name", "name", "output_path", "override_output_path", "version"}
	if !slices.Equal(keys, want) {
		t.Errorf(".executor_info keys = %v, want %v", keys, want)
	}
	if deps, ok := m["dependencies"].([]any); !ok || len(deps) != 0 {
		t.Errorf("dependencies = %v, want []", m["dependencies"])
	}
	// Written once: a richer record written first is kept.
	wrote, err = statusfile.WriteInfoIfAbsent(ctx, b, statusfile.Info{Name: "other"})
	if err != nil || wrote {
		t.Errorf("second WriteInfoIfAbsent = %v, %v; want not written", wrote, err)
	}
}

func TestFailureRecord(t *testing.T) {
	ctx := context.Background()
	b := memstore.New().Bucket("s")
	if _, ok, err := statusfile.ReadFailure(ctx, b); ok || err != nil {
		t.Fatalf("ReadFailure on empty = %v, %v", ok, err)
	}
	f := statusfile.Failure{Error: "boom", WorkerID: "w", Time: time.Unix(1, 0).UTC(), Stack: "trace"}
	if err := statusfile.WriteFailure(ctx, b, f); err != nil {
		t.Fatal(err)
	}
	got, ok, err := statusfile.ReadFailure(ctx, b)
	f.Format = statusfile.FailureFormat
	if err != nil || !ok || got != f {
		t.Errorf("ReadFailure = %+v, %v, %v; want %+v", got, ok, err, f)
	}
}

func TestIsControl(t *testing.T) {
	for key, want := range map[string]bool{
		statusfile.StatusKey:                  true,
		statusfile.LockKey:                    true,
		statusfile.InfoKey:                    true,
		statusfile.ArtifactKey:                true,
		".artifact.json":                      true,
		statusfile.FailureKey:                 true,
		statusfile.RemoteKey:                  true,
		statusfile.LogsDir + "/attempt-1.log": true,
		".executor_status.lock.tmp":           true,
		"data.txt":                            false,
		"artifact.json":                       false,
		".artifactual":                        false,
		"sub/.executor_status":                false, // not the step's own
		".hidden/x":                           false,
	} {
		if got := statusfile.IsControl(key); got != want {
			t.Errorf("IsControl(%q) = %v, want %v", key, got, want)
		}
	}
}

// TestNonRegularControlFilesAreCorrupt checks that a control file that is
// too large, or (on a file system) a directory or FIFO, reads as corrupt
// rather than absent, and that a FIFO does not block the read.
func TestNonRegularControlFilesAreCorrupt(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	b, err := filestore.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, statusfile.StatusKey), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, statusfile.InfoKey), 0o644); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, statusfile.MaxSize+1)
	if err := os.WriteFile(filepath.Join(dir, statusfile.FailureKey), big, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := statusfile.ReadStatus(ctx, b); !errors.Is(err, statusfile.ErrCorrupt) || !errors.Is(err, store.ErrNotRegular) {
		t.Errorf("ReadStatus of a directory = %v, want ErrCorrupt and store.ErrNotRegular", err)
	}
	if _, _, err := statusfile.ReadInfo(ctx, b); !errors.Is(err, statusfile.ErrCorrupt) || !errors.Is(err, store.ErrNotRegular) {
		t.Errorf("ReadInfo of a FIFO = %v, want ErrCorrupt and store.ErrNotRegular", err)
	}
	if _, _, err := statusfile.ReadFailure(ctx, b); !errors.Is(err, statusfile.ErrCorrupt) || !errors.Is(err, store.ErrTooLarge) {
		t.Errorf("ReadFailure of %d bytes = %v, want ErrCorrupt and store.ErrTooLarge", len(big), err)
	}
	if err := os.Mkdir(filepath.Join(dir, statusfile.LockKey), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, _, err := lease.Inspect(ctx, b, statusfile.LockKey); !errors.Is(err, lease.ErrCorrupt) || !errors.Is(err, store.ErrNotRegular) {
		t.Errorf("lease.Inspect of a directory = %v, want lease.ErrCorrupt and store.ErrNotRegular", err)
	}
}
