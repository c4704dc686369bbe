package httpapi

import (
	"net/http"

	"github.com/planb-chat/planb/homeserver"
)

// routesPushers registers GET /pushers and POST /pushers/set.
func (a *API) routesPushers() {
	a.handle("GET "+v3+"/pushers", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		ps, err := a.hs.Pushers(r.Context(), s)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, map[string]any{"pushers": ps})
	})
	a.handle("POST "+v3+"/pushers/set", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		body, err := readObject(r)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		if err := a.hs.SetPusher(r.Context(), s, body); err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, struct{}{})
	})
}
