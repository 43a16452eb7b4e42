package main

import (
	"slices"
	"testing"
	"testing/fstest"
)

func TestSplitDocuments(t *testing.T) {
	text := "Title.\n\nFirst line\nof one document.\n  \n\n\nSecond document.\n"
	got := splitDocuments(text)
	want := []string{"Title.", "First line of one document.", "Second document."}
	if !slices.Equal(got, want) {
		t.Errorf("splitDocuments = %q, want %q", got, want)
	}
	if got := splitDocuments("\n\n"); len(got) != 0 {
		t.Errorf("splitDocuments(blank) = %q, want none", got)
	}
}

func TestShardDocuments(t *testing.T) {
	var docs []Document
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		docs = append(docs, Document{ID: id})
	}
	shards := shardDocuments(docs, 2)
	ids := func(ds []Document) (s []string) {
		for _, d := range ds {
			s = append(s, d.ID)
		}
		return s
	}
	if got := ids(shards[0]); !slices.Equal(got, []string{"a", "c", "e"}) {
		t.Errorf("shard 0 = %q", got)
	}
	if got := ids(shards[1]); !slices.Equal(got, []string{"b", "d"}) {
		t.Errorf("shard 1 = %q", got)
	}
}

func TestLoadCorpus(t *testing.T) {
	fsys := fstest.MapFS{
		"corpus/b.txt":   {Data: []byte("Two.\n\nThree.\n")},
		"corpus/a.txt":   {Data: []byte("One.\n")},
		"corpus/skip.md": {Data: []byte("Not a corpus file.\n")},
	}
	docs, files, err := loadCorpus(fsys)
	if err != nil {
		t.Fatal(err)
	}
	want := []Document{{"a.txt#0", "One."}, {"b.txt#0", "Two."}, {"b.txt#1", "Three."}}
	if files != 2 || !slices.Equal(docs, want) {
		t.Errorf("loadCorpus = %v, %d files; want %v, 2 files", docs, files, want)
	}
	if _, _, err := loadCorpus(fstest.MapFS{}); err == nil {
		t.Error("loadCorpus of an empty FS succeeded")
	}
}

func TestCorpusDigest(t *testing.T) {
	fsys := fstest.MapFS{"corpus/a.txt": {Data: []byte("One.\n")}}
	d1, err := corpusDigest(fsys)
	if err != nil {
		t.Fatal(err)
	}
	fsys["corpus/a.txt"] = &fstest.MapFile{Data: []byte("One!\n")}
	d2, _ := corpusDigest(fsys)
	if d1 == d2 {
		t.Error("digest did not change with the content")
	}
}

// TestEmbeddedCorpus checks the shipped corpus has the size and the
// imperfections the pipeline is meant to handle.
func TestEmbeddedCorpus(t *testing.T) {
	docs, files, err := loadCorpus(corpusFS)
	if err != nil {
		t.Fatal(err)
	}
	size := 0
	for _, d := range docs {
		size += len(d.Text)
	}
	if files < 2 || size < 30_000 || size > 100_000 {
		t.Errorf("corpus has %d files, %d bytes; want several files, 30-100 KB", files, size)
	}
	_, res := cleanDocuments(docs, cleanAttrs{MinChars: 20, Lowercase: true})
	if res.DroppedShort == 0 || res.DroppedDuplicates == 0 {
		t.Errorf("clean dropped %d short and %d duplicate documents; want some of each", res.DroppedShort, res.DroppedDuplicates)
	}
}
