package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// testCorpus returns a deterministic random corpus of docs documents over
// words words with a Zipf-like distribution, and its vocabulary of size
// vocabSize (smaller than the word count, so that <unk> occurs).
func testCorpus(seed uint64, docs, words, vocabSize int) ([][]int32, *Vocab) {
	rng := rand.New(rand.NewPCG(seed, 0))
	zipf := rand.NewZipf(rand.New(rand.NewPCG(seed, 1)), 1.2, 2, uint64(words-1))
	toks := make([][]string, docs)
	for i := range toks {
		for range 3 + rng.IntN(15) {
			toks[i] = append(toks[i], "w"+string(rune('a'+zipf.Uint64()%26))+string(rune('a'+zipf.Uint64()/26)))
		}
	}
	vocab := buildVocab(toks, vocabSize)
	ids := make([][]int32, docs)
	for i, d := range toks {
		ids[i] = vocab.Encode(d)
	}
	return ids, vocab
}

func TestKNHandComputed(t *testing.T) {
	vocab, err := newVocab([]string{"<unk>", "<s>", "</s>", "a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	m := trainKN([][]int32{{3, 4}}, vocab, 2)
	// Bigrams <s> a, a b, b </s> are each seen once: every discount is
	// n1/(n1+2n2) = 1, clamped to maxDiscount. Continuation counts: a, b and
	// </s> each follow one distinct id.
	d := maxDiscount
	p1b := (1-d)/3 + d*3/3*(1.0/4) // 4 predictable ids: all but <s>
	tests := []struct {
		history []int32
		w       int32
		want    float64
	}{
		{nil, 4, p1b},
		{nil, unkID, d * 3 / 3 * (1.0 / 4)},
		{[]int32{3}, 4, (1-d)/1 + d*1/1*p1b},
		{[]int32{4}, 3, d * 1 / 1 * p1b},
		{[]int32{unkID}, 4, p1b}, // unseen context: order 1 only
		{[]int32{3}, bosID, 0},
	}
	for _, tt := range tests {
		if got := m.Prob(tt.history, tt.w); math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("P(%d | %v) = %g, want %g", tt.w, tt.history, got, tt.want)
		}
	}
}

func TestKNSumsToOne(t *testing.T) {
	docs, vocab := testCorpus(7, 200, 60, 40)
	for order := 1; order <= 4; order++ {
		m := trainKN(docs, vocab, order)
		contexts := [][]int32{
			nil,
			{bosID},
			{bosID, bosID, bosID},
			slices.Concat([]int32{bosID, bosID}, docs[0][:2]), // seen
			{docs[3][0], docs[3][1], docs[3][2]},              // seen
			{unkID, unkID, unkID},
			{eosID, 3, eosID}, // never seen: </s> is never a context
			{int32(len(vocab.Words) - 1), 5, 4},
		}
		for _, h := range contexts {
			var sum float64
			for _, p := range m.Dist(h) {
				if p < 0 {
					t.Fatalf("order %d: negative probability after %v", order, h)
				}
				sum += p
			}
			if math.Abs(sum-1) > 1e-9 {
				t.Errorf("order %d: probabilities after %v sum to %.12f", order, h, sum)
			}
		}
	}
}

// TestKNContinuation checks the point of Kneser-Ney: a word frequent only
// after one context ("york" after "new") gets less unigram mass than a
// rarer word seen after many contexts.
func TestKNContinuation(t *testing.T) {
	vocab, _ := newVocab([]string{"<unk>", "<s>", "</s>", "new", "york", "the", "a", "b", "c"})
	const (
		newID, york, the, a, b, c = 3, 4, 5, 6, 7, 8
	)
	var docs [][]int32
	for range 10 {
		docs = append(docs, []int32{newID, york})
	}
	docs = append(docs, []int32{a, the}, []int32{b, the}, []int32{c, the})
	m := trainKN(docs, vocab, 2)
	if py, pt := m.Prob([]int32{a}, york), m.Prob([]int32{a}, the); py >= pt {
		t.Errorf("P(york | a) = %g >= P(the | a) = %g, though york only follows new", py, pt)
	}
	if p := m.Prob([]int32{newID}, york); p < 0.8 {
		t.Errorf("P(york | new) = %g, want close to 1", p)
	}
}

func TestModelRoundTrip(t *testing.T) {
	docs, vocab := testCorpus(3, 100, 50, 30)
	m := trainKN(docs, vocab, 3)
	data, err := m.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	again, _ := m.MarshalJSON()
	if string(data) != string(again) {
		t.Error("model encoding is not deterministic")
	}
	m2, err := decodeModel(data)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.NGrams(), m2.NGrams()) || !slices.Equal(m.discounts, m2.discounts) {
		t.Errorf("decoded model: n-grams %v, discounts %v; want %v, %v", m2.NGrams(), m2.discounts, m.NGrams(), m.discounts)
	}
	for _, d := range docs[:10] {
		h := pad(d, 3)
		for i := 2; i < len(h); i++ {
			if p, p2 := m.Prob(h[:i], h[i]), m2.Prob(h[:i], h[i]); p != p2 {
				t.Fatalf("P = %g before encoding, %g after", p, p2)
			}
		}
	}
	if _, err := decodeModel([]byte(`{"order":2,"smoothing":"add-one"}`)); err == nil {
		t.Error("decodeModel accepted another smoothing")
	}
}
