package main

import (
	"slices"
	"testing"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		in        string
		lowercase bool
		want      string
	}{
		{"Hello, World!", true, "hello world"},
		{"Hello, World!", false, "Hello World"},
		{"  The baker's  daughter\n\tdidn’t  go. ", true, "the baker's daughter didn't go"},
		{"\"Quoted\" -- dashes; semi:colons?", true, "quoted dashes semi colons"},
		{"On the 17th of May.", true, "on the 17th of may"},
		{"Ünïcödé ÉTÉ", true, "ünïcödé été"},
		{"...!?", true, ""},
	}
	for _, tt := range tests {
		if got := normalize(tt.in, tt.lowercase); got != tt.want {
			t.Errorf("normalize(%q, %v) = %q, want %q", tt.in, tt.lowercase, got, tt.want)
		}
	}
}

func TestCleanDocuments(t *testing.T) {
	docs := []Document{
		{"d0", "The ferry will not run on Sundays."},
		{"d1", "Rain."}, // short
		{"d2", "THE FERRY will not run -- on Sundays!"}, // duplicate after normalisation
		{"d3", "The market opens at seven."},
		{"d4", "The ferry will not run on Sundays."}, // exact duplicate
	}
	kept, res := cleanDocuments(docs, cleanAttrs{MinChars: 10, Lowercase: true})
	var ids []string
	for _, d := range kept {
		ids = append(ids, d.ID)
	}
	if !slices.Equal(ids, []string{"d0", "d3"}) {
		t.Errorf("kept %q, want d0 and d3", ids)
	}
	if kept[0].Text != "the ferry will not run on sundays" {
		t.Errorf("kept text %q is not normalised", kept[0].Text)
	}
	want := CleanResult{Documents: 2, DroppedShort: 1, DroppedDuplicates: 2, Characters: len(kept[0].Text) + len(kept[1].Text)}
	if !equalCleanResult(res, want) {
		t.Errorf("result = %+v, want %+v", res, want)
	}

	// Without lower-casing, case differences are not duplicates.
	kept, _ = cleanDocuments(docs, cleanAttrs{MinChars: 10})
	if len(kept) != 3 {
		t.Errorf("case-sensitive clean kept %d documents, want 3", len(kept))
	}
}

func equalCleanResult(a, b CleanResult) bool {
	return slices.Equal(a.Shards, b.Shards) && a.Documents == b.Documents && a.DroppedShort == b.DroppedShort &&
		a.DroppedDuplicates == b.DroppedDuplicates && a.Characters == b.Characters
}
