package httpapi

import (
	"encoding/json"
	"net/http"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/homeserver"
)

// maxKeyQueryUsers bounds the users of one /keys/query or /keys/claim.
const maxKeyQueryUsers = 1000

// routesKeys serves the end-to-end encryption key endpoints.
func (a *API) routesKeys() {
	a.handle("POST "+v3+"/keys/upload", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		var req homeserver.KeysUploadRequest
		if err := decode(r, &req); err != nil {
			writeError(w, a.log, err)
			return
		}
		counts, err := a.hs.UploadKeys(r.Context(), s, req)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		if _, ok := counts["signed_curve25519"]; !ok {
			counts["signed_curve25519"] = 0 // clients look for it
		}
		writeJSON(w, 200, map[string]any{"one_time_key_counts": counts})
	})
	a.handle("POST "+v3+"/keys/query", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		var req struct {
			DeviceKeys map[string][]string `json:"device_keys"`
		}
		if err := decode(r, &req); err != nil {
			writeError(w, a.log, err)
			return
		}
		if req.DeviceKeys == nil {
			writeError(w, a.log, planb.MissingParam("device_keys is required"))
			return
		}
		if len(req.DeviceKeys) > maxKeyQueryUsers {
			writeError(w, a.log, planb.InvalidParam("at most %d users at once", maxKeyQueryUsers))
			return
		}
		keys, err := a.hs.QueryKeys(r.Context(), req.DeviceKeys)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		users := make([]string, 0, len(req.DeviceKeys))
		for u := range req.DeviceKeys {
			users = append(users, u)
		}
		cross, err := a.hs.CrossSigningKeys(r.Context(), s.UserID, users)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		out := map[string]any{"device_keys": keys, "failures": map[string]any{}}
		for k, v := range cross {
			out[k] = v
		}
		writeJSON(w, 200, out)
	})
	a.handle("POST "+v3+"/keys/claim", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		var req struct {
			OneTimeKeys map[string]map[string]string `json:"one_time_keys"`
		}
		if err := decode(r, &req); err != nil {
			writeError(w, a.log, err)
			return
		}
		if req.OneTimeKeys == nil {
			writeError(w, a.log, planb.MissingParam("one_time_keys is required"))
			return
		}
		if len(req.OneTimeKeys) > maxKeyQueryUsers {
			writeError(w, a.log, planb.InvalidParam("at most %d users at once", maxKeyQueryUsers))
			return
		}
		keys, err := a.hs.ClaimKeys(r.Context(), req.OneTimeKeys)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, map[string]any{"one_time_keys": keys, "failures": map[string]json.RawMessage{}})
	})
	a.handle("GET "+v3+"/keys/changes", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		q := r.URL.Query()
		if q.Get("from") == "" || q.Get("to") == "" {
			writeError(w, a.log, planb.MissingParam("from and to are required"))
			return
		}
		changed, left, err := a.hs.KeyChanges(s, q.Get("from"), q.Get("to"))
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, map[string]any{"changed": changed, "left": left})
	})
	a.handle("PUT "+v3+"/sendToDevice/{eventType}/{txnId}", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		var req struct {
			Messages map[string]map[string]json.RawMessage `json:"messages"`
		}
		if err := decode(r, &req); err != nil {
			writeError(w, a.log, err)
			return
		}
		if req.Messages == nil {
			writeError(w, a.log, planb.MissingParam("messages is required"))
			return
		}
		if err := a.hs.SendToDevice(r.Context(), s, r.PathValue("eventType"), r.PathValue("txnId"), req.Messages); err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, struct{}{})
	})
	a.handle("POST "+v3+"/keys/device_signing/upload", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		var req map[string]json.RawMessage
		if err := decode(r, &req); err != nil {
			writeError(w, a.log, err)
			return
		}
		var auth *homeserver.UIAuth
		if raw, ok := req["auth"]; ok && string(raw) != "null" {
			auth = new(homeserver.UIAuth)
			if err := json.Unmarshal(raw, auth); err != nil {
				writeError(w, a.log, planb.BadJSON("auth has the wrong shape: %v", err))
				return
			}
		}
		if err := a.hs.UploadCrossSigningKeys(r.Context(), s, req, auth); err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, struct{}{})
	})
	a.handle("POST "+v3+"/keys/signatures/upload", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		var req map[string]map[string]json.RawMessage
		if err := decode(r, &req); err != nil {
			writeError(w, a.log, err)
			return
		}
		failures, err := a.hs.UploadSignatures(r.Context(), s, req)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, map[string]any{"failures": failures})
	})
}
