package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/homeserver"
	"github.com/planb-chat/planb/projection"
)

const v3 = "/_matrix/client/v3"

// roomID returns the {roomId} path value, checked.
func roomID(r *http.Request) (string, error) {
	id := r.PathValue("roomId")
	if !strings.HasPrefix(id, "!") || len(id) > planb.MaxIDLength || !strings.Contains(id, ":") {
		return "", planb.InvalidParam("invalid room ID %q", id)
	}
	return id, nil
}

func (a *API) routesRooms() {
	a.handle("POST "+v3+"/createRoom", a.createRoom)
	a.handle("POST "+v3+"/join/{roomIdOrAlias}", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		a.join(w, r, s, r.PathValue("roomIdOrAlias"))
	})
	a.handle("POST "+v3+"/rooms/{roomId}/join", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		id, err := roomID(r)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		a.join(w, r, s, id)
	})
	a.handle("POST "+v3+"/rooms/{roomId}/invite", a.member(a.hs.Invite, true))
	a.handle("POST "+v3+"/rooms/{roomId}/kick", a.member(a.hs.Kick, true))
	a.handle("POST "+v3+"/rooms/{roomId}/ban", a.member(a.hs.Ban, true))
	a.handle("POST "+v3+"/rooms/{roomId}/unban", a.member(a.hs.Unban, true))
	a.handle("POST "+v3+"/rooms/{roomId}/leave", a.member(func(ctx context.Context, s homeserver.Session, room, _, reason string) error {
		return a.hs.Leave(ctx, s, room, reason)
	}, false))
	a.handle("POST "+v3+"/rooms/{roomId}/forget", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		id, err := roomID(r)
		if err == nil {
			err = a.hs.Forget(r.Context(), s, id)
		}
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, struct{}{})
	})
	a.handle("GET "+v3+"/joined_rooms", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		rooms, err := a.hs.JoinedRooms(s)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, map[string]any{"joined_rooms": rooms})
	})
	a.routesDirectory()
	a.routesRoomRead()
	a.routesRoomWrite()
}

// memberOp changes target's membership of room.
type memberOp func(ctx context.Context, s homeserver.Session, room, target, reason string) error

// member serves the membership endpoints ({user_id, reason} bodies).
func (a *API) member(op memberOp, needTarget bool) func(http.ResponseWriter, *http.Request, homeserver.Session) {
	return func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		id, err := roomID(r)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		var body struct {
			UserID string `json:"user_id"`
			Reason string `json:"reason"`
		}
		if err := decode(r, &body); err != nil {
			writeError(w, a.log, err)
			return
		}
		if needTarget && body.UserID == "" {
			writeError(w, a.log, planb.MissingParam("user_id is required"))
			return
		}
		if err := op(r.Context(), s, id, body.UserID, body.Reason); err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, struct{}{})
	}
}

func (a *API) createRoom(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
	var req homeserver.CreateRoomRequest
	if err := decode(r, &req); err != nil {
		writeError(w, a.log, err)
		return
	}
	id, err := a.hs.CreateRoom(r.Context(), s, req)
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	writeJSON(w, 200, map[string]string{"room_id": id})
}

func (a *API) join(w http.ResponseWriter, r *http.Request, s homeserver.Session, target string) {
	var body map[string]any
	if err := decode(r, &body); err != nil {
		writeError(w, a.log, err)
		return
	}
	if len(body) > 0 {
		if b, _ := json.Marshal(body); len(b) > planb.MaxEventBytes/2 {
			writeError(w, a.log, planb.Errorf(planb.CodeTooLarge, http.StatusRequestEntityTooLarge, "join content is too large"))
			return
		}
	}
	id, err := a.hs.Join(r.Context(), s, target, body)
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	writeJSON(w, 200, map[string]string{"room_id": id})
}

func (a *API) routesDirectory() {
	a.mux.HandleFunc("GET "+v3+"/directory/room/{roomAlias}", func(w http.ResponseWriter, r *http.Request) {
		id, err := a.hs.ResolveAlias(r.Context(), r.PathValue("roomAlias"))
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, map[string]any{"room_id": id, "servers": []string{a.hs.Config().ServerName}})
	})
	a.handle("PUT "+v3+"/directory/room/{roomAlias}", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		var body struct {
			RoomID string `json:"room_id"`
		}
		if err := decode(r, &body); err != nil {
			writeError(w, a.log, err)
			return
		}
		if err := a.hs.PutAlias(r.Context(), s, r.PathValue("roomAlias"), body.RoomID); err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, struct{}{})
	})
	a.handle("DELETE "+v3+"/directory/room/{roomAlias}", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		if err := a.hs.DeleteAlias(r.Context(), s, r.PathValue("roomAlias")); err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, struct{}{})
	})
	a.handle("GET "+v3+"/rooms/{roomId}/aliases", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		id, err := roomID(r)
		var aliases []string
		if err == nil {
			aliases, err = a.hs.RoomAliases(r.Context(), s, id)
		}
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, map[string]any{"aliases": aliases})
	})
}

// roomFilter parses the filter query parameter of /messages and /context.
func roomFilter(r *http.Request) (*projection.RoomEventFilter, error) {
	f := r.URL.Query().Get("filter")
	if f == "" {
		return nil, nil
	}
	var rf projection.RoomEventFilter
	if err := json.Unmarshal([]byte(f), &rf); err != nil {
		return nil, planb.BadJSON("invalid filter: %v", err)
	}
	return &rf, nil
}

// intParam parses an integer query parameter (def when absent).
func intParam(r *http.Request, name string, def int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, planb.InvalidParam("%s must be a non-negative integer", name)
	}
	return n, nil
}

func (a *API) routesRoomRead() {
	a.handle("GET "+v3+"/rooms/{roomId}/messages", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		id, err := roomID(r)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		q := r.URL.Query()
		dir := q.Get("dir")
		if dir == "" {
			dir = "b" // as Synapse and older clients expect; the spec now requires it
		}
		if dir != "b" && dir != "f" {
			writeError(w, a.log, planb.InvalidParam("dir must be 'b' or 'f'"))
			return
		}
		limit, err := intParam(r, "limit", 10)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		f, err := roomFilter(r)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		page, err := a.hs.Messages(s, id, q.Get("from"), q.Get("to"), dir == "b", limit, f)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, page)
	})
	a.handle("GET "+v3+"/rooms/{roomId}/context/{eventId}", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		id, err := roomID(r)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		limit, err := intParam(r, "limit", 10)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		f, err := roomFilter(r)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		res, err := a.hs.EventContext(s, id, r.PathValue("eventId"), limit, f)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, res)
	})
	a.handle("GET "+v3+"/rooms/{roomId}/event/{eventId}", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		id, err := roomID(r)
		var ev *projection.ClientEvent
		if err == nil {
			ev, err = a.hs.Event(s, id, r.PathValue("eventId"))
		}
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, ev)
	})
	a.handle("GET "+v3+"/rooms/{roomId}/state", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		id, err := roomID(r)
		var st []projection.ClientEvent
		if err == nil {
			st, err = a.hs.State(s, id)
		}
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, st)
	})
	getState := func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		id, err := roomID(r)
		var ev *projection.ClientEvent
		if err == nil {
			ev, err = a.hs.StateEvent(s, id, r.PathValue("eventType"), r.PathValue("stateKey"))
		}
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		if r.URL.Query().Get("format") == "event" {
			writeJSON(w, 200, ev)
			return
		}
		writeJSON(w, 200, ev.Content)
	}
	a.handle("GET "+v3+"/rooms/{roomId}/state/{eventType}", getState)
	a.handle("GET "+v3+"/rooms/{roomId}/state/{eventType}/{stateKey...}", getState)
	a.handle("GET "+v3+"/rooms/{roomId}/members", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		id, err := roomID(r)
		var evs []projection.ClientEvent
		q := r.URL.Query()
		if err == nil {
			evs, err = a.hs.Members(s, id, q.Get("at"), q.Get("membership"), q.Get("not_membership"))
		}
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, map[string]any{"chunk": evs})
	})
	a.handle("GET "+v3+"/rooms/{roomId}/joined_members", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		id, err := roomID(r)
		var jm map[string]projection.JoinedMember
		if err == nil {
			jm, err = a.hs.JoinedMembers(s, id)
		}
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, map[string]any{"joined": jm})
	})
}

// eventWriter writes one event from a JSON object body and returns its ID.
type eventWriter func(r *http.Request, s homeserver.Session, roomID string, body json.RawMessage) (string, error)

// writeEvent serves the endpoints that write one event: {"event_id": ...}.
func (a *API) writeEvent(write eventWriter) func(http.ResponseWriter, *http.Request, homeserver.Session) {
	return func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		id, err := roomID(r)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		body, err := readObject(r)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		evID, err := write(r, s, id, body)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, map[string]string{"event_id": evID})
	}
}

func (a *API) routesRoomWrite() {
	a.handle("PUT "+v3+"/rooms/{roomId}/send/{eventType}/{txnId}", a.writeEvent(
		func(r *http.Request, s homeserver.Session, room string, body json.RawMessage) (string, error) {
			return a.hs.SendEvent(r.Context(), s, room, r.PathValue("eventType"), r.PathValue("txnId"), body)
		}))
	putState := a.writeEvent(func(r *http.Request, s homeserver.Session, room string, body json.RawMessage) (string, error) {
		return a.hs.SetState(r.Context(), s, room, r.PathValue("eventType"), r.PathValue("stateKey"), body)
	})
	a.handle("PUT "+v3+"/rooms/{roomId}/state/{eventType}", putState)
	a.handle("PUT "+v3+"/rooms/{roomId}/state/{eventType}/{stateKey...}", putState)
	a.handle("PUT "+v3+"/rooms/{roomId}/redact/{eventId}/{txnId}", a.writeEvent(
		func(r *http.Request, s homeserver.Session, room string, body json.RawMessage) (string, error) {
			return a.hs.Redact(r.Context(), s, room, r.PathValue("eventId"), r.PathValue("txnId"), body)
		}))
}

// readObject reads a JSON object body.
func readObject(r *http.Request) (json.RawMessage, error) {
	b, err := readBody(r)
	if err != nil {
		return nil, err
	}
	if err := checkObject(b); err != nil {
		return nil, err
	}
	if len(b) > planb.MaxEventBytes {
		return nil, planb.Errorf(planb.CodeTooLarge, http.StatusRequestEntityTooLarge, "event content is larger than %d bytes", planb.MaxEventBytes)
	}
	return b, nil
}
