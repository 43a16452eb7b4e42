package cluster

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"example.com/cairn/cluster/driver"
)

// Opener opens a backend's driver from the parameters of a cluster spec.
// It must reject parameters it does not know (wrapping ErrBadSpec).
type Opener interface {
	OpenScheduler(ctx context.Context, params url.Values) (driver.Scheduler, error)
}

// Mux maps the backend names of cluster specs to openers. The zero value
// is an empty mux ready to use; there is no default mux: programs register
// the backends they link. It is safe for concurrent use.
type Mux struct {
	// mu guards the field below.
	mu      sync.RWMutex
	openers map[string]Opener
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)

// Register makes o open specs named name. It panics if name is invalid or
// already registered (a programming error).
func (m *Mux) Register(name string, o Opener) {
	if !nameRE.MatchString(name) {
		panic(fmt.Sprintf("cluster: Register: invalid backend name %q", name))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, dup := m.openers[name]; dup {
		panic(fmt.Sprintf("cluster: Register: backend %q registered twice", name))
	}
	if m.openers == nil {
		m.openers = make(map[string]Opener)
	}
	m.openers[name] = o
}

// Names returns the registered backend names, sorted.
func (m *Mux) Names() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	names := make([]string, 0, len(m.openers))
	for n := range m.openers {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// ParseSpec splits a cluster spec, NAME or NAME?KEY=VALUE&..., into the
// backend name and its parameters (URL query syntax). A malformed spec is
// an error satisfying errors.Is(err, ErrBadSpec).
func ParseSpec(spec string) (name string, params url.Values, err error) {
	name, query, hasQuery := strings.Cut(spec, "?")
	if !nameRE.MatchString(name) {
		return "", nil, fmt.Errorf("%w %q: want NAME or NAME?KEY=VALUE&..., NAME like local or slurm", ErrBadSpec, spec)
	}
	params = url.Values{}
	if hasQuery {
		if params, err = url.ParseQuery(query); err != nil {
			return "", nil, fmt.Errorf("%w %q: %v", ErrBadSpec, spec, err)
		}
		for k := range params {
			if k == "" {
				return "", nil, fmt.Errorf("%w %q: empty parameter name", ErrBadSpec, spec)
			}
		}
	}
	return name, params, nil
}

// Open parses spec, opens the backend it names and returns a client over
// it. opts.Name defaults to the backend name. The parameters poll and
// pack, common to every backend, set Options.PollMax ("slurm?poll=1s") and
// Options.MaxPack ("slurm?pack=1" submits every job alone). An unknown backend or a
// malformed spec gives an error satisfying errors.Is(err, ErrBadSpec).
func (m *Mux) Open(ctx context.Context, spec string, opts *Options) (*Client, error) {
	name, params, err := ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	m.mu.RLock()
	o, ok := m.openers[name]
	m.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w %q: unknown backend %q (have %s)", ErrBadSpec, spec, name, strings.Join(m.Names(), ", "))
	}
	var co Options
	if opts != nil {
		co = *opts
	}
	// "poll" is the client's, not the backend's: the longest interval
	// between status requests.
	if vs, ok := params["poll"]; ok {
		d, err := time.ParseDuration(vs[0])
		if len(vs) != 1 || err != nil || d <= 0 {
			return nil, fmt.Errorf("%w %q: poll=%q: want one positive duration such as 500ms", ErrBadSpec, spec, vs[0])
		}
		co.PollMax = d
		delete(params, "poll")
	}
	if vs, ok := params["pack"]; ok {
		n, err := strconv.Atoi(vs[0])
		if len(vs) != 1 || err != nil || n < 1 {
			return nil, fmt.Errorf("%w %q: pack=%q: want the largest number of jobs to pack into one request, 1 for none", ErrBadSpec, spec, vs[0])
		}
		co.MaxPack = n
		delete(params, "pack")
	}
	drv, err := o.OpenScheduler(ctx, params)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: %w", spec, err)
	}
	if co.Name == "" {
		co.Name = name
	}
	return NewClient(drv, &co), nil
}

// Param helpers for openers.

// Params reads a spec's parameters for an opener, recording the first
// problem. Call Done to reject unknown keys.
type Params struct {
	v    url.Values
	used map[string]bool
	err  error
}

// NewParams wraps params.
func NewParams(params url.Values) *Params { return &Params{v: params, used: map[string]bool{}} }

// String returns the value of key, or def if absent.
func (p *Params) String(key, def string) string {
	p.used[key] = true
	vs, ok := p.v[key]
	if !ok {
		return def
	}
	if len(vs) != 1 {
		p.fail("parameter %s given %d times", key, len(vs))
		return def
	}
	return vs[0]
}

// Int returns the value of key as a non-negative integer, or def.
func (p *Params) Int(key string, def int) int {
	s := p.String(key, "")
	if s == "" {
		return def
	}
	var n int
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil || n < 0 || fmt.Sprint(n) != s {
		p.fail("parameter %s=%q: want a non-negative integer", key, s)
		return def
	}
	return n
}

func (p *Params) fail(format string, args ...any) {
	if p.err == nil {
		p.err = fmt.Errorf("%w: %s", ErrBadSpec, fmt.Sprintf(format, args...))
	}
}

// Done returns the first problem, or an error naming an unknown key.
func (p *Params) Done() error {
	if p.err != nil {
		return p.err
	}
	var unknown []string
	for k := range p.v {
		if !p.used[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		known := make([]string, 0, len(p.used))
		for k := range p.used {
			known = append(known, k)
		}
		slices.Sort(known)
		return fmt.Errorf("%w: unknown parameter(s) %s (known: %s)", ErrBadSpec, strings.Join(unknown, ", "), strings.Join(known, ", "))
	}
	return nil
}
