package httpapi

import (
	"net/http"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/homeserver"
	"github.com/planb-chat/planb/projection"
)

// searchBody is the body of POST /search.
type searchBody struct {
	Categories *struct {
		RoomEvents *struct {
			SearchTerm   *string                     `json:"search_term"`
			Keys         []string                    `json:"keys"`
			Filter       *projection.RoomEventFilter `json:"filter"`
			OrderBy      string                      `json:"order_by"`
			EventContext *struct {
				Before         *int `json:"before_limit"`
				After          *int `json:"after_limit"`
				IncludeProfile bool `json:"include_profile"`
			} `json:"event_context"`
			IncludeState bool `json:"include_state"`
			Groupings    *struct {
				GroupBy []struct {
					Key string `json:"key"`
				} `json:"group_by"`
			} `json:"groupings"`
		} `json:"room_events"`
	} `json:"search_categories"`
}

func (a *API) routesSearch() {
	a.handle("POST "+v3+"/search", a.search)
}

func (a *API) search(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
	var body searchBody
	if err := decode(r, &body); err != nil {
		writeError(w, a.log, err)
		return
	}
	if body.Categories == nil {
		writeError(w, a.log, planb.BadJSON("search_categories is required"))
		return
	}
	re := body.Categories.RoomEvents
	if re == nil {
		// room_events is the only category; none asked for, none searched.
		writeJSON(w, 200, map[string]any{"search_categories": struct{}{}})
		return
	}
	if re.SearchTerm == nil {
		writeError(w, a.log, planb.BadJSON("search_categories.room_events.search_term is required"))
		return
	}
	q := projection.SearchRequest{Term: *re.SearchTerm, Keys: re.Keys, Filter: re.Filter, OrderBy: re.OrderBy,
		IncludeState: re.IncludeState, NextBatch: r.URL.Query().Get("next_batch")}
	if c := re.EventContext; c != nil {
		q.Context = &projection.SearchContext{Before: c.Before, After: c.After, IncludeProfile: c.IncludeProfile}
	}
	if g := re.Groupings; g != nil {
		for _, k := range g.GroupBy {
			q.GroupBy = append(q.GroupBy, k.Key)
		}
	}
	res, err := a.hs.Search(s, q)
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	writeJSON(w, 200, map[string]any{"search_categories": map[string]any{"room_events": res}})
}
