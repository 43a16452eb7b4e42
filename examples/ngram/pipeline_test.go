package main

import (
	"log/slog"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"

	"example.com/cairn"
	"example.com/cairn/cairntest"
	"example.com/cairn/cli"
	"example.com/cairn/recipe"
)

// runPipeline runs the pipeline for cfg under prefix and fails the test on
// error. It returns the report and the names of the steps by outcome.
func runPipeline(t *testing.T, cfg config, storage cairn.BucketOpener, prefix string) (*pipeline, *cairn.Report, map[cairn.Outcome][]string) {
	t.Helper()
	p, err := newPipeline(cfg)
	if err != nil {
		t.Fatal(err)
	}
	report, err := recipe.Run(t.Context(), p.Steps(), runOptions(storage, prefix), nil)
	if err != nil {
		t.Fatal(err)
	}
	byOutcome := make(map[cairn.Outcome][]string)
	for _, s := range report.Steps {
		byOutcome[s.Outcome] = append(byOutcome[s.Outcome], strings.TrimPrefix(s.Name, "ngram/"))
	}
	for _, names := range byOutcome {
		slices.Sort(names)
	}
	return p, report, byOutcome
}

func TestPipeline(t *testing.T) {
	storage := cli.DefaultStorage()
	prefix := t.TempDir()
	cfg := defaultConfig()

	p, report, _ := runPipeline(t, cfg, storage, prefix)
	if n := report.Count(cairn.Ran); n != len(p.Steps()) {
		t.Fatalf("first run: %d steps ran, want %d", n, len(p.Steps()))
	}
	checkOutputs(t, p, storage, prefix)

	_, report, _ = runPipeline(t, cfg, storage, prefix)
	if n := report.Count(cairn.Cached); n != len(p.Steps()) {
		t.Errorf("second run: %d steps cached, want %d", n, len(p.Steps()))
	}

	cfg.Train.Order = 2
	_, _, byOutcome := runPipeline(t, cfg, storage, prefix)
	want := map[cairn.Outcome][]string{
		cairn.Ran:    {"evaluate", "report", "train"},
		cairn.Cached: {"clean", "ingest", "tokenize"},
	}
	if !maps.EqualFunc(byOutcome, want, slices.Equal) {
		t.Errorf("after changing order: steps by outcome %v, want %v", byOutcome, want)
	}
}

func runOptions(storage cairn.BucketOpener, prefix string) *cairn.RunOptions {
	return &cairn.RunOptions{Prefix: prefix, Storage: storage, Logger: slog.New(slog.DiscardHandler)}
}

// checkOutputs checks the report and the perplexities of a finished run.
func checkOutputs(t *testing.T, p *pipeline, storage cairn.BucketOpener, prefix string) {
	t.Helper()
	ctx := t.Context()
	// Materialize resolves references outside a step (running nothing:
	// the steps are cached).
	metrics, err := recipe.Materialize(ctx, recipe.ArtifactOf(p.Evaluate), "", runOptions(storage, prefix), nil)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := metrics.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tr, va := ev.Train.Perplexity, ev.Validation.Perplexity
	// The comparisons are false for NaN.
	if math.IsInf(va, 0) || !(1 < tr && tr < va) {
		t.Errorf("perplexity: train %g, validation %g; want finite, 1 < train < validation", tr, va)
	}
	pl, err := recipe.Resolve(prefix, p.Report)
	if err != nil {
		t.Fatal(err)
	}
	path, err := pl.OutputPath(p.Report)
	if err != nil {
		t.Fatal(err)
	}
	b, err := storage.OpenBucket(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	md, _, err := b.Read(ctx, reportKey)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "| validation |") {
		t.Errorf("report.md lacks the validation perplexity:\n%s", md)
	}
}

// TestPipelineInMemory checks that steps read their dependencies through
// the run's storage, whatever it is.
func TestPipelineInMemory(t *testing.T) {
	st := cairntest.NewStorage(t)
	p, report, _ := runPipeline(t, defaultConfig(), st.Mux, st.Prefix)
	if n := report.Count(cairn.Ran); n != len(p.Steps()) {
		t.Fatalf("%d steps ran, want %d", n, len(p.Steps()))
	}
	checkOutputs(t, p, st.Mux, st.Prefix)
}

func TestConfigValidate(t *testing.T) {
	for _, mutate := range []func(*config){
		func(c *config) { c.Ingest.Shards = 0 },
		func(c *config) { c.Tokenize.VocabSize = 3 },
		func(c *config) { c.Tokenize.ValFraction = 0 },
		func(c *config) { c.Tokenize.ValFraction = 1 },
		func(c *config) { c.Train.Order = 0 },
		func(c *config) { c.Report.MaxTokens = 0 },
	} {
		cfg := defaultConfig()
		mutate(&cfg)
		if _, err := newPipeline(cfg); err == nil {
			t.Errorf("newPipeline accepted %+v", cfg)
		}
	}
}
