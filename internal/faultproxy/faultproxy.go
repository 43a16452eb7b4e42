// Package faultproxy is an HTTP reverse proxy for tests that injects the
// faults object stores and networks produce: it drops, delays and fails a
// fraction of the requests it forwards, and counts them.
//
// Put a [Proxy] in front of a real server (httptest.NewServer(p)) and point
// a client's endpoint at it. Some faults happen before the request reaches
// the server (503, 429, a reset connection, a dropped request): the
// operation had no effect. Others happen after: the server applied the
// request and its answer is replaced by a 503 or a reset connection. That
// second kind is the one a retried conditional write must resolve, since
// the retry then finds its own write in place.
//
// A Proxy is safe for concurrent use. Faults are drawn from a generator
// seeded by [Options.Seed], so a run's sequence of faults depends only on
// the order requests arrive in.
package faultproxy

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Options say which faults to inject, as fractions of requests in [0, 1].
// For each request one fault at most is drawn, in the order of the fields.
// The zero value injects nothing.
type Options struct {
	// Fail503 answers 503 Service Unavailable without forwarding.
	Fail503 float64
	// Throttle answers 429 Too Many Requests (S3's SlowDown) without
	// forwarding.
	Throttle float64
	// Reset closes the connection (TCP RST) without forwarding.
	Reset float64
	// Drop reads the request and answers nothing for DropFor, then closes
	// the connection: a client without a timeout hangs that long.
	Drop float64
	// DropFor is how long a dropped request is held; 0 means 10 s.
	DropFor time.Duration
	// FailAfter forwards the request, so the server applies it, then
	// answers 503 instead of the server's answer.
	FailAfter float64
	// ResetAfter forwards the request, then closes the connection instead
	// of answering.
	ResetAfter float64
	// Delay forwards the request after a random delay of up to MaxDelay.
	Delay float64
	// MaxDelay bounds Delay's delays; 0 means 100 ms.
	MaxDelay time.Duration
	// Seed seeds the generator that draws faults.
	Seed uint64
	// Filter, if set, selects the requests that may get a fault; the
	// others are forwarded untouched.
	Filter func(*http.Request) bool
}

// Fault names what happened to a request.
type Fault string

// The faults, and None for a request forwarded untouched.
const (
	None       Fault = "none"
	Fail503    Fault = "503"
	Throttle   Fault = "429"
	Reset      Fault = "reset"
	Drop       Fault = "drop"
	FailAfter  Fault = "503-after"
	ResetAfter Fault = "reset-after"
	Delay      Fault = "delay"
)

// Stats counts the requests a Proxy has seen.
type Stats struct {
	// Requests is the number of requests received.
	Requests int
	// ByMethod counts them by HTTP method.
	ByMethod map[string]int
	// ByFault counts them by what was done to them.
	ByFault map[Fault]int
}

// Proxy is an http.Handler forwarding to one target server. Create it with
// [New].
type Proxy struct {
	target    *url.URL
	transport *http.Transport

	mu sync.Mutex // guards the fields below
	o  Options
	r  *rand.Rand
	st Stats
}

// New returns a proxy forwarding to target (scheme and host; the request
// path is kept) with the faults of opts; nil injects none.
func New(target *url.URL, opts *Options) *Proxy {
	p := &Proxy{
		target: target,
		transport: &http.Transport{
			MaxIdleConns:        512,
			MaxIdleConnsPerHost: 512,
			IdleConnTimeout:     30 * time.Second,
		},
	}
	p.SetOptions(opts)
	p.Reset()
	return p
}

// SetOptions replaces the faults to inject; nil turns injection off. The
// generator is reseeded.
func (p *Proxy) SetOptions(opts *Options) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.o = Options{}
	if opts != nil {
		p.o = *opts
	}
	p.r = rand.New(rand.NewPCG(p.o.Seed, p.o.Seed^0x9e3779b97f4a7c15))
}

// Stats returns a copy of the counts so far.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Stats{Requests: p.st.Requests, ByMethod: map[string]int{}, ByFault: map[Fault]int{}}
	for k, v := range p.st.ByMethod {
		s.ByMethod[k] = v
	}
	for k, v := range p.st.ByFault {
		s.ByFault[k] = v
	}
	return s
}

// Reset sets the counts to zero.
func (p *Proxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.st = Stats{ByMethod: map[string]int{}, ByFault: map[Fault]int{}}
}

// Close closes the idle connections to the target.
func (p *Proxy) Close() { p.transport.CloseIdleConnections() }

// draw picks the fault for r and counts it.
func (p *Proxy) draw(r *http.Request) (Fault, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.st.Requests++
	p.st.ByMethod[r.Method]++
	f, d := None, time.Duration(0)
	if p.o.Filter == nil || p.o.Filter(r) {
		x := p.r.Float64()
		for _, c := range []struct {
			f    Fault
			rate float64
		}{
			{Fail503, p.o.Fail503}, {Throttle, p.o.Throttle}, {Reset, p.o.Reset}, {Drop, p.o.Drop},
			{FailAfter, p.o.FailAfter}, {ResetAfter, p.o.ResetAfter}, {Delay, p.o.Delay},
		} {
			if x < c.rate {
				f = c.f
				break
			}
			x -= c.rate
		}
		switch f {
		case Drop:
			d = p.o.DropFor
			if d <= 0 {
				d = 10 * time.Second
			}
		case Delay:
			maxDelay := p.o.MaxDelay
			if maxDelay <= 0 {
				maxDelay = 100 * time.Millisecond
			}
			d = time.Duration(p.r.Int64N(int64(maxDelay) + 1))
		}
	}
	p.st.ByFault[f]++
	return f, d
}

// ServeHTTP forwards r to the target, or injects a fault.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fault, d := p.draw(r)
	// Read the whole body first: the server must see all of it or nothing.
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	switch fault {
	case Fail503:
		unavailable(w)
		return
	case Throttle:
		w.Header().Set("Content-Type", "application/xml")
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>injected: please reduce your request rate</Message></Error>`)
		return
	case Reset:
		reset(w)
		return
	case Drop:
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done(): // the client gave up
			t.Stop()
		}
		reset(w)
		return
	case Delay:
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	resp, err := p.forward(r, body)
	if err != nil {
		http.Error(w, "faultproxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	switch fault {
	case FailAfter:
		io.Copy(io.Discard, resp.Body)
		unavailable(w)
		return
	case ResetAfter:
		io.Copy(io.Discard, resp.Body)
		reset(w)
		return
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

func (p *Proxy) forward(r *http.Request, body []byte) (*http.Response, error) {
	out := r.Clone(r.Context())
	out.URL.Scheme, out.URL.Host = p.target.Scheme, p.target.Host
	out.RequestURI = ""
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.ContentLength = int64(len(body))
	// The signature covers Host: keep the client's (the proxy's address).
	out.Host = r.Host
	return p.transport.RoundTrip(out)
}

func unavailable(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(http.StatusServiceUnavailable)
	io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>ServiceUnavailable</Code><Message>injected: service unavailable</Message></Error>`)
}

// reset closes the client's connection abruptly, with a TCP RST.
func reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("faultproxy: the server does not support hijacking (use HTTP/1.1)")
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}
