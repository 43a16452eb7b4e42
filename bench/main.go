// Command bench compares cairn's scheduling overhead with ninja and make.
//
// It runs no-op steps in DAGs of several shapes, on a local-disk directory
// under a temporary directory, with each tool as a child process:
//
//	chain          1,000 steps, each depending on the previous one
//	fanout         1 root + 10,000 leaves depending only on it (10,001 steps)
//	grid           100 layers x 100 steps; step j of layer i>0 depends on
//	               steps j and (j+1)%100 of layer i-1
//	fanout-cached  a re-run of fanout over its existing outputs: cairn finds
//	               every step cached, ninja and make have nothing to do
//	fanout-write   fanout in which every step writes one 1-byte file
//
// cairn runs in a re-executed copy of this binary calling cairn.Run with
// the local-disk storage of package cli; ninja and make run a generated
// build.ninja or Makefile whose every step is `touch OUT` (in fanout-write
// `printf x > OUT`). No tool can do exactly the work of another: ninja and
// make need a process per step, cairn runs a function and writes its
// control files; every JSON line says what one step does (step_work).
//
// The comparison is made fair in the ways that can be: every tool runs
// with the same concurrency (-j; cairn's -max-concurrent defaults to it,
// and the tool cairn-default runs cairn at its own default,
// cairn.DefaultMaxConcurrent, reported separately); the tools are
// interleaved within each repetition, in a rotating order; before every
// timed run the trees no longer needed are removed and the file systems
// synced; ratios between tools are taken within a repetition, then their
// median (wall_ratio), which cancels most of a load that changes during
// the run; every JSON line records the file system, kernel, CPU count and
// the load average before each run (env). Workflow tools written in
// Python (Snakemake, Marin's StepRunner) run from bench/peers/peers.py.
//
// Every tool is
// started and measured in the same way, by a minimal launcher process (this
// binary again): wall time from fork to reaped exit, so it includes process
// start for every tool, and peak RSS (ru_maxrss). cairn's child also
// reports the time spent in cairn.Run itself (inproc_wall_s). See spawnFlag
// for why a launcher.
//
// Every run is checked, and a failed check is a fatal error: in a cold run
// every step must have run (cairn's report says so; ninja and make created
// every output), in a cached run none (cairn reports every step cached;
// ninja and make changed no output).
//
// Output is one JSON line per tool and shape on stdout, then a table and the
// ratios the performance targets are about on stderr.
//
// With -store and -stream, it measures instead the throughput of a 1 GiB
// (-stream-size) upload and download through cairn's streaming API
// (store.Bucket.NewWriter, NewReader) and through the SDK's own transfer
// API used directly (the AWS SDK's transfermanager to upload and its
// client's GetObject to download; the GCS client's Writer and Reader),
// alternating, -repeat times: one JSON line per transfer on
// stdout, the median MB/s of each and cairn's ratio to the SDK on stderr.
//
//	go run -tags objstore ./bench -store s3://cairn-test/bench -stream
//
// With -store s3://BUCKET/PREFIX or gs://BUCKET/PREFIX, cairn's prefixes
// are on that object store instead of local disk (the object-store shapes;
// ninja and make are not run). The child opens them with the standard
// configuration: the AWS SDK's credentials and AWS_ENDPOINT_URL_S3, and
// Application Default Credentials or STORAGE_EMULATOR_HOST. If the variables
// written by scripts/services.sh (CAIRN_TEST_S3_SERVER...,
// CAIRN_TEST_GCS_EMULATOR) are exported and the standard ones are not, the
// loopback test servers are used:
//
//	set -a; . /tmp/cairn-services.env; set +a
//	go run -tags objstore ./bench -store s3://cairn-test/bench -shapes chain,fanout-cached -scale 0.1
//
// (The object-store backends are linked only with -tags objstore, so that
// their SDKs' start-up memory does not count in the local-disk shapes'
// peak RSS.)
//
// Usage:
//
//	go run ./bench [-shapes chain,fanout,grid,fanout-cached,fanout-write] [-tools cairn,ninja,make,cairn-default]
//	               [-repeat N] [-max-concurrent N] [-j N] [-scale F] [-keep] [-cpuprofile DIR]
//	               [-store URL [-stream [-stream-size BYTES]]]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"example.com/cairn"
)

func main() {
	if code, ok := subprocessMain(os.Args[1:]); ok {
		os.Exit(code)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

// subprocessMain runs the hidden modes in which the bench re-executes
// itself: the cairn child and the launcher. ok is false if args select
// neither.
func subprocessMain(args []string) (code int, ok bool) {
	if len(args) == 0 {
		return 0, false
	}
	switch args[0] {
	case childFlag:
		return childMain(args[1:], os.Stdout, os.Stderr), true
	case spawnFlag:
		report := os.NewFile(3, "report")
		defer report.Close()
		return spawnMain(args[1:], os.Stderr, report), true
	}
	return 0, false
}

// config is the parsed command line.
type config struct {
	shapes        []string
	tools         []string
	repeat        int
	maxConcurrent int
	jobs          int
	scale         float64
	keep          bool
	tmpRoot       string // parent of the temporary directory; "" means os.TempDir()
	profileDir    string
	store         string // base URL of an object-store prefix; "" means local disk
	stream        bool   // run the streaming benchmark instead of the shapes
	streamSize    int64  // bytes of its object
}

// toolNames returns the tools, in the order they run.
// cairn-default is cairn with its default concurrency
// (cairn.DefaultMaxConcurrent) rather than the others' -j.
func toolNames() []string { return []string{"cairn", "ninja", "make", "cairn-default"} }

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var (
		c                   config
		shapeList, toolList string
		shapeNames          []string
		fs                  = flag.NewFlagSet("bench", flag.ContinueOnError)
	)
	for _, s := range shapes() {
		shapeNames = append(shapeNames, s.name)
	}
	fs.SetOutput(stderr)
	fs.StringVar(&shapeList, "shapes", strings.Join(shapeNames, ","), "comma-separated shapes to run")
	fs.StringVar(&toolList, "tools", strings.Join(toolNames(), ","), "comma-separated tools to run; a tool whose binary is missing is skipped")
	fs.IntVar(&c.repeat, "repeat", 1, "runs per tool and shape; the median is reported")
	fs.IntVar(&c.maxConcurrent, "max-concurrent", 0, "cairn's RunOptions.MaxConcurrent (default: -j, the concurrency of ninja and make; the tool cairn-default runs with cairn's own default)")
	fs.IntVar(&c.jobs, "j", 2, "parallel jobs for ninja and make (-j)")
	fs.Float64Var(&c.scale, "scale", 1, "multiplier of every shape's step count (for a quick run, e.g. 0.01)")
	fs.BoolVar(&c.keep, "keep", false, "keep the temporary directory and print its path")
	fs.StringVar(&c.tmpRoot, "tmp", "", "directory in which to create the benchmark's prefixes and build trees (default $TMPDIR or /tmp); e.g. /dev/shm to take the disk out of the comparison")
	fs.StringVar(&c.profileDir, "cpuprofile", "", "directory where each cairn child writes a CPU profile of cairn.Run (cairn-SHAPE-N.pprof)")
	fs.StringVar(&c.store, "store", "", "run cairn's prefixes under this object-store URL (s3://BUCKET/PREFIX or gs://BUCKET/PREFIX) instead of local disk; only cairn runs (see the package doc)")
	fs.BoolVar(&c.stream, "stream", false, "with -store: instead of the shapes, measure the throughput of uploading and downloading one object through cairn and through the SDK's own transfer API")
	fs.Int64Var(&c.streamSize, "stream-size", 1<<30, "bytes of the object of -stream")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.maxConcurrent == 0 {
		c.maxConcurrent = c.jobs
	}
	var err error
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	case c.repeat < 1:
		return c, fmt.Errorf("-repeat must be >= 1, got %d", c.repeat)
	case c.maxConcurrent < 0 || c.jobs < 1:
		return c, errors.New("-max-concurrent must be >= 0 and -j >= 1")
	case !(c.scale > 0):
		return c, fmt.Errorf("-scale must be > 0, got %g", c.scale)
	case c.stream && c.store == "":
		return c, errors.New("-stream needs -store s3://BUCKET/PREFIX or gs://BUCKET/PREFIX")
	case c.stream && c.streamSize <= 0:
		return c, fmt.Errorf("-stream-size must be > 0, got %d", c.streamSize)
	}
	if c.shapes, err = parseList("shapes", shapeList, shapeNames); err != nil {
		return c, err
	}
	if c.tools, err = parseList("tools", toolList, toolNames()); err != nil {
		return c, err
	}
	if c.store != "" {
		if !objectStores {
			return c, fmt.Errorf("-store needs the object-store backends: go run -tags objstore ./bench -store %s", c.store)
		}
		if !strings.HasPrefix(c.store, "s3://") && !strings.HasPrefix(c.store, "gs://") {
			return c, fmt.Errorf("-store %q: want s3://BUCKET/PREFIX or gs://BUCKET/PREFIX", c.store)
		}
		c.store = strings.TrimSuffix(c.store, "/")
		c.tools = slices.DeleteFunc(c.tools, func(t string) bool { return !strings.HasPrefix(t, "cairn") }) // ninja and make build on local disk only
		if len(c.tools) == 0 {
			c.tools = []string{"cairn"}
		}
	}
	return c, nil
}

// useTestServers points the SDKs at the loopback servers of
// scripts/services.sh (whose variables the caller exported) unless the
// standard variables already say where to go.
func useTestServers() {
	set := func(k, v string) {
		if os.Getenv(k) == "" && v != "" {
			os.Setenv(k, v)
		}
	}
	if os.Getenv("AWS_ENDPOINT_URL_S3") == "" && os.Getenv("AWS_ENDPOINT_URL") == "" && os.Getenv("CAIRN_TEST_S3_SERVER") != "" {
		set("AWS_ENDPOINT_URL_S3", os.Getenv("CAIRN_TEST_S3_SERVER"))
		set("AWS_ACCESS_KEY_ID", os.Getenv("CAIRN_TEST_S3_SERVER_ACCESS_KEY"))
		set("AWS_SECRET_ACCESS_KEY", os.Getenv("CAIRN_TEST_S3_SERVER_SECRET_KEY"))
		set("AWS_REGION", "us-east-1")
		set("AWS_EC2_METADATA_DISABLED", "true")
	}
	set("STORAGE_EMULATOR_HOST", os.Getenv("CAIRN_TEST_GCS_EMULATOR"))
}

// run is the command: it parses args, runs every selected tool over every
// selected shape, and writes JSON lines to stdout and the summary to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if cfg.store != "" {
		useTestServers()
	}
	if cfg.stream {
		return runStream(ctx, cfg, stdout, stderr)
	}
	tools, err := newTools(cfg, stderr)
	if err != nil {
		return err
	}
	root, err := os.MkdirTemp(cfg.tmpRoot, "cairn-bench-")
	if err != nil {
		return err
	}
	if cfg.keep {
		fmt.Fprintf(stderr, "bench: keeping %s\n", root)
	} else {
		defer os.RemoveAll(root)
	}
	if cfg.profileDir != "" {
		if err := os.MkdirAll(cfg.profileDir, 0o755); err != nil {
			return err
		}
	}

	b := &bench{cfg: cfg, root: root, coldDirs: map[string]string{}, env: newEnvironment(root)}
	enc := json.NewEncoder(stdout)
	var results []result
	for _, name := range cfg.shapes {
		sh, err := lookupShape(name)
		if err != nil {
			return err
		}
		rs, err := b.measure(ctx, tools, sh)
		if err != nil {
			return err
		}
		for _, r := range rs {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		results = append(results, rs...)
	}
	if len(results) > 0 {
		printSummary(stderr, results, cfg.scale)
	}
	return nil
}

// newTools returns the selected tools, skipping (with a message on stderr)
// those whose binary is missing.
func newTools(cfg config, stderr io.Writer) ([]tool, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	l := launcher{exe: exe}
	var tools []tool
	for _, name := range cfg.tools {
		var (
			t   tool
			err error
		)
		switch name {
		case "cairn":
			t = &cairnTool{tool: name, launch: l, scale: cfg.scale, maxConcurrent: cfg.maxConcurrent, profileDir: cfg.profileDir, store: cfg.store}
		case "cairn-default":
			t = &cairnTool{tool: name, launch: l, scale: cfg.scale, maxConcurrent: cairn.DefaultMaxConcurrent, profileDir: cfg.profileDir, store: cfg.store}
		case "ninja":
			t, err = newNinja(l, cfg.jobs)
		case "make":
			t, err = newMake(l, cfg.jobs)
		}
		switch {
		case errors.Is(err, exec.ErrNotFound):
			fmt.Fprintf(stderr, "bench: skipping %s: binary not found in $PATH\n", name)
		case err != nil:
			return nil, fmt.Errorf("%s: %w", name, err)
		default:
			tools = append(tools, t)
		}
	}
	return tools, nil
}

// bench is the state of one invocation.
type bench struct {
	cfg  config
	root string
	env  environment
	// coldDirs maps "TOOL/SHAPE" to the directory of the tool's last cold
	// run of the shape, for cached shapes to re-run.
	coldDirs map[string]string
}

// measure runs every tool over sh cfg.repeat times, interleaved: each
// repetition runs every tool once, in an order rotated by one tool per
// repetition, so that no tool always runs first (or right after the same
// other tool), and a change of load during the benchmark hits every tool
// alike. Before each timed run the trees no longer needed are removed and
// the file systems synced (sync(2)), so that no tool pays for another's
// writeback or deletions.
func (b *bench) measure(ctx context.Context, tools []tool, sh shape) ([]result, error) {
	g, desc := sh.build(b.cfg.scale)
	if err := b.dropTrees(sh.base); err != nil {
		return nil, err
	}
	samples := make([][]sample, len(tools))
	var j job
	for i := range b.cfg.repeat {
		for k := range tools {
			ti := (k + i) % len(tools)
			t := tools[ti]
			var err error
			if j, err = b.newJob(ctx, t, sh, g, i); err != nil {
				return nil, err
			}
			syscall.Sync()
			load := load1()
			s, err := t.run(ctx, j)
			if err != nil {
				return nil, err
			}
			s.load1 = load
			samples[ti] = append(samples[ti], s)
		}
	}
	rs := make([]result, len(tools))
	for ti, t := range tools {
		rs[ti] = summarize(t, j, desc, b.cfg.scale, samples[ti], b.env)
		rs[ti].StepWork = stepWork(sh, t.name())
	}
	addRatios(rs, samples)
	return rs, nil
}

// dropTrees removes every cold tree except those of shape keep (the base
// of the next cached shape), and syncs.
func (b *bench) dropTrees(keep string) error {
	for k, dir := range b.coldDirs {
		if _, shape, _ := strings.Cut(k, "/"); keep != "" && shape == keep {
			continue
		}
		if b.cfg.keep {
			delete(b.coldDirs, k)
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
		delete(b.coldDirs, k)
	}
	return nil
}

// newJob returns the i-th run of t over sh. A cold run gets a fresh
// directory, and the tool's previous tree of that shape is removed; a
// cached run re-uses the last cold run of its base shape, making one first
// (untimed) if there was none.
func (b *bench) newJob(ctx context.Context, t tool, sh shape, g *graph, i int) (job, error) {
	label := fmt.Sprintf("%s-%d", sh.name, i)
	if !sh.cached {
		key := t.name() + "/" + sh.name
		if prev, ok := b.coldDirs[key]; ok && !b.cfg.keep {
			if err := os.RemoveAll(prev); err != nil {
				return job{}, err
			}
		}
		dir := filepath.Join(b.root, t.name(), label)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return job{}, err
		}
		if err := t.prepare(dir, g, sh); err != nil {
			return job{}, fmt.Errorf("%s: preparing %s: %w", t.name(), label, err)
		}
		b.coldDirs[key] = dir
		return job{shape: sh, graph: g, dir: dir, label: label}, nil
	}
	dir, ok := b.coldDirs[t.name()+"/"+sh.base]
	if !ok {
		base, err := lookupShape(sh.base)
		if err != nil {
			return job{}, err
		}
		bg, _ := base.build(b.cfg.scale)
		setup, err := b.newJob(ctx, t, base, bg, 0)
		if err != nil {
			return job{}, err
		}
		if _, err := t.run(ctx, setup); err != nil {
			return job{}, fmt.Errorf("setting up %s: %w", sh.name, err)
		}
		dir = setup.dir
	}
	return job{shape: sh, graph: g, dir: dir, cached: true, label: label}, nil
}
