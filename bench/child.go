package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"time"

	"example.com/cairn"
)

// childFlag, as the first argument, selects child mode: run one shape with
// cairn in this process and print a childReport. It is not in -help; the
// parent passes it when it re-executes itself.
const childFlag = "-child"

// childReport is what a cairn child prints on stdout, as one JSON object.
type childReport struct {
	Shape string `json:"shape"`
	Steps int    `json:"steps"`
	// BuildS is the time to build the []*cairn.Step graph; RunS the time
	// spent in cairn.Run. Both are measured inside the child.
	BuildS float64 `json:"build_s"`
	RunS   float64 `json:"run_s"`
	// Outcomes counts the steps of the run's report by outcome name.
	Outcomes map[string]int `json:"outcomes"`
	// Err is the error cairn.Run returned, if any.
	Err string `json:"error,omitempty"`
}

// childOptions are the arguments of child mode.
type childOptions struct {
	shape         string
	scale         float64
	dir           string
	maxConcurrent int
	cpuProfile    string
}

// childMain runs child mode with args (after childFlag) and returns the
// process exit code.
func childMain(args []string, stdout, stderr io.Writer) int {
	opts, err := parseChildArgs(args, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "bench child: %v\n", err)
		return 2
	}
	rep, err := runChild(context.Background(), opts)
	if rep != nil {
		if encErr := json.NewEncoder(stdout).Encode(rep); encErr != nil {
			err = errors.Join(err, encErr)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench child: %v\n", err)
		return 1
	}
	return 0
}

func parseChildArgs(args []string, stderr io.Writer) (childOptions, error) {
	var o childOptions
	fs := flag.NewFlagSet("bench "+childFlag, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.shape, "shape", "", "shape to run")
	fs.Float64Var(&o.scale, "scale", 1, "step count multiplier")
	fs.StringVar(&o.dir, "dir", "", "cairn prefix (a local directory, or an s3:// or gs:// URL)")
	fs.IntVar(&o.maxConcurrent, "max-concurrent", cairn.DefaultMaxConcurrent, "RunOptions.MaxConcurrent")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of cairn.Run to this file")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.dir == "" || o.shape == "" {
		return o, errors.New("-shape and -dir are required")
	}
	return o, nil
}

// runChild builds the shape as cairn steps and runs them over o.dir. The
// report is non-nil whenever cairn.Run was called.
func runChild(ctx context.Context, o childOptions) (*childReport, error) {
	sh, err := lookupShape(o.shape)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	g, _ := sh.build(o.scale)
	steps := cairnSteps(g, sh.writes)
	built := time.Since(start)

	stopProfile, err := startCPUProfile(o.cpuProfile)
	if err != nil {
		return nil, err
	}
	start = time.Now()
	report, runErr := cairn.Run(ctx, cairn.Steps(steps...), &cairn.RunOptions{
		Prefix:        o.dir,
		Storage:       childStorage(),
		MaxConcurrent: o.maxConcurrent,
		Logger:        slog.New(slog.DiscardHandler),
	})
	elapsed := time.Since(start)
	if err := stopProfile(); err != nil {
		runErr = errors.Join(runErr, err)
	}

	rep := &childReport{
		Shape:    o.shape,
		Steps:    len(steps),
		BuildS:   built.Seconds(),
		RunS:     elapsed.Seconds(),
		Outcomes: map[string]int{},
	}
	for _, s := range report.Steps {
		rep.Outcomes[s.Outcome.String()]++
	}
	if runErr != nil {
		rep.Err = runErr.Error()
	}
	return rep, runErr
}

// cairnSteps turns g into cairn steps whose functions do nothing or, with
// writes, write one byte to a file of their own.
func cairnSteps(g *graph, writes bool) []*cairn.Step {
	noop := func(context.Context, *cairn.Output) (any, error) { return nil, nil }
	if writes {
		noop = func(ctx context.Context, out *cairn.Output) (any, error) {
			_, err := out.Bucket.Write(ctx, "out", []byte("x"))
			return nil, err
		}
	}
	steps := make([]*cairn.Step, g.size())
	for i, name := range g.names {
		deps := make([]*cairn.Step, len(g.deps[i]))
		for k, d := range g.deps[i] {
			deps[k] = steps[d]
		}
		steps[i] = &cairn.Step{Name: name, Deps: deps, Func: noop}
	}
	return steps
}

// startCPUProfile starts profiling into path, if set, and returns the
// function that stops it and closes the file.
func startCPUProfile(path string) (stop func() error, err error) {
	if path == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}
