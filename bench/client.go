package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// newTransport returns an HTTP transport that keeps up to conns idle
// connections per data center, so a fixed set of senders reuses its
// connections instead of opening new ones. A non-nil local address makes
// it dial from that address.
func newTransport(conns int, local net.Addr) *http.Transport {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, LocalAddr: local}
	return &http.Transport{
		DialContext:         d.DialContext,
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   false,
	}
}

// user is one registered bench user.
type user struct {
	id    id.UserID
	token string
	dc    int // index of the data center it talks to
	cli   *mautrix.Client
}

// registrar registers users through the Matrix API. Registration is
// rate-limited per client IP by every node; on loopback targets the bench
// spreads its simulated clients over source addresses 127.0.0.2-127.0.0.201
// (all of 127/8 is loopback on Linux), like users behind different IPs. On
// other targets, and when that is not enough, it waits as the node's
// M_LIMIT_EXCEEDED answer asks.
type registrar struct {
	run   string // unique per bench run, part of every user name
	dcs   []DataCenter
	spred []*http.Client // per source address (loopback targets only)
	plain *http.Client
}

func newRegistrar(run string, dcs []DataCenter) *registrar {
	r := &registrar{run: run, dcs: dcs, plain: &http.Client{Timeout: 60 * time.Second, Transport: newTransport(4, nil)}}
	if allLoopback(dcs) {
		for i := 0; i < 200; i++ {
			local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i))}
			r.spred = append(r.spred, &http.Client{Timeout: 60 * time.Second, Transport: newTransport(1, local)})
		}
	}
	return r
}

// close closes the registrar's idle connections, so that they do not
// linger on the nodes until their idle timeout.
func (r *registrar) close() {
	r.plain.CloseIdleConnections()
	for _, c := range r.spred {
		c.CloseIdleConnections()
	}
}

func allLoopback(dcs []DataCenter) bool {
	for _, dc := range dcs {
		u, err := url.Parse(dc.URL)
		if err != nil {
			return false
		}
		ip := net.ParseIP(u.Hostname())
		if ip == nil || ip.To4() == nil || !ip.IsLoopback() {
			return false
		}
	}
	return len(dcs) > 0
}

// register creates user number n (name prefix kind) at data center dc and
// returns it with a client that talks to that data center through hc.
func (r *registrar) register(ctx context.Context, kind string, n, dc int, hc *http.Client) (*user, error) {
	rc := r.plain
	if len(r.spred) > 0 {
		rc = r.spred[n%len(r.spred)]
	}
	anon, err := mautrix.NewClient(r.dcs[dc].URL, "", "")
	if err != nil {
		return nil, fmt.Errorf("matrix client: %w", err)
	}
	anon.Client = rc
	name := fmt.Sprintf("bench-%s-%s%d", r.run, kind, n)
	for {
		resp, err := anon.RegisterDummy(ctx, &mautrix.ReqRegister[any]{Username: name, Password: "bench-" + r.run + "-" + strconv.Itoa(n),
			InitialDeviceDisplayName: "planb bench"})
		if err == nil {
			cli, err := mautrix.NewClient(r.dcs[dc].URL, resp.UserID, resp.AccessToken)
			if err != nil {
				return nil, fmt.Errorf("matrix client: %w", err)
			}
			cli.Client = hc
			return &user{id: resp.UserID, token: resp.AccessToken, dc: dc, cli: cli}, nil
		}
		var he mautrix.HTTPError
		if errors.As(err, &he) && he.RespError != nil && he.RespError.ErrCode == "M_LIMIT_EXCEEDED" {
			wait := time.Second
			if ms, ok := he.RespError.ExtraData["retry_after_ms"].(float64); ok && ms > 0 {
				wait = time.Duration(ms) * time.Millisecond
			}
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("register %s: %w", name, ctx.Err())
			case <-time.After(wait):
			}
			continue
		}
		return nil, fmt.Errorf("register %s at %s: %w", name, r.dcs[dc].Name, err)
	}
}

// registerAll registers total users, six at a time: user i is
// name(i) = (kind, n) at data center i mod len(dcs). progress is told how
// many are done.
func (r *registrar) registerAll(ctx context.Context, total int, hc *http.Client, name func(i int) (string, int), progress func(done int64)) ([]*user, error) {
	all := make([]*user, total)
	var done atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(6)
	for i := range total {
		g.Go(func() error {
			kind, n := name(i)
			u, err := r.register(gctx, kind, n, i%len(r.dcs), hc)
			if err != nil {
				return err
			}
			all[i] = u
			progress(done.Add(1))
			return nil
		})
	}
	return all, g.Wait()
}

// errKind names a client-visible error for the report.
func errKind(err error) string {
	var ae *apiError
	if errors.As(err, &ae) {
		if ae.code != "" {
			return fmt.Sprintf("%d %s", ae.status, ae.code)
		}
		return "HTTP " + strconv.Itoa(ae.status)
	}
	var he mautrix.HTTPError
	if errors.As(err, &he) && he.RespError != nil && he.Response != nil {
		return fmt.Sprintf("%d %s", he.Response.StatusCode, he.RespError.ErrCode)
	}
	if errors.As(err, &he) && he.Response != nil {
		return "HTTP " + strconv.Itoa(he.Response.StatusCode)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	return "transport"
}

// apiError is a non-2xx answer of the raw requests below.
type apiError struct {
	status int
	code   string
}

func (e *apiError) Error() string { return fmt.Sprintf("HTTP %d %s", e.status, e.code) }

// call makes one raw client-server API request with the user's token and
// decodes a JSON answer into out (when not nil). The load paths use it
// instead of mautrix so that the load generator, which shares the machine
// with the nodes in --dev mode, spends little CPU per request.
func call(ctx context.Context, hc *http.Client, method, url, token string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return fmt.Errorf("request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Code string `json:"errcode"`
		}
		_ = json.Unmarshal(b, &e)
		return &apiError{status: resp.StatusCode, code: e.Code}
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("decode answer of %s: %w", method, err)
		}
	}
	return nil
}
