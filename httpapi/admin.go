package httpapi

import (
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/planb-chat/planb"
)

// adminPrefix is the root of planb's own admin API, served by every node.
const adminPrefix = "/_planb/admin/v1"

func (a *API) routesAdmin() {
	a.mux.HandleFunc("GET "+adminPrefix+"/status", a.admin(func(w http.ResponseWriter, r *http.Request) {
		st, err := a.hs.ClusterStatus(r.Context())
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, st)
	}))
	a.mux.HandleFunc("POST "+adminPrefix+"/drain", a.admin(func(w http.ResponseWriter, r *http.Request) {
		rep, err := a.hs.Drain(r.Context())
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, rep)
	}))
	a.mux.HandleFunc("POST "+adminPrefix+"/rebalance", a.admin(func(w http.ResponseWriter, r *http.Request) {
		rep, err := a.hs.Rebalance(r.Context())
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, rep)
	}))
	a.mux.HandleFunc("POST "+adminPrefix+"/undrain", a.admin(func(w http.ResponseWriter, r *http.Request) {
		a.hs.Undrain()
		writeJSON(w, 200, struct{}{})
	}))
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
