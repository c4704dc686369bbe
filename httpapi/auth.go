package httpapi

import (
	"net/http"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/homeserver"
)

// specVersions are the client-server API versions planb serves.
var specVersions = []string{"r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10", "v1.11"}

func (a *API) routesAuth() {
	m := a.mux
	m.HandleFunc("GET /_matrix/client/versions", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"versions": specVersions, "unstable_features": map[string]bool{}})
	})
	m.HandleFunc("GET /.well-known/matrix/client", a.wellKnown)
	m.HandleFunc("GET /_matrix/client/v3/login", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"flows": []map[string]string{{"type": "m.login.password"}}})
	})
	m.HandleFunc("POST /_matrix/client/v3/login", a.login)
	m.HandleFunc("POST /_matrix/client/v3/refresh", a.refresh)
	m.HandleFunc("POST /_matrix/client/v3/register", a.register)
	m.HandleFunc("GET /_matrix/client/v3/register/available", a.available)
	a.handle("GET /_matrix/client/v3/account/whoami", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		writeJSON(w, 200, map[string]any{"user_id": s.UserID, "device_id": s.DeviceID, "is_guest": false})
	})
	a.handle("POST /_matrix/client/v3/logout", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		if err := a.hs.Logout(r.Context(), s); err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, struct{}{})
	})
	a.handle("POST /_matrix/client/v3/logout/all", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		if err := a.hs.LogoutAll(r.Context(), s.UserID, ""); err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, struct{}{})
	})
	a.handle("POST /_matrix/client/v3/account/password", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		var req homeserver.PasswordRequest
		if err := decode(r, &req); err != nil {
			writeError(w, a.log, err)
			return
		}
		if err := a.hs.ChangePassword(r.Context(), s, req); err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, struct{}{})
	})
	a.handle("POST /_matrix/client/v3/account/deactivate", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		var req struct {
			Auth *homeserver.UIAuth `json:"auth"`
		}
		if err := decode(r, &req); err != nil {
			writeError(w, a.log, err)
			return
		}
		if err := a.hs.Deactivate(r.Context(), s, req.Auth); err != nil {
			writeError(w, a.log, err)
			return
		}
		// planb binds no third-party identifiers, so there is nothing to unbind.
		writeJSON(w, 200, map[string]string{"id_server_unbind_result": "no-support"})
	})
	a.handle("GET /_matrix/client/v3/capabilities", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		writeJSON(w, 200, map[string]any{"capabilities": map[string]any{
			"m.change_password": map[string]bool{"enabled": true},
			"m.room_versions": map[string]any{"default": homeserver.DefaultRoomVersion,
				"available": map[string]string{homeserver.DefaultRoomVersion: "stable"}},
			"m.set_displayname": map[string]bool{"enabled": true},
			"m.set_avatar_url":  map[string]bool{"enabled": true},
			"m.3pid_changes":    map[string]bool{"enabled": false},
		}})
	})
	a.handle("GET /_matrix/client/v3/devices", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		devs, err := a.hs.Devices(r.Context(), s.UserID)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, map[string]any{"devices": devs})
	})
	a.handle("GET /_matrix/client/v3/devices/{deviceId}", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		d, err := a.hs.Device(r.Context(), s.UserID, r.PathValue("deviceId"))
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, d)
	})
	a.handle("PUT /_matrix/client/v3/devices/{deviceId}", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		var req struct {
			DisplayName *string `json:"display_name"`
		}
		if err := decode(r, &req); err != nil {
			writeError(w, a.log, err)
			return
		}
		var err error
		if req.DisplayName != nil {
			err = a.hs.RenameDevice(r.Context(), s.UserID, r.PathValue("deviceId"), *req.DisplayName)
		} else {
			_, err = a.hs.Device(r.Context(), s.UserID, r.PathValue("deviceId")) // nothing to change; 404 if none
		}
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, struct{}{})
	})
	a.handle("DELETE /_matrix/client/v3/devices/{deviceId}", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		var req struct {
			Auth *homeserver.UIAuth `json:"auth"`
		}
		if err := decode(r, &req); err != nil {
			writeError(w, a.log, err)
			return
		}
		id := r.PathValue("deviceId")
		if _, err := a.hs.Device(r.Context(), s.UserID, id); err != nil {
			writeError(w, a.log, err) // 404 before asking for the password
			return
		}
		if err := a.hs.DeleteDevices(r.Context(), s, []string{id}, req.Auth); err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, struct{}{})
	})
	a.handle("POST /_matrix/client/v3/delete_devices", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		var req struct {
			Devices *[]string          `json:"devices"`
			Auth    *homeserver.UIAuth `json:"auth"`
		}
		if err := decode(r, &req); err != nil {
			writeError(w, a.log, err)
			return
		}
		if req.Devices == nil {
			writeError(w, a.log, planb.MissingParam("devices is required"))
			return
		}
		if err := a.hs.DeleteDevices(r.Context(), s, *req.Devices, req.Auth); err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, struct{}{})
	})
}

// wellKnown tells clients this node's URL and every data center's, so that
// planb's own clients can fail over (org.planb.datacenters).
func (a *API) wellKnown(w http.ResponseWriter, r *http.Request) {
	cfg := a.hs.Config()
	base := cfg.PublicBaseURL
	if base == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		base = scheme + "://" + r.Host
	}
	dcs := cfg.Endpoints
	if len(dcs) == 0 {
		dcs = []homeserver.Endpoint{{Name: cfg.DataCenter, BaseURL: base}}
	}
	writeJSON(w, 200, map[string]any{"m.homeserver": map[string]string{"base_url": base}, "org.planb.datacenters": dcs})
}

func (a *API) rateLimited(w http.ResponseWriter, r *http.Request) bool {
	if ok, wait := a.limiter.allow(clientIP(r)); !ok {
		writeError(w, a.log, planb.LimitExceeded(wait))
		return true
	}
	return false
}

func (a *API) login(w http.ResponseWriter, r *http.Request) {
	if a.rateLimited(w, r) {
		return
	}
	var req homeserver.LoginRequest
	if err := decode(r, &req); err != nil {
		writeError(w, a.log, err)
		return
	}
	resp, err := a.hs.Login(r.Context(), req)
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	writeJSON(w, 200, resp)
}

// refresh exchanges a refresh token (POST /refresh; no access token: the
// old one may have expired).
func (a *API) refresh(w http.ResponseWriter, r *http.Request) {
	if a.rateLimited(w, r) {
		return
	}
	var req struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := decode(r, &req); err != nil {
		writeError(w, a.log, err)
		return
	}
	resp, err := a.hs.Refresh(r.Context(), req.RefreshToken)
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	writeJSON(w, 200, resp)
}

func (a *API) register(w http.ResponseWriter, r *http.Request) {
	if kind := r.URL.Query().Get("kind"); kind == "guest" {
		writeError(w, a.log, planb.Errorf(planb.CodeGuestAccess, 403, "guest access is not enabled"))
		return
	}
	var req homeserver.RegisterRequest
	if err := decode(r, &req); err != nil {
		writeError(w, a.log, err)
		return
	}
	// The first leg of user-interactive auth costs nothing; limit the rest.
	if len(req.Auth) > 0 && a.rateLimited(w, r) {
		return
	}
	resp, err := a.hs.Register(r.Context(), req)
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	writeJSON(w, 200, resp)
}

func (a *API) available(w http.ResponseWriter, r *http.Request) {
	if a.rateLimited(w, r) {
		return
	}
	if err := a.hs.UsernameAvailable(r.Context(), r.URL.Query().Get("username")); err != nil {
		writeError(w, a.log, err)
		return
	}
	writeJSON(w, 200, map[string]bool{"available": true})
}
