package cairn

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"example.com/cairn/internal/canonjson"
	"example.com/cairn/internal/dag"
)

// Func is the function of a step. It writes the step's output under
// out.Path (through out.Bucket or, for a local prefix, the file system) and
// may return a value that is saved as the step's artifact (JSON) and can be
// loaded, typed, with [Load]. A nil value saves no artifact.
//
// ctx is cancelled when the run is interrupted or when the step's lease is
// lost (context.Cause then satisfies errors.Is(cause, ErrLeaseLost)); a
// function that does long work should watch it.
type Func func(ctx context.Context, out *Output) (any, error)

// A Step is one cached unit of work. Its identity is a hash of its Name,
// Attrs and the identities of its Deps; it writes its output under
// PREFIX/NAME_HASH. Steps are compared by output path: two Step values with
// the same output path are the same step.
//
// A Step must not be modified after its identity has been computed (by
// [Step.ID], [Step.OutputPath] or [Run]); identities are memoised.
type Step struct {
	// Name is a human-readable name; it goes into the output path and may
	// contain "/" to group steps (for example "tokenized/wiki").
	Name string
	// Attrs is everything that should change the step's identity: a map or
	// struct that encodes to a JSON object (nil means {}). It is hashed as
	// Python's json.dumps(attrs, sort_keys=True) would encode it, so hashes
	// match Marin's. NaN, infinities, channels, functions and cyclic values
	// are rejected.
	Attrs any
	// Deps are the steps whose outputs this step reads. Their identities are
	// part of this step's identity; their order is not.
	Deps []*Step
	// Prefix, if set, is the storage root for this step instead of the run's
	// prefix (Marin's output_path_prefix).
	Prefix string
	// OverridePath, if set, is the output path instead of PREFIX/NAME_HASH.
	// A relative path is joined to the prefix; an absolute path or URL is
	// used as is.
	OverridePath string
	// Func produces the step's output. It is required to run the step.
	Func Func
	// Remote, if set, marks the step remote: in a run with a cluster
	// (RunOptions.Remote) Func runs as a cluster job requested as Remote
	// says, while this process keeps the cache check, lease and status.
	// It does not change the step's identity.
	Remote *RemoteSpec
	// Retry, if set, retries Func within the step's attempt when it fails
	// (RetryPolicy); nil means RunOptions.Retry, and no retry if that is
	// nil too. A remote step running as a cluster job is retried by the
	// cluster instead (RemoteSpec.MaxRetriesFailure). It does not change
	// the step's identity.
	Retry *RetryPolicy

	id atomic.Pointer[identity]
}

type identity struct {
	hashID string
	nwh    string // name_with_hash
	attrs  []byte // canonical JSON of Attrs
	err    error  // ErrInvalidPipeline: reason
	reason string // why the identity cannot be computed, for dependents' errors
}

// invalid returns the identity of a step whose identity cannot be computed.
func invalid(reason string) *identity {
	return &identity{err: fmt.Errorf("%w: %s", ErrInvalidPipeline, reason), reason: reason}
}

// ID returns the step's name_with_hash: Name + "_" + the first 8 hex digits
// of the SHA-256 of
//
//	json.dumps({"attrs": Attrs, "deps": sorted(dep IDs), "name": Name}, sort_keys=True)
//
// It fails with an error satisfying errors.Is(err, ErrInvalidPipeline) if
// the name is invalid, the attributes cannot be encoded, or the dependency
// graph has a cycle.
func (s *Step) ID() (string, error) {
	id := s.identity()
	return id.nwh, id.err
}

// HashID returns the 8-hex-digit hash part of [Step.ID].
func (s *Step) HashID() (string, error) {
	id := s.identity()
	return id.hashID, id.err
}

// String returns the step's ID, or its name if the ID cannot be computed.
func (s *Step) String() string {
	if id := s.identity(); id.err == nil {
		return id.nwh
	}
	return s.Name
}

// identity computes and memoises identities of s and its transitive deps,
// depth first without recursion (deep chains must not exhaust the stack),
// detecting cycles.
func (s *Step) identity() *identity {
	if id := s.id.Load(); id != nil {
		return id
	}
	cycle, _ := dag.PostOrder(s,
		func(st *Step) []*Step { return st.Deps },
		func(st *Step) bool { return st == nil || st.id.Load() != nil },
		func(st *Step) error { st.id.CompareAndSwap(nil, computeIdentity(st)); return nil })
	if cycle != nil {
		names := make([]string, len(cycle))
		for i, c := range cycle {
			names[i] = c.Name
		}
		// Only s is marked: the other steps on the way are recomputed (and
		// fail the same way) if asked.
		s.id.CompareAndSwap(nil, invalid("dependency cycle: "+strings.Join(names, " -> ")))
	}
	return s.id.Load()
}

// computeIdentity hashes s; the identities of its deps are already known.
func computeIdentity(s *Step) *identity {
	fail := func(format string, args ...any) *identity {
		return invalid(fmt.Sprintf("step %q: ", s.Name) + fmt.Sprintf(format, args...))
	}
	if err := ValidateName(s.Name); err != nil {
		return invalid(err.Error())
	}
	deps := make([]string, 0, len(s.Deps))
	for i, d := range s.Deps {
		if d == nil {
			return fail("Deps[%d] is nil", i)
		}
		did := d.id.Load()
		if did.err != nil {
			return fail("dependency %q: %s", d.Name, did.reason)
		}
		deps = append(deps, did.nwh)
	}
	h, attrs, err := hashIdentity(s.Name, s.Attrs, deps)
	if err != nil {
		return fail("%s", err)
	}
	return &identity{hashID: h, nwh: s.Name + "_" + h, attrs: attrs}
}

// HashID computes the 8-hex-digit identity hash of a step with the given
// name, attributes and dependency IDs (name_with_hash values, in any order),
// without building a Step. cairn path uses it.
func HashID(name string, attrs any, depIDs []string) (string, error) {
	if err := ValidateName(name); err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidPipeline, err)
	}
	h, _, err := hashIdentity(name, attrs, depIDs)
	if err != nil {
		return "", fmt.Errorf("%w: step %q: %s", ErrInvalidPipeline, name, err)
	}
	return h, nil
}

// hashIdentity hashes {"attrs": attrs, "deps": sorted(deps), "name": name}
// encoded as Python's json.dumps(sort_keys=True). It returns the hash and the
// canonical encoding of attrs.
func hashIdentity(name string, attrs any, deps []string) (string, []byte, error) {
	deps = append([]string{}, deps...) // never nil: Python writes []
	slices.Sort(deps)
	attrsJSON := []byte("{}")
	if attrs != nil {
		var err error
		attrsJSON, err = canonjson.Marshal(attrs)
		if err != nil {
			if pe, ok := errors.AsType[*canonjson.PathError](err); ok && pe.Path != "" {
				return "", nil, fmt.Errorf("attribute %s: %s", pe.Path, pe.Reason)
			}
			return "", nil, fmt.Errorf("attributes: %v", err)
		}
		if len(attrsJSON) == 0 || attrsJSON[0] != '{' {
			return "", nil, fmt.Errorf("attrs must encode to a JSON object (a map or struct), got %s", truncate(string(attrsJSON), 60))
		}
	}
	// {"attrs": ..., "deps": [...], "name": ...}: the keys in sorted order,
	// with Python's separators. Names and IDs are encoded directly; this runs
	// once per step of every run.
	buf := make([]byte, 0, 64+len(attrsJSON)+len(name)+16*len(deps))
	buf = append(buf, `{"attrs": `...)
	buf = append(buf, attrsJSON...)
	buf = append(buf, `, "deps": [`...)
	var err error
	for i, d := range deps {
		if i > 0 {
			buf = append(buf, ", "...)
		}
		if buf, err = canonjson.AppendString(buf, d); err != nil {
			return "", nil, fmt.Errorf("dependency ID %q: %v", d, err)
		}
	}
	buf = append(buf, `], "name": `...)
	if buf, err = canonjson.AppendString(buf, name); err != nil {
		return "", nil, fmt.Errorf("name: %v", err)
	}
	buf = append(buf, '}')
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:4]), attrsJSON, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// ValidateName reports whether name can be a step name: non-empty, valid
// UTF-8 without control characters or backslashes, and a relative
// slash-separated path without empty, "." or ".." segments, or segments
// that storage reserves for its own files (see [reservedSegment]).
func ValidateName(name string) error {
	bad := func(why string) error { return fmt.Errorf("invalid step name %q: %s", name, why) }
	switch {
	case name == "":
		return bad("empty")
	case !utf8.ValidString(name):
		return bad("not valid UTF-8")
	case strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/"):
		return bad("leading or trailing slash")
	case strings.Contains(name, "\\"):
		return bad("backslash")
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return bad("control character")
	}
	return checkSegments(name, bad)
}

// checkSegments checks the slash-separated segments of a relative path
// (a step name or a relative OverridePath), reporting with bad.
func checkSegments(p string, bad func(why string) error) error {
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return bad(`empty, "." or ".." path segment`)
		}
		if why := reservedSegment(seg); why != "" {
			return bad(why)
		}
	}
	return nil
}

// reservedSegment says why a path segment cannot name a step's directory,
// or returns "". Such names are storage's own: a directory named so is
// skipped when listing a prefix, so `cairn status` would never show the
// step (issue 8). Rejecting them as a definition error is clearer than
// running a step nobody can see; Marin has no rule here, and no Marin
// pipeline is known to use them.
func reservedSegment(seg string) string {
	// Package filestore's temporary files.
	if strings.HasPrefix(seg, ".cairn-tmp-") {
		return `a path segment starting with ".cairn-tmp-" is reserved for cairn's temporary files`
	}
	// An NFS client's name for a removed but open file: ".nfs" and 24
	// hex digits.
	if h, ok := strings.CutPrefix(seg, ".nfs"); ok && len(h) == 24 && strings.Trim(h, "0123456789abcdefABCDEF") == "" {
		return `a path segment ".nfs" + 24 hex digits is reserved for NFS's temporary files`
	}
	return ""
}

// OutputPath returns where the step writes, given the run's prefix: the
// override path (joined to the prefix if relative) or PREFIX/NAME_HASH.
// The step's own Prefix, if set, takes precedence over prefix.
func (s *Step) OutputPath(prefix string) (string, error) {
	id := s.identity()
	if id.err != nil {
		return "", id.err
	}
	if s.Prefix != "" {
		prefix = s.Prefix
	}
	if s.OverridePath != "" && !isRelative(s.OverridePath) {
		// The step's control files would sit at the root of the prefix,
		// beside every other step's directory, where status never looks.
		if prefix != "" && samePath(s.OverridePath, prefix) {
			return "", fmt.Errorf("%w: step %s: OverridePath %q is the prefix itself; give the step a directory of its own", ErrInvalidPipeline, id.nwh, s.OverridePath)
		}
		return s.OverridePath, nil
	}
	if prefix == "" {
		return "", fmt.Errorf("%w: step %q: no prefix: set RunOptions.Prefix (or CAIRN_PREFIX for programs using package cli)", ErrInvalidPipeline, id.nwh)
	}
	rel := id.nwh
	if s.OverridePath != "" {
		// "." would be the prefix itself, ".." outside it.
		if err := checkSegments(s.OverridePath, func(why string) error {
			return fmt.Errorf("%w: step %s: invalid relative OverridePath %q: %s", ErrInvalidPipeline, id.nwh, s.OverridePath, why)
		}); err != nil {
			return "", err
		}
		rel = s.OverridePath
	}
	return strings.TrimSuffix(prefix, "/") + "/" + rel, nil
}

// samePath reports whether two locations name the same place, up to
// trailing slashes and, for local paths, "." and ".." segments and the
// working directory.
func samePath(a, b string) bool {
	if !strings.Contains(a, "://") && !strings.Contains(b, "://") {
		absA, errA := filepath.Abs(a)
		absB, errB := filepath.Abs(b)
		return errA == nil && errB == nil && absA == absB
	}
	return strings.TrimRight(a, "/") == strings.TrimRight(b, "/")
}

// isRelative follows Marin: no URL scheme and not starting with "/".
func isRelative(p string) bool {
	if strings.HasPrefix(p, "/") {
		return false
	}
	u, err := url.Parse(p)
	return err != nil || u.Scheme == ""
}
