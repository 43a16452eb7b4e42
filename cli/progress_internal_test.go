package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"example.com/cairn"
)

// Off a terminal, a step waiting on another runner logs, every 30 s, that
// it still waits, with the holder, its host and the time until takeover.
func TestPlainViewLogsStillWaiting(t *testing.T) {
	var out bytes.Buffer
	v, err := newRunView(Options{Stderr: &out, Getenv: func(string) string { return "" }}, "info", "text", true, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if v.live != nil {
		t.Fatal("live view on a bytes.Buffer")
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	wait := func(s int, staleIn time.Duration) {
		v.onEvent(cairn.Event{Kind: cairn.StepWaiting, Step: "s_1", Holder: "node-4-42-abcdef.2", StaleIn: staleIn, Time: t0.Add(time.Duration(s) * time.Second)})
	}
	wait(0, 90*time.Second) // the core logs the first wait itself
	wait(10, 80*time.Second)
	wait(29, 61*time.Second)
	if out.Len() != 0 {
		t.Errorf("logged before 30 s:\n%s", out.String())
	}
	wait(31, 59*time.Second)
	wait(40, 50*time.Second)
	got := out.String()
	want := `msg="still waiting for another worker" step=s_1 holder=node-4-42-abcdef.2 holder_host=node-4 takeover_in=59s`
	if strings.Count(got, "still waiting") != 1 || !strings.Contains(got, want) {
		t.Errorf("got:\n%s\nwant one line with %s", got, want)
	}
}
