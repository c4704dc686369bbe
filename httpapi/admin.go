package httpapi

import (
	"crypto/subtle"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/adminapi"
)

// adminPrefix is the root of planb's own admin API, served by every node.
const adminPrefix = adminapi.Path

func (a *API) routesAdmin() {
	a.mux.HandleFunc("GET "+adminPrefix+"/status", a.admin(func(w http.ResponseWriter, r *http.Request) {
		st, err := a.ops.Status(r.Context())
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, st)
	}))
	a.mux.HandleFunc("POST "+adminPrefix+"/drain", a.admin(func(w http.ResponseWriter, r *http.Request) {
		rep, err := a.ops.Drain(r.Context())
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, rep)
	}))
	a.mux.HandleFunc("POST "+adminPrefix+"/rebalance", a.admin(func(w http.ResponseWriter, r *http.Request) {
		rep, err := a.ops.Rebalance(r.Context())
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, rep)
	}))
	a.mux.HandleFunc("POST "+adminPrefix+"/undrain", a.admin(func(w http.ResponseWriter, r *http.Request) {
		a.ops.Undrain(r.Context())
		writeJSON(w, 200, struct{}{})
	}))
	a.routesDrills()
	a.routesFaults()
}

// admin wraps a handler that needs one of the configured admin tokens.
func (a *API) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tokens := a.hs.Config().AdminTokens
		if len(tokens) == 0 {
			writeError(w, a.log, planb.Forbidden("the admin API is disabled; configure admin_tokens"))
			return
		}
		got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if got == "" {
			writeError(w, a.log, planb.Errorf(planb.CodeMissingToken, 401, "missing admin token"))
			return
		}
		for _, t := range tokens {
			if subtle.ConstantTimeCompare([]byte(t), []byte(got)) == 1 {
				h(w, r)
				return
			}
		}
		writeError(w, a.log, planb.Errorf(planb.CodeUnknownToken, 401, "unknown admin token"))
	}
}

// routesDrills serves the drill lock and the drill history (planb drill).
func (a *API) routesDrills() {
	a.mux.HandleFunc("PUT "+adminPrefix+"/drills/lock", a.admin(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			adminapi.DrillLock
			TTLSeconds int `json:"ttl_seconds"`
		}
		if err := decode(r, &req); err != nil {
			writeError(w, a.log, err)
			return
		}
		l, err := a.ops.AcquireDrillLock(r.Context(), req.DrillLock, time.Duration(req.TTLSeconds)*time.Second)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, l)
	}))
	a.mux.HandleFunc("DELETE "+adminPrefix+"/drills/lock/{id}", a.admin(func(w http.ResponseWriter, r *http.Request) {
		released, err := a.ops.ReleaseDrillLock(r.Context(), r.PathValue("id"))
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, map[string]bool{"released": released})
	}))
	a.mux.HandleFunc("POST "+adminPrefix+"/drills", a.admin(func(w http.ResponseWriter, r *http.Request) {
		raw, err := readBody(r)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		key, err := a.ops.StoreDrillReport(r.Context(), raw)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, map[string]string{"key": key})
	}))
	a.mux.HandleFunc("GET "+adminPrefix+"/drills", a.admin(func(w http.ResponseWriter, r *http.Request) {
		limit := 50
		if v := r.URL.Query().Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				writeError(w, a.log, planb.InvalidParam("limit %q is not a number", v))
				return
			}
			limit = n
		}
		reports, err := a.ops.DrillHistory(r.Context(), limit)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, map[string]any{"drills": reports})
	}))
}

// FaultInjector breaks this node's routes on purpose for drills (see
// package faultnet). Every fault heals by itself after its duration.
type FaultInjector interface {
	Status() any
	Isolate(d time.Duration) error
	Blackhole(d time.Duration) error
	Cut(peer string, d time.Duration) error
	Slow(peer string, latency, jitter, d time.Duration) error
	Heal() error
}

// defaultFaultDuration is how long a fault holds when the request does not
// say.
const defaultFaultDuration = 5 * time.Minute

// routesFaults serves the fault endpoint. It is always routed so that a
// drill can ask whether it is enabled; it injects nothing unless the node
// was started with faults enabled.
func (a *API) routesFaults() {
	type faultReq struct {
		Peer            string `json:"peer"`
		LatencyMS       int    `json:"latency_ms"`
		JitterMS        int    `json:"jitter_ms"`
		DurationSeconds int    `json:"duration_seconds"`
	}
	enabled := func(w http.ResponseWriter) bool {
		if a.faults == nil {
			writeError(w, a.log, planb.Forbidden("the fault endpoint is turned off on this node; enable it with faults.enabled (--enable-faults)"))
			return false
		}
		return true
	}
	duration := func(req faultReq) time.Duration {
		if req.DurationSeconds == 0 {
			return defaultFaultDuration
		}
		return time.Duration(req.DurationSeconds) * time.Second
	}
	a.mux.HandleFunc("GET "+adminPrefix+"/faults", a.admin(func(w http.ResponseWriter, r *http.Request) {
		if a.faults == nil {
			writeJSON(w, 200, map[string]any{"enabled": false, "node": a.hs.Config().DataCenter,
				"reason": "faults.enabled is not set in this node's configuration"})
			return
		}
		writeJSON(w, 200, a.faults.Status())
	}))
	// inject serves POST /faults/{name}: decode, check, apply, answer with
	// the status. needPeer: the fault acts on the link to req.Peer.
	inject := func(name string, needPeer bool, apply func(req faultReq) error) {
		a.mux.HandleFunc("POST "+adminPrefix+"/faults/"+name, a.admin(func(w http.ResponseWriter, r *http.Request) {
			var req faultReq
			if err := decode(r, &req); err != nil {
				writeError(w, a.log, err)
				return
			}
			if needPeer && req.Peer == "" {
				writeError(w, a.log, planb.MissingParam("peer (the data center at the other end of the link) is required"))
				return
			}
			if !enabled(w) {
				return
			}
			if err := apply(req); err != nil {
				writeError(w, a.log, err)
				return
			}
			writeJSON(w, 200, a.faults.Status())
		}))
	}
	inject("isolate", false, func(req faultReq) error { return a.faults.Isolate(duration(req)) })
	inject("blackhole", false, func(req faultReq) error { return a.faults.Blackhole(duration(req)) })
	inject("cut", true, func(req faultReq) error { return a.faults.Cut(req.Peer, duration(req)) })
	inject("slow", true, func(req faultReq) error {
		ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
		return a.faults.Slow(req.Peer, ms(req.LatencyMS), ms(req.JitterMS), duration(req))
	})
	a.mux.HandleFunc("POST "+adminPrefix+"/faults/heal", a.admin(func(w http.ResponseWriter, r *http.Request) {
		if !enabled(w) {
			return
		}
		if err := a.faults.Heal(); err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, a.faults.Status())
	}))
}
