package main

import (
	"context"
	"crypto/sha256"
	"strings"
	"unicode"
	"unicode/utf8"

	"example.com/cairn/store"
)

// cleanAttrs are the attributes of the clean step.
type cleanAttrs struct {
	// MinChars is the length, in characters after normalisation, below
	// which a document is dropped.
	MinChars int `json:"min_chars"`
	// Lowercase folds the text to lower case.
	Lowercase bool `json:"lowercase"`
}

// CleanResult is the artifact of the clean step.
type CleanResult struct {
	// Shards are the keys of the cleaned JSONL shards, in order.
	Shards            []string `json:"shards"`
	Documents         int      `json:"documents"`
	DroppedShort      int      `json:"dropped_short"`
	DroppedDuplicates int      `json:"dropped_duplicates"`
	Characters        int      `json:"characters"`
}

// runClean normalises, filters and deduplicates the ingested documents, and
// writes them in as many shards as ingest did.
func runClean(ctx context.Context, out *store.Bucket, in *store.Bucket, ingested IngestResult, attrs cleanAttrs) (*CleanResult, error) {
	docs, err := readShards(ctx, in, ingested.Shards)
	if err != nil {
		return nil, err
	}
	kept, res := cleanDocuments(docs, attrs)
	res.Shards, err = writeShards(ctx, out, shardDocuments(kept, max(1, len(ingested.Shards))))
	if err != nil {
		return nil, err
	}
	return &res, nil
}

// cleanDocuments normalises docs, drops those shorter than attrs.MinChars,
// then drops exact duplicates, keeping the first occurrence. Shards are left
// to the caller.
func cleanDocuments(docs []Document, attrs cleanAttrs) ([]Document, CleanResult) {
	var res CleanResult
	var kept []Document
	seen := make(map[[sha256.Size]byte]bool)
	for _, d := range docs {
		d.Text = normalize(d.Text, attrs.Lowercase)
		n := utf8.RuneCountInString(d.Text)
		if n < attrs.MinChars {
			res.DroppedShort++
			continue
		}
		h := sha256.Sum256([]byte(d.Text))
		if seen[h] {
			res.DroppedDuplicates++
			continue
		}
		seen[h] = true
		kept = append(kept, d)
		res.Characters += n
	}
	res.Documents = len(kept)
	return kept, res
}

// normalize replaces every character other than a letter, a digit or an
// apostrophe by a space, optionally lower-cases the text, and collapses
// runs of white space into single spaces. Typographic apostrophes become
// ASCII ones.
func normalize(text string, lowercase bool) string {
	mapped := strings.Map(func(r rune) rune {
		switch {
		case r == '\'' || r == '\u2019':
			return '\''
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			if lowercase {
				return unicode.ToLower(r)
			}
			return r
		}
		return ' '
	}, text)
	return strings.Join(strings.Fields(mapped), " ")
}
