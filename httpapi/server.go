// Package httpapi is planb's HTTP edge: the Matrix client-server API routes,
// request decoding, the one table that turns domain errors into Matrix error
// responses, CORS, rate limits and metrics.
package httpapi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	json "github.com/segmentio/encoding/json"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/cluster"
	"github.com/planb-chat/planb/homeserver"
)

// Options configure the HTTP edge.
type Options struct {
	// Limits are the rate limits; start from DefaultLimits.
	Limits Limits
	// Registry receives the HTTP metrics; nil disables them.
	Registry *prometheus.Registry
	// Extra registers more routes (health, admin, web client) on the mux.
	Extra func(mux *http.ServeMux)
	// Faults is the node's fault injector for drills; nil when the fault
	// endpoint is turned off.
	Faults FaultInjector
}

// API serves the Matrix client-server API of one node, and planb's admin
// API from the node's cluster operations.
type API struct {
	hs      *homeserver.Service
	ops     *cluster.Ops
	log     *slog.Logger
	mux     *http.ServeMux
	limiter *ipLimiter
	// reports limits damage reports per user (see routesIncidents).
	reports *ipLimiter
	metrics *metrics
	faults  FaultInjector
}

// New returns the HTTP handler for hs and ops.
func New(hs *homeserver.Service, ops *cluster.Ops, log *slog.Logger, opts Options) *API {
	a := &API{hs: hs, ops: ops, log: log, mux: http.NewServeMux(),
		limiter: newIPLimiter(opts.Limits.LoginPerMinute, opts.Limits.LoginBurst),
		reports: newIPLimiter(reportsPerMinute, reportsBurst),
		metrics: newMetrics(opts.Registry), faults: opts.Faults}
	a.routesAuth()
	a.routesRooms()
	a.routesPublicDirectories()
	a.routesSync()
	a.routesMedia()
	a.routesKeys()
	a.routesBackup()
	a.routesPush()
	a.routesPushers()
	a.routesSearch()
	a.routesAdmin()
	a.routesBench()
	a.routesRelations()
	a.routesIncidents()
	if opts.Extra != nil {
		opts.Extra(a.mux)
	}
	return a
}

// ServeHTTP adds CORS, answers unknown endpoints with M_UNRECOGNIZED and
// records metrics.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "X-Requested-With, Content-Type, Authorization")
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusOK)
		return
	}
	r = legacyPath(r)
	_, pattern := a.mux.Handler(r)
	if pattern == "" {
		a.unrecognized(w, r)
		return
	}
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w, status: 200}
	a.mux.ServeHTTP(sw, r) // sets the path values
	a.metrics.observe(pattern, sw.status, time.Since(start))
}

// legacyPrefixes map the r0 API (spec r0.6.1, which /versions advertises)
// onto its v3 successor. Every endpoint served under v3 that existed in r0
// behaves the same there; the few v3 endpoints added after r0 are served
// under r0 too, as Synapse does, since clients that speak r0 use them.
var legacyPrefixes = [][2]string{
	{"/_matrix/client/r0/", "/_matrix/client/v3/"},
	{"/_matrix/media/r0/", "/_matrix/media/v3/"},
}

// legacyPath returns r with an r0 path turned into its v3 path, or r.
func legacyPath(r *http.Request) *http.Request {
	for _, lp := range legacyPrefixes {
		rest, ok := strings.CutPrefix(r.URL.Path, lp[0])
		if !ok {
			continue
		}
		r2 := new(http.Request)
		*r2 = *r
		u := *r.URL
		u.Path = lp[1] + rest
		if raw, ok := strings.CutPrefix(r.URL.RawPath, lp[0]); ok {
			u.RawPath = lp[1] + raw
		} else {
			u.RawPath = ""
		}
		r2.URL = &u
		return r2
	}
	return r
}

// unrecognized answers 405 when the path exists for another method and 404
// otherwise, both with M_UNRECOGNIZED as the spec asks.
func (a *API) unrecognized(w http.ResponseWriter, r *http.Request) {
	for _, m := range []string{"GET", "PUT", "POST", "DELETE"} {
		r2 := r.Clone(r.Context())
		r2.Method = m
		if _, p := a.mux.Handler(r2); p != "" {
			writeError(w, a.log, planb.Errorf(planb.CodeUnrecognized, http.StatusMethodNotAllowed, "method %s is not allowed here", r.Method))
			return
		}
	}
	writeError(w, a.log, planb.Errorf(planb.CodeUnrecognized, http.StatusNotFound, "unrecognized request %s %s", r.Method, r.URL.Path))
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// writeJSON writes v with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client may have gone; nothing to do
}

// writeError is the one table from errors to Matrix error responses.
func writeError(w http.ResponseWriter, log *slog.Logger, err error) {
	if e, ok := planb.AsError(err); ok {
		body := map[string]any{}
		for k, v := range e.Extra {
			body[k] = v
		}
		if e.Code != "" {
			body["errcode"] = e.Code
			body["error"] = e.Message
		}
		if e.RetryAfter > 0 {
			body["retry_after_ms"] = e.RetryAfter.Milliseconds()
			w.Header().Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
		}
		status := e.Status
		if status == 0 {
			status = http.StatusBadRequest
		}
		writeJSON(w, status, body)
		return
	}
	if errors.Is(err, context.Canceled) {
		return // the client went away
	}
	if errors.Is(err, context.DeadlineExceeded) {
		w.Header().Set("Retry-After", "2")
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"errcode": planb.CodeUnavailable,
			"error": "the request took too long; retry", "retry_after_ms": 2000})
		return
	}
	log.Error("internal error", "err", err)
	writeJSON(w, http.StatusInternalServerError, map[string]any{"errcode": planb.CodeUnknown, "error": "internal server error"})
}

// maxBody is the largest JSON request body accepted.
const maxBody = 1 << 20

// readBody reads a JSON request body; M_TOO_LARGE when it is too big and
// M_NOT_JSON when it is not JSON. An empty body reads as "{}".
func readBody(r *http.Request) (json.RawMessage, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, planb.Errorf(planb.CodeUnknown, 400, "reading request body: %v", err)
	}
	if len(b) > maxBody {
		return nil, planb.Errorf(planb.CodeTooLarge, http.StatusRequestEntityTooLarge, "request body is larger than %d bytes", maxBody)
	}
	if len(trimJSONSpace(b)) == 0 {
		return json.RawMessage(`{}`), nil
	}
	if !json.Valid(b) || !utf8.Valid(b) {
		return nil, planb.Errorf(planb.CodeNotJSON, 400, "request body is not valid JSON (JSON is UTF-8)")
	}
	return b, nil
}

// decode reads a JSON object body into v; M_BAD_JSON when it has the wrong
// shape.
func decode(r *http.Request, v any) error {
	b, err := readBody(r)
	if err != nil {
		return err
	}
	if err := checkObject(b); err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return planb.BadJSON("request body has the wrong shape: %v", err)
	}
	return nil
}

// trimJSONSpace trims the whitespace JSON allows (not Unicode spaces).
func trimJSONSpace(b []byte) []byte {
	return bytes.Trim(b, " \t\r\n")
}

// checkObject requires a JSON object.
func checkObject(b json.RawMessage) error {
	if !bytes.HasPrefix(trimJSONSpace(b), []byte("{")) {
		return planb.BadJSON("request body must be a JSON object")
	}
	return nil
}

// clientIP returns the request's remote IP.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// authed wraps a handler that needs an access token.
func (a *API) authed(h func(http.ResponseWriter, *http.Request, homeserver.Session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok := ""
		if v := r.Header.Get("Authorization"); v != "" {
			scheme, rest, ok := strings.Cut(v, " ")
			if !ok || !strings.EqualFold(scheme, "Bearer") {
				writeError(w, a.log, planb.Errorf(planb.CodeMissingToken, 401, "Authorization header must be 'Bearer <token>'"))
				return
			}
			tok = strings.TrimSpace(rest)
		} else {
			tok = r.URL.Query().Get("access_token")
		}
		if tok == "" {
			writeError(w, a.log, planb.Errorf(planb.CodeMissingToken, 401, "missing access token"))
			return
		}
		sess, err := a.hs.Authenticate(r.Context(), tok)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		h(w, r, sess)
		// A server error is unavailability the user suffered: the incident
		// ledger counts it if an incident covers it (504 is a media upload
		// not there yet, not an outage).
		if sw, ok := w.(*statusWriter); ok && (sw.status == 500 || sw.status == 502 || sw.status == 503) {
			a.ops.NoteServerError(sess.UserID, time.Now())
		}
	}
}

// handle registers an authenticated JSON route.
func (a *API) handle(pattern string, h func(http.ResponseWriter, *http.Request, homeserver.Session)) {
	a.mux.Handle(pattern, a.authed(h))
}
