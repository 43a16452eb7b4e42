package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
)

// smoothingKN names the smoothing method in attributes and model files.
const smoothingKN = "interpolated-kneser-ney"

// Bounds of the estimated discounts. A discount of 0 would leave no mass for
// lower orders (and none for words never seen in training); one of 1 or
// more would make counts of 1 worthless.
const (
	minDiscount = 0.1
	maxDiscount = 0.9
)

// knModel is an interpolated Kneser-Ney n-gram language model over the ids
// of a vocabulary (Chen & Goodman 1998, with one discount per order).
//
// For an order-n context h (n-1 ids) seen in training,
//
//	P_n(w | h) = max(c(h w) - D_n, 0) / c(h) + D_n N(h) / c(h) · P_{n-1}(w | h')
//
// where h' drops the first id of h, c(h) is the sum of c(h w) over w and
// N(h) the number of distinct w with c(h w) > 0. At the highest order c is
// the n-gram count; at lower orders it is the continuation count, the
// number of distinct ids seen before the n-gram. Below order 1 the model is
// uniform over the predictable ids (all but <s>); an unseen context defers
// to the order below.
type knModel struct {
	order int
	vocab *Vocab
	// discounts[n-1] is D_n.
	discounts []float64
	// levels[n-1] holds the order-n statistics by context (see ctxKey).
	levels []map[string]*knContext
}

// knContext holds the counts of the ids following one context.
type knContext struct {
	total  int
	counts map[int32]int
}

// ctxKey encodes a context (a sequence of ids) as a map key.
func ctxKey(ids []int32) string {
	b := make([]byte, 0, 4*len(ids))
	for _, id := range ids {
		b = binary.LittleEndian.AppendUint32(b, uint32(id))
	}
	return string(b)
}

// ctxIDs decodes a key made by ctxKey.
func ctxIDs(key string) []int32 {
	ids := make([]int32, len(key)/4)
	for i := range ids {
		ids[i] = int32(binary.LittleEndian.Uint32([]byte(key[4*i:])))
	}
	return ids
}

// newKNModel returns an empty model.
func newKNModel(vocab *Vocab, order int) *knModel {
	m := &knModel{order: order, vocab: vocab, discounts: make([]float64, order), levels: make([]map[string]*knContext, order)}
	for i := range m.levels {
		m.levels[i] = make(map[string]*knContext)
	}
	return m
}

// add adds count to the statistics of word after ctx at order len(ctx)+1.
func (m *knModel) add(ctx []int32, word int32, count int) {
	level := m.levels[len(ctx)]
	k := ctxKey(ctx)
	c := level[k]
	if c == nil {
		c = &knContext{counts: make(map[int32]int)}
		level[k] = c
	}
	c.counts[word] += count
	c.total += count
}

// pad returns doc with order-1 <s> before it and </s> after it.
func pad(doc []int32, order int) []int32 {
	p := make([]int32, 0, len(doc)+order)
	for range order - 1 {
		p = append(p, bosID)
	}
	return append(append(p, doc...), eosID)
}

// trainKN estimates a model of the given order (>= 1) from docs, sequences
// of ids of vocab.
func trainKN(docs [][]int32, vocab *Vocab, order int) *knModel {
	m := newKNModel(vocab, order)
	for _, d := range docs {
		p := pad(d, order)
		for i := order - 1; i < len(p); i++ {
			m.add(p[i-order+1:i], p[i], 1)
		}
	}
	// Continuation counts: each distinct (n+1)-gram v x adds one to x.
	for n := order - 1; n >= 1; n-- {
		for k, c := range m.levels[n] {
			ctx := ctxIDs(k)
			for w := range c.counts {
				m.add(ctx[1:], w, 1)
			}
		}
	}
	for n := range m.levels {
		m.discounts[n] = estimateDiscount(m.levels[n])
	}
	return m
}

// estimateDiscount returns Ney's estimate n1 / (n1 + 2 n2) from the numbers
// of n-grams seen once and twice, clamped to [minDiscount, maxDiscount].
func estimateDiscount(level map[string]*knContext) float64 {
	var n1, n2 int
	for _, c := range level {
		for _, k := range c.counts {
			switch k {
			case 1:
				n1++
			case 2:
				n2++
			}
		}
	}
	if n1 == 0 {
		return minDiscount
	}
	return min(maxDiscount, max(minDiscount, float64(n1)/float64(n1+2*n2)))
}

// Order returns the model's order.
func (m *knModel) Order() int { return m.order }

// VocabSize returns the size of the model's vocabulary.
func (m *knModel) VocabSize() int { return len(m.vocab.Words) }

// Prob returns P(w | history). Only the last Order()-1 ids of history are
// used; a shorter history uses the lower orders it can. <s> has
// probability 0.
func (m *knModel) Prob(history []int32, w int32) float64 {
	if w == bosID {
		return 0
	}
	p := 1 / float64(len(m.vocab.Words)-1)
	for n := 1; n <= m.order && n-1 <= len(history); n++ {
		c := m.levels[n-1][ctxKey(history[len(history)-(n-1):])]
		if c == nil || c.total == 0 {
			break // longer contexts extend this one: unseen too
		}
		d := m.discounts[n-1]
		p = (max(float64(c.counts[w])-d, 0) + d*float64(len(c.counts))*p) / float64(c.total)
	}
	return p
}

// Dist returns P(w | history) for every id w of the vocabulary.
func (m *knModel) Dist(history []int32) []float64 {
	dist := make([]float64, len(m.vocab.Words))
	for w := range dist {
		dist[w] = m.Prob(history, int32(w))
	}
	return dist
}

// NGrams returns the number of distinct n-grams of each order, from 1.
func (m *knModel) NGrams() []int {
	counts := make([]int, m.order)
	for n, level := range m.levels {
		for _, c := range level {
			counts[n] += len(c.counts)
		}
	}
	return counts
}

// modelFile is the JSON form of a knModel.
type modelFile struct {
	Order     int       `json:"order"`
	Smoothing string    `json:"smoothing"`
	Vocab     []string  `json:"vocab"`
	Discounts []float64 `json:"discounts"`
	// NGrams[n-1] lists the order-n statistics as rows [context..., word,
	// count], sorted.
	NGrams [][][]int32 `json:"ngrams"`
}

// MarshalJSON encodes the model deterministically.
func (m *knModel) MarshalJSON() ([]byte, error) {
	f := modelFile{Order: m.order, Smoothing: smoothingKN, Vocab: m.vocab.Words, Discounts: m.discounts, NGrams: make([][][]int32, m.order)}
	for n, level := range m.levels {
		rows := make([][]int32, 0, len(level))
		for k, c := range level {
			ctx := ctxIDs(k)
			for w, count := range c.counts {
				rows = append(rows, append(slices.Clip(ctx), w, int32(count)))
			}
		}
		slices.SortFunc(rows, slices.Compare)
		f.NGrams[n] = rows
	}
	return json.Marshal(f)
}

// decodeModel parses a model encoded by MarshalJSON, validating it.
func decodeModel(data []byte) (*knModel, error) {
	var f modelFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	if f.Smoothing != smoothingKN {
		return nil, fmt.Errorf("model smoothing %q, want %q", f.Smoothing, smoothingKN)
	}
	if f.Order < 1 || len(f.Discounts) != f.Order || len(f.NGrams) != f.Order {
		return nil, fmt.Errorf("model of order %d has %d discounts and %d n-gram tables", f.Order, len(f.Discounts), len(f.NGrams))
	}
	vocab, err := newVocab(f.Vocab)
	if err != nil {
		return nil, err
	}
	m := newKNModel(vocab, f.Order)
	copy(m.discounts, f.Discounts)
	for n, rows := range f.NGrams {
		for _, r := range rows {
			if err := m.checkRow(n+1, r); err != nil {
				return nil, err
			}
			m.add(r[:n], r[n], int(r[n+1]))
		}
	}
	return m, nil
}

// checkRow validates a row [context..., word, count] of order n.
func (m *knModel) checkRow(n int, r []int32) error {
	bad := func(why string) error {
		return fmt.Errorf("model: order-%d row %v: %s", n, r, why)
	}
	if len(r) != n+1 {
		return bad("wrong length")
	}
	if r[n] <= 0 {
		return bad("count is not positive")
	}
	for _, id := range r[:n] {
		if id < 0 || int(id) >= len(m.vocab.Words) {
			return bad("id out of range")
		}
	}
	return nil
}
