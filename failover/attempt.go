package failover

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// replayBody hands out the request body once per attempt.
type replayBody struct {
	// orig is req.Body until an attempt takes it (nil afterwards). The first
	// attempt sends it as is, so a request is never read twice needlessly.
	orig io.ReadCloser
	// empty is req.Body when it is nil or http.NoBody.
	empty io.ReadCloser
	// get returns a fresh copy: req.GetBody, or a reader over the buffer.
	get func() (io.ReadCloser, error)
	// replayable is false when the body was too large to buffer.
	replayable bool
}

// newReplayBody prepares req's body for replay, buffering up to limit bytes
// when req has no GetBody. On error it has closed req.Body.
func newReplayBody(req *http.Request, limit int64) (*replayBody, error) {
	b := &replayBody{replayable: true}
	switch {
	case req.Body == nil || req.Body == http.NoBody:
		b.empty = req.Body
		return b, nil
	case req.GetBody != nil:
		b.orig, b.get = req.Body, req.GetBody
		return b, nil
	}
	buf, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
	if err != nil {
		_ = req.Body.Close() // the read error is the one to report
		return nil, fmt.Errorf("buffer body: %w", err)
	}
	if int64(len(buf)) > limit {
		b.orig = readCloser{io.MultiReader(bytes.NewReader(buf), req.Body), req.Body}
		b.replayable = false
		return b, nil
	}
	// Fully read: a close error cannot lose anything.
	_ = req.Body.Close()
	b.get = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
	return b, nil
}

// readCloser joins a Reader and a Closer.
type readCloser struct {
	io.Reader
	io.Closer
}

// open returns the body for the next attempt, which the attempt must close.
func (b *replayBody) open() (io.ReadCloser, error) {
	if b.orig != nil {
		rc := b.orig
		b.orig = nil
		return rc, nil
	}
	if b.get != nil {
		return b.get()
	}
	return b.empty, nil
}

// getBody is the GetBody to give each attempt, so that Base may itself
// replay the body on a fresh connection.
func (b *replayBody) getBody() func() (io.ReadCloser, error) {
	if !b.replayable {
		return nil
	}
	return b.get
}

// close closes req.Body if no attempt took it.
func (b *replayBody) close() {
	if b.orig != nil {
		_ = b.orig.Close() // never sent: nothing to report
		b.orig = nil
	}
}

// watchdog cancels an attempt that makes no progress for d. Progress is a
// read of the request body (Base is sending it); the watchdog is stopped
// when the response headers or an error arrive.
type watchdog struct {
	d      time.Duration
	cancel context.CancelFunc

	mu    sync.Mutex  // guards timer resets, done and fired
	timer *time.Timer // set before the watchdog is shared
	done  bool        // stopped: no more resets, firing is a no-op
	fired bool        // cancelled the attempt
}

// newWatchdog starts a watchdog that calls cancel after d without progress.
func newWatchdog(d time.Duration, cancel context.CancelFunc) *watchdog {
	w := &watchdog{d: d, cancel: cancel}
	w.timer = time.AfterFunc(d, w.fire)
	return w
}

// fire runs on the timer's goroutine.
func (w *watchdog) fire() {
	w.mu.Lock()
	if w.done {
		w.mu.Unlock()
		return
	}
	w.fired = true
	w.mu.Unlock()
	w.cancel()
}

// kick records progress.
func (w *watchdog) kick() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done && !w.fired {
		w.timer.Reset(w.d)
	}
}

// stop ends the watchdog and reports whether it had cancelled the attempt.
func (w *watchdog) stop() (fired bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
	w.timer.Stop()
	return w.fired
}

// wrapBody returns rc reporting its reads to the watchdog. nil and
// http.NoBody are returned as is: Base treats them as "no body".
func (w *watchdog) wrapBody(rc io.ReadCloser) io.ReadCloser {
	if rc == nil || rc == http.NoBody {
		return rc
	}
	return &progressBody{ReadCloser: rc, w: w}
}

// progressBody kicks the watchdog on every read that returns data.
type progressBody struct {
	io.ReadCloser
	w *watchdog
}

// Read reads from the body and records progress.
func (b *progressBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.w.kick()
	}
	return n, err
}

// cancelOnClose releases an attempt's context when the response body is
// closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

// Close closes the body, then cancels the attempt's context.
func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// maxLongPoll caps the extra time a long-poll's timeout parameter buys.
const maxLongPoll = 10 * time.Minute

// longPollTimeout returns how long the server may legitimately hold req
// before answering: the "timeout" query parameter (milliseconds) of a GET,
// as in /sync and /events.
func longPollTimeout(req *http.Request) time.Duration {
	if req.Method != http.MethodGet {
		return 0
	}
	ms, err := strconv.ParseInt(req.URL.Query().Get("timeout"), 10, 64)
	if err != nil || ms <= 0 {
		return 0
	}
	if ms > maxLongPoll.Milliseconds() {
		return maxLongPoll
	}
	return time.Duration(ms) * time.Millisecond
}

// isIdempotent reports whether sending method twice has the effect of
// sending it once. Matrix keeps to this: its PUTs carry a txnId or replace
// a whole resource.
func isIdempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// certainlyNotSent reports whether err shows that the request never reached
// a server: no connection was made. Other errors, including TLS handshake
// failures and timeouts after connecting, are treated as possibly delivered.
func certainlyNotSent(err error) bool {
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return true
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// retryableStatus reports whether an answer with code means "this data
// center cannot serve you now, another may".
func retryableStatus(code int) bool {
	switch code {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// parseRetryAfter returns the wait a Retry-After header value asks for
// (delay-seconds or an HTTP date), capped at limit; 0 if absent or invalid.
func parseRetryAfter(v string, now time.Time, limit time.Duration) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(limit/time.Second)+1 {
			return limit
		}
		d = time.Duration(secs) * time.Second
	} else if at, err := http.ParseTime(v); err == nil {
		d = at.Sub(now)
	}
	return min(max(d, 0), limit)
}

// maxErrorBody caps how much of a 5xx response is kept in memory.
const maxErrorBody = 64 << 10

// bufferResponse reads resp's body (up to maxErrorBody) into memory and
// closes it, so resp can be kept while other endpoints are tried and
// returned if they fail too.
func bufferResponse(resp *http.Response) *http.Response {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody)) // a short body is still the server's answer
	_ = resp.Body.Close()                                       // read what we keep; nothing else to lose
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	resp.TransferEncoding = nil
	if resp.Header != nil {
		resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
	}
	return resp
}

// closeResp closes resp's body; resp may be nil.
func closeResp(resp *http.Response) {
	if resp != nil {
		_ = resp.Body.Close() // discarded response
	}
}

// jitter returns a random duration between d/2 and d.
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// sleep waits d, returning ctx's error if it is done first, or
// ErrBudgetExhausted at once if the wait would end after deadline.
func sleep(ctx context.Context, d time.Duration, deadline time.Time) error {
	if time.Now().Add(d).After(deadline) {
		return ErrBudgetExhausted
	}
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}
