package store

import (
	"context"
	"strings"
)

// Opener opens the bucket rooted at a location; *URLMux is one.
type Opener interface {
	OpenBucket(ctx context.Context, location string) (*Bucket, error)
}

// Beneath is an [Opener] that opens every location below one root as a
// view of the root's bucket ([Bucket.Sub]), and any other location with
// the Opener it wraps. A runner uses it for its pipeline prefix so that a
// backend that resolves paths (package filestore, which follows no
// symbolic link below a bucket's root) resolves each step's directory
// beneath the prefix: a symbolic link planted at PREFIX/name, where step
// directories PREFIX/name/step_hash are created, then cannot send a step's
// files outside the prefix (issue 8, item 7). The root's own location is
// resolved as the wrapped Opener does.
//
// A location is below the root if it is the root's location string
// followed by "/" and a valid key ([ValidateKey]); Beneath compares
// strings, so pass locations spelled as the root is (as step output paths
// are: the prefix, "/", then a relative path).
type Beneath struct {
	root     *Bucket
	location string // the root's location, without a trailing "/"
	next     Opener
}

// OpenBeneath opens the bucket at root with o and returns a Beneath for
// it. It fails if o fails to open root.
func OpenBeneath(ctx context.Context, o Opener, root string) (*Beneath, error) {
	b, err := o.OpenBucket(ctx, root)
	if err != nil {
		return nil, err
	}
	return &Beneath{root: b, location: strings.TrimRight(root, "/"), next: o}, nil
}

// OpenBucket opens location: below the root, as a view of the root's
// bucket; elsewhere (or at the root itself), with the wrapped Opener.
func (o *Beneath) OpenBucket(ctx context.Context, location string) (*Bucket, error) {
	if rel, ok := strings.CutPrefix(location, o.location+"/"); ok && o.location != "" {
		rel = strings.TrimRight(rel, "/")
		if ValidateKey(rel) == nil {
			return o.root.Sub(rel)
		}
	}
	return o.next.OpenBucket(ctx, location)
}
