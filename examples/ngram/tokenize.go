package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"example.com/cairn/store"
)

// Reserved token ids.
const (
	unkID int32 = iota // out-of-vocabulary word
	bosID              // start of document (context only, never predicted)
	eosID              // end of document
)

// numReserved is the number of reserved ids.
const numReserved = 3

// reservedTokens returns the tokens of the reserved ids, in id order.
func reservedTokens() []string { return []string{"<unk>", "<s>", "</s>"} }

// Keys of the tokenize step's output.
const (
	vocabKey    = "vocab.txt"
	trainIDsKey = "train.ids"
	validIDsKey = "validation.ids"
)

// splitHashSalt is hashed before a document's text to assign its split.
const splitHashSalt = "ngram-split/v1\x00"

// tokenizeAttrs are the attributes of the tokenize step.
type tokenizeAttrs struct {
	// VocabSize is the size of the vocabulary, reserved tokens included.
	VocabSize int `json:"vocab_size"`
	// ValFraction is the fraction of documents held out for validation.
	ValFraction float64 `json:"val_fraction"`
}

// SplitStats describes one split of the tokenized corpus.
type SplitStats struct {
	// File is the key of the split's token id file.
	File      string `json:"file"`
	Documents int    `json:"documents"`
	// Tokens counts word tokens, without <s> and </s>.
	Tokens int `json:"tokens"`
	// Unknown counts the word tokens mapped to <unk>.
	Unknown int `json:"unknown"`
}

// TokenizeResult is the artifact of the tokenize step.
type TokenizeResult struct {
	// Vocab is the key of the vocabulary file: one token a line, the line
	// number (from 0) being its id.
	Vocab      string     `json:"vocab"`
	VocabSize  int        `json:"vocab_size"`
	Train      SplitStats `json:"train"`
	Validation SplitStats `json:"validation"`
}

// runTokenize splits the cleaned documents, builds the vocabulary from the
// train split and writes both splits as token ids.
func runTokenize(ctx context.Context, out *store.Bucket, in *store.Bucket, cleaned CleanResult, attrs tokenizeAttrs) (*TokenizeResult, error) {
	docs, err := readShards(ctx, in, cleaned.Shards)
	if err != nil {
		return nil, err
	}
	train, valid := splitTrainValidation(docs, attrs.ValFraction)
	if len(train) == 0 || len(valid) == 0 {
		return nil, fmt.Errorf("split of %d documents with val_fraction %g left a split empty", len(docs), attrs.ValFraction)
	}
	trainTokens := tokenizeAll(train)
	vocab := buildVocab(trainTokens, attrs.VocabSize)
	res := &TokenizeResult{Vocab: vocabKey, VocabSize: len(vocab.Words)}
	if _, err := out.Write(ctx, vocabKey, []byte(strings.Join(vocab.Words, "\n")+"\n")); err != nil {
		return nil, err
	}
	if res.Train, err = writeSplit(ctx, out, trainIDsKey, vocab, trainTokens); err != nil {
		return nil, err
	}
	if res.Validation, err = writeSplit(ctx, out, validIDsKey, vocab, tokenizeAll(valid)); err != nil {
		return nil, err
	}
	return res, nil
}

// writeSplit encodes docs with vocab and writes them to key.
func writeSplit(ctx context.Context, b *store.Bucket, key string, vocab *Vocab, docs [][]string) (SplitStats, error) {
	st := SplitStats{File: key, Documents: len(docs)}
	ids := make([][]int32, len(docs))
	for i, d := range docs {
		ids[i] = vocab.Encode(d)
		st.Tokens += len(d)
		for _, id := range ids[i] {
			if id == unkID {
				st.Unknown++
			}
		}
	}
	_, err := b.Write(ctx, key, encodeIDs(ids))
	return st, err
}

// tokenize splits normalised text into word tokens at white space. Tokens
// made only of apostrophes are dropped.
func tokenize(text string) []string {
	fields := strings.Fields(text)
	return slices.DeleteFunc(fields, func(f string) bool { return strings.Trim(f, "'") == "" })
}

// tokenizeAll tokenizes every document.
func tokenizeAll(docs []Document) [][]string {
	toks := make([][]string, len(docs))
	for i, d := range docs {
		toks[i] = tokenize(d.Text)
	}
	return toks
}

// isValidation reports whether the document with this text belongs to the
// validation split. It depends only on the text (through its hash), so the
// split is stable whatever the order or number of documents.
func isValidation(text string, fraction float64) bool {
	sum := sha256.Sum256([]byte(splitHashSalt + text))
	u := float64(binary.BigEndian.Uint64(sum[:8])>>11) / (1 << 53) // uniform in [0, 1)
	return u < fraction
}

// splitTrainValidation divides docs into train and validation splits, keeping
// their order.
func splitTrainValidation(docs []Document, valFraction float64) (train, valid []Document) {
	for _, d := range docs {
		if isValidation(d.Text, valFraction) {
			valid = append(valid, d)
		} else {
			train = append(train, d)
		}
	}
	return train, valid
}

// Vocab maps tokens to ids and back. Ids 0, 1 and 2 are <unk>, <s> and
// </s>; the others are words, most frequent first.
type Vocab struct {
	Words []string
	ids   map[string]int32
}

// newVocab indexes words, whose first entries must be the reserved tokens.
func newVocab(words []string) (*Vocab, error) {
	if len(words) < numReserved || !slices.Equal(words[:numReserved], reservedTokens()) {
		return nil, errors.New("vocabulary does not start with the reserved tokens <unk>, <s>, </s>")
	}
	v := &Vocab{Words: words, ids: make(map[string]int32, len(words))}
	for i, w := range words {
		if _, dup := v.ids[w]; dup {
			return nil, fmt.Errorf("vocabulary lists %q twice", w)
		}
		v.ids[w] = int32(i)
	}
	return v, nil
}

// buildVocab returns the vocabulary of at most size entries (at least the
// reserved ones): the reserved tokens, then the most frequent words of docs,
// ties broken alphabetically.
func buildVocab(docs [][]string, size int) *Vocab {
	counts := make(map[string]int)
	for _, d := range docs {
		for _, t := range d {
			counts[t]++
		}
	}
	for _, r := range reservedTokens() {
		delete(counts, r) // a literal "<s>" in the text cannot be a word
	}
	words := make([]string, 0, len(counts))
	for w := range counts {
		words = append(words, w)
	}
	slices.SortFunc(words, func(a, b string) int {
		return cmp.Or(cmp.Compare(counts[b], counts[a]), strings.Compare(a, b))
	})
	words = words[:min(len(words), max(0, size-numReserved))]
	v, _ := newVocab(append(reservedTokens(), words...)) // valid by construction
	return v
}

// ID returns the id of token, or the id of <unk>.
func (v *Vocab) ID(token string) int32 {
	if id, ok := v.ids[token]; ok {
		return id
	}
	return unkID
}

// Encode maps tokens to ids.
func (v *Vocab) Encode(tokens []string) []int32 {
	ids := make([]int32, len(tokens))
	for i, t := range tokens {
		ids[i] = v.ID(t)
	}
	return ids
}

// Decode maps ids to tokens.
func (v *Vocab) Decode(ids []int32) []string {
	toks := make([]string, len(ids))
	for i, id := range ids {
		toks[i] = v.Words[id]
	}
	return toks
}

// encodeIDs serialises documents of token ids compactly as unsigned
// varints: the number of documents, then each document's length and ids.
func encodeIDs(docs [][]int32) []byte {
	buf := binary.AppendUvarint(nil, uint64(len(docs)))
	for _, d := range docs {
		buf = binary.AppendUvarint(buf, uint64(len(d)))
		for _, id := range d {
			buf = binary.AppendUvarint(buf, uint64(id))
		}
	}
	return buf
}

// decodeIDs parses the output of encodeIDs, checking every id is below
// vocabSize.
func decodeIDs(data []byte, vocabSize int) ([][]int32, error) {
	next := func() (uint64, error) {
		x, n := binary.Uvarint(data)
		if n <= 0 {
			return 0, errors.New("token id file is truncated or corrupt")
		}
		data = data[n:]
		return x, nil
	}
	ndocs, err := next()
	if err != nil {
		return nil, err
	}
	if ndocs > uint64(len(data)) {
		return nil, fmt.Errorf("token id file claims %d documents in %d bytes", ndocs, len(data))
	}
	docs := make([][]int32, ndocs)
	for i := range docs {
		n, err := next()
		if err != nil {
			return nil, err
		}
		if n > uint64(len(data)) {
			return nil, fmt.Errorf("token id file: document %d claims %d tokens in %d bytes", i, n, len(data))
		}
		docs[i] = make([]int32, n)
		for j := range docs[i] {
			id, err := next()
			if err != nil {
				return nil, err
			}
			if id >= uint64(vocabSize) {
				return nil, fmt.Errorf("token id file: id %d out of range (vocabulary size %d)", id, vocabSize)
			}
			docs[i][j] = int32(id)
		}
	}
	if len(data) != 0 {
		return nil, fmt.Errorf("token id file: %d trailing bytes", len(data))
	}
	return docs, nil
}

// readTokenized reads the vocabulary and the token ids of both splits
// written by the tokenize step.
func readTokenized(ctx context.Context, b *store.Bucket, tok TokenizeResult) (vocab *Vocab, train, valid [][]int32, err error) {
	data, _, err := b.Read(ctx, tok.Vocab)
	if err != nil {
		return nil, nil, nil, err
	}
	if vocab, err = newVocab(strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")); err != nil {
		return nil, nil, nil, fmt.Errorf("%s: %w", b.URL(tok.Vocab), err)
	}
	read := func(key string) ([][]int32, error) {
		data, _, err := b.Read(ctx, key)
		if err != nil {
			return nil, err
		}
		docs, err := decodeIDs(data, len(vocab.Words))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.URL(key), err)
		}
		return docs, nil
	}
	if train, err = read(tok.Train.File); err != nil {
		return nil, nil, nil, err
	}
	if valid, err = read(tok.Validation.File); err != nil {
		return nil, nil, nil, err
	}
	return vocab, train, valid, nil
}
