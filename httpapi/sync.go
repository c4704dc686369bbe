package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
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
	a.routesTags()
	a.routesProfile()
	a.routesEphemeral()
	a.routesPresence()
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
	default:
		writeError(w, a.log, planb.InvalidParam("set_presence must be online, offline or unavailable"))
		return
	}
	resp, wait, err := a.hs.SyncStart(r.Context(), s, homeserver.SyncParams{Since: q.Get("since"),
		Timeout: time.Duration(timeout) * time.Millisecond, FullState: fullState, Filter: q.Get("filter"),
		SetPresence: q.Get("set_presence")})
	if err == nil && resp == nil {
		if a.park(w, r, wait) {
			return
		}
		resp, err = wait.Block(r.Context())
	}
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	writeJSON(w, 200, resp)
}

// park answers a /sync long-poll that has to wait without keeping its
// request goroutine: it takes the connection over from net/http (HTTP/1.x
// only) and waits in a small goroutine of its own, then writes the answer
// and closes the connection. A waiting request in net/http holds two
// goroutines (one grown to serve the request), a 4 KiB read buffer, a
// 4 KiB write buffer and a 2 KiB response buffer; parked, a wait holds a
// fresh goroutine, the connection and the sync request, so a node holds
// many more idle clients in the same memory (see docs/benchmarks.md). The
// price is one new connection per long-poll that waited; clients reconnect
// on "Connection: close" on their own.
//
// A parked wait does not notice a client that went away before it answers
// (at the latest at the client's timeout; writing then fails harmlessly).
// park returns false, and the caller waits as usual, when the connection
// cannot be taken over (HTTP/2, or a wrapper that does not allow it).
func (a *API) park(w http.ResponseWriter, r *http.Request, wait *homeserver.SyncWait) bool {
	if r.ProtoMajor != 1 {
		return false
	}
	header := w.Header().Clone()
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return false
	}
	// Nothing of the request or its buffers is kept: only the connection,
	// the wait and the header.
	go a.parked(conn, wait, header)
	return true
}

// parked waits for the parked long-poll's answer and writes it.
func (a *API) parked(conn net.Conn, wait *homeserver.SyncWait, header http.Header) {
	defer conn.Close()
	// The one wait loop (SyncWait.Block); a parked wait has no request
	// context, so it ends at the long-poll's deadline at the latest.
	resp, err := wait.Block(context.Background())
	if err != nil {
		a.log.Error("parked sync", "err", err)
		return
	}
	body, err := json.Marshal(resp)
	if err != nil {
		a.log.Error("encode parked sync answer", "err", err)
		return
	}
	header.Set("Content-Type", "application/json")
	header.Set("Content-Length", strconv.Itoa(len(body)+1))
	header.Set("Connection", "close")
	header.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	var buf bytes.Buffer
	buf.Grow(len(body) + 512)
	buf.WriteString("HTTP/1.1 200 OK\r\n")
	_ = header.Write(&buf)
	buf.WriteString("\r\n")
	buf.Write(body)
	buf.WriteByte('\n') // as json.Encoder writes it for the other answers
	_ = conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	_, _ = conn.Write(buf.Bytes()) // a client that left gets nothing; nothing to do
}

// Unwrap lets http.ResponseController reach the connection beneath the
// metrics wrapper (for park).
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

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
			ThreadID json.RawMessage `json:"thread_id"`
		}
		if err := decode(r, &body); err != nil {
			writeError(w, a.log, err)
			return
		}
		thread, err := receiptThread(body.ThreadID)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		if err := a.hs.SendReceipt(r.Context(), s, id, r.PathValue("receiptType"), r.PathValue("eventId"), thread); err != nil {
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

// routesTags serves the room tagging module.
func (a *API) routesTags() {
	a.handle("GET "+v3+"/user/{userId}/rooms/{roomId}/tags", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		tags, err := a.hs.Tags(s, r.PathValue("userId"), r.PathValue("roomId"))
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, map[string]any{"tags": tags})
	})
	a.handle("PUT "+v3+"/user/{userId}/rooms/{roomId}/tags/{tag}", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		body, err := readObject(r)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		if err := a.hs.SetTag(r.Context(), s, r.PathValue("userId"), r.PathValue("roomId"), r.PathValue("tag"), body); err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, struct{}{})
	})
	a.handle("DELETE "+v3+"/user/{userId}/rooms/{roomId}/tags/{tag}", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		if err := a.hs.SetTag(r.Context(), s, r.PathValue("userId"), r.PathValue("roomId"), r.PathValue("tag"), nil); err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, struct{}{})
	})
}

// receiptThread reads a receipt's thread_id: "" when absent (unthreaded),
// else a non-empty string (M_INVALID_PARAM otherwise, as the spec says).
func receiptThread(raw json.RawMessage) (string, error) {
	if raw == nil {
		return "", nil
	}
	var t string
	if json.Unmarshal(raw, &t) != nil || t == "" {
		return "", planb.InvalidParam("thread_id field must be a non-empty string")
	}
	return t, nil
}
