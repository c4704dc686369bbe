package httpapi

import (
	"net/http"

	"github.com/planb-chat/planb/homeserver"
)

// routesPushers registers GET /pushers, POST /pushers/set and GET
// /notifications.
func (a *API) routesPushers() {
	a.handle("GET "+v3+"/notifications", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		limit, err := intParam(r, "limit", 20)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		q := r.URL.Query()
		page, err := a.hs.Notifications(s, q.Get("from"), limit, q.Get("only"))
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, page)
	})
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
