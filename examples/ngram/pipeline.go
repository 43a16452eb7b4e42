package main

import (
	"context"
	"fmt"

	"example.com/cairn"
)

// config holds the attributes of the pipeline's steps.
type config struct {
	Shards      int     // ingest: number of JSONL shards
	MinChars    int     // clean: minimum document length
	Lowercase   bool    // clean: fold case
	VocabSize   int     // tokenize: vocabulary size, reserved tokens included
	ValFraction float64 // tokenize: fraction of documents held out
	Order       int     // train: n-gram order
	Samples     int     // report: number of sample generations
	Seed        uint64  // report: sampling seed
	MaxTokens   int     // report: maximum words per sample
}

// defaultConfig returns the configuration main runs.
func defaultConfig() config {
	return config{
		Shards:      4,
		MinChars:    20,
		Lowercase:   true,
		VocabSize:   400,
		ValFraction: 0.1,
		Order:       3,
		Samples:     5,
		Seed:        1,
		MaxTokens:   40,
	}
}

// validate rejects configurations the steps cannot run.
func (c config) validate() error {
	switch {
	case c.Shards < 1:
		return fmt.Errorf("shards must be >= 1, got %d", c.Shards)
	case c.VocabSize <= numReserved:
		return fmt.Errorf("vocab_size must be > %d, got %d", numReserved, c.VocabSize)
	case !(c.ValFraction > 0 && c.ValFraction < 1):
		return fmt.Errorf("val_fraction must be in (0, 1), got %g", c.ValFraction)
	case c.Order < 1:
		return fmt.Errorf("order must be >= 1, got %d", c.Order)
	case c.Samples < 0 || c.MaxTokens < 1:
		return fmt.Errorf("samples must be >= 0 and max_tokens >= 1, got %d and %d", c.Samples, c.MaxTokens)
	}
	return nil
}

// pipeline holds the example's steps.
type pipeline struct {
	Ingest, Clean, Tokenize, Train, Evaluate, Report *cairn.Step
}

// Steps returns the steps, dependencies first.
func (p *pipeline) Steps() []*cairn.Step {
	return []*cairn.Step{p.Ingest, p.Clean, p.Tokenize, p.Train, p.Evaluate, p.Report}
}

// newPipeline builds the steps for cfg. storage must be the opener the run
// uses: steps open their dependencies' outputs with it (see depBucket).
func newPipeline(cfg config) (*pipeline, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	digest, err := corpusDigest(corpusFS)
	if err != nil {
		return nil, err
	}
	p := &pipeline{}
	p.Ingest = ingestStep(ingestAttrs{Corpus: digest, Shards: cfg.Shards})
	p.Clean = cleanStep(p.Ingest, cleanAttrs{MinChars: cfg.MinChars, Lowercase: cfg.Lowercase})
	p.Tokenize = tokenizeStep(p.Clean, tokenizeAttrs{VocabSize: cfg.VocabSize, ValFraction: cfg.ValFraction})
	p.Train = trainStep(p.Tokenize, trainAttrs{Order: cfg.Order, Smoothing: smoothingKN})
	p.Evaluate = evaluateStep(p.Tokenize, p.Train)
	p.Report = reportStep(p, reportAttrs{Samples: cfg.Samples, Seed: cfg.Seed, MaxTokens: cfg.MaxTokens})
	return p, nil
}

func ingestStep(attrs ingestAttrs) *cairn.Step {
	return &cairn.Step{
		Name:  "ngram/ingest",
		Attrs: attrs,
		Func: func(ctx context.Context, out *cairn.Output) (any, error) {
			return runIngest(ctx, out, attrs)
		},
	}
}

func cleanStep(ingest *cairn.Step, attrs cleanAttrs) *cairn.Step {
	s := &cairn.Step{Name: "ngram/clean", Attrs: attrs, Deps: []*cairn.Step{ingest}}
	s.Func = func(ctx context.Context, out *cairn.Output) (any, error) {
		ingested, err := cairn.Load[IngestResult](ctx, out, ingest)
		if err != nil {
			return nil, err
		}
		in, err := out.OpenDep(ctx, ingest)
		if err != nil {
			return nil, err
		}
		return runClean(ctx, out, in, ingested, attrs)
	}
	return s
}

func tokenizeStep(clean *cairn.Step, attrs tokenizeAttrs) *cairn.Step {
	s := &cairn.Step{Name: "ngram/tokenize", Attrs: attrs, Deps: []*cairn.Step{clean}}
	s.Func = func(ctx context.Context, out *cairn.Output) (any, error) {
		cleaned, err := cairn.Load[CleanResult](ctx, out, clean)
		if err != nil {
			return nil, err
		}
		in, err := out.OpenDep(ctx, clean)
		if err != nil {
			return nil, err
		}
		return runTokenize(ctx, out, in, cleaned, attrs)
	}
	return s
}

func trainStep(tokenize *cairn.Step, attrs trainAttrs) *cairn.Step {
	s := &cairn.Step{Name: "ngram/train", Attrs: attrs, Deps: []*cairn.Step{tokenize}}
	s.Func = func(ctx context.Context, out *cairn.Output) (any, error) {
		tok, err := cairn.Load[TokenizeResult](ctx, out, tokenize)
		if err != nil {
			return nil, err
		}
		in, err := out.OpenDep(ctx, tokenize)
		if err != nil {
			return nil, err
		}
		return runTrain(ctx, out, in, tok, attrs)
	}
	return s
}

// evaluateStep has no attributes of its own: what it computes is fixed by
// its dependencies.
func evaluateStep(tokenize, train *cairn.Step) *cairn.Step {
	s := &cairn.Step{Name: "ngram/evaluate", Deps: []*cairn.Step{tokenize, train}}
	s.Func = func(ctx context.Context, out *cairn.Output) (any, error) {
		tok, err := cairn.Load[TokenizeResult](ctx, out, tokenize)
		if err != nil {
			return nil, err
		}
		trained, err := cairn.Load[TrainResult](ctx, out, train)
		if err != nil {
			return nil, err
		}
		tokens, err := out.OpenDep(ctx, tokenize)
		if err != nil {
			return nil, err
		}
		models, err := out.OpenDep(ctx, train)
		if err != nil {
			return nil, err
		}
		return runEvaluate(ctx, out, models, tokens, trained, tok)
	}
	return s
}

// reportStep depends on every other step of p, whose artifacts it shows.
func reportStep(p *pipeline, attrs reportAttrs) *cairn.Step {
	s := &cairn.Step{Name: "ngram/report", Attrs: attrs, Deps: []*cairn.Step{p.Ingest, p.Clean, p.Tokenize, p.Train, p.Evaluate}}
	s.Func = func(ctx context.Context, out *cairn.Output) (any, error) {
		d, err := loadReportData(ctx, out, p)
		if err != nil {
			return nil, err
		}
		d.Attrs = attrs
		models, err := out.OpenDep(ctx, p.Train)
		if err != nil {
			return nil, err
		}
		return runReport(ctx, out, models, d)
	}
	return s
}

// loadReportData loads the artifacts of the steps before the report.
func loadReportData(ctx context.Context, out *cairn.Output, p *pipeline) (d reportData, err error) {
	if d.Ingest, err = cairn.Load[IngestResult](ctx, out, p.Ingest); err != nil {
		return d, err
	}
	if d.Clean, err = cairn.Load[CleanResult](ctx, out, p.Clean); err != nil {
		return d, err
	}
	if d.Tokenize, err = cairn.Load[TokenizeResult](ctx, out, p.Tokenize); err != nil {
		return d, err
	}
	if d.Train, err = cairn.Load[TrainResult](ctx, out, p.Train); err != nil {
		return d, err
	}
	d.Evaluate, err = cairn.Load[EvaluateResult](ctx, out, p.Evaluate)
	return d, err
}
