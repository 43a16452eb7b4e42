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
	a, err := b.Stat(ctx, statusfile.ArtifactKey)
	if errors.Is(err, store.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	_, cur, err := b.Read(ctx, statusfile.StatusKey)
	if err != nil && !errors.Is(err, store.ErrNotExist) {
		return err
	}
	if cur != fence {
		return statusfile.ErrFenced
	}
	err = b.DeleteIf(ctx, statusfile.ArtifactKey, store.IfVersion(a.Version))
	if errors.Is(err, store.ErrNotExist) {
		return nil
	}
	if errors.Is(err, store.ErrPrecondition) {
		return statusfile.ErrFenced // another attempt saved one since
	}
	return err
}
