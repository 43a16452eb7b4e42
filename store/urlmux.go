package store

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// BucketURLOpener opens a bucket for a parsed URL. Implementations are
// registered on a [URLMux] under a scheme.
type BucketURLOpener interface {
	OpenBucketURL(ctx context.Context, u *url.URL) (*Bucket, error)
}

// URLMux dispatches bucket URLs to openers by scheme. A location without a
// scheme ("/data/x", "relative/dir") is a local path and uses the opener
// registered for "file"; relative paths are made absolute against the
// working directory.
//
// The zero value is an empty mux ready to use. It is safe for concurrent use.
type URLMux struct {
	mu      sync.RWMutex // guards openers
	openers map[string]BucketURLOpener
}

// Register makes o open URLs with the given scheme. It panics if scheme is
// already registered (a programming error at wiring time).
func (m *URLMux) Register(scheme string, o BucketURLOpener) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.openers == nil {
		m.openers = make(map[string]BucketURLOpener)
	}
	if _, dup := m.openers[scheme]; dup {
		panic(fmt.Sprintf("store: scheme %q registered twice", scheme))
	}
	m.openers[scheme] = o
}

// Schemes returns the registered schemes, sorted.
func (m *URLMux) Schemes() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var s []string
	for k := range m.openers {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}

// IsLocal reports whether location names a local path rather than a URL with
// a scheme.
func IsLocal(location string) bool {
	return !strings.Contains(location, "://") || strings.HasPrefix(location, "file://")
}

// ParseURL turns a location into a URL. Local paths become absolute file URLs.
func ParseURL(location string) (*url.URL, error) {
	if location == "" {
		return nil, fmt.Errorf("store: empty location")
	}
	if !strings.Contains(location, "://") {
		abs, err := filepath.Abs(location)
		if err != nil {
			return nil, fmt.Errorf("store: location %q: %w", location, err)
		}
		return &url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}, nil
	}
	u, err := url.Parse(location)
	if err != nil {
		return nil, fmt.Errorf("store: location %q: %w", location, err)
	}
	return u, nil
}

// OpenBucket opens the bucket rooted at location.
func (m *URLMux) OpenBucket(ctx context.Context, location string) (*Bucket, error) {
	u, err := ParseURL(location)
	if err != nil {
		return nil, err
	}
	m.mu.RLock()
	o := m.openers[u.Scheme]
	m.mu.RUnlock()
	if o == nil {
		return nil, fmt.Errorf("store: open %q: no backend for scheme %q (available: %s); "+
			"the program must register one in its store.URLMux, e.g. mux.Register(%q, ...)",
			location, u.Scheme, strings.Join(m.Schemes(), ", "), u.Scheme)
	}
	return o.OpenBucketURL(ctx, u)
}
