package runrecord

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"example.com/cairn/store"
)

// Format is the format version of the records this package writes.
const Format = "cairn.run/1"

// Dir is where run records live, relative to the prefix.
const Dir = "experiments/.cairn_runs"

// Run outcomes (Record.Outcome).
const (
	Succeeded   = "succeeded"
	Failed      = "failed"
	Interrupted = "interrupted"
	Invalid     = "invalid"
	RunError    = "error"
)

// Record is one run's record; see the package doc for its format.
type Record struct {
	Format   string    `json:"format"`
	RunID    string    `json:"run_id"`
	Program  string    `json:"program"`
	Prefix   string    `json:"prefix"`
	Host     string    `json:"host,omitempty"`
	PID      int       `json:"pid,omitempty"`
	Runner   string    `json:"runner,omitempty"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	Outcome  string    `json:"outcome"`
	Error    string    `json:"error,omitempty"`
	Steps    []Step    `json:"steps"`
}

// Step is one step's line in a Record.
type Step struct {
	Step      string     `json:"step"`
	Name      string     `json:"name"`
	Path      string     `json:"path"`
	Deps      []string   `json:"deps,omitempty"`
	Outcome   string     `json:"outcome"`
	Error     string     `json:"error,omitempty"`
	Ready     time.Time  `json:"ready,omitzero"`
	Queued    time.Time  `json:"queued,omitzero"`
	Waiting   time.Time  `json:"waiting,omitzero"`
	Started   time.Time  `json:"started,omitzero"`
	Finished  time.Time  `json:"finished,omitzero"`
	DurationS float64    `json:"duration_s"`
	Worker    string     `json:"worker,omitempty"`
	Host      string     `json:"host,omitempty"`
	Job       *Job       `json:"job,omitempty"`
	Resources *Resources `json:"resources,omitempty"`
}

// Job describes the cluster job of a remote step.
type Job struct {
	Cluster   string    `json:"cluster"`
	Name      string    `json:"name"`
	IDs       []string  `json:"ids,omitempty"`
	State     string    `json:"state,omitempty"`
	ExitCode  *int      `json:"exit_code,omitempty"`
	Submitted time.Time `json:"submitted,omitzero"`
	// Running is when the job's process started (its first replica's, as
	// the job reported it): Submitted to Running is its time in the
	// cluster's queue.
	Running  time.Time `json:"running,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	Log      string    `json:"log,omitempty"`
}

// Resources are what a step asked for and what it used.
type Resources struct {
	Requested *Requested `json:"requested,omitempty"`
	Used      *Used      `json:"used,omitempty"`
	// UsedNote says why Used is missing ("not recorded: …").
	UsedNote string `json:"used_note,omitempty"`
}

// Requested is a remote step's resource request.
type Requested struct {
	CPUs        int     `json:"cpus"`
	MemoryBytes int64   `json:"memory_bytes,omitempty"`
	DiskBytes   int64   `json:"disk_bytes,omitempty"`
	Device      string  `json:"device,omitempty"`
	Replicas    int     `json:"replicas,omitempty"`
	TimeLimitS  float64 `json:"time_limit_s,omitempty"`
}

// Used is what a step's process used, as measured by Source ("rusage",
// "sacct").
type Used struct {
	MaxRSSBytes int64   `json:"max_rss_bytes"`
	CPUUserS    float64 `json:"cpu_user_s"`
	CPUSystemS  float64 `json:"cpu_system_s"`
	Source      string  `json:"source"`
}

// NewRunID returns a run ID for a run started at t: the time in UTC to the
// millisecond and a random token.
func NewRunID(t time.Time) string {
	var tok [3]byte
	_, _ = rand.Read(tok[:])
	return t.UTC().Format("20060102T150405.000Z") + "-" + hex.EncodeToString(tok[:])
}

// ErrNotFound is returned by Read and Latest when there is no such record.
var ErrNotFound = errors.New("runrecord: no such run record")

// Key returns the key of run id's record relative to the prefix.
func Key(id string) string { return Dir + "/" + id + ".json" }

func checkID(id string) error {
	if id == "" || strings.ContainsAny(id, "/\\") || strings.HasPrefix(id, ".") {
		return fmt.Errorf("runrecord: bad run id %q", id)
	}
	return nil
}

// Encode returns rec as the indented JSON of a record file.
func Encode(rec *Record) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rec); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Decode parses a record file, rejecting other formats.
func Decode(data []byte) (*Record, error) {
	var rec Record
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("runrecord: %w", err)
	}
	if rec.Format != Format {
		return nil, fmt.Errorf("runrecord: format %q, want %q", rec.Format, Format)
	}
	return &rec, nil
}

// Write stores rec under prefix, the run's storage root.
func Write(ctx context.Context, prefix *store.Bucket, rec *Record) error {
	if err := checkID(rec.RunID); err != nil {
		return err
	}
	rec.Format = Format
	data, err := Encode(rec)
	if err != nil {
		return err
	}
	_, err = prefix.Write(ctx, Key(rec.RunID), data)
	return err
}

// Read loads run id's record from under prefix.
func Read(ctx context.Context, prefix *store.Bucket, id string) (*Record, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	data, _, err := prefix.Read(ctx, Key(id))
	if errors.Is(err, store.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, err
	}
	return Decode(data)
}

// List returns the IDs of the run records under prefix, oldest first.
func List(ctx context.Context, prefix *store.Bucket) ([]string, error) {
	var ids []string
	for key, err := range prefix.List(ctx, Dir) {
		if errors.Is(err, store.ErrNotExist) {
			break
		}
		if err != nil {
			return nil, err
		}
		if path.Dir(key) != Dir || !strings.HasSuffix(key, ".json") {
			continue
		}
		ids = append(ids, strings.TrimSuffix(path.Base(key), ".json"))
	}
	slices.Sort(ids)
	return ids, nil
}

// Latest returns the most recent record under prefix; if program is not
// "", the most recent of that program's runs.
func Latest(ctx context.Context, prefix *store.Bucket, program string) (*Record, error) {
	ids, err := List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	for _, id := range slices.Backward(ids) {
		rec, err := Read(ctx, prefix, id)
		if err != nil {
			continue // an unreadable record does not hide older ones
		}
		if program == "" || rec.Program == program {
			return rec, nil
		}
	}
	if program != "" {
		return nil, fmt.Errorf("%w: no run of %s", ErrNotFound, program)
	}
	return nil, fmt.Errorf("%w: no runs recorded", ErrNotFound)
}
