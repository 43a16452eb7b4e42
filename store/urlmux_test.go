package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"example.com/cairn/store"
	"example.com/cairn/store/filestore"
	"example.com/cairn/store/memstore"
)

func TestURLMux(t *testing.T) {
	ctx := context.Background()
	mux := new(store.URLMux)
	mux.Register("file", filestore.URLOpener{})
	mux.Register("mem", memstore.New())

	dir := t.TempDir()
	b, err := mux.OpenBucket(ctx, dir)
	if err != nil || b.String() != dir {
		t.Errorf("OpenBucket(%q) = %v, %v", dir, b, err)
	}
	t.Chdir(dir)
	b, err = mux.OpenBucket(ctx, "rel/prefix")
	if want := filepath.Join(dir, "rel/prefix"); err != nil || b.String() != want {
		t.Errorf("OpenBucket(relative) = %v, %v; want %s", b, err, want)
	}
	if _, err := mux.OpenBucket(ctx, "mem://ns/prefix"); err != nil {
		t.Errorf("OpenBucket(mem://) = %v", err)
	}
	_, err = mux.OpenBucket(ctx, "gs://bucket/x")
	if err == nil || !strings.Contains(err.Error(), `no backend for scheme "gs"`) || !strings.Contains(err.Error(), "file, mem") {
		t.Errorf("unknown scheme: err = %v", err)
	}
	if _, err := mux.OpenBucket(ctx, ""); err == nil {
		t.Error("empty location accepted")
	}
	defer func() {
		if recover() == nil {
			t.Error("registering a scheme twice did not panic")
		}
	}()
	mux.Register("mem", memstore.New())
}

func TestValidateKey(t *testing.T) {
	for _, good := range []string{"a", "a/b", ".executor_status", "tokenized/wiki_1234abcd/.artifact", "é/ü"} {
		if err := store.ValidateKey(good); err != nil {
			t.Errorf("ValidateKey(%q) = %v", good, err)
		}
	}
	for _, bad := range []string{"", "/a", "a/", "a//b", "a/./b", "../a", "a\\b", "a\x00b", "\xff"} {
		if err := store.ValidateKey(bad); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("ValidateKey(%q) = %v, want ErrInvalidKey", bad, err)
		}
	}
}
