package main

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestTokenize(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"the baker's daughter", []string{"the", "baker's", "daughter"}},
		{"  spaced\tout\nwords  ", []string{"spaced", "out", "words"}},
		{"a ' '' b", []string{"a", "b"}},
		{"", []string{}},
	}
	for _, tt := range tests {
		if got := tokenize(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("tokenize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestBuildVocab(t *testing.T) {
	docs := [][]string{{"b", "a", "c", "a"}, {"b", "a", "d", "<s>"}}
	v := buildVocab(docs, 5)
	want := []string{"<unk>", "<s>", "</s>", "a", "b"} // a: 3, b: 2; c and d tie but do not fit
	if !slices.Equal(v.Words, want) {
		t.Fatalf("vocab = %q, want %q", v.Words, want)
	}
	if got := v.Encode([]string{"a", "b", "c", "<s>"}); !slices.Equal(got, []int32{3, 4, unkID, bosID}) {
		t.Errorf("Encode = %v", got)
	}
	if got := v.Decode([]int32{4, 3, eosID}); !slices.Equal(got, []string{"b", "a", "</s>"}) {
		t.Errorf("Decode = %q", got)
	}
	if got := buildVocab(docs, 100).Words; !slices.Equal(got, []string{"<unk>", "<s>", "</s>", "a", "b", "c", "d"}) {
		t.Errorf("large vocab = %q (ties must sort alphabetically)", got)
	}
	if got := buildVocab(docs, 1).Words; len(got) != numReserved {
		t.Errorf("tiny vocab = %q, want only the reserved tokens", got)
	}
	if _, err := newVocab([]string{"a", "<s>", "</s>"}); err == nil {
		t.Error("newVocab accepted a vocabulary without the reserved tokens")
	}
}

func TestSplitDeterminism(t *testing.T) {
	var docs []Document
	for i := range 2000 {
		docs = append(docs, Document{ID: fmt.Sprint(i), Text: fmt.Sprintf("document number %d", i)})
	}
	train, valid := splitTrainValidation(docs, 0.1)
	if len(train)+len(valid) != len(docs) {
		t.Fatalf("split lost documents: %d + %d != %d", len(train), len(valid), len(docs))
	}
	if n := len(valid); n < 150 || n > 250 {
		t.Errorf("validation has %d of 2000 documents, want about 200", n)
	}

	// The split depends only on each document, not on order or company.
	shuffled := slices.Clone(docs)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	_, valid2 := splitTrainValidation(shuffled[:1000], 0.1)
	inValid := make(map[string]bool)
	for _, d := range valid {
		inValid[d.ID] = true
	}
	for _, d := range shuffled[:1000] {
		if isValidation(d.Text, 0.1) != inValid[d.ID] {
			t.Fatalf("document %s changed split", d.ID)
		}
	}
	for _, d := range valid2 {
		if !inValid[d.ID] {
			t.Fatalf("document %s is in validation only after shuffling", d.ID)
		}
	}

	// A larger fraction only moves documents into validation.
	for _, d := range valid {
		if !isValidation(d.Text, 0.2) {
			t.Fatalf("document %s left validation when the fraction grew", d.ID)
		}
	}
}

func TestIDsRoundTrip(t *testing.T) {
	docs := [][]int32{{3, 4, 5}, {}, {0, 399, 128, 127}}
	data := encodeIDs(docs)
	got, err := decodeIDs(data, 400)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(got, docs, slices.Equal) {
		t.Errorf("round trip = %v, want %v", got, docs)
	}
	if _, err := decodeIDs(data, 399); err == nil {
		t.Error("decodeIDs accepted an id beyond the vocabulary")
	}
	if _, err := decodeIDs(data[:len(data)-1], 400); err == nil {
		t.Error("decodeIDs accepted truncated data")
	}
	if _, err := decodeIDs(append(data, 0), 400); err == nil {
		t.Error("decodeIDs accepted trailing bytes")
	}
}
