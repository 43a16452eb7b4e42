package statusfile_test

import (
	"bytes"
	"errors"
	"testing"

	"example.com/cairn/internal/statusfile"
	"example.com/cairn/store"
	"example.com/cairn/store/memstore"
)

func TestParamsRecord(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := memstore.New().Bucket("s")
	if _, ok, err := statusfile.ReadLatestParams(ctx, b); ok || err != nil {
		t.Fatalf("ReadLatestParams of nothing: %v, %v", ok, err)
	}
	data := []byte(`{"format": "x"}`)
	d := statusfile.ParamsDigest(data)
	if _, err := statusfile.ReadParams(ctx, b, d); !errors.Is(err, store.ErrNotExist) {
		t.Fatalf("ReadParams of nothing: %v, want ErrNotExist", err)
	}
	if err := statusfile.WriteParams(ctx, b, data); err != nil {
		t.Fatal(err)
	}
	if got, err := statusfile.ReadParams(ctx, b, d); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ReadParams = %q, %v", got, err)
	}
	// A later submission replaced the record: a job with the earlier
	// digest must not take the new parameters for its own.
	if err := statusfile.WriteParams(ctx, b, []byte(`{"format": "y"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := statusfile.ReadParams(ctx, b, d); !errors.Is(err, statusfile.ErrCorrupt) {
		t.Errorf("ReadParams with a replaced record: %v, want ErrCorrupt", err)
	}
	if got, ok, err := statusfile.ReadLatestParams(ctx, b); !ok || err != nil || string(got) != `{"format": "y"}` {
		t.Errorf("ReadLatestParams = %q, %v, %v", got, ok, err)
	}
	if err := statusfile.WriteParams(ctx, b, make([]byte, statusfile.MaxSize+1)); err == nil {
		t.Error("WriteParams of more than MaxSize succeeded")
	}
	if !statusfile.IsControl(statusfile.ParamsKey) {
		t.Errorf("%s is not a control file: user code could overwrite it", statusfile.ParamsKey)
	}
}
