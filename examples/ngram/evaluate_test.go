package main

import (
	"math"
	"testing"
)

// uniformModel gives every one of size ids the same probability.
type uniformModel struct{ size int }

func (uniformModel) Order() int                    { return 2 }
func (u uniformModel) Prob([]int32, int32) float64 { return 1 / float64(u.size) }

// zeroModel gives every id probability 0.
type zeroModel struct{}

func (zeroModel) Order() int                  { return 1 }
func (zeroModel) Prob([]int32, int32) float64 { return 0 }

func TestPerplexityUniform(t *testing.T) {
	docs := [][]int32{{3, 4, 5}, {6}, {}}
	got, err := perplexity(uniformModel{size: 57}, docs)
	if err != nil {
		t.Fatal(err)
	}
	if got.Tokens != 4+2+1 { // words plus one </s> per document
		t.Errorf("Tokens = %d, want 7", got.Tokens)
	}
	if math.Abs(got.Perplexity-57) > 1e-9 || math.Abs(got.BitsPerToken-math.Log2(57)) > 1e-12 {
		t.Errorf("uniform perplexity = %+v, want 57 (%g bits)", got, math.Log2(57))
	}
}

func TestPerplexityErrors(t *testing.T) {
	if _, err := perplexity(zeroModel{}, [][]int32{{3}}); err == nil {
		t.Error("perplexity with a zero probability succeeded")
	}
	if _, err := perplexity(uniformModel{size: 5}, nil); err == nil {
		t.Error("perplexity of no documents succeeded")
	}
}

func TestPerplexityKN(t *testing.T) {
	docs, vocab := testCorpus(11, 400, 80, 60)
	train, heldOut := docs[:360], docs[360:]
	m := trainKN(train, vocab, 3)
	pTrain, err := perplexity(m, train)
	if err != nil {
		t.Fatal(err)
	}
	pHeld, err := perplexity(m, heldOut)
	if err != nil {
		t.Fatal(err)
	}
	v := float64(len(vocab.Words) - 1)
	if !(1 < pTrain.Perplexity && pTrain.Perplexity < pHeld.Perplexity && pHeld.Perplexity < v) {
		t.Errorf("perplexities: train %g, held out %g; want 1 < train < held out < %g", pTrain.Perplexity, pHeld.Perplexity, v)
	}
}
