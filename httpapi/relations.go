package httpapi

import (
	"net/http"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/homeserver"
	"github.com/planb-chat/planb/projection"
)

const clientV1 = "/_matrix/client/v1"

// routesRelations registers the event relationship and thread endpoints.
func (a *API) routesRelations() {
	rel := a.relations
	a.handle("GET "+clientV1+"/rooms/{roomId}/relations/{eventId}", rel)
	a.handle("GET "+clientV1+"/rooms/{roomId}/relations/{eventId}/{relType}", rel)
	a.handle("GET "+clientV1+"/rooms/{roomId}/relations/{eventId}/{relType}/{eventType}", rel)
	a.handle("GET "+clientV1+"/rooms/{roomId}/threads", a.threads)
}

func (a *API) relations(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
	q, err := relationsQuery(r)
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	page, err := a.hs.Relations(s, q)
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	writeJSON(w, 200, page)
}

// relationsQuery decodes a /relations request.
func relationsQuery(r *http.Request) (projection.RelationsQuery, error) {
	id, err := roomID(r)
	if err != nil {
		return projection.RelationsQuery{}, err
	}
	q := r.URL.Query()
	dir := q.Get("dir")
	if dir == "" {
		dir = "b"
	}
	if dir != "b" && dir != "f" {
		return projection.RelationsQuery{}, planb.InvalidParam("dir must be 'b' or 'f'")
	}
	limit, err := intParam(r, "limit", 0)
	if err != nil {
		return projection.RelationsQuery{}, err
	}
	rq := projection.RelationsQuery{RoomID: id, EventID: r.PathValue("eventId"), RelType: r.PathValue("relType"),
		EventType: r.PathValue("eventType"), From: q.Get("from"), To: q.Get("to"), Backwards: dir == "b", Limit: limit}
	switch v := q.Get("recurse"); v {
	case "":
	case "true", "false":
		b := v == "true"
		rq.Recurse = &b
	default:
		return projection.RelationsQuery{}, planb.InvalidParam("recurse must be true or false")
	}
	return rq, nil
}

func (a *API) threads(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
	id, err := roomID(r)
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	q := r.URL.Query()
	include := q.Get("include")
	if include != "" && include != "all" && include != "participated" {
		writeError(w, a.log, planb.InvalidParam("include must be 'all' or 'participated'"))
		return
	}
	limit := 0
	if q.Has("limit") {
		if limit, err = intParam(r, "limit", 0); err == nil && limit == 0 {
			err = planb.InvalidParam("limit must be greater than zero")
		}
		if err != nil {
			writeError(w, a.log, err)
			return
		}
	}
	page, err := a.hs.Threads(s, id, q.Get("from"), include == "participated", limit)
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	writeJSON(w, 200, page)
}
