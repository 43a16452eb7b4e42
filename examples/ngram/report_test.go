package main

import (
	"slices"
	"strings"
	"testing"
)

func TestDraw(t *testing.T) {
	weights := []float64{0, 1, 0, 3, 0}
	tests := []struct {
		u    float64
		want int32
	}{{0, 1}, {0.24, 1}, {0.26, 3}, {0.999999, 3}}
	for _, tt := range tests {
		if got := draw(weights, tt.u); got != tt.want {
			t.Errorf("draw(%v, %g) = %d, want %d", weights, tt.u, got, tt.want)
		}
	}
}

func TestGenerateSamples(t *testing.T) {
	docs, vocab := testCorpus(5, 200, 60, 40)
	m := trainKN(docs, vocab, 3)
	attrs := reportAttrs{Samples: 4, Seed: 9, MaxTokens: 12}
	s1 := generateSamples(m, attrs)
	if s2 := generateSamples(m, attrs); !slices.Equal(s1, s2) {
		t.Errorf("samples differ with the same seed:\n%q\n%q", s1, s2)
	}
	attrs.Seed++
	if s3 := generateSamples(m, attrs); slices.Equal(s1, s3) {
		t.Errorf("samples identical with another seed: %q", s1)
	}
	for _, s := range s1 {
		words := strings.Fields(s)
		if len(words) > attrs.MaxTokens || slices.ContainsFunc(words, func(w string) bool { return strings.HasPrefix(w, "<") }) {
			t.Errorf("sample %q is too long or has a reserved token", s)
		}
	}
}

func TestRenderReport(t *testing.T) {
	d := reportData{
		Ingest:   IngestResult{Shards: []string{"a", "b"}, Files: 1, Documents: 10},
		Tokenize: TokenizeResult{VocabSize: 42},
		Train:    TrainResult{Order: 2, Smoothing: smoothingKN, NGrams: []int{40, 90}, Discounts: []float64{0.5, 0.7}},
		Evaluate: EvaluateResult{Train: Perplexity{Tokens: 100, Perplexity: 12.345}, Validation: Perplexity{Tokens: 10, Perplexity: 23.456}},
		Attrs:    reportAttrs{Seed: 3, MaxTokens: 20},
		Samples:  []string{"the end", ""},
	}
	got := renderReport(d)
	for _, want := range []string{"# N-gram", "| 10 (2) |", "| 42 |", "| 2 | 90 | 0.700 |", "| train | 100 | 12.35 |", "| validation | 10 | 23.46 |", "1. the end", "2. *(empty)*"} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
}
