package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"example.com/cairn/recipe"
	"example.com/cairn/store"
)

// reportKey is the key of the report in the report step's output.
const reportKey = "report.md"

// reportAttrs are the attributes of the report step.
type reportAttrs struct {
	// Samples is the number of sample generations.
	Samples int `json:"samples"`
	// Seed seeds the sampler.
	Seed uint64 `json:"seed"`
	// MaxTokens bounds the length of a sample, in words.
	MaxTokens int `json:"max_tokens"`
}

// ReportResult is the artifact of the report step.
type ReportResult struct {
	// Report is the key of the Markdown report.
	Report  string   `json:"report"`
	Samples []string `json:"samples"`
}

// reportData is everything the report shows.
type reportData struct {
	Ingest   IngestResult
	Clean    CleanResult
	Tokenize TokenizeResult
	Train    TrainResult
	Evaluate EvaluateResult
	Attrs    reportAttrs
	Samples  []string
}

// runReport samples from the model in models and writes report.md.
func runReport(ctx context.Context, out *store.Bucket, models *store.Bucket, d reportData) (*ReportResult, error) {
	m, err := loadModel(ctx, models, d.Train)
	if err != nil {
		return nil, err
	}
	d.Samples = generateSamples(m, d.Attrs)
	if _, err := out.Write(ctx, reportKey, []byte(renderReport(d))); err != nil {
		return nil, err
	}
	recipe.Logger(ctx).Info("wrote report", "path", out.URL(reportKey))
	return &ReportResult{Report: reportKey, Samples: d.Samples}, nil
}

// generateSamples draws attrs.Samples documents from m, each with its own
// random stream derived from attrs.Seed.
func generateSamples(m *knModel, attrs reportAttrs) []string {
	samples := make([]string, attrs.Samples)
	for i := range samples {
		rng := rand.New(rand.NewPCG(attrs.Seed, uint64(i)))
		samples[i] = strings.Join(m.vocab.Decode(sample(m, rng, attrs.MaxTokens)), " ")
	}
	return samples
}

// sample draws words from m after Order()-1 <s> until it draws </s> or has
// maxTokens words, never drawing <unk>. It returns the words.
func sample(m *knModel, rng *rand.Rand, maxTokens int) []int32 {
	history := slices.Repeat([]int32{bosID}, m.order-1)
	start := len(history)
	for len(history)-start < maxTokens {
		dist := m.Dist(history)
		dist[unkID] = 0
		w := draw(dist, rng.Float64())
		if w == eosID {
			break
		}
		history = append(history, w)
	}
	return history[start:]
}

// draw returns the index i at which the running sum of weights exceeds
// u·sum(weights), for u in [0, 1): a draw from the normalised weights.
func draw(weights []float64, u float64) int32 {
	var total float64
	for _, w := range weights {
		total += w
	}
	x := u * total
	last := int32(0)
	for i, w := range weights {
		if w <= 0 {
			continue
		}
		last = int32(i)
		if x -= w; x < 0 {
			return last
		}
	}
	return last // rounding: the last index with positive weight
}

// renderReport formats d as Markdown.
func renderReport(d reportData) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	tok := d.Tokenize
	p("# N-gram language model report")
	p("")
	p("## Corpus")
	p("")
	p("| | |")
	p("|---|---:|")
	p("| Files | %d |", d.Ingest.Files)
	p("| Raw documents (shards) | %d (%d) |", d.Ingest.Documents, len(d.Ingest.Shards))
	p("| Raw bytes | %d |", d.Ingest.Bytes)
	p("| Dropped as too short | %d |", d.Clean.DroppedShort)
	p("| Dropped as duplicates | %d |", d.Clean.DroppedDuplicates)
	p("| Clean documents | %d |", d.Clean.Documents)
	p("| Clean characters | %d |", d.Clean.Characters)
	p("| Train documents / tokens | %d / %d |", tok.Train.Documents, tok.Train.Tokens)
	p("| Validation documents / tokens | %d / %d |", tok.Validation.Documents, tok.Validation.Tokens)
	p("| Vocabulary (with `<unk>`, `<s>`, `</s>`) | %d |", tok.VocabSize)
	p("| Out-of-vocabulary rate, train / validation | %s / %s |", percent(tok.Train.Unknown, tok.Train.Tokens), percent(tok.Validation.Unknown, tok.Validation.Tokens))
	p("")
	p("## Model")
	p("")
	p("%d-gram model, %s smoothing.", d.Train.Order, d.Train.Smoothing)
	p("")
	p("| Order | Distinct n-grams | Discount |")
	p("|---:|---:|---:|")
	for n, c := range d.Train.NGrams {
		p("| %d | %d | %.3f |", n+1, c, d.Train.Discounts[n])
	}
	p("")
	p("## Perplexity")
	p("")
	p("Over every word and the closing `</s>` of each document.")
	p("")
	p("| Split | Tokens | Perplexity | Bits per token |")
	p("|---|---:|---:|---:|")
	for _, s := range []struct {
		name string
		ppl  Perplexity
	}{{"train", d.Evaluate.Train}, {"validation", d.Evaluate.Validation}} {
		p("| %s | %d | %.2f | %.3f |", s.name, s.ppl.Tokens, s.ppl.Perplexity, s.ppl.BitsPerToken)
	}
	p("")
	p("## Samples")
	p("")
	p("Seed %d, at most %d words, `<unk>` excluded.", d.Attrs.Seed, d.Attrs.MaxTokens)
	p("")
	for i, s := range d.Samples {
		if s == "" {
			s = "*(empty)*"
		}
		p("%d. %s", i+1, s)
	}
	return b.String()
}

// percent formats part/whole as a percentage.
func percent(part, whole int) string {
	if whole == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f%%", 100*float64(part)/float64(whole))
}
