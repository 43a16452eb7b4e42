package main

import (
	"context"
	"fmt"

	"example.com/cairn/recipe"
	"example.com/cairn/store"
)

// modelKey is the key of the model file in the train step's output.
const modelKey = "model.json"

// trainAttrs are the attributes of the train step.
type trainAttrs struct {
	// Order is the n-gram order: 3 for a trigram model.
	Order int `json:"order"`
	// Smoothing names the smoothing method. It is versioned so that a
	// model's directory says how it was smoothed; this example implements
	// one method, "interpolated-kneser-ney" (smoothingKN).
	Smoothing string `json:"smoothing"`
}

// TrainResult is the artifact of the train step.
type TrainResult struct {
	// Model is the key of the model file (JSON, see modelFile).
	Model       string `json:"model"`
	Order       int    `json:"order"`
	Smoothing   string `json:"smoothing"`
	VocabSize   int    `json:"vocab_size"`
	TrainTokens int    `json:"train_tokens"`
	// NGrams[n-1] is the number of distinct n-grams of order n.
	NGrams []int `json:"ngrams"`
	// Discounts[n-1] is the Kneser-Ney discount of order n.
	Discounts []float64 `json:"discounts"`
}

// runTrain trains a model on the train split of the tokenize step's output
// in and writes it to out.
func runTrain(ctx context.Context, out *store.Bucket, in *store.Bucket, tok TokenizeResult, attrs trainAttrs) (*TrainResult, error) {
	if attrs.Smoothing != smoothingKN {
		return nil, fmt.Errorf("unknown smoothing %q: the example's models use %q", attrs.Smoothing, smoothingKN)
	}
	vocab, train, _, err := readTokenized(ctx, in, tok)
	if err != nil {
		return nil, err
	}
	m := trainKN(train, vocab, attrs.Order)
	data, err := m.MarshalJSON()
	if err != nil {
		return nil, err
	}
	if _, err := out.Write(ctx, modelKey, data); err != nil {
		return nil, err
	}
	recipe.Logger(ctx).Info("trained model", "order", m.order, "ngrams", m.NGrams(), "discounts", m.discounts)
	return &TrainResult{
		Model:       modelKey,
		Order:       m.order,
		Smoothing:   smoothingKN,
		VocabSize:   m.VocabSize(),
		TrainTokens: tok.Train.Tokens,
		NGrams:      m.NGrams(),
		Discounts:   m.discounts,
	}, nil
}

// loadModel reads the model written by the train step.
func loadModel(ctx context.Context, b *store.Bucket, trained TrainResult) (*knModel, error) {
	data, _, err := b.Read(ctx, trained.Model)
	if err != nil {
		return nil, err
	}
	m, err := decodeModel(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.URL(trained.Model), err)
	}
	return m, nil
}
