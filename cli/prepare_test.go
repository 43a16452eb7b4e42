package cli_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"
	"testing"

	"example.com/cairn"
	"example.com/cairn/cli"
)

// Options.Prepare replaces the steps, sees the parsed flags, may adjust
// the run options, and ends Main on error.
func TestPrepareHook(t *testing.T) {
	dir := t.TempDir()
	ran := 0
	step := &cairn.Step{Name: "prepared", Func: func(context.Context, *cairn.Output) (any, error) {
		ran++
		return nil, nil
	}}
	for _, tc := range []struct {
		name     string
		args     []string
		prepare  func(ctx context.Context, opts *cairn.RunOptions) (iter.Seq[*cairn.Step], error)
		wantCode int
		wantRan  int
		wantErr  string
	}{
		{
			name: "replaces the steps",
			prepare: func(ctx context.Context, opts *cairn.RunOptions) (iter.Seq[*cairn.Step], error) {
				return cairn.Steps(step), nil
			},
			wantRan: 1,
		},
		{
			name: "clears run-only",
			args: []string{"--run-only", "nomatch"},
			prepare: func(ctx context.Context, opts *cairn.RunOptions) (iter.Seq[*cairn.Step], error) {
				if len(opts.RunOnly) != 1 || opts.RunOnly[0].String() != "nomatch" {
					return nil, fmt.Errorf("RunOnly = %v", opts.RunOnly)
				}
				opts.RunOnly = nil
				return cairn.Steps(step), nil
			},
			wantRan: 0, // cached from the first case
		},
		{
			name: "invalid pipeline",
			prepare: func(ctx context.Context, opts *cairn.RunOptions) (iter.Seq[*cairn.Step], error) {
				return nil, fmt.Errorf("%w: bad config", cairn.ErrInvalidPipeline)
			},
			wantCode: cli.ExitInvalid,
			wantErr:  "error: invalid pipeline: bad config",
		},
		{
			name: "other error",
			prepare: func(ctx context.Context, opts *cairn.RunOptions) (iter.Seq[*cairn.Step], error) {
				return nil, errors.New("storage unreachable")
			},
			wantCode: cli.ExitFailed,
			wantErr:  "error: storage unreachable",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ran = 0
			var stderr bytes.Buffer
			code := cli.Main(nil, &cli.Options{
				Args:    append([]string{"--prefix", dir, "--log-level", "error"}, tc.args...),
				Stdout:  &bytes.Buffer{},
				Stderr:  &stderr,
				Prepare: tc.prepare,
			})
			if code != tc.wantCode || ran != tc.wantRan || !strings.Contains(stderr.String(), tc.wantErr) {
				t.Errorf("exit %d (want %d), ran %d (want %d), stderr:\n%s", code, tc.wantCode, ran, tc.wantRan, stderr.String())
			}
		})
	}
}
