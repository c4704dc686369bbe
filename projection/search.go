package projection

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/cockroachdb/pebble/v2"
	json "github.com/segmentio/encoding/json"

	"github.com/planb-chat/planb"
)

// Server-side search (POST /search, category room_events) over the search
// index (searchindex.go).
//
// Matching: the search term is split into words as the events are
// (tokens); an event matches when every word of the term matches one of
// its words, case-insensitively. A word of two or more characters matches
// the words it begins ("mess" finds "message", "서울" finds "서울에서"); a
// word of one character (a digit, a letter, a Han character) only matches
// itself. No stemming.
//
// Cost: one range scan of the index per word of the term in each room the
// user may search, reading every posting of the words it begins; the page
// asked for, its context and state are then read from the timeline. The
// scans read at most maxSearchPostings postings (else the term is refused
// as too broad) and hold the model's lock for searchChunk postings at a
// time, so that a broad search never holds up the appliers for long.

const (
	// searchChunk is how many postings or entries a search reads under one
	// hold of the model's read lock.
	searchChunk = 2048
	// maxSearchPostings is the most postings one search reads.
	maxSearchPostings = 500_000
	// maxSearchTerms is how many distinct words of a search term are used.
	maxSearchTerms = 16
	// defaultSearchLimit and maxSearchLimit bound a page of results
	// (filter.limit).
	defaultSearchLimit, maxSearchLimit = 10, 100
	// defaultSearchContext and maxSearchContext bound event_context's
	// before_limit and after_limit.
	defaultSearchContext, maxSearchContext = 5, 50
)

// SearchRequest is one user's search of the room_events category.
type SearchRequest struct {
	User, Device string
	Term         string
	// Keys are the keys to search: content.body, content.name,
	// content.topic; none means all three.
	Keys   []string
	Filter *RoomEventFilter
	// OrderBy is "rank" (the default, "") or "recent".
	OrderBy string
	// Context asks for events around each result; nil for none.
	Context      *SearchContext
	IncludeState bool
	// GroupBy lists the groupings asked for: "room_id", "sender".
	GroupBy []string
	// NextBatch is the next_batch of the previous page, or "".
	NextBatch string
}

// SearchContext is a search's event_context.
type SearchContext struct {
	// Before and After are the before_limit and after_limit (nil: 5).
	Before, After  *int
	IncludeProfile bool
}

// SearchResults is the room_events category of a /search response.
type SearchResults struct {
	Count      int                                `json:"count"`
	Highlights []string                           `json:"highlights"`
	Results    []SearchResult                     `json:"results"`
	NextBatch  string                             `json:"next_batch,omitempty"`
	State      map[string][]ClientEvent           `json:"state,omitempty"`
	Groups     map[string]map[string]*SearchGroup `json:"groups,omitempty"`
}

// SearchResult is one result.
type SearchResult struct {
	Rank    float64             `json:"rank"`
	Result  ClientEvent         `json:"result"`
	Context *SearchEventContext `json:"context,omitempty"`
}

// SearchEventContext is the context of a result.
type SearchEventContext struct {
	Start        string                   `json:"start"`
	End          string                   `json:"end"`
	ProfileInfo  map[string]MemberProfile `json:"profile_info,omitempty"`
	EventsBefore []ClientEvent            `json:"events_before"`
	EventsAfter  []ClientEvent            `json:"events_after"`
}

// MemberProfile is a user's profile as a room's member event had it.
type MemberProfile struct {
	DisplayName string `json:"displayname,omitempty"`
	AvatarURL   string `json:"avatar_url,omitempty"`
}

// SearchGroup is one group of a grouping: the results of one room or
// sender on this page, in result order. Groups have no next_batch of their
// own (the spec lets a server leave it out): the category's next_batch
// pages on.
type SearchGroup struct {
	Order   int      `json:"order"`
	Results []string `json:"results"`
}

// searchHit is an event that matched so far.
type searchHit struct {
	roomID string
	idx    int
	ts     int64
	field  byte
	term   int     // the term cur is for
	cur    float64 // the best match of the term being scanned
	sum    float64 // the matches of the terms before it
	score  int64   // the rank × 1e6, once every term is scanned
}

// searchTerm is one word of the search term.
type searchTerm struct {
	word  string
	exact bool // one character: matches only itself
}

func (t searchTerm) matches(word string) bool {
	if t.exact {
		return word == t.word
	}
	return strings.HasPrefix(word, t.word)
}

// searchTerms returns the distinct words of term, longest first (the
// longest is likely the rarest, and the first word scanned decides how
// many events the others are checked against).
func searchTerms(term string) []searchTerm {
	seen := map[string]bool{}
	var out []searchTerm
	for _, w := range tokens(term) {
		if seen[w] || len(out) == maxSearchTerms {
			continue
		}
		seen[w] = true
		out = append(out, searchTerm{word: w, exact: utf8.RuneCountInString(w) == 1})
	}
	sort.SliceStable(out, func(i, j int) bool { return len(out[i].word) > len(out[j].word) })
	return out
}

// check validates the request's enumerations and IDs.
func (q *SearchRequest) check() error {
	for _, k := range q.Keys {
		if _, ok := searchKeys[k]; !ok {
			return planb.InvalidParam("keys: %q is not one of content.body, content.name, content.topic", k)
		}
	}
	if q.OrderBy != "" && q.OrderBy != "rank" && q.OrderBy != "recent" {
		return planb.InvalidParam("order_by must be rank or recent, not %q", q.OrderBy)
	}
	for _, g := range q.GroupBy {
		if g != "room_id" && g != "sender" {
			return planb.InvalidParam("groupings: cannot group by %q (only room_id and sender)", g)
		}
	}
	if c := q.Context; c != nil {
		if (c.Before != nil && *c.Before < 0) || (c.After != nil && *c.After < 0) {
			return planb.InvalidParam("event_context: before_limit and after_limit must not be negative")
		}
	}
	f := q.Filter
	if f == nil {
		return nil
	}
	rooms := f.NotRooms
	if f.Rooms != nil {
		rooms = append(append([]string(nil), *f.Rooms...), rooms...)
	}
	for _, id := range rooms {
		if len(id) < 2 || id[0] != '!' {
			return planb.BadJSON("invalid filter: %q is not a room ID", id)
		}
	}
	senders := f.NotSenders
	if f.Senders != nil {
		senders = append(append([]string(nil), *f.Senders...), senders...)
	}
	for _, id := range senders {
		if s, _, _, err := planb.SplitID(id); err != nil || s != '@' {
			return planb.BadJSON("invalid filter: %q is not a user ID", id)
		}
	}
	return nil
}

// less orders hits as results: by rank or time, newest first among equals,
// then by room and timeline (so that the order is total and a page's last
// hit says where the next page starts).
func (q *SearchRequest) less(a, b *searchHit) bool {
	if q.OrderBy != "recent" && a.score != b.score {
		return a.score > b.score
	}
	if a.ts != b.ts {
		return a.ts > b.ts
	}
	if a.roomID != b.roomID {
		return a.roomID < b.roomID
	}
	return a.idx > b.idx
}

// searchCursor is a next_batch: the last hit of a page.
type searchCursor struct {
	Order string `json:"o"`
	Score int64  `json:"s"`
	TS    int64  `json:"t"`
	Room  string `json:"r"`
	Idx   int    `json:"i"`
}

func (q *SearchRequest) order() string {
	if q.OrderBy == "" {
		return "rank"
	}
	return q.OrderBy
}

func (q *SearchRequest) cursor(h *searchHit) string {
	b, _ := json.Marshal(searchCursor{Order: q.order(), Score: h.score, TS: h.ts, Room: h.roomID, Idx: h.idx})
	return base64.RawURLEncoding.EncodeToString(b)
}

// parseCursor returns the hit next_batch names, or nil without one.
func (q *SearchRequest) parseCursor() (*searchHit, error) {
	if q.NextBatch == "" {
		return nil, nil
	}
	var c searchCursor
	b, err := base64.RawURLEncoding.DecodeString(q.NextBatch)
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil || c.Room == "" {
		return nil, planb.InvalidParam("next_batch %q is not a token this server gave", q.NextBatch)
	}
	if c.Order != q.order() {
		return nil, planb.InvalidParam("next_batch is from a search ordered by %s, this one is ordered by %s", c.Order, q.order())
	}
	return &searchHit{roomID: c.Room, idx: c.Idx, ts: c.TS, score: c.Score}, nil
}

// errModelClosed is returned by a search that outlives the model.
var errModelClosed = errors.New("read model: closed")

// searchRoom is a room the user may search, up to a timeline position.
type searchRoom struct {
	id   string
	upto int
}

// Search answers a room_events search. Errors: M_INVALID_PARAM or
// M_BAD_JSON for a bad request, M_INVALID_PARAM for a term too broad to
// search; other errors are failures to read the store.
func (m *Model) Search(q SearchRequest) (*SearchResults, error) {
	return m.search(q, maxSearchPostings)
}

// search is Search reading at most budget postings.
func (m *Model) search(q SearchRequest, budget int) (*SearchResults, error) {
	if err := q.check(); err != nil {
		return nil, err
	}
	after, err := q.parseCursor()
	if err != nil {
		return nil, err
	}
	res := &SearchResults{Highlights: []string{}, Results: []SearchResult{}}
	terms := searchTerms(q.Term)
	if len(terms) == 0 {
		return res, nil
	}
	fields := map[byte]bool{}
	for _, k := range q.Keys {
		fields[searchKeys[k]] = true
	}
	if len(fields) == 0 {
		fields = map[byte]bool{fieldBody: true, fieldName: true, fieldTopic: true}
	}
	rooms, ignored, err := m.searchRooms(q)
	if err != nil {
		return nil, err
	}
	var hits []*searchHit
	for _, sr := range rooms {
		h, err := m.searchOneRoom(sr, q, terms, fields, &budget)
		if err != nil {
			return nil, err
		}
		hits = append(hits, h...)
	}
	f := q.Filter
	if (f != nil && (f.Senders != nil || len(f.NotSenders) > 0 || f.ContainsURL != nil)) || len(ignored) > 0 {
		if hits, err = m.filterHits(hits, f, ignored); err != nil {
			return nil, err
		}
	}
	sort.Slice(hits, func(i, j int) bool { return q.less(hits[i], hits[j]) })
	res.Count = len(hits)
	start := 0
	if after != nil {
		start = sort.Search(len(hits), func(i int) bool { return q.less(after, hits[i]) })
	}
	limit := f.limit(defaultSearchLimit, maxSearchLimit)
	page := hits[start:min(start+limit, len(hits))]
	if limit > 0 && len(page) == limit {
		// Whether or not more follow, as Synapse does (and Complement
		// expects): the next page may be empty.
		res.NextBatch = q.cursor(page[len(page)-1])
	}
	if err := m.searchPage(q, terms, page, ignored, res); err != nil {
		return nil, err
	}
	return res, nil
}

// searchRooms returns the rooms user may search — those they are or were
// in, not forgotten, that they may read (as /messages decides) — and the
// users they ignore.
func (m *Model) searchRooms(q SearchRequest) ([]searchRoom, map[string]bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, nil, errModelClosed
	}
	u := m.users[q.User]
	if u == nil {
		return nil, nil, nil
	}
	var out []searchRoom
	for _, id := range sortedKeys(u.rooms) {
		r := u.rooms[id]
		if !q.Filter.AllowsRoom(id) {
			continue
		}
		if f, ok := u.forgotten[id]; ok && f == r.lastMembershipEvent(q.User) {
			continue
		}
		if upto, err := access(r, q.User); err == nil && upto > 0 {
			out = append(out, searchRoom{id: id, upto: upto})
		}
	}
	return out, u.ignoredUsers(), nil
}

// searchOneRoom returns the hits of the terms in one room, each one an
// event the user may see, of the fields and types asked for, that every
// term matches.
func (m *Model) searchOneRoom(sr searchRoom, q SearchRequest, terms []searchTerm, fields map[byte]bool, budget *int) ([]*searchHit, error) {
	var hits map[int]*searchHit
	for ti, t := range terms {
		next := map[int]*searchHit{}
		err := m.scanPostings(sr.id, t, budget, func(r *Room, word string, idx int, p posting) {
			if !fields[p.field] {
				return
			}
			h := hits[idx]
			if ti == 0 {
				if h = next[idx]; h == nil {
					if idx >= sr.upto || !r.canSeeAt(q.User, idx) || !q.Filter.typeAllowed(fieldTypes[p.field]) {
						return
					}
					h = &searchHit{roomID: sr.id, idx: idx, ts: p.ts, field: p.field}
				}
			} else if h == nil {
				return // a word before did not match
			}
			if h.term != ti {
				h.sum, h.cur, h.term = h.sum+h.cur, 0, ti
			}
			h.cur = max(h.cur, matchWeight(t, word, p))
			next[idx] = h
		})
		if err != nil {
			return nil, err
		}
		hits = next
		if len(hits) == 0 {
			return nil, nil
		}
	}
	out := make([]*searchHit, 0, len(hits))
	for _, h := range hits {
		h.score = int64(math.Round(1e6 * (h.sum + h.cur) / float64(len(terms))))
		out = append(out, h)
	}
	return out, nil
}

// matchWeight is how well word, of an event's field, matches term: the
// share of the field's words it makes up, halved for a prefix match.
func matchWeight(t searchTerm, word string, p posting) float64 {
	w := min(1, float64(p.occurrences)/float64(max(1, p.words)))
	if word != t.word {
		w /= 2
	}
	return w
}

// typeAllowed reports whether the filter's types let events of eventType
// through (senders are checked on the events themselves).
func (f *RoomEventFilter) typeAllowed(eventType string) bool {
	if f == nil {
		return true
	}
	if matchAny(f.NotTypes, eventType) {
		return false
	}
	return f.Types == nil || matchAny(*f.Types, eventType)
}

// scanPostings calls fn, with the model's read lock held and the room as
// the model has it, for each posting of room roomID whose word term
// matches, in key order, searchChunk postings per hold of the lock. Each
// posting read counts against budget; when it is spent, the term is too
// broad.
func (m *Model) scanPostings(roomID string, t searchTerm, budget *int, fn func(r *Room, word string, idx int, p posting)) error {
	lo := postingPrefix(roomID, t.word)
	if t.exact {
		lo = append(lo, 0)
	}
	hi := upperBound(lo)
	skip := len(postingPrefix(roomID, ""))
	for lo != nil {
		var err error
		if lo, err = m.postingChunk(roomID, lo, hi, skip, t, budget, fn); err != nil {
			return err
		}
	}
	return nil
}

// postingChunk reads up to searchChunk postings from lo and returns where
// to go on (nil at the end).
func (m *Model) postingChunk(roomID string, lo, hi []byte, skip int, t searchTerm, budget *int, fn func(*Room, string, int, posting)) ([]byte, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, errModelClosed
	}
	r := m.rooms[roomID]
	if r == nil {
		return nil, nil
	}
	it, err := m.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, fmt.Errorf("read model store: %w", err)
	}
	defer it.Close()
	n := 0
	for it.First(); it.Valid(); it.Next() {
		if n == searchChunk {
			return append([]byte(nil), it.Key()...), nil
		}
		n++
		if *budget--; *budget < 0 {
			return nil, planb.InvalidParam("the search term is too broad: its words (%q among them) occur too often in the rooms searched; add words or search fewer rooms",
				t.word)
		}
		k := it.Key()[skip:]
		z := bytes.IndexByte(k, 0)
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, fmt.Errorf("read model store: %w", err)
		}
		p, ok := decodePosting(v)
		if z < 0 || len(k) != z+9 || !ok {
			return nil, fmt.Errorf("read model store: a search posting of %s is damaged", roomID)
		}
		fn(r, string(k[:z]), int(binary.BigEndian.Uint64(k[z+1:])), p)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("read model store: %w", err)
	}
	return nil, nil
}

// filterHits keeps the hits whose events the filter's senders and
// contains_url let through and whose senders the user does not ignore,
// reading the events searchChunk at a time.
func (m *Model) filterHits(hits []*searchHit, f *RoomEventFilter, ignored map[string]bool) ([]*searchHit, error) {
	out := hits[:0]
	for len(hits) > 0 {
		chunk := hits[:min(searchChunk, len(hits))]
		hits = hits[len(chunk):]
		err := func() error {
			m.mu.RLock()
			defer m.mu.RUnlock()
			if m.closed {
				return errModelClosed
			}
			for _, h := range chunk {
				r := m.rooms[h.roomID]
				if r == nil {
					continue
				}
				e, err := m.entryAt(m.db, r, h.idx)
				if err != nil {
					return err
				}
				if f.AllowsEvent(e.Event, e.Content) && !ignored[e.Event.Sender] {
					out = append(out, h)
				}
			}
			return nil
		}()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
