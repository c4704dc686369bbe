package httpapi

import (
	"net/http"
	"strconv"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/homeserver"
)

// routesPublicDirectories registers the user directory search and the
// published room directory (users.yaml, list_public_rooms.yaml). The
// room directory's reads need no access token, as the spec has it.
func (a *API) routesPublicDirectories() {
	a.handle("POST "+v3+"/user_directory/search", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		var body struct {
			SearchTerm *string `json:"search_term"`
			Limit      int     `json:"limit"`
		}
		if err := decode(r, &body); err != nil {
			writeError(w, a.log, err)
			return
		}
		if body.SearchTerm == nil {
			writeError(w, a.log, planb.MissingParam("search_term is required"))
			return
		}
		res, err := a.hs.SearchUsers(s, *body.SearchTerm, body.Limit)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, res)
	})
	a.mux.HandleFunc("GET "+v3+"/publicRooms", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		req := homeserver.PublicRoomsRequest{Since: q.Get("since"), Server: q.Get("server")}
		if l := q.Get("limit"); l != "" {
			n, err := strconv.Atoi(l)
			if err != nil {
				writeError(w, a.log, planb.InvalidParam("limit must be an integer"))
				return
			}
			req.Limit = n
		}
		a.publicRooms(w, req)
	})
	a.handle("POST "+v3+"/publicRooms", func(w http.ResponseWriter, r *http.Request, _ homeserver.Session) {
		var req homeserver.PublicRoomsRequest
		if err := decode(r, &req); err != nil {
			writeError(w, a.log, err)
			return
		}
		req.Server = r.URL.Query().Get("server")
		a.publicRooms(w, req)
	})
	a.mux.HandleFunc("GET "+v3+"/directory/list/room/{roomId}", func(w http.ResponseWriter, r *http.Request) {
		id, err := roomID(r)
		var vis string
		if err == nil {
			vis, err = a.hs.RoomVisibility(id)
		}
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, map[string]string{"visibility": vis})
	})
	a.handle("PUT "+v3+"/directory/list/room/{roomId}", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		id, err := roomID(r)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		var body struct {
			Visibility string `json:"visibility"`
		}
		if err := decode(r, &body); err != nil {
			writeError(w, a.log, err)
			return
		}
		if err := a.hs.SetRoomVisibility(r.Context(), s, id, body.Visibility); err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, struct{}{})
	})
}

func (a *API) publicRooms(w http.ResponseWriter, req homeserver.PublicRoomsRequest) {
	res, err := a.hs.PublicRooms(req)
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	writeJSON(w, 200, res)
}
