package main

import (
	"context"
	"fmt"
	"math"

	"example.com/cairn/recipe"
	"example.com/cairn/store"
)

// metricsKey is the key of the metrics file in the evaluate step's output.
const metricsKey = "metrics.json"

// languageModel is what perplexity needs of a model.
type languageModel interface {
	// Order is the n-gram order: Prob uses the last Order()-1 ids of the
	// history.
	Order() int
	// Prob returns the probability of id w after history.
	Prob(history []int32, w int32) float64
}

// Perplexity is a model's perplexity on one split.
type Perplexity struct {
	// Tokens is the number of predicted tokens: words and </s>.
	Tokens     int     `json:"tokens"`
	Perplexity float64 `json:"perplexity"`
	// BitsPerToken is the cross-entropy, log2 of the perplexity.
	BitsPerToken float64 `json:"bits_per_token"`
}

// EvaluateResult is the artifact of the evaluate step.
type EvaluateResult struct {
	Train      Perplexity `json:"train"`
	Validation Perplexity `json:"validation"`
}

// runEvaluate computes the model's perplexity on both splits.
func runEvaluate(ctx context.Context, out *store.Bucket, models, tokens *store.Bucket, trained TrainResult, tok TokenizeResult) (*EvaluateResult, error) {
	m, err := loadModel(ctx, models, trained)
	if err != nil {
		return nil, err
	}
	_, train, valid, err := readTokenized(ctx, tokens, tok)
	if err != nil {
		return nil, err
	}
	var res EvaluateResult
	if res.Train, err = perplexity(m, train); err != nil {
		return nil, fmt.Errorf("train split: %w", err)
	}
	if res.Validation, err = perplexity(m, valid); err != nil {
		return nil, fmt.Errorf("validation split: %w", err)
	}
	if err := writeJSON(ctx, out, metricsKey, res); err != nil {
		return nil, err
	}
	recipe.Logger(ctx).Info("evaluated model", "train_perplexity", res.Train.Perplexity, "validation_perplexity", res.Validation.Perplexity)
	return &res, nil
}

// perplexity returns exp of the mean negative log-probability lm gives to
// every word and closing </s> of docs, each document being preceded by
// Order()-1 <s>. It fails if docs are empty or a token has probability 0.
func perplexity(lm languageModel, docs [][]int32) (Perplexity, error) {
	var nll float64
	var n int
	for _, d := range docs {
		p := pad(d, lm.Order())
		for i := lm.Order() - 1; i < len(p); i++ {
			prob := lm.Prob(p[:i], p[i])
			if !(prob > 0) {
				return Perplexity{}, fmt.Errorf("token %d of a document has probability %g", i-lm.Order()+1, prob)
			}
			nll -= math.Log(prob)
			n++
		}
	}
	if n == 0 {
		return Perplexity{}, fmt.Errorf("no tokens")
	}
	h := nll / float64(n)
	return Perplexity{Tokens: n, Perplexity: math.Exp(h), BitsPerToken: h / math.Ln2}, nil
}
