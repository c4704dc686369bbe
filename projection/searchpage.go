package projection

import (
	"sort"
	"time"

	json "github.com/segmentio/encoding/json"
)

// searchPage fills res with the page's results: each hit checked again
// against what the model holds now (the scans let the appliers in between,
// so an event may have been redacted or the user may have left since),
// with its context, the rooms' state and the groupings asked for.
func (m *Model) searchPage(q SearchRequest, terms []searchTerm, page []*searchHit, ignored map[string]bool, res *SearchResults) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return errModelClosed
	}
	now := time.Now()
	highlights := map[string]bool{}
	states := map[string]bool{}
	groups := map[string]map[string]*SearchGroup{}
	for _, g := range q.GroupBy {
		groups[g] = map[string]*SearchGroup{}
	}
	for _, h := range page {
		r := m.rooms[h.roomID]
		if r == nil {
			continue
		}
		upto, err := access(r, q.User)
		if err != nil || h.idx >= upto {
			continue
		}
		e, err := m.entryAt(m.db, r, h.idx)
		if err != nil {
			return err
		}
		if e.RedactedBy != nil || !canSee(q.User, e) {
			continue
		}
		sr := SearchResult{Rank: float64(h.score) / 1e6, Result: clientEvent(e, q.User, q.Device, true, now)}
		if q.Context != nil {
			if sr.Context, err = m.searchContext(r, e, upto, q, ignored, now); err != nil {
				return err
			}
		}
		res.Results = append(res.Results, sr)
		if _, text, ok := searchText(e.Event, e.msg); ok {
			for _, w := range tokens(text) {
				for _, t := range terms {
					if t.matches(w) {
						highlights[w] = true
					}
				}
			}
		}
		if q.IncludeState && !states[r.ID] {
			states[r.ID] = true
			st, err := m.readableState(r, q.User, upto)
			if err != nil {
				return err
			}
			if res.State == nil {
				res.State = map[string][]ClientEvent{}
			}
			list := []ClientEvent{}
			for _, s := range sortedState(st) {
				list = append(list, clientEvent(s, q.User, q.Device, true, now))
			}
			res.State[r.ID] = list
		}
		for key, byValue := range groups {
			v := e.Event.RoomID
			if key == "sender" {
				v = e.Event.Sender
			}
			g := byValue[v]
			if g == nil {
				g = &SearchGroup{Order: len(byValue) + 1}
				byValue[v] = g
			}
			g.Results = append(g.Results, e.Event.EventID)
		}
	}
	res.Highlights = sortedKeys(highlights)
	if len(groups) > 0 {
		res.Groups = groups
	}
	return nil
}

// searchContext returns the events around result e, as /context would
// (those the user may see, that the search's filter lets through, not from
// ignored users), and the senders' profiles when asked. Caller holds mu.
func (m *Model) searchContext(r *Room, e *Entry, upto int, q SearchRequest, ignored map[string]bool, now time.Time) (*SearchEventContext, error) {
	before, after := defaultSearchContext, defaultSearchContext
	if q.Context.Before != nil {
		before = min(*q.Context.Before, maxSearchContext)
	}
	if q.Context.After != nil {
		after = min(*q.Context.After, maxSearchContext)
	}
	allowed := func(x *Entry) bool {
		return canSee(q.User, x) && q.Filter.AllowsEvent(x.Event, x.Content) &&
			(x.Event.StateKey != nil || !ignored[x.Event.Sender])
	}
	c := &SearchEventContext{EventsBefore: []ClientEvent{}, EventsAfter: []ClientEvent{}}
	senders := map[string]bool{e.Event.Sender: true}
	i := e.Index
	if before > 0 {
		err := m.scan(r, i, true, func(x *Entry) (bool, error) {
			i--
			if allowed(x) {
				c.EventsBefore = append(c.EventsBefore, clientEvent(x, q.User, q.Device, true, now))
				senders[x.Event.Sender] = true
			}
			return len(c.EventsBefore) < before, nil
		})
		if err != nil {
			return nil, err
		}
	}
	c.Start = topoToken(i)
	j := e.Index + 1
	last := e.Index
	if after > 0 && j < upto {
		err := m.scan(r, j, false, func(x *Entry) (bool, error) {
			if allowed(x) {
				c.EventsAfter = append(c.EventsAfter, clientEvent(x, q.User, q.Device, true, now))
				senders[x.Event.Sender] = true
				last = x.Index
			}
			j++
			return j < upto && len(c.EventsAfter) < after, nil
		})
		if err != nil {
			return nil, err
		}
	}
	c.End = topoToken(j)
	if q.Context.IncludeProfile {
		p, err := m.profilesAt(r, sortedKeys(senders), last)
		if err != nil {
			return nil, err
		}
		c.ProfileInfo = p
	}
	return c, nil
}

// profilesAt returns the profiles of users as the room's state had them
// right after timeline index idx (their member events then). Caller holds
// mu.
func (m *Model) profilesAt(r *Room, users []string, idx int) (map[string]MemberProfile, error) {
	out := map[string]MemberProfile{}
	for _, u := range users {
		h := r.members[u]
		i := sort.Search(len(h), func(i int) bool { return h[i].index > idx })
		if i == 0 {
			continue
		}
		e, err := m.entryAt(m.db, r, h[i-1].index)
		if err != nil {
			return nil, err
		}
		var c struct {
			DisplayName string `json:"displayname"`
			AvatarURL   string `json:"avatar_url"`
		}
		_ = json.Unmarshal(e.Content, &c) // redacted content when redacted
		out[u] = MemberProfile{DisplayName: c.DisplayName, AvatarURL: c.AvatarURL}
	}
	return out, nil
}
