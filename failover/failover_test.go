package failover

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// The data centers in these tests are real HTTP servers on loopback; only
// their behaviour is scripted.

// seen is a request as a data center received it.
type seen struct {
	Method, URI, Body string
	At                time.Time
}

// dc is a data center standing in for a planb node.
type dc struct {
	name string
	srv  *httptest.Server
	reqs chan seen // every request received, in order
}

// startDC starts a data center whose requests are recorded, then handled by h.
func startDC(t *testing.T, name string, h http.HandlerFunc) *dc {
	t.Helper()
	d := &dc{name: name, reqs: make(chan seen, 1000)}
	d.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("%s: read body: %v", name, err)
		}
		d.reqs <- seen{Method: r.Method, URI: r.RequestURI, Body: string(body), At: time.Now()}
		w.Header().Set("X-DC", name)
		h(w, r)
	}))
	t.Cleanup(d.srv.Close)
	return d
}

// endpoint returns the data center's Endpoint.
func (d *dc) endpoint() Endpoint { return Endpoint{Name: d.name, URL: mustURL(d.srv.URL)} }

// count returns how many requests the data center has received. Handlers
// record before answering, so after a RoundTrip returns this is exact.
func (d *dc) count() int { return len(d.reqs) }

// next returns the next recorded request, failing if there is none.
func (d *dc) next(t *testing.T) seen {
	t.Helper()
	select {
	case s := <-d.reqs:
		return s
	default:
		t.Fatalf("%s received no request", d.name)
		return seen{}
	}
}

// deadEndpoint returns an endpoint whose listener is closed: connecting to
// it is refused.
func deadEndpoint(t *testing.T, name string) Endpoint {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return Endpoint{Name: name, URL: mustURL("http://" + addr)}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// healthy answers 200 with a small JSON body.
func healthy(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"ok":true}`)
}

// unavailable answers 503 like a planb node cut off from the quorum.
func unavailable(retryAfter string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"errcode":"M_UNAVAILABLE","error":"no quorum"}`)
	}
}

// hangUp takes the request and closes the connection without answering.
func hangUp(t *testing.T) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		_ = conn.Close()
	}
}

// failFirst uses first for the first request and then for the others.
func failFirst(first, then http.HandlerFunc) http.HandlerFunc {
	var n atomic.Int64
	return func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			first(w, r)
			return
		}
		then(w, r)
	}
}

// newTransport returns a Transport logging to the test output.
func newTransport(t *testing.T, eps []Endpoint, opts Options) *Transport {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	tr, err := New(eps, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// roundTrip sends one request through tr, failing the test if it takes
// longer than 20s (a hang is a bug, not a slow machine).
func roundTrip(t *testing.T, tr http.RoundTripper, req *http.Request) (*http.Response, error) {
	t.Helper()
	type result struct {
		resp *http.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := tr.RoundTrip(req)
		done <- result{resp, err}
	}()
	select {
	case r := <-done:
		if r.resp != nil {
			t.Cleanup(func() { _ = r.resp.Body.Close() })
		}
		return r.resp, r.err
	case <-time.After(20 * time.Second):
		t.Fatalf("%s %s hung", req.Method, req.URL)
		return nil, nil
	}
}

func newRequest(t *testing.T, ctx context.Context, method, rawURL, body string) *http.Request {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, r)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// switchRecorder collects OnSwitch calls.
type switchRecorder struct {
	mu    sync.Mutex
	calls []string // "from->to"
}

func (s *switchRecorder) record(from, to Endpoint) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, from.Name+"->"+to.Name)
}

func (s *switchRecorder) get() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

func TestFailsOverToHealthyDataCenter(t *testing.T) {
	const (
		path = "/_matrix/client/v3/rooms/!room:example.org/send/m.room.message/txn42?ts=1"
		body = `{"msgtype":"m.text","body":"the building is on fire"}`
	)
	for _, tc := range []struct {
		name    string
		getBody bool // false: the Transport must buffer the body itself
	}{{"with GetBody", true}, {"buffered body", false}} {
		t.Run(tc.name, func(t *testing.T) {
			dc1 := deadEndpoint(t, "dc1")
			dc2 := startDC(t, "dc2", unavailable("1"))
			dc3 := startDC(t, "dc3", healthy)
			var switches switchRecorder
			tr := newTransport(t, []Endpoint{dc1, dc2.endpoint(), dc3.endpoint()}, Options{OnSwitch: switches.record})

			req := newRequest(t, t.Context(), http.MethodPut, dc1.URL.String()+path, body)
			if !tc.getBody {
				req.GetBody = nil
				req.Body = io.NopCloser(strings.NewReader(body))
			}
			resp, err := roundTrip(t, tr, req)
			if err != nil {
				t.Fatalf("RoundTrip: %v", err)
			}
			if resp.StatusCode != http.StatusOK || resp.Header.Get("X-DC") != "dc3" {
				t.Fatalf("got %s from %q, want 200 from dc3", resp.Status, resp.Header.Get("X-DC"))
			}
			want := seen{Method: http.MethodPut, URI: path, Body: body}
			for _, d := range []*dc{dc2, dc3} {
				got := d.next(t)
				got.At = time.Time{}
				if got != want {
					t.Errorf("%s received %+v, want %+v", d.name, got, want)
				}
			}
			if got := tr.Current().Name; got != "dc3" {
				t.Errorf("Current() = %s, want dc3", got)
			}
			if got := switches.get(); len(got) != 1 || got[0] != "dc1->dc3" {
				t.Errorf("switches = %v, want [dc1->dc3]", got)
			}
		})
	}
}

func TestStaysOnWorkingDataCenter(t *testing.T) {
	dc1 := startDC(t, "dc1", failFirst(unavailable(""), healthy)) // recovers at once
	dc2 := startDC(t, "dc2", healthy)
	tr := newTransport(t, []Endpoint{dc1.endpoint(), dc2.endpoint()}, Options{})
	for range 3 {
		resp, err := roundTrip(t, tr, newRequest(t, t.Context(), http.MethodGet, dc1.srv.URL+"/_matrix/client/versions", ""))
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.Header.Get("X-DC"); got != "dc2" {
			t.Errorf("answered by %s, want dc2", got)
		}
	}
	if n := dc1.count(); n != 1 {
		t.Errorf("dc1 received %d requests, want 1: the Transport must stay on dc2", n)
	}
}

func TestPOSTNotRetriedWhenItMayHaveArrived(t *testing.T) {
	dc1 := startDC(t, "dc1", hangUp(t))
	dc2 := startDC(t, "dc2", healthy)
	tr := newTransport(t, []Endpoint{dc1.endpoint(), dc2.endpoint()}, Options{})

	req := newRequest(t, t.Context(), http.MethodPost, dc1.srv.URL+"/_matrix/client/v3/createRoom", `{"name":"x"}`)
	resp, err := roundTrip(t, tr, req)
	if !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("RoundTrip = %v, %v; want ErrOutcomeUnknown", resp, err)
	}
	if n1, n2 := dc1.count(), dc2.count(); n1 != 1 || n2 != 0 {
		t.Errorf("dc1 got %d, dc2 got %d requests; want 1 and 0", n1, n2)
	}
}

func TestLongPollMovesWithItsSinceToken(t *testing.T) {
	// The same failure as above, for a GET /sync: it is retried elsewhere.
	dc1 := startDC(t, "dc1", hangUp(t))
	dc2 := startDC(t, "dc2", healthy)
	tr := newTransport(t, []Endpoint{dc1.endpoint(), dc2.endpoint()}, Options{})

	const uri = "/_matrix/client/v3/sync?since=s72_1_9&timeout=30000"
	resp, err := roundTrip(t, tr, newRequest(t, t.Context(), http.MethodGet, dc1.srv.URL+uri, ""))
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Header.Get("X-DC"); got != "dc2" {
		t.Fatalf("answered by %s, want dc2", got)
	}
	if got := dc2.next(t).URI; got != uri {
		t.Errorf("dc2 received %s, want %s", got, uri)
	}
}

func TestPOSTRetriedWhenCertainlyNotDone(t *testing.T) {
	for _, tc := range []struct {
		name  string
		first func(t *testing.T) (ep Endpoint, d *dc)
	}{
		{"connection refused", func(t *testing.T) (Endpoint, *dc) { return deadEndpoint(t, "dc1"), nil }},
		{"503", func(t *testing.T) (Endpoint, *dc) {
			d := startDC(t, "dc1", unavailable(""))
			return d.endpoint(), d
		}},
		{"502", func(t *testing.T) (Endpoint, *dc) {
			d := startDC(t, "dc1", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadGateway) })
			return d.endpoint(), d
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ep1, dc1 := tc.first(t)
			dc2 := startDC(t, "dc2", healthy)
			tr := newTransport(t, []Endpoint{ep1, dc2.endpoint()}, Options{})

			const body = `{"preset":"private_chat"}`
			req := newRequest(t, t.Context(), http.MethodPost, ep1.URL.String()+"/_matrix/client/v3/createRoom", body)
			resp, err := roundTrip(t, tr, req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Header.Get("X-DC") != "dc2" {
				t.Fatalf("answered by %q, want dc2", resp.Header.Get("X-DC"))
			}
			if got := dc2.next(t); got.Method != http.MethodPost || got.Body != body {
				t.Errorf("dc2 received %s with body %q", got.Method, got.Body)
			}
			if dc1 != nil && dc1.count() != 1 {
				t.Errorf("dc1 received %d requests, want 1", dc1.count())
			}
		})
	}
}

func TestRetryAfterIsAMinimumWait(t *testing.T) {
	// With no other data center to go to, the Transport must wait the
	// 503's Retry-After before it asks the same one again.
	dc1 := startDC(t, "dc1", failFirst(unavailable("1"), healthy))
	tr := newTransport(t, []Endpoint{dc1.endpoint()}, Options{Backoff: Backoff{Initial: time.Millisecond, Max: time.Millisecond}})

	resp, err := roundTrip(t, tr, newRequest(t, t.Context(), http.MethodGet, dc1.srv.URL+"/_matrix/client/versions", ""))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("got %s, want 200", resp.Status)
	}
	first, second := dc1.next(t), dc1.next(t)
	if gap := second.At.Sub(first.At); gap < time.Second {
		t.Errorf("retried after %s, want at least the Retry-After of 1s", gap)
	}
}

func TestBudgetExhausted(t *testing.T) {
	opts := Options{RetryBudget: 300 * time.Millisecond, Backoff: Backoff{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond}}

	t.Run("returns the last 503", func(t *testing.T) {
		dc1 := startDC(t, "dc1", unavailable(""))
		tr := newTransport(t, []Endpoint{dc1.endpoint()}, opts)
		resp, err := roundTrip(t, tr, newRequest(t, t.Context(), http.MethodGet, dc1.srv.URL+"/x", ""))
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("got %s, want 503", resp.Status)
		}
		var e struct{ Errcode string }
		if err := json.Unmarshal([]byte(readBody(t, resp)), &e); err != nil || e.Errcode != "M_UNAVAILABLE" {
			t.Errorf("body errcode %q (%v), want M_UNAVAILABLE", e.Errcode, err)
		}
		if n := dc1.count(); n < 2 {
			t.Errorf("dc1 received %d requests, want retries", n)
		}
	})
	t.Run("no response at all", func(t *testing.T) {
		dc1 := deadEndpoint(t, "dc1")
		tr := newTransport(t, []Endpoint{dc1}, opts)
		_, err := roundTrip(t, tr, newRequest(t, t.Context(), http.MethodGet, dc1.URL.String()+"/x", ""))
		if !errors.Is(err, ErrBudgetExhausted) || !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("err = %v, want ErrBudgetExhausted wrapping ECONNREFUSED", err)
		}
	})
}

func TestContextCancelStopsRetries(t *testing.T) {
	dc1 := startDC(t, "dc1", unavailable(""))
	tr := newTransport(t, []Endpoint{dc1.endpoint()}, Options{
		RetryBudget: time.Hour,
		Backoff:     Backoff{Initial: 10 * time.Millisecond, Max: 10 * time.Millisecond},
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		// Cancel once the Transport is visibly retrying.
		for range 3 {
			<-dc1.reqs
		}
		cancel()
	}()
	_, err := roundTrip(t, tr, newRequest(t, ctx, http.MethodGet, dc1.srv.URL+"/x", ""))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestSilentDataCenterIsAbandoned(t *testing.T) {
	// A frozen node accepts connections and never answers.
	hang := func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }
	opts := Options{AttemptTimeout: 200 * time.Millisecond}

	t.Run("GET moves on", func(t *testing.T) {
		dc1 := startDC(t, "dc1", hang)
		dc2 := startDC(t, "dc2", healthy)
		tr := newTransport(t, []Endpoint{dc1.endpoint(), dc2.endpoint()}, opts)
		resp, err := roundTrip(t, tr, newRequest(t, t.Context(), http.MethodGet, dc1.srv.URL+"/x", ""))
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.Header.Get("X-DC"); got != "dc2" {
			t.Errorf("answered by %s, want dc2", got)
		}
	})
	t.Run("POST outcome unknown", func(t *testing.T) {
		dc1 := startDC(t, "dc1", hang)
		dc2 := startDC(t, "dc2", healthy)
		tr := newTransport(t, []Endpoint{dc1.endpoint(), dc2.endpoint()}, opts)
		_, err := roundTrip(t, tr, newRequest(t, t.Context(), http.MethodPost, dc1.srv.URL+"/x", "{}"))
		if !errors.Is(err, ErrOutcomeUnknown) {
			t.Fatalf("err = %v, want ErrOutcomeUnknown", err)
		}
		if n := dc2.count(); n != 0 {
			t.Errorf("dc2 received %d requests, want 0", n)
		}
	})
	t.Run("long-poll may take its timeout", func(t *testing.T) {
		slow := func(w http.ResponseWriter, r *http.Request) {
			select { // answers well within the poll's 3s, well after AttemptTimeout
			case <-time.After(600 * time.Millisecond):
				healthy(w, r)
			case <-r.Context().Done():
			}
		}
		dc1 := startDC(t, "dc1", slow)
		dc2 := startDC(t, "dc2", healthy)
		tr := newTransport(t, []Endpoint{dc1.endpoint(), dc2.endpoint()}, opts)
		resp, err := roundTrip(t, tr, newRequest(t, t.Context(), http.MethodGet, dc1.srv.URL+"/_matrix/client/v3/sync?timeout=3000", ""))
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.Header.Get("X-DC"); got != "dc1" {
			t.Errorf("answered by %s, want dc1", got)
		}
	})
}

func TestOversizedBodyIsSentOnce(t *testing.T) {
	dc1 := deadEndpoint(t, "dc1")
	dc2 := startDC(t, "dc2", healthy)
	tr := newTransport(t, []Endpoint{dc1, dc2.endpoint()}, Options{MaxBodyBuffer: 4})
	req := newRequest(t, t.Context(), http.MethodPut, dc1.URL.String()+"/upload", "0123456789")
	req.GetBody = nil
	req.Body = io.NopCloser(req.Body)
	if _, err := roundTrip(t, tr, req); err == nil {
		t.Fatal("RoundTrip succeeded, want the dial error")
	}
	if n := dc2.count(); n != 0 {
		t.Errorf("dc2 received %d requests, want 0", n)
	}
}

func TestConcurrentFailoverSwitchesOnce(t *testing.T) {
	dc1 := deadEndpoint(t, "dc1")
	dc2 := startDC(t, "dc2", healthy)
	var switches switchRecorder
	tr := newTransport(t, []Endpoint{dc1, dc2.endpoint()}, Options{OnSwitch: switches.record})
	client := &http.Client{Transport: tr}

	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			resp, err := client.Get(dc1.URL.String() + "/_matrix/client/versions")
			if err != nil {
				t.Error(err)
				return
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("got %s", resp.Status)
			}
		})
	}
	wg.Wait()
	if got := switches.get(); len(got) != 1 || got[0] != "dc1->dc2" {
		t.Errorf("switches = %v, want [dc1->dc2]", got)
	}
}

func TestMautrixClientFailsOver(t *testing.T) {
	const (
		user  = id.UserID("@alice:example.org")
		token = "syt_secret"
		room  = id.RoomID("!room:example.org")
	)
	authed := func(next http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer "+token {
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = io.WriteString(w, `{"errcode":"M_UNKNOWN_TOKEN","error":"bad token"}`)
				return
			}
			next(w, r)
		}
	}
	node := func(send http.HandlerFunc) http.HandlerFunc {
		mux := http.NewServeMux()
		mux.HandleFunc("GET /_matrix/client/versions", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, `{"versions":["v1.11"]}`)
		})
		mux.HandleFunc("GET /_matrix/client/v3/account/whoami", authed(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, `{"user_id":"`+string(user)+`","device_id":"DEV"}`)
		}))
		mux.HandleFunc("PUT /_matrix/client/v3/rooms/{room}/send/{type}/{txn}", authed(send))
		return mux.ServeHTTP
	}
	dc1 := deadEndpoint(t, "dc1")
	dc2 := startDC(t, "dc2", node(hangUp(t))) // takes the message, then dies
	dc3 := startDC(t, "dc3", node(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"event_id":"$ev1"}`)
	}))
	tr := newTransport(t, []Endpoint{dc1, dc2.endpoint(), dc3.endpoint()}, Options{})

	cli, err := mautrix.NewClient(dc1.URL.String(), user, token)
	if err != nil {
		t.Fatal(err)
	}
	cli.Client = &http.Client{Transport: tr}
	ctx := t.Context()

	versions, err := cli.Versions(ctx)
	if err != nil {
		t.Fatalf("Versions: %v", err)
	}
	if len(versions.Versions) == 0 {
		t.Error("Versions returned no versions")
	}
	who, err := cli.Whoami(ctx)
	if err != nil {
		t.Fatalf("Whoami: %v", err)
	}
	if who.UserID != user {
		t.Errorf("Whoami = %s, want %s", who.UserID, user)
	}
	if got := tr.Current().Name; got != "dc2" {
		t.Errorf("Current() = %s, want dc2", got)
	}

	sent, err := cli.SendMessageEvent(ctx, room, event.EventMessage,
		map[string]any{"msgtype": "m.text", "body": "hi"}, mautrix.ReqSendEvent{TransactionID: "txn1"})
	if err != nil {
		t.Fatalf("SendMessageEvent: %v", err)
	}
	if sent.EventID != "$ev1" {
		t.Errorf("event ID %s, want $ev1", sent.EventID)
	}
	// dc2 saw versions, whoami and the send; dc3 saw the same send again.
	var sendAt2 seen
	for range 3 {
		sendAt2 = dc2.next(t)
	}
	sendAt3 := dc3.next(t)
	if sendAt2.Method != http.MethodPut || sendAt2.URI != sendAt3.URI || sendAt2.Body != sendAt3.Body ||
		!strings.HasSuffix(sendAt3.URI, "/txn1") {
		t.Errorf("send differs between data centers:\n dc2 %+v\n dc3 %+v", sendAt2, sendAt3)
	}
	if got := tr.Current().Name; got != "dc3" {
		t.Errorf("Current() = %s, want dc3", got)
	}
}

func TestNewReportsEveryProblem(t *testing.T) {
	_, err := New([]Endpoint{
		{Name: "dc1", URL: mustURL("http://127.0.0.1:8008")},
		{Name: "dc1", URL: mustURL("http://127.0.0.1:8009")},
		{Name: "", URL: mustURL("http://127.0.0.1:8010")},
		{Name: "dc4", URL: mustURL("ftp://example.org")},
		{Name: "dc5"},
		{Name: "dc6", URL: mustURL("http://example.org/matrix")},
	}, Options{RetryBudget: -1, Backoff: Backoff{Initial: 2 * time.Second, Max: time.Second}})
	if err == nil {
		t.Fatal("New succeeded")
	}
	for _, want := range []string{`duplicate name "dc1"`, "empty name", "scheme must be http or https", "no URL",
		"path prefixes are not supported", "RetryBudget", "Initial 2s exceeds Max 1s"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if _, err := New(nil, Options{}); err == nil || !strings.Contains(err.Error(), "no endpoints") {
		t.Errorf("New(nil) = %v, want no endpoints", err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 10, 15, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"3", 3 * time.Second},
		{"0", 0},
		{"-5", 0},
		{"soon", 0},
		{"99999999999999999", 10 * time.Second},
		{now.Add(4 * time.Second).Format(http.TimeFormat), 4 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	} {
		if got := parseRetryAfter(tc.in, now, 10*time.Second); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
