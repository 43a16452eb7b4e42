package main

import (
	"context"
	"fmt"

	"example.com/cairn/recipe"
	"example.com/cairn/store"
)

// config holds the parameters of the pipeline's steps, a section per
// step. It is what `--config FILE` (YAML or JSON) and `--set
// section.field=value` change, by the json names (recipecli.MainConfig):
//
//	go run ./examples/ngram --set train.order=4 --set tokenize.vocab_size=500
type config struct {
	Ingest   ingestParams   `json:"ingest"`
	Clean    cleanParams    `json:"clean"`
	Tokenize tokenizeParams `json:"tokenize"`
	Train    trainParams    `json:"train"`
	Report   reportParams   `json:"report"`
}

type ingestParams struct {
	Shards int `json:"shards"` // number of JSONL shards
}

type cleanParams struct {
	MinChars  int  `json:"min_chars"` // minimum document length
	Lowercase bool `json:"lowercase"` // fold case
}

type tokenizeParams struct {
	VocabSize   int     `json:"vocab_size"`   // vocabulary size, reserved tokens included
	ValFraction float64 `json:"val_fraction"` // fraction of documents held out
}

type trainParams struct {
	Order int `json:"order"` // n-gram order
}

type reportParams struct {
	Samples    int    `json:"samples"`     // number of sample generations
	Seed       uint64 `json:"seed"`        // sampling seed
	MaxTokens  int    `json:"max_tokens"`  // maximum words per sample
	LogSamples bool   `json:"log_samples"` // log every sample (not versioned)
}

// defaultConfig returns the configuration main runs unless told otherwise.
func defaultConfig() config {
	return config{
		Ingest:   ingestParams{Shards: 4},
		Clean:    cleanParams{MinChars: 20, Lowercase: true},
		Tokenize: tokenizeParams{VocabSize: 400, ValFraction: 0.1},
		Train:    trainParams{Order: 3},
		Report:   reportParams{Samples: 5, Seed: 1, MaxTokens: 40},
	}
}

// validate rejects configurations the steps cannot run.
func (c config) validate() error {
	switch {
	case c.Ingest.Shards < 1:
		return fmt.Errorf("ingest.shards must be >= 1, got %d", c.Ingest.Shards)
	case c.Tokenize.VocabSize <= numReserved:
		return fmt.Errorf("tokenize.vocab_size must be > %d, got %d", numReserved, c.Tokenize.VocabSize)
	case !(c.Tokenize.ValFraction > 0 && c.Tokenize.ValFraction < 1):
		return fmt.Errorf("tokenize.val_fraction must be in (0, 1), got %g", c.Tokenize.ValFraction)
	case c.Train.Order < 1:
		return fmt.Errorf("train.order must be >= 1, got %d", c.Train.Order)
	case c.Report.Samples < 0 || c.Report.MaxTokens < 1:
		return fmt.Errorf("report.samples must be >= 0 and report.max_tokens >= 1, got %d and %d", c.Report.Samples, c.Report.MaxTokens)
	}
	return nil
}

// The steps' configs. Versioned fields make up each step's version (with
// the versions of the steps it reads); Artifact fields are typed
// references to another step's result and output directory; Output is the
// step's own output directory.

type ingestConfig struct {
	// Corpus is the SHA-256 of the embedded corpus, so that editing it
	// re-runs the pipeline.
	Corpus recipe.Versioned[string] `json:"corpus_sha256"`
	Shards recipe.Versioned[int]    `json:"shards"`
	Output recipe.Output            `json:"output_path"`
}

type cleanConfig struct {
	Ingested  recipe.Artifact[*IngestResult] `json:"input_path"`
	MinChars  recipe.Versioned[int]          `json:"min_chars"`
	Lowercase recipe.Versioned[bool]         `json:"lowercase"`
	Output    recipe.Output                  `json:"output_path"`
}

type tokenizeConfig struct {
	Cleaned     recipe.Artifact[*CleanResult] `json:"input_path"`
	VocabSize   recipe.Versioned[int]         `json:"vocab_size"`
	ValFraction recipe.Versioned[float64]     `json:"val_fraction"`
	Output      recipe.Output                 `json:"output_path"`
}

type trainConfig struct {
	Tokenized recipe.Artifact[*TokenizeResult] `json:"tokenized_path"`
	Order     recipe.Versioned[int]            `json:"order"`
	Smoothing recipe.Versioned[string]         `json:"smoothing"`
	Output    recipe.Output                    `json:"output_path"`
}

// evaluateConfig has no versioned field of its own: what it computes is
// fixed by the steps it reads.
type evaluateConfig struct {
	Tokenized recipe.Artifact[*TokenizeResult] `json:"tokenized_path"`
	Model     recipe.Artifact[*TrainResult]    `json:"model_path"`
	Output    recipe.Output                    `json:"output_path"`
}

// reportConfig reads every other step's artifact.
type reportConfig struct {
	Ingested   recipe.Artifact[*IngestResult]   `json:"ingest_path"`
	Cleaned    recipe.Artifact[*CleanResult]    `json:"clean_path"`
	Tokenized  recipe.Artifact[*TokenizeResult] `json:"tokenized_path"`
	Model      recipe.Artifact[*TrainResult]    `json:"model_path"`
	Metrics    recipe.Artifact[*EvaluateResult] `json:"metrics_path"`
	Samples    recipe.Versioned[int]            `json:"samples"`
	Seed       recipe.Versioned[uint64]         `json:"seed"`
	MaxTokens  recipe.Versioned[int]            `json:"max_tokens"`
	LogSamples bool                             `json:"log_samples"`
	Output     recipe.Output                    `json:"output_path"`
}

// pipeline holds the example's steps.
type pipeline struct {
	Ingest   *recipe.Step[ingestConfig, *IngestResult]
	Clean    *recipe.Step[cleanConfig, *CleanResult]
	Tokenize *recipe.Step[tokenizeConfig, *TokenizeResult]
	Train    *recipe.Step[trainConfig, *TrainResult]
	Evaluate *recipe.Step[evaluateConfig, *EvaluateResult]
	Report   *recipe.Step[reportConfig, *ReportResult]
}

// Steps returns the steps, dependencies first.
func (p *pipeline) Steps() []recipe.Node {
	return []recipe.Node{p.Ingest, p.Clean, p.Tokenize, p.Train, p.Evaluate, p.Report}
}

// newPipeline builds the steps for cfg.
func newPipeline(cfg config) (*pipeline, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	digest, err := corpusDigest(corpusFS)
	if err != nil {
		return nil, err
	}
	p := &pipeline{}
	p.Ingest = recipe.NewWithArtifact("ngram/ingest", ingest, ingestConfig{
		Corpus: recipe.V(digest),
		Shards: recipe.V(cfg.Ingest.Shards),
	}, nil)
	p.Clean = recipe.NewWithArtifact("ngram/clean", clean, cleanConfig{
		Ingested:  recipe.ArtifactOf(p.Ingest),
		MinChars:  recipe.V(cfg.Clean.MinChars),
		Lowercase: recipe.V(cfg.Clean.Lowercase),
	}, nil)
	p.Tokenize = recipe.NewWithArtifact("ngram/tokenize", tokenizeStep, tokenizeConfig{
		Cleaned:     recipe.ArtifactOf(p.Clean),
		VocabSize:   recipe.V(cfg.Tokenize.VocabSize),
		ValFraction: recipe.V(cfg.Tokenize.ValFraction),
	}, nil)
	p.Train = recipe.NewWithArtifact("ngram/train", train, trainConfig{
		Tokenized: recipe.ArtifactOf(p.Tokenize),
		Order:     recipe.V(cfg.Train.Order),
		Smoothing: recipe.V(smoothingKN),
	}, &recipe.StepOptions{Remote: trainRemote()})
	p.Evaluate = recipe.NewWithArtifact("ngram/evaluate", evaluate, evaluateConfig{
		Tokenized: recipe.ArtifactOf(p.Tokenize),
		Model:     recipe.ArtifactOf(p.Train),
	}, nil)
	p.Report = recipe.NewWithArtifact("ngram/report", report, reportConfig{
		Ingested:   recipe.ArtifactOf(p.Ingest),
		Cleaned:    recipe.ArtifactOf(p.Clean),
		Tokenized:  recipe.ArtifactOf(p.Tokenize),
		Model:      recipe.ArtifactOf(p.Train),
		Metrics:    recipe.ArtifactOf(p.Evaluate),
		Samples:    recipe.V(cfg.Report.Samples),
		Seed:       recipe.V(cfg.Report.Seed),
		MaxTokens:  recipe.V(cfg.Report.MaxTokens),
		LogSamples: cfg.Report.LogSamples,
	}, nil)
	return p, nil
}

// The step functions: each loads what it reads, opens its output, and
// calls the code of its stage.

func ingest(ctx context.Context, c ingestConfig) (*IngestResult, error) {
	out, err := c.Output.Open(ctx)
	if err != nil {
		return nil, err
	}
	return runIngest(ctx, out, ingestAttrs{Corpus: c.Corpus.Value(), Shards: c.Shards.Value()})
}

func clean(ctx context.Context, c cleanConfig) (*CleanResult, error) {
	ingested, in, err := load(ctx, c.Ingested)
	if err != nil {
		return nil, err
	}
	out, err := c.Output.Open(ctx)
	if err != nil {
		return nil, err
	}
	return runClean(ctx, out, in, *ingested, cleanAttrs{MinChars: c.MinChars.Value(), Lowercase: c.Lowercase.Value()})
}

func tokenizeStep(ctx context.Context, c tokenizeConfig) (*TokenizeResult, error) {
	cleaned, in, err := load(ctx, c.Cleaned)
	if err != nil {
		return nil, err
	}
	out, err := c.Output.Open(ctx)
	if err != nil {
		return nil, err
	}
	return runTokenize(ctx, out, in, *cleaned, tokenizeAttrs{VocabSize: c.VocabSize.Value(), ValFraction: c.ValFraction.Value()})
}

func train(ctx context.Context, c trainConfig) (*TrainResult, error) {
	tok, in, err := load(ctx, c.Tokenized)
	if err != nil {
		return nil, err
	}
	out, err := c.Output.Open(ctx)
	if err != nil {
		return nil, err
	}
	return runTrain(ctx, out, in, *tok, trainAttrs{Order: c.Order.Value(), Smoothing: c.Smoothing.Value()})
}

func evaluate(ctx context.Context, c evaluateConfig) (*EvaluateResult, error) {
	tok, tokens, err := load(ctx, c.Tokenized)
	if err != nil {
		return nil, err
	}
	trained, models, err := load(ctx, c.Model)
	if err != nil {
		return nil, err
	}
	out, err := c.Output.Open(ctx)
	if err != nil {
		return nil, err
	}
	return runEvaluate(ctx, out, models, tokens, *trained, *tok)
}

func report(ctx context.Context, c reportConfig) (*ReportResult, error) {
	var d reportData
	ingested, err := c.Ingested.Load(ctx)
	if err != nil {
		return nil, err
	}
	cleaned, err := c.Cleaned.Load(ctx)
	if err != nil {
		return nil, err
	}
	tok, err := c.Tokenized.Load(ctx)
	if err != nil {
		return nil, err
	}
	trained, models, err := load(ctx, c.Model)
	if err != nil {
		return nil, err
	}
	metrics, err := c.Metrics.Load(ctx)
	if err != nil {
		return nil, err
	}
	d.Ingest, d.Clean, d.Tokenize, d.Train, d.Evaluate = *ingested, *cleaned, *tok, *trained, *metrics
	d.Attrs = reportAttrs{Samples: c.Samples.Value(), Seed: c.Seed.Value(), MaxTokens: c.MaxTokens.Value()}
	out, err := c.Output.Open(ctx)
	if err != nil {
		return nil, err
	}
	res, err := runReport(ctx, out, models, d)
	if err == nil && c.LogSamples {
		for i, s := range res.Samples {
			recipe.Logger(ctx).Info("sample", "i", i, "text", s)
		}
	}
	return res, err
}

// load returns the artifact a refers to and the storage of the step that
// produced it.
func load[A any](ctx context.Context, a recipe.Artifact[*A]) (*A, *store.Bucket, error) {
	v, err := a.Load(ctx)
	if err != nil {
		return nil, nil, err
	}
	b, err := a.Open(ctx)
	return v, b, err
}
