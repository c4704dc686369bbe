package httpapi

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/homeserver"
)

func (a *API) routesSync() {
	a.handle("GET "+v3+"/sync", a.sync)
	a.handle("POST "+v3+"/user/{userId}/filter", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		body, err := readObject(r)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		id, err := a.hs.CreateFilter(r.Context(), s, r.PathValue("userId"), body)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, map[string]string{"filter_id": id})
	})
	a.handle("GET "+v3+"/user/{userId}/filter/{filterId}", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		f, err := a.hs.Filter(r.Context(), s, r.PathValue("userId"), r.PathValue("filterId"))
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, f)
	})
	putData := func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		body, err := readObject(r)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		if err := a.hs.SetAccountData(r.Context(), s, r.PathValue("userId"), r.PathValue("roomId"), r.PathValue("type"), body); err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, struct{}{})
	}
	getData := func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		c, err := a.hs.AccountData(s, r.PathValue("userId"), r.PathValue("roomId"), r.PathValue("type"))
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, c)
	}
	a.handle("PUT "+v3+"/user/{userId}/account_data/{type}", putData)
	a.handle("GET "+v3+"/user/{userId}/account_data/{type}", getData)
	a.handle("PUT "+v3+"/user/{userId}/rooms/{roomId}/account_data/{type}", putData)
	a.handle("GET "+v3+"/user/{userId}/rooms/{roomId}/account_data/{type}", getData)
	a.handle("GET "+v3+"/pushrules/", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		writeJSON(w, 200, map[string]any{"global": defaultPushRules(s.UserID)})
	})
	a.handle("GET "+v3+"/pushrules/global/", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		writeJSON(w, 200, defaultPushRules(s.UserID))
	})
	a.routesProfile()
	a.routesEphemeral()
}

func (a *API) sync(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
	q := r.URL.Query()
	timeout, err := intParam(r, "timeout", 0)
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	fullState := false
	switch q.Get("full_state") {
	case "", "false":
	case "true":
		fullState = true
	default:
		writeError(w, a.log, planb.InvalidParam("full_state must be true or false"))
		return
	}
	switch q.Get("set_presence") {
	case "", "online", "offline", "unavailable":
		// Presence is accepted but not yet published (see README).
	default:
		writeError(w, a.log, planb.InvalidParam("set_presence must be online, offline or unavailable"))
		return
	}
	resp, err := a.hs.Sync(r.Context(), s, homeserver.SyncParams{Since: q.Get("since"),
		Timeout: time.Duration(timeout) * time.Millisecond, FullState: fullState, Filter: q.Get("filter")})
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	writeJSON(w, 200, resp)
}

func (a *API) routesProfile() {
	a.mux.HandleFunc("GET "+v3+"/profile/{userId}", func(w http.ResponseWriter, r *http.Request) {
		dn, av, err := a.hs.Profile(r.Context(), r.PathValue("userId"))
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		out := map[string]string{}
		if dn != "" {
			out["displayname"] = dn
		}
		if av != "" {
			out["avatar_url"] = av
		}
		writeJSON(w, 200, out)
	})
	for _, field := range []string{"displayname", "avatar_url"} {
		a.mux.HandleFunc("GET "+v3+"/profile/{userId}/"+field, func(w http.ResponseWriter, r *http.Request) {
			dn, av, err := a.hs.Profile(r.Context(), r.PathValue("userId"))
			if err != nil {
				writeError(w, a.log, err)
				return
			}
			v := dn
			if field == "avatar_url" {
				v = av
			}
			if v == "" {
				writeError(w, a.log, planb.NotFound("no %s set", field))
				return
			}
			writeJSON(w, 200, map[string]string{field: v})
		})
		a.handle("PUT "+v3+"/profile/{userId}/"+field, func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
			var body map[string]json.RawMessage
			if err := decode(r, &body); err != nil {
				writeError(w, a.log, err)
				return
			}
			var v string
			if raw, ok := body[field]; ok {
				if err := json.Unmarshal(raw, &v); err != nil {
					writeError(w, a.log, planb.BadJSON("%s must be a string", field))
					return
				}
			}
			if err := a.hs.SetProfile(r.Context(), s, r.PathValue("userId"), field, v); err != nil {
				writeError(w, a.log, err)
				return
			}
			writeJSON(w, 200, struct{}{})
		})
	}
}

func (a *API) routesEphemeral() {
	a.handle("POST "+v3+"/rooms/{roomId}/receipt/{receiptType}/{eventId}", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		id, err := roomID(r)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		var body struct {
			ThreadID string `json:"thread_id"`
		}
		if err := decode(r, &body); err != nil {
			writeError(w, a.log, err)
			return
		}
		if err := a.hs.SendReceipt(r.Context(), s, id, r.PathValue("receiptType"), r.PathValue("eventId"), body.ThreadID); err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, struct{}{})
	})
	a.handle("POST "+v3+"/rooms/{roomId}/read_markers", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		id, err := roomID(r)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		var body struct {
			FullyRead   string `json:"m.fully_read"`
			Read        string `json:"m.read"`
			ReadPrivate string `json:"m.read.private"`
		}
		if err := decode(r, &body); err != nil {
			writeError(w, a.log, err)
			return
		}
		if err := a.hs.SetReadMarkers(r.Context(), s, id, body.FullyRead, body.Read, body.ReadPrivate); err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, struct{}{})
	})
	a.handle("PUT "+v3+"/rooms/{roomId}/typing/{userId}", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		id, err := roomID(r)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		var body struct {
			Typing  *bool `json:"typing"`
			Timeout int64 `json:"timeout"`
		}
		if err := decode(r, &body); err != nil {
			writeError(w, a.log, err)
			return
		}
		if body.Typing == nil {
			writeError(w, a.log, planb.MissingParam("typing is required"))
			return
		}
		err = a.hs.SetTyping(s, id, r.PathValue("userId"), *body.Typing, time.Duration(body.Timeout)*time.Millisecond)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, struct{}{})
	})
}
