package statusfile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"example.com/cairn/store"
)

// ParamsKey is the record, under a remote step's output path, of the
// parameters of the program that submitted its latest job: written by the
// submitting runner before it submits, read by the job's worker to rebuild
// the submitter's pipeline. Its content is opaque here (package cli
// defines it); its SHA-256 travels in the job's command, so a worker never
// runs with parameters other than its submitter's.
const ParamsKey = ".cairn_params.json"

// ParamsDigest returns "sha256:" and the hex SHA-256 of data.
func ParamsDigest(data []byte) string {
	d := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(d[:])
}

// WriteParams replaces the parameters record with data.
func WriteParams(ctx context.Context, b *store.Bucket, data []byte) error {
	if len(data) > MaxSize {
		return fmt.Errorf("%s: %d bytes, more than the %d a control file may hold", ParamsKey, len(data), MaxSize)
	}
	_, err := b.Write(ctx, ParamsKey, data)
	return err
}

// ReadParams returns the parameters record if its digest is digest. A
// missing record satisfies errors.Is(err, store.ErrNotExist); one with
// another digest (a later submission replaced it) is ErrCorrupt.
func ReadParams(ctx context.Context, b *store.Bucket, digest string) ([]byte, error) {
	data, _, err := read(ctx, b, ParamsKey)
	if err != nil {
		return nil, err
	}
	if got := ParamsDigest(data); got != digest {
		return nil, fmt.Errorf("%s: %w: its digest is %s, the job's %s (a later submission replaced it)", b.URL(ParamsKey), ErrCorrupt, got, digest)
	}
	return data, nil
}

// ReadLatestParams returns the parameters record, whatever its digest; ok
// is false if there is none.
func ReadLatestParams(ctx context.Context, b *store.Bucket) (data []byte, ok bool, err error) {
	data, _, err = read(ctx, b, ParamsKey)
	if errors.Is(err, store.ErrNotExist) {
		return nil, false, nil
	}
	return data, err == nil, err
}
