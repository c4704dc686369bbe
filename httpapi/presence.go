package httpapi

import (
	"net/http"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/homeserver"
)

// routesPresence registers PUT and GET /presence/{userId}/status. The
// presence section of /sync is the sync's (see sync.go).
func (a *API) routesPresence() {
	a.handle("PUT "+v3+"/presence/{userId}/status", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		var body struct {
			Presence  *string `json:"presence"`
			StatusMsg *string `json:"status_msg"` // null or absent: none
		}
		if err := decode(r, &body); err != nil {
			writeError(w, a.log, err)
			return
		}
		if body.Presence == nil {
			writeError(w, a.log, planb.MissingParam("presence is required"))
			return
		}
		var msg string
		if body.StatusMsg != nil {
			msg = *body.StatusMsg
		}
		if err := a.hs.SetPresence(r.Context(), s, r.PathValue("userId"), *body.Presence, msg); err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, struct{}{})
	})
	a.handle("GET "+v3+"/presence/{userId}/status", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		c, err := a.hs.Presence(r.Context(), s, r.PathValue("userId"))
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, c)
	})
}
