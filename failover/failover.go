// Package failover lets a Matrix client talk to a planb homeserver that runs
// in several data centers and switch between them when one fails.
//
// Its Transport is an http.RoundTripper: put it under any client that takes
// an *http.Client, for example maunium.net/go/mautrix:
//
//	eps, err := failover.Discover(ctx, nil, "https://dc1.example.org")
//	tr, err := failover.New(eps, failover.Options{Logger: logger})
//	cli, err := mautrix.NewClient(eps[0].URL.String(), userID, token)
//	cli.Client = &http.Client{Transport: tr}
//
// Every request is sent to the data center in use, whatever host its URL
// names, so the Transport must serve only clients of this homeserver. When a
// data center fails (the connection cannot be made or breaks, or it answers
// 502/503/504, or it does not answer at all within Options.AttemptTimeout),
// the same request (same method, path with its txnId, same body) is sent to
// the next data center. planb promises that a write retried with the same
// access token and txnId in another data center returns the original event,
// never a duplicate, and that a /sync token from one data center continues
// in any other, so failing over is invisible to the client.
package failover

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Sentinel errors returned (wrapped) by Transport.RoundTrip.
var (
	// ErrBudgetExhausted is returned when every attempt within
	// Options.RetryBudget failed without any response; it wraps the last
	// attempt's error too. When the last attempt got a 502/503/504 response,
	// RoundTrip returns that response instead, so the client sees the
	// server's Matrix error.
	ErrBudgetExhausted = errors.New("failover: retry budget exhausted")

	// ErrOutcomeUnknown is returned when a non-idempotent request (POST,
	// PATCH) may have reached the server but no response came back. The
	// Transport does not retry it, because the first attempt may have been
	// executed: a POST /createRoom sent twice creates two rooms. Matrix
	// writes that must survive failover use PUT with a txnId
	// (PUT /rooms/{roomId}/send/{eventType}/{txnId}), which is retried.
	ErrOutcomeUnknown = errors.New("failover: request may have reached the server, not retried")
)

// Endpoint is one data center's base URL for the client-server API.
type Endpoint struct {
	// Name is the data center name, such as "dc1".
	Name string
	// URL is the base URL, such as http://127.0.0.1:8008. Only its scheme and
	// host are used: requests keep their own path and query. It must not be
	// modified after it is passed to New.
	URL *url.URL
}

// String returns "name (url)".
func (e Endpoint) String() string {
	if e.URL == nil {
		return e.Name
	}
	return e.Name + " (" + e.URL.Redacted() + ")"
}

// clone returns a copy whose URL the caller may change freely.
func (e Endpoint) clone() Endpoint {
	if e.URL != nil {
		u := *e.URL
		e.URL = &u
	}
	return e
}

// Backoff is the wait between rounds once every endpoint has failed: it
// starts at Initial and doubles up to Max. Each wait is jittered to between
// half and all of its value, so clients that lost the same data center do not
// return in step.
type Backoff struct {
	// Initial is the first wait; default 100ms.
	Initial time.Duration
	// Max caps the wait; default 2s.
	Max time.Duration
}

// Options configure a Transport. The zero value is usable.
type Options struct {
	// Base sends the requests. Default: a clone of http.DefaultTransport with
	// a 3s dial timeout (see DefaultBase).
	Base http.RoundTripper
	// Logger receives switches at Info and retries at Debug. Default: discard.
	Logger *slog.Logger
	// RetryBudget limits how long one request keeps waiting and retrying,
	// counted from its first failure (so a long-poll that ran for 30s before
	// its data center died still gets the whole budget). Default 30s.
	RetryBudget time.Duration
	// Backoff is the wait between rounds when every endpoint has failed.
	Backoff Backoff
	// Cooldown is how long a failed endpoint is passed over while others are
	// healthy. Default 5s.
	Cooldown time.Duration
	// MaxRetryAfter caps the Retry-After of a 503. Default 10s.
	MaxRetryAfter time.Duration
	// AttemptTimeout is how long one attempt may go without progress: no
	// request body read and no response headers. It catches a data center
	// that accepts connections but never answers (a frozen process, a
	// blackholed link). A long-poll's own "timeout" query parameter (GET
	// /sync?timeout=30000) is added to it. Default 15s.
	AttemptTimeout time.Duration
	// MaxBodyBuffer is the largest request body the Transport buffers in
	// memory to replay it on another endpoint, for requests without GetBody.
	// A larger body is sent once, without failover. Default 8 MiB.
	MaxBodyBuffer int64
	// OnSwitch, if set, is called after the endpoint in use changed. It runs
	// synchronously in the RoundTrip that observed the switch, possibly in
	// several goroutines at once, so it should return quickly.
	OnSwitch func(from, to Endpoint)
}

// Defaults for Options.
const (
	DefaultRetryBudget    = 30 * time.Second
	DefaultBackoffInitial = 100 * time.Millisecond
	DefaultBackoffMax     = 2 * time.Second
	DefaultCooldown       = 5 * time.Second
	DefaultMaxRetryAfter  = 10 * time.Second
	DefaultAttemptTimeout = 15 * time.Second
	DefaultMaxBodyBuffer  = 8 << 20
)

// DefaultBase returns the Base used when Options.Base is nil: a clone of
// http.DefaultTransport with a 3s dial timeout and a 5s TLS handshake
// timeout, so a data center that is unreachable is given up quickly. It sets
// no ResponseHeaderTimeout, because a long-poll legitimately waits for its
// headers; Options.AttemptTimeout bounds that wait instead.
func DefaultBase() *http.Transport {
	var tr *http.Transport
	if dt, ok := http.DefaultTransport.(*http.Transport); ok {
		tr = dt.Clone()
	} else {
		tr = &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true, MaxIdleConns: 100}
	}
	tr.DialContext = (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = 5 * time.Second
	tr.ResponseHeaderTimeout = 0
	tr.IdleConnTimeout = 90 * time.Second
	tr.ExpectContinueTimeout = time.Second
	return tr
}

// Transport is an http.RoundTripper that sends each request to the data
// center in use and fails over to the others. It is safe for concurrent use
// and starts no goroutines of its own beyond the per-attempt timers of
// Options.AttemptTimeout, which end with their attempt.
type Transport struct {
	// Immutable after New.
	endpoints      []Endpoint
	base           http.RoundTripper
	logger         *slog.Logger
	budget         time.Duration
	backoff        Backoff
	cooldown       time.Duration
	maxRetryAfter  time.Duration
	attemptTimeout time.Duration
	maxBody        int64
	onSwitch       func(from, to Endpoint)

	mu      sync.Mutex // guards current and health
	current int        // index into endpoints of the endpoint in use
	health  []health   // one per endpoint
}

// health is what the Transport remembers about one endpoint's failures.
type health struct {
	// downUntil: other endpoints are preferred until then (soft).
	downUntil time.Time
	// notBefore: no request is sent to it before then, from a 503's
	// Retry-After (hard). Never later than downUntil.
	notBefore time.Time
}

// New returns a Transport over endpoints, starting with the first. It
// returns an error listing every problem if there are no endpoints, a name
// is empty or repeated, a URL is missing, not http(s), has no host or has a
// path other than "/", or an option is negative or Backoff.Initial exceeds
// Backoff.Max.
func New(endpoints []Endpoint, opts Options) (*Transport, error) {
	errs := validateEndpoints(endpoints)
	errs = append(errs, opts.validate()...)
	if len(errs) > 0 {
		return nil, fmt.Errorf("failover: new transport: %w", errors.Join(errs...))
	}
	opts = opts.withDefaults()
	t := &Transport{
		endpoints:      make([]Endpoint, len(endpoints)),
		base:           opts.Base,
		logger:         opts.Logger,
		budget:         opts.RetryBudget,
		backoff:        opts.Backoff,
		cooldown:       opts.Cooldown,
		maxRetryAfter:  opts.MaxRetryAfter,
		attemptTimeout: opts.AttemptTimeout,
		maxBody:        opts.MaxBodyBuffer,
		onSwitch:       opts.OnSwitch,
		health:         make([]health, len(endpoints)),
	}
	for i, e := range endpoints {
		t.endpoints[i] = e.clone()
	}
	return t, nil
}

// validateEndpoints returns one error per problem found.
func validateEndpoints(endpoints []Endpoint) []error {
	if len(endpoints) == 0 {
		return []error{errors.New("no endpoints")}
	}
	var errs []error
	seen := make(map[string]bool, len(endpoints))
	for i, e := range endpoints {
		switch {
		case e.Name == "":
			errs = append(errs, fmt.Errorf("endpoint %d: empty name", i))
		case seen[e.Name]:
			errs = append(errs, fmt.Errorf("endpoint %d: duplicate name %q", i, e.Name))
		}
		seen[e.Name] = true
		if err := validateURL(e.URL); err != nil {
			errs = append(errs, fmt.Errorf("endpoint %d (%s): %w", i, e.Name, err))
		}
	}
	return errs
}

// validateURL checks that u is usable as an endpoint base URL.
func validateURL(u *url.URL) error {
	switch {
	case u == nil:
		return errors.New("no URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("URL %q: scheme must be http or https", u.Redacted())
	case u.Host == "":
		return fmt.Errorf("URL %q: no host", u.Redacted())
	case u.Path != "" && u.Path != "/":
		// Requests keep their own path, so a prefix here would be ignored.
		return fmt.Errorf("URL %q: path prefixes are not supported", u.Redacted())
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("URL %q: must not have user info, query or fragment", u.Redacted())
	}
	return nil
}

// validate returns one error per invalid option.
func (o Options) validate() []error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"RetryBudget", o.RetryBudget},
		{"Backoff.Initial", o.Backoff.Initial},
		{"Backoff.Max", o.Backoff.Max},
		{"Cooldown", o.Cooldown},
		{"MaxRetryAfter", o.MaxRetryAfter},
		{"AttemptTimeout", o.AttemptTimeout},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("option %s: negative duration %s", d.name, d.v))
		}
	}
	if o.MaxBodyBuffer < 0 {
		errs = append(errs, fmt.Errorf("option MaxBodyBuffer: negative size %d", o.MaxBodyBuffer))
	}
	if o.Backoff.Initial > 0 && o.Backoff.Max > 0 && o.Backoff.Initial > o.Backoff.Max {
		errs = append(errs, fmt.Errorf("option Backoff: Initial %s exceeds Max %s", o.Backoff.Initial, o.Backoff.Max))
	}
	return errs
}

// withDefaults fills in zero options.
func (o Options) withDefaults() Options {
	if o.Base == nil {
		o.Base = DefaultBase()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.RetryBudget == 0 {
		o.RetryBudget = DefaultRetryBudget
	}
	if o.Backoff.Initial == 0 {
		o.Backoff.Initial = DefaultBackoffInitial
		if o.Backoff.Max > 0 {
			o.Backoff.Initial = min(o.Backoff.Initial, o.Backoff.Max)
		}
	}
	if o.Backoff.Max == 0 {
		o.Backoff.Max = max(DefaultBackoffMax, o.Backoff.Initial)
	}
	if o.Cooldown == 0 {
		o.Cooldown = DefaultCooldown
	}
	if o.MaxRetryAfter == 0 {
		o.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if o.AttemptTimeout == 0 {
		o.AttemptTimeout = DefaultAttemptTimeout
	}
	if o.MaxBodyBuffer == 0 {
		o.MaxBodyBuffer = DefaultMaxBodyBuffer
	}
	return o
}

// Current returns the endpoint in use: the first one until a request
// succeeds on another. It is sticky: the Transport leaves it only when it
// fails, never to go back to a recovered one.
func (t *Transport) Current() Endpoint {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.endpoints[t.current].clone()
}

// CloseIdleConnections closes the idle connections of Base, if it has that
// method. http.Client.CloseIdleConnections calls it.
func (t *Transport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// choose returns the endpoint for the next attempt and how long to wait
// before it. It prefers the first healthy endpoint in round-robin order from
// start (start < 0 means from the current endpoint); if there is none
// (healthy is false), it returns the endpoint in that order that may be
// contacted soonest, after backoff and not before its Retry-After.
func (t *Transport) choose(start int, backoff time.Duration, now time.Time) (idx int, wait time.Duration, healthy bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(t.endpoints)
	if start < 0 {
		start = t.current
	}
	for i := range n {
		j := (start + i) % n
		if h := t.health[j]; !now.Before(h.downUntil) && !now.Before(h.notBefore) {
			return j, 0, true
		}
	}
	best, bestAt := -1, time.Time{}
	for i := range n {
		j := (start + i) % n
		at := now.Add(backoff)
		if nb := t.health[j].notBefore; nb.After(at) {
			at = nb
		}
		if best < 0 || at.Before(bestAt) {
			best, bestAt = j, at
		}
	}
	return best, bestAt.Sub(now), false
}

// markDown records that endpoint idx failed at now; retryAfter > 0 keeps
// every request away from it for that long.
func (t *Transport) markDown(idx int, now time.Time, retryAfter time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := &t.health[idx]
	if until := now.Add(max(t.cooldown, retryAfter)); until.After(h.downUntil) {
		h.downUntil = until
	}
	if until := now.Add(retryAfter); retryAfter > 0 && until.After(h.notBefore) {
		h.notBefore = until
	}
}

// markUp records that endpoint idx answered, and makes it the current one.
func (t *Transport) markUp(idx int) {
	t.mu.Lock()
	t.health[idx] = health{}
	from := t.current
	t.current = idx
	t.mu.Unlock()
	if from == idx {
		return
	}
	// Outside the lock: OnSwitch may call Current.
	f, to := t.endpoints[from].clone(), t.endpoints[idx].clone()
	t.logger.Info("failover: switched data center", "from", f.Name, "to", to.Name, "url", to.URL.Redacted())
	if t.onSwitch != nil {
		t.onSwitch(f, to)
	}
}

// RoundTrip sends req to the current endpoint, replacing its URL's scheme and
// host (path and query are kept; the Host header follows the endpoint), and
// fails over as the package doc describes. Whether a failed attempt is
// retried:
//
//   - 502, 503 and 504 responses are retried for every method: the data
//     center says it did not do the work (planb answers 503 with Retry-After
//     when it cannot reach a quorum, before accepting a write). For a POST
//     this trusts whatever answered: a proxy that returns 502/504 after its
//     upstream executed the request would get it repeated. A 503's
//     Retry-After, capped at Options.MaxRetryAfter, is the minimum time
//     before the Transport sends anything to that endpoint again; other
//     endpoints are tried meanwhile.
//   - Connection failures are retried for GET, HEAD, PUT, DELETE, OPTIONS and
//     TRACE, which Matrix makes idempotent (PUT carries a txnId). For POST and
//     PATCH they are retried only when the request certainly never reached
//     the server (dial failure, connection refused, DNS failure); a failure
//     after that returns ErrOutcomeUnknown.
//
// Retrying stops when Options.RetryBudget is used up (the last 5xx response
// is returned, or ErrBudgetExhausted) or when req's context is done (its
// error is returned). A request body larger than Options.MaxBodyBuffer and
// without GetBody is sent only once. RoundTrip always closes req.Body.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	body, err := newReplayBody(req, t.maxBody)
	if err != nil {
		return nil, fmt.Errorf("failover: %s %s: %w", req.Method, req.URL.Path, err)
	}
	defer body.close() // closes req.Body if no attempt took it
	idempotent := isIdempotent(req.Method)

	var (
		deadline time.Time // zero until the first wait or failure
		backoff  = t.backoff.Initial
		start    = -1
		attempts int
		lastResp *http.Response // buffered; the 5xx to return if we give up
		lastErr  error
	)
	// giveUp ends RoundTrip when the context is done or the budget is spent.
	giveUp := func() (*http.Response, error) {
		switch {
		case ctx.Err() != nil && lastErr == nil:
			closeResp(lastResp)
			return nil, fmt.Errorf("failover: %s %s: %w", req.Method, req.URL.Path, ctx.Err())
		case ctx.Err() != nil:
			closeResp(lastResp)
			return nil, fmt.Errorf("failover: %s %s: %w (last attempt: %w)", req.Method, req.URL.Path, ctx.Err(), lastErr)
		case lastResp != nil:
			return lastResp, nil
		case lastErr == nil:
			return nil, fmt.Errorf("%w before the first attempt of %s %s: every endpoint asked to wait (Retry-After)",
				ErrBudgetExhausted, req.Method, req.URL.Path)
		}
		return nil, fmt.Errorf("%w after %d attempts of %s %s: %w", ErrBudgetExhausted, attempts, req.Method, req.URL.Path, lastErr)
	}

	for {
		// A first attempt goes straight to the best endpoint; a retry that
		// finds no healthy endpoint backs off first.
		roundWait := time.Duration(0)
		if attempts > 0 {
			roundWait = jitter(backoff)
		}
		idx, wait, healthy := t.choose(start, roundWait, time.Now())
		if !healthy && attempts > 0 {
			backoff = min(2*backoff, t.backoff.Max)
		}
		if wait > 0 || attempts > 0 {
			if deadline.IsZero() {
				deadline = time.Now().Add(t.budget)
			}
			if sleep(ctx, wait, deadline) != nil {
				return giveUp()
			}
		}
		ep := t.endpoints[idx]
		if attempts > 0 {
			t.logger.Debug("failover: retrying", "method", req.Method, "path", req.URL.Path,
				"endpoint", ep.Name, "attempt", attempts+1, "reason", lastErr)
		}
		rc, err := body.open()
		if err != nil {
			closeResp(lastResp)
			return nil, fmt.Errorf("failover: %s %s: reopen body: %w", req.Method, req.URL.Path, err)
		}
		resp, err := t.attempt(ctx, req, ep, rc, body.getBody())
		attempts++
		closeResp(lastResp)
		lastResp, lastErr = nil, nil

		if err != nil {
			if ctx.Err() != nil {
				// The caller gave up; that says nothing about the endpoint.
				return nil, err
			}
			t.markDown(idx, time.Now(), 0)
			err = fmt.Errorf("%s: %w", ep.Name, err)
			if !body.replayable {
				return nil, fmt.Errorf("failover: %s %s: body too large to replay: %w", req.Method, req.URL.Path, err)
			}
			if !idempotent && !certainlyNotSent(err) {
				return nil, fmt.Errorf("%w: %s %s: %w", ErrOutcomeUnknown, req.Method, req.URL.Path, err)
			}
			lastErr, start = err, idx+1
			continue
		}
		if !retryableStatus(resp.StatusCode) {
			t.markUp(idx)
			return resp, nil
		}
		var retryAfter time.Duration
		if resp.StatusCode == http.StatusServiceUnavailable {
			retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now(), t.maxRetryAfter)
		}
		t.markDown(idx, time.Now(), retryAfter)
		if !body.replayable {
			return resp, nil
		}
		lastResp = bufferResponse(resp)
		lastErr, start = fmt.Errorf("%s: %s", ep.Name, resp.Status), idx+1
	}
}

// attempt sends one copy of req to ep with body rc. It cancels the attempt
// when it makes no progress for the attempt timeout; a response's body is
// wrapped so that closing it releases the attempt's context.
func (t *Transport) attempt(ctx context.Context, req *http.Request, ep Endpoint, rc io.ReadCloser, getBody func() (io.ReadCloser, error)) (*http.Response, error) {
	actx, cancel := context.WithCancel(ctx)
	wd := newWatchdog(t.attemptTimeout+longPollTimeout(req), cancel)
	out := req.Clone(actx)
	out.URL.Scheme = ep.URL.Scheme
	out.URL.Host = ep.URL.Host
	out.Host = ""
	out.Body = wd.wrapBody(rc)
	if getBody != nil {
		// Base may replay the body itself on a fresh connection.
		out.GetBody = func() (io.ReadCloser, error) {
			rc, err := getBody()
			return wd.wrapBody(rc), err
		}
	}
	resp, err := t.base.RoundTrip(out)
	fired := wd.stop()
	if fired && err == nil {
		// Headers arrived just as the watchdog cancelled the attempt: the
		// body is unreadable, so count it as no response.
		closeResp(resp)
		resp, err = nil, context.Canceled
	}
	if err != nil {
		cancel()
		if fired && ctx.Err() == nil {
			return nil, fmt.Errorf("no progress within %s: %w", wd.d, err)
		}
		return nil, err
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}
