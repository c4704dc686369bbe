package httpapi

import (
	"net/http"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/homeserver"
)

// routesBackup serves server-side key backup (/room_keys).
func (a *API) routesBackup() {
	a.handle("POST "+v3+"/room_keys/version", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		var m homeserver.BackupMeta
		if err := decode(r, &m); err != nil {
			writeError(w, a.log, err)
			return
		}
		v, err := a.hs.CreateBackupVersion(r.Context(), s, m)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, map[string]string{"version": v})
	})
	getVersion := func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		v, err := a.hs.BackupVersionInfo(r.Context(), s, r.PathValue("version"))
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, v)
	}
	a.handle("GET "+v3+"/room_keys/version", getVersion)
	a.handle("GET "+v3+"/room_keys/version/{version}", getVersion)
	a.handle("PUT "+v3+"/room_keys/version/{version}", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		var body struct {
			homeserver.BackupMeta
			Version string `json:"version"`
		}
		if err := decode(r, &body); err != nil {
			writeError(w, a.log, err)
			return
		}
		if err := a.hs.UpdateBackupVersion(r.Context(), s, r.PathValue("version"), body.Version, body.BackupMeta); err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, struct{}{})
	})
	a.handle("DELETE "+v3+"/room_keys/version/{version}", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		if err := a.hs.DeleteBackupVersion(r.Context(), s, r.PathValue("version")); err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, struct{}{})
	})

	// The keys: all of them, one room's, or one session's.
	put := func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		room, session := r.PathValue("roomId"), r.PathValue("sessionId")
		keys := homeserver.RoomKeys{}
		var err error
		switch {
		case session != "":
			var k homeserver.KeyBackupData
			err = decode(r, &k)
			keys[room] = map[string]homeserver.KeyBackupData{session: k}
		case room != "":
			var body struct {
				Sessions map[string]homeserver.KeyBackupData `json:"sessions"`
			}
			err = decode(r, &body)
			if err == nil && body.Sessions == nil {
				err = planb.MissingParam("sessions is required")
			}
			keys[room] = body.Sessions
		default:
			var body struct {
				Rooms map[string]struct {
					Sessions map[string]homeserver.KeyBackupData `json:"sessions"`
				} `json:"rooms"`
			}
			err = decode(r, &body)
			if err == nil && body.Rooms == nil {
				err = planb.MissingParam("rooms is required")
			}
			for id, rk := range body.Rooms {
				keys[id] = rk.Sessions
			}
		}
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		u, err := a.hs.PutBackupKeys(r.Context(), s, r.URL.Query().Get("version"), keys)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, u)
	}
	get := func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		version, room, session := r.URL.Query().Get("version"), r.PathValue("roomId"), r.PathValue("sessionId")
		if session != "" {
			k, err := a.hs.BackupKey(r.Context(), s, version, room, session)
			if err != nil {
				writeError(w, a.log, err)
				return
			}
			writeJSON(w, 200, k)
			return
		}
		keys, err := a.hs.BackupKeys(r.Context(), s, version, room)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		if room != "" {
			sessions := keys[room]
			if sessions == nil {
				sessions = map[string]homeserver.KeyBackupData{}
			}
			writeJSON(w, 200, map[string]any{"sessions": sessions})
			return
		}
		rooms := map[string]any{}
		for id, sessions := range keys {
			rooms[id] = map[string]any{"sessions": sessions}
		}
		writeJSON(w, 200, map[string]any{"rooms": rooms})
	}
	del := func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		u, err := a.hs.DeleteBackupKeys(r.Context(), s, r.URL.Query().Get("version"), r.PathValue("roomId"), r.PathValue("sessionId"))
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, u)
	}
	for _, p := range []string{"/room_keys/keys", "/room_keys/keys/{roomId}", "/room_keys/keys/{roomId}/{sessionId}"} {
		a.handle("PUT "+v3+p, put)
		a.handle("GET "+v3+p, get)
		a.handle("DELETE "+v3+p, del)
	}
}
