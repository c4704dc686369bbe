package httpapi

import (
	"encoding/json"
	"net/http"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/homeserver"
	"github.com/planb-chat/planb/pushrules"
)

// routesPush registers the push rules (client-server API, "Push
// Notifications"). Only the global scope exists.
func (a *API) routesPush() {
	const rules = v3 + "/pushrules/global"
	const rule = rules + "/{kind}/{ruleId}"
	a.handle("GET "+v3+"/pushrules/{$}", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		rs, err := a.hs.PushRules(s)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, map[string]any{"global": rs})
	})
	a.handle("GET "+rules+"/{$}", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		rs, err := a.hs.PushRules(s)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, rs)
	})
	a.handle("GET "+rules+"/{kind}/{$}", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		kind := r.PathValue("kind")
		if err := pushrules.CheckKind(kind); err != nil {
			writeError(w, a.log, err)
			return
		}
		rs, err := a.hs.PushRules(s)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		list := rs[kind]
		if list == nil {
			list = []pushrules.Rule{}
		}
		writeJSON(w, 200, list)
	})
	a.handle("GET "+rule, a.pushRule(func(w http.ResponseWriter, rl pushrules.Rule) { writeJSON(w, 200, rl) }))
	a.handle("GET "+rule+"/enabled", a.pushRule(func(w http.ResponseWriter, rl pushrules.Rule) {
		writeJSON(w, 200, map[string]bool{"enabled": rl.Enabled})
	}))
	a.handle("GET "+rule+"/actions", a.pushRule(func(w http.ResponseWriter, rl pushrules.Rule) {
		writeJSON(w, 200, map[string]json.RawMessage{"actions": rl.Actions})
	}))
	a.handle("PUT "+rule, a.editPushRule(func(r *http.Request, s homeserver.Session, kind, id string, body json.RawMessage) error {
		q := r.URL.Query()
		return a.hs.SetPushRule(r.Context(), s, kind, id, q.Get("before"), q.Get("after"), body)
	}))
	a.handle("DELETE "+rule, func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		if err := a.hs.DeletePushRule(r.Context(), s, r.PathValue("kind"), r.PathValue("ruleId")); err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, struct{}{})
	})
	a.handle("PUT "+rule+"/enabled", a.editPushRule(func(r *http.Request, s homeserver.Session, kind, id string, body json.RawMessage) error {
		var req map[string]json.RawMessage
		_ = json.Unmarshal(body, &req) // an object: readObject checked
		v, ok := req["enabled"]
		if !ok {
			return planb.MissingParam("enabled is required")
		}
		var enabled bool
		if err := json.Unmarshal(v, &enabled); err != nil || string(v) == "null" {
			return planb.InvalidParam("enabled must be true or false")
		}
		return a.hs.SetPushRuleEnabled(r.Context(), s, kind, id, enabled)
	}))
	a.handle("PUT "+rule+"/actions", a.editPushRule(func(r *http.Request, s homeserver.Session, kind, id string, body json.RawMessage) error {
		var req map[string]json.RawMessage
		_ = json.Unmarshal(body, &req) // an object: readObject checked
		v, ok := req["actions"]
		if !ok {
			return planb.MissingParam("actions is required")
		}
		return a.hs.SetPushRuleActions(r.Context(), s, kind, id, v)
	}))
}

// pushRule answers a read of one rule with out.
func (a *API) pushRule(out func(http.ResponseWriter, pushrules.Rule)) func(http.ResponseWriter, *http.Request, homeserver.Session) {
	return func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		rl, err := a.hs.PushRule(s, r.PathValue("kind"), r.PathValue("ruleId"))
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		out(w, rl)
	}
}

// editPushRule answers a write of one rule with a JSON object body.
func (a *API) editPushRule(edit func(r *http.Request, s homeserver.Session, kind, id string, body json.RawMessage) error) func(http.ResponseWriter, *http.Request, homeserver.Session) {
	return func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		body, err := readObject(r)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		if err := edit(r, s, r.PathValue("kind"), r.PathValue("ruleId"), body); err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, struct{}{})
	}
}
