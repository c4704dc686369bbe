package projection

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/planb-chat/planb"
)

// Relations is the bundled aggregation of an event's children
// (unsigned."m.relations"). Only m.thread is aggregated.
type Relations struct {
	Thread *ThreadAggregation `json:"m.thread,omitempty"`
}

// ThreadAggregation is the m.thread aggregation of a thread root.
type ThreadAggregation struct {
	LatestEvent             ClientEvent `json:"latest_event"`
	Count                   int         `json:"count"`
	CurrentUserParticipated bool        `json:"current_user_participated"`
}

// RelationsQuery is a GET /rooms/{roomId}/relations/{eventId} request.
type RelationsQuery struct {
	RoomID, EventID string
	// RelType and EventType filter the children ("" for any); EventType
	// needs RelType.
	RelType, EventType string
	From, To           string
	Backwards          bool
	Limit              int
	// Recurse, when set, says whether to follow relations of relations.
	Recurse *bool
}

// RelationsPage is a /relations response.
type RelationsPage struct {
	Chunk          []ClientEvent `json:"chunk"`
	NextBatch      string        `json:"next_batch,omitempty"`
	PrevBatch      string        `json:"prev_batch,omitempty"`
	RecursionDepth *int          `json:"recursion_depth,omitempty"`
}

const (
	// relationsDefaultLimit and threadsDefaultLimit are Synapse's defaults,
	// which clients are written against.
	relationsDefaultLimit = 5
	threadsDefaultLimit   = 5
	threadsMaxLimit       = 100
	// recursionDepth is how many levels of relations recurse=true follows
	// (the spec asks for at least 3), and recursionMaxEvents the most
	// events it gathers, so that one request costs a bounded amount.
	recursionDepth     = 3
	recursionMaxEvents = 10000
)

// Relations answers GET /rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]]
// for user on device: the children of the event that user may see, in
// timeline order (newest first when q.Backwards). The parent must be
// visible to user as for /event, otherwise M_NOT_FOUND.
func (m *Model) Relations(user, device string, q RelationsQuery) (*RelationsPage, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	r, upto, err := m.roomFor(q.RoomID, user)
	if errors.Is(err, planb.MForbidden) {
		return nil, planb.NotFound("event %s not found", q.EventID)
	}
	if err != nil {
		return nil, err
	}
	parent, err := m.event(q.EventID)
	if err != nil {
		return nil, err
	}
	if parent == nil || parent.Room != r || parent.Index >= upto || !canSee(user, parent) {
		return nil, planb.NotFound("event %s not found", q.EventID)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = relationsDefaultLimit
	}
	limit = min(limit, maxPage)
	lo, hi := 0, upto // the window of timeline indexes [lo, hi)
	if q.From != "" {
		p, err := m.position(r, q.From)
		if err != nil {
			return nil, err
		}
		if q.Backwards {
			hi = min(hi, p)
		} else {
			lo = p
		}
	}
	if q.To != "" {
		p, err := m.position(r, q.To)
		if err != nil {
			return nil, err
		}
		if q.Backwards {
			lo = max(lo, p)
		} else {
			hi = min(hi, p)
		}
	}
	match := func(v relValue) bool {
		return (q.RelType == "" || v.relType == q.RelType) && (q.EventType == "" || v.eventType == q.EventType)
	}
	page := &RelationsPage{Chunk: []ClientEvent{}, PrevBatch: q.From}
	now := time.Now()
	last, more := 0, false
	take := func(idx int) (bool, error) {
		if len(page.Chunk) == limit {
			more = true
			return false, nil
		}
		last = idx
		e, err := m.entryAt(m.db, r, idx)
		if err != nil {
			return false, err
		}
		if canSee(user, e) {
			page.Chunk = append(page.Chunk, clientEvent(e, user, device, true, now))
		}
		return true, nil
	}
	if q.Recurse != nil && *q.Recurse {
		depth := recursionDepth
		page.RecursionDepth = &depth
		idxs, err := m.descendants(r, q.EventID, match)
		if err != nil {
			return nil, err
		}
		if q.Backwards {
			slices.Reverse(idxs)
		}
		for _, idx := range idxs {
			if idx < lo || idx >= hi {
				continue
			}
			if ok, err := take(idx); err != nil || !ok {
				if err != nil {
					return nil, err
				}
				break
			}
		}
	} else {
		if q.Recurse != nil {
			depth := 1
			page.RecursionDepth = &depth
		}
		err := eachChild(m.db, r.ID, q.EventID, lo, hi, q.Backwards, func(idx int, v relValue) (bool, error) {
			if !match(v) {
				return true, nil
			}
			return take(idx)
		})
		if err != nil {
			return nil, err
		}
	}
	if more {
		if q.Backwards {
			page.NextBatch = topoToken(last)
		} else {
			page.NextBatch = topoToken(last + 1)
		}
	}
	if err := m.bundle(r, user, device, true, now, page.Chunk); err != nil {
		return nil, err
	}
	return page, nil
}

// descendants returns, in timeline order, the indexes of the events that
// relate to root through up to recursionDepth relations that each match.
// Caller holds mu.
func (m *Model) descendants(r *Room, root string, match func(relValue) bool) ([]int, error) {
	var out []int
	level := []string{root}
	seen := map[string]bool{root: true}
	for d := 0; d < recursionDepth && len(level) > 0 && len(out) < recursionMaxEvents; d++ {
		var next []string
		for _, p := range level {
			err := eachChild(m.db, r.ID, p, 0, r.Count, false, func(idx int, v relValue) (bool, error) {
				if match(v) && !seen[v.child] {
					seen[v.child] = true
					out = append(out, idx)
					next = append(next, v.child)
				}
				return len(out) < recursionMaxEvents, nil
			})
			if err != nil {
				return nil, err
			}
		}
		level = next
	}
	slices.Sort(out)
	return out, nil
}

// ThreadsPage is a /threads response.
type ThreadsPage struct {
	Chunk     []ClientEvent `json:"chunk"`
	NextBatch string        `json:"next_batch,omitempty"`
}

// Threads answers GET /rooms/{roomId}/threads for user on device: the
// thread roots user may see, the thread with the newest reply first, each
// with its m.thread aggregation. participated keeps only the threads user
// started or replied to. from is a next_batch of an earlier call.
func (m *Model) Threads(user, device, roomID, from string, participated bool, limit int) (*ThreadsPage, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	r, upto, err := m.roomFor(roomID, user)
	if err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = threadsDefaultLimit
	}
	limit = min(limit, threadsMaxLimit)
	prefix := key(kThreadActivity, r.ID)
	opts := &pebble.IterOptions{LowerBound: prefix, UpperBound: upperBound(prefix)}
	if from != "" {
		n, ok := parseTopo(from)
		if !ok {
			return nil, planb.InvalidParam("unknown pagination token %q", from)
		}
		opts.UpperBound = threadActivityKey(r.ID, n)
	}
	it, err := m.db.NewIter(opts)
	if err != nil {
		return nil, storeErr(err)
	}
	defer it.Close()
	page := &ThreadsPage{Chunk: []ClientEvent{}}
	now := time.Now()
	for ok := it.Last(); ok; ok = it.Prev() {
		k := keyReader{b: it.Key()[len(prefix):]}
		latest := int(k.num())
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, storeErr(err)
		}
		vr := keyReader{b: v}
		rootID, rootIdx := vr.str(), int(vr.num())
		if k.err || vr.err {
			return nil, fmt.Errorf("read model store: the thread list of %s is damaged", r.ID)
		}
		if len(page.Chunk) == limit {
			break
		}
		if rootIdx >= upto {
			continue
		}
		root, err := m.entryAt(m.db, r, rootIdx)
		if err != nil {
			return nil, err
		}
		if !canSee(user, root) {
			continue
		}
		if participated {
			took, err := m.participated(r, rootID, root.Event.Sender, user)
			if err != nil {
				return nil, err
			}
			if !took {
				continue
			}
		}
		page.Chunk = append(page.Chunk, clientEvent(root, user, device, true, now))
		page.NextBatch = topoToken(latest)
	}
	if err := it.Error(); err != nil {
		return nil, storeErr(err)
	}
	if len(page.Chunk) < limit || !it.Valid() {
		page.NextBatch = "" // the list ended
	}
	if err := m.bundle(r, user, device, true, now, page.Chunk); err != nil {
		return nil, err
	}
	return page, nil
}

// participated reports whether user started root's thread (rootSender) or
// replied in it. Caller holds mu.
func (m *Model) participated(r *Room, root, rootSender, user string) (bool, error) {
	if rootSender == user {
		return true, nil
	}
	_, ok, err := getCopy(m.db, key(kThreadUser, r.ID, root, user))
	return ok, err
}

// bundle adds the bundled aggregations viewer may see to evs, events of r
// formatted for viewer on device: m.thread for thread roots. State events
// get none (as the spec says). Caller holds mu.
func (m *Model) bundle(r *Room, viewer, device string, withRoom bool, now time.Time, evs []ClientEvent) error {
	upto := -1
	for i := range evs {
		ce := &evs[i]
		if ce.StateKey != nil {
			continue
		}
		sum, ok, err := threadSummaryOf(m.db, r.ID, ce.EventID)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if upto < 0 {
			if upto, err = access(r, viewer); err != nil {
				upto = 0
			}
		}
		latest, err := m.latestVisibleReply(r, ce.EventID, sum, viewer, upto)
		if err != nil {
			return err
		}
		if latest == nil {
			continue
		}
		took, err := m.participated(r, ce.EventID, ce.Sender, viewer)
		if err != nil {
			return err
		}
		if ce.Unsigned == nil {
			ce.Unsigned = &Unsigned{}
		}
		ce.Unsigned.Relations = &Relations{Thread: &ThreadAggregation{
			LatestEvent: clientEvent(latest, viewer, device, withRoom, now), Count: sum.count, CurrentUserParticipated: took}}
	}
	return nil
}

// latestVisibleReply returns the newest reply in root's thread that viewer
// may see (below upto), or nil. Caller holds mu.
func (m *Model) latestVisibleReply(r *Room, root string, sum threadSummary, viewer string, upto int) (*Entry, error) {
	if sum.latest < upto {
		e, err := m.entryAt(m.db, r, sum.latest)
		if err != nil || canSee(viewer, e) {
			return e, err
		}
	}
	var found *Entry
	err := eachChild(m.db, r.ID, root, 0, min(upto, sum.latest), true, func(idx int, v relValue) (bool, error) {
		if v.relType != RelThread {
			return true, nil
		}
		e, err := m.entryAt(m.db, r, idx)
		if err != nil {
			return false, err
		}
		if canSee(viewer, e) {
			found = e
		}
		return found == nil, nil
	})
	return found, err
}

// storeErr wraps a failure to read the store.
func storeErr(err error) error { return fmt.Errorf("read model store: %w", err) }

// RelTypeOf returns the rel_type of the m.relates_to event eventID of room
// roomID has (as clients see it: none once redacted), or "" when it has
// none or the model does not know the event there.
func (m *Model) RelTypeOf(roomID, eventID string) (string, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	e, err := m.event(eventID)
	if err != nil || e == nil || e.Room.ID != roomID {
		return "", err
	}
	rel, _ := relationOf(e.Content)
	return rel.relType, nil
}
