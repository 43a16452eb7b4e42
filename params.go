package cairn

import (
	"context"
	"errors"
	"fmt"

	"example.com/cairn/internal/statusfile"
	"example.com/cairn/store"
)

// ReadJobParams returns the parameters (RemoteOptions.Params) recorded
// under the output path of the step a job runs, as the job's submitter
// wrote them before submitting it, checked against digest (the job's
// WorkerJob.Params). A record that is missing or has another digest is an
// error satisfying errors.Is(err, ErrProgramMismatch): the worker cannot
// know the submitter's parameters.
func ReadJobParams(ctx context.Context, storage BucketOpener, path, digest string) ([]byte, error) {
	b, err := storage.OpenBucket(ctx, path)
	if err != nil {
		return nil, err
	}
	data, err := statusfile.ReadParams(ctx, b, digest)
	switch {
	case errors.Is(err, store.ErrNotExist):
		return nil, fmt.Errorf("%w: the submitter's parameters %s are missing", ErrProgramMismatch, b.URL(statusfile.ParamsKey))
	case errors.Is(err, statusfile.ErrCorrupt):
		return nil, fmt.Errorf("%w: %w", ErrProgramMismatch, err)
	}
	return data, err
}

// ReadSubmittedParams returns the parameters recorded under path by the
// latest submission of its step's job, whatever they are; ok is false if
// there are none (a local step, or a submitter without parameters).
func ReadSubmittedParams(ctx context.Context, storage BucketOpener, path string) (data []byte, ok bool, err error) {
	b, err := storage.OpenBucket(ctx, path)
	if err != nil {
		return nil, false, err
	}
	return statusfile.ReadLatestParams(ctx, b)
}
