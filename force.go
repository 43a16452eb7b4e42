package cairn

import (
	"context"
	"errors"

	"example.com/cairn/internal/statusfile"
	"example.com/cairn/store"
)

// clearArtifact deletes the artifact an earlier, successful run left, for
// a forced re-run (RunOptions.Force) whose function may save none: the
// step's dependents must not load the old one. Like CommitArtifact it
// deletes only while the status file holds this attempt's RUNNING record
// (version fence), and fails with statusfile.ErrFenced otherwise.
func clearArtifact(ctx context.Context, b *store.Bucket, fence store.Version) error {
	err := statusfile.ClearArtifact(ctx, b, fence)
	if errors.Is(err, store.ErrPrecondition) {
		return statusfile.ErrFenced // another attempt saved one since
	}
	return err
}
