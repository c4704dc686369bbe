package homeserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/jetstream"
	"github.com/planb-chat/planb/projection"
	"github.com/planb-chat/planb/roomauth"
)

type roomView = projection.RoomView

// errSkip tells commit that there is nothing to write.
var errSkip = errors.New("nothing to write")

const (
	// maxCommitAttempts bounds optimistic-concurrency retries of one batch
	// (conflicts only come from other nodes: one node writes a room from
	// one committer at a time). The write deadline usually ends retries
	// first: with writers to one room in three data centers, the node that
	// learns of new records last can lose dozens of races in a row, and a
	// fixed small cap turned that into 503s (see docs/benchmarks.md).
	maxCommitAttempts = 1000
	// conflictPause is the most a committer waits, at random, after losing a
	// race to another node, growing with the losses in a row: the winner's
	// next record lands meanwhile, and more of this node's writes queue up
	// to go into its next record.
	conflictPause = 4 * time.Millisecond
	// maxBatch is the most client writes grouped into one record.
	maxBatch = 256
	// readOwnWriteWait bounds how long an acknowledged write waits for
	// this node's read model to apply it.
	readOwnWriteWait = time.Second
	// appendAttempt bounds one append; a write retries until its deadline.
	appendAttempt = 2 * time.Second
	// appendRetryPause spaces retries while a partition elects a leader.
	appendRetryPause = 250 * time.Millisecond
)

// writeReq is one client write waiting in its room's queue.
type writeReq struct {
	txn   *planb.Txn
	build func(b *builder) error
	done  chan writeResult // buffered; receives exactly one result
}

type writeResult struct {
	events []*planb.Event
	err    error
}

// roomQueue holds the pending writes of one room on this node.
type roomQueue struct {
	mu         sync.Mutex // guards pending and committing
	pending    []*writeReq
	committing bool
}

// writers is the set of room queues. Lock rules: mu guards queues; a
// queue's own mu guards its fields; when both are needed, mu is taken
// first (commit and commitQueue do, so a queue is never dropped while a write is
// being added to it).
type writers struct {
	mu     sync.Mutex
	queues map[string]*roomQueue
	wg     sync.WaitGroup // running committers
}

// commit adds a write to its room's queue and waits for its result. One
// committer per room builds the queued writes in order, each authorised
// against the state left by the ones before it, and appends them as one
// record that must land right after the state they were checked against
// (expected last subject sequence). When another node's write got there
// first, it catches up and builds again, so an event is always authorised
// against the state where it lands.
//
// txn, when set, makes the write idempotent: a retry returns the original
// events, whichever node or data center took the first attempt.
func (s *Service) commit(ctx context.Context, roomID string, txn *planb.Txn, build func(b *builder) error) ([]*planb.Event, error) {
	req := &writeReq{txn: txn, build: build, done: make(chan writeResult, 1)}
	s.w.mu.Lock()
	q := s.w.queues[roomID]
	if q == nil {
		q = &roomQueue{}
		s.w.queues[roomID] = q
	}
	q.mu.Lock()
	q.pending = append(q.pending, req)
	start := !q.committing
	q.committing = true
	q.mu.Unlock()
	if start {
		s.w.wg.Add(1)
	}
	s.w.mu.Unlock()
	if start {
		go s.commitQueue(roomID, q)
	}
	select {
	case r := <-req.done:
		return r.events, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// commitQueue commits the room's queued writes, batch by batch, until the queue
// is empty.
func (s *Service) commitQueue(roomID string, q *roomQueue) {
	defer s.w.wg.Done()
	for {
		s.w.mu.Lock()
		q.mu.Lock()
		if len(q.pending) == 0 {
			q.committing = false
			delete(s.w.queues, roomID)
			q.mu.Unlock()
			s.w.mu.Unlock()
			return
		}
		n := min(len(q.pending), maxBatch)
		batch := q.pending[:n:n]
		q.pending = q.pending[n:]
		q.mu.Unlock()
		s.w.mu.Unlock()
		s.commitBatch(roomID, batch)
	}
}

// commitBatch commits one batch and answers every request in it.
func (s *Service) commitBatch(roomID string, batch []*writeReq) {
	ctx, cancel := context.WithTimeout(context.Background(), s.writeTimeout())
	defer cancel()
	answer := func(r *writeReq, res writeResult) { r.done <- res }
	conflicts := 0
	rechecked := false // a rejection was checked against the log's end
	for attempt := 0; attempt < maxCommitAttempts && len(batch) > 0; attempt++ {
		// Writes whose transaction is already in the log are answered from it.
		open := batch[:0:0]
		for _, r := range batch {
			if r.txn != nil {
				ev, err := s.model.TxnEvent(r.txn.Key)
				if err != nil {
					answer(r, writeResult{err: s.storeUnavailable(err)})
					continue
				}
				if ev != nil {
					answer(r, writeResult{events: []*planb.Event{ev}})
					continue
				}
			}
			open = append(open, r)
		}
		batch = open
		if len(batch) == 0 {
			return
		}
		if err := s.cutOff(); err != nil {
			for _, r := range batch {
				answer(r, writeResult{err: err})
			}
			return
		}
		var (
			expect    uint64
			b         *builder
			included  []*writeReq
			spans     [][2]int           // events of each included request
			dups      = map[string]int{} // txn key → index in included
			followers = map[int][]*writeReq{}
			rejected  []rejection // refused by the auth rules against this view
		)
		err := s.model.WithRoom(roomID, func(v roomView) error {
			expect = v.LastSeq()
			b = newBuilder(&v, roomID)
			for _, r := range batch {
				if r.txn != nil {
					if i, ok := dups[r.txn.Key]; ok { // the same transaction twice at once
						followers[i] = append(followers[i], r)
						continue
					}
				}
				mark := len(b.events)
				if err := r.build(b); err != nil {
					b.rollback(mark)
					if errors.Is(err, planb.MForbidden) {
						rejected = append(rejected, rejection{r, err})
						continue
					}
					answer(r, writeResult{err: err})
					continue
				}
				if len(b.events) == mark {
					answer(r, writeResult{err: errSkip})
					continue
				}
				if r.txn != nil {
					dups[r.txn.Key] = len(included)
				}
				included = append(included, r)
				spans = append(spans, [2]int{mark, len(b.events)})
			}
			return nil
		})
		if errors.Is(err, planb.ErrNotFound) {
			if err := s.awaitRoom(ctx, roomID); err != nil {
				for _, r := range batch {
					answer(r, writeResult{err: err})
				}
				return
			}
			continue
		}
		if len(rejected) > 0 {
			// This node's view may lag the log (the user joined through
			// another data center a moment ago): before refusing, look
			// once at the room's end of log, and if the view is behind,
			// catch up and build the whole batch again.
			if !rechecked && s.viewBehind(ctx, roomID, expect) {
				rechecked = true
				batch = s.rebatch(included, followers)
				for _, rj := range rejected {
					batch = append(batch, rj.r)
				}
				continue
			}
			for _, rj := range rejected {
				answer(rj.r, writeResult{err: rj.err})
			}
		}
		if len(included) == 0 {
			return
		}
		rec := planb.Record{Events: b.events}
		for i, r := range included {
			if r.txn != nil {
				t := *r.txn
				t.Event = spans[i][0]
				rec.Txns = append(rec.Txns, t)
			}
		}
		data, err := json.Marshal(rec)
		if err != nil {
			s.failAll(included, followers, fmt.Errorf("encode record: %w", err))
			return
		}
		msgID := ""
		if len(rec.Txns) == 1 && len(included) == 1 {
			msgID = rec.Txns[0].Key
		}
		start := time.Now()
		// One attempt waits at most appendAttempt: a publish that reached a
		// leader which then died gets no answer, and the new leader is
		// elected within seconds. Retrying is safe: if the first attempt
		// landed, the retry conflicts and catching up finds it.
		actx, acancel := context.WithTimeout(ctx, appendAttempt)
		ack, err := s.engine.AppendRoom(actx, roomID, data, expect, msgID)
		acancel()
		if err != nil && !errors.Is(err, planb.ErrConflict) && ctx.Err() == nil {
			s.m.commitErrors.WithLabelValues("retry").Inc()
			select {
			case <-ctx.Done():
			case <-time.After(appendRetryPause):
			}
			batch = s.rebatch(included, followers)
			continue
		}
		if errors.Is(err, planb.ErrConflict) {
			s.m.commitErrors.WithLabelValues("conflict").Inc()
			conflicts++
			if err := s.catchUpRoom(ctx, roomID); err != nil {
				s.failAll(included, followers, err)
				return
			}
			pause := time.Duration(rand.Int64N(1 + int64(conflictPause)*int64(min(conflicts, 8))/8))
			select {
			case <-ctx.Done():
			case <-time.After(pause):
			}
			batch = s.takeMore(roomID, s.rebatch(included, followers))
			continue
		}
		if err != nil {
			s.m.commitErrors.WithLabelValues("unavailable").Inc()
			s.failAll(included, followers, s.unavailable(err))
			return
		}
		s.m.commit.Observe(time.Since(start).Seconds())
		s.m.batchSize.Observe(float64(len(b.events)))
		// The write is durable now. Give the read model a moment to apply it
		// (clients expect to read their own writes), but never hold the
		// acknowledgement long when the model lags, e.g. while its log
		// consumer moves after a data center was lost.
		wctx, wcancel := context.WithTimeout(ctx, readOwnWriteWait)
		if err := s.model.WaitPartition(wctx, ack.Partition, ack.Seq); err != nil {
			s.log.Warn("read model lags behind own write", "room", roomID, "seq", ack.Seq)
		}
		wcancel()
		for i, r := range included {
			res := writeResult{events: b.events[spans[i][0]:spans[i][1]]}
			if ack.Duplicate && r.txn != nil {
				ev, err := s.originalEvent(ctx, ack, r.txn.Key)
				if err != nil {
					res = writeResult{err: s.unavailable(err)}
				} else {
					res.events = []*planb.Event{ev}
				}
			}
			answer(r, res)
			for _, f := range followers[i] {
				answer(f, res)
			}
		}
		return
	}
	for _, r := range batch {
		answer(r, writeResult{err: s.unavailable(errors.New("room is too busy: too many concurrent writes"))})
	}
}

// originalEvent returns the event a transaction produced in the record at
// ack (a de-duplicated retry): from the read model, or from the log through
// the partition leader when the model has not applied it yet.
func (s *Service) originalEvent(ctx context.Context, ack jetstream.Ack, txnKey string) (*planb.Event, error) {
	if ev, err := s.model.TxnEvent(txnKey); err == nil && ev != nil {
		return ev, nil
	}
	m, err := s.engine.LeaderGet(ctx, jetstream.EventStream(ack.Partition), ack.Seq, "")
	if err != nil {
		return nil, fmt.Errorf("read original record: %w", err)
	}
	var rec planb.Record
	if err := json.Unmarshal(m.Data, &rec); err != nil {
		return nil, fmt.Errorf("decode original record: %w", err)
	}
	for _, t := range rec.Txns {
		if t.Key == txnKey && t.Event >= 0 && t.Event < len(rec.Events) {
			return rec.Events[t.Event], nil
		}
	}
	return nil, fmt.Errorf("record %d has no transaction %s", ack.Seq, txnKey)
}

// rejection is a write the auth rules refused, with why.
type rejection struct {
	r   *writeReq
	err error
}

// viewBehind reports whether the room's log has records after seq, the
// position of this node's view, and if so waits (briefly) until the view
// has them.
func (s *Service) viewBehind(ctx context.Context, roomID string, seq uint64) bool {
	cctx, cancel := context.WithTimeout(ctx, appendAttempt)
	defer cancel()
	last, err := s.engine.RoomLastSeq(cctx, roomID)
	if err != nil || last <= seq {
		return false
	}
	_ = s.model.WaitPartition(cctx, s.engine.Partition(roomID), last)
	return true
}

// takeMore adds writes queued for the room meanwhile to batch, up to
// maxBatch, so that a batch that lost a race goes out again with
// everything this node has for the room.
func (s *Service) takeMore(roomID string, batch []*writeReq) []*writeReq {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	q := s.w.queues[roomID]
	if q == nil {
		return batch
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	n := min(len(q.pending), maxBatch-len(batch))
	if n <= 0 {
		return batch
	}
	batch = append(batch, q.pending[:n]...)
	q.pending = q.pending[n:]
	return batch
}

// rebatch returns the included requests and their followers for another
// attempt.
func (s *Service) rebatch(included []*writeReq, followers map[int][]*writeReq) []*writeReq {
	out := append([]*writeReq(nil), included...)
	for _, fs := range followers {
		out = append(out, fs...)
	}
	return out
}

func (s *Service) failAll(included []*writeReq, followers map[int][]*writeReq, err error) {
	for _, r := range s.rebatch(included, followers) {
		r.done <- writeResult{err: err}
	}
}

// catchUpRoom waits until the read model has the room's latest record, read
// through the partition leader.
func (s *Service) catchUpRoom(ctx context.Context, roomID string) error {
	seq, err := s.engine.RoomLastSeq(ctx, roomID)
	if err != nil {
		return s.unavailable(err)
	}
	if err := s.model.WaitPartition(ctx, s.engine.Partition(roomID), seq); err != nil {
		return s.unavailable(err)
	}
	return nil
}

// awaitRoom waits for a room that this node does not know yet but the log
// may have (created a moment ago elsewhere). It returns M_NOT_FOUND when the
// log has no such room.
func (s *Service) awaitRoom(ctx context.Context, roomID string) error {
	seq, err := s.engine.RoomLastSeq(ctx, roomID)
	if err != nil {
		return s.unavailable(err)
	}
	if seq == 0 {
		return planb.NotFound("room %s not found", roomID)
	}
	if err := s.model.WaitPartition(ctx, s.engine.Partition(roomID), seq); err != nil {
		return s.unavailable(err)
	}
	if !s.model.HasRoom(roomID) {
		return planb.NotFound("room %s not found", roomID)
	}
	return nil
}

// overlay is room state with the record's earlier events on top.
type overlay struct {
	base planb.StateReader
	top  planb.StateMap
	pl   *plMemo // shared by the copies of one builder's overlay
}

// plMemo remembers the power levels parsed from one m.room.power_levels
// event, so that a batch of events is checked with one parse.
type plMemo struct {
	ev  *planb.Event
	pl  roomauth.PowerLevels
	set bool
}

func (o overlay) MemoPowerLevels(ev *planb.Event) (roomauth.PowerLevels, bool) {
	if o.pl == nil || !o.pl.set || o.pl.ev != ev {
		return roomauth.PowerLevels{}, false
	}
	return o.pl.pl, true
}

func (o overlay) RememberPowerLevels(ev *planb.Event, pl roomauth.PowerLevels) {
	if o.pl != nil {
		*o.pl = plMemo{ev: ev, pl: pl, set: true}
	}
}

func (o overlay) Get(t, k string) *planb.Event {
	if e := o.top.Get(t, k); e != nil {
		return e
	}
	if o.base == nil {
		return nil
	}
	return o.base.Get(t, k)
}

// builder makes the events of one record, each authorised against the state
// left by the ones before it. It is used under the read model's lock.
type builder struct {
	roomID string
	view   *roomView // nil for a new room
	state  overlay
	prev   string
	depth  int64
	now    int64
	events []*planb.Event
	// start values, for rollback
	prev0  string
	depth0 int64
}

func newBuilder(v *roomView, roomID string) *builder {
	b := &builder{roomID: roomID, view: v, state: overlay{top: planb.StateMap{}, pl: &plMemo{}}, now: time.Now().UnixMilli()}
	if v != nil {
		b.state.base = v.State()
		b.prev = v.LastEventID()
		b.depth = v.Depth()
	}
	b.prev0, b.depth0 = b.prev, b.depth
	return b
}

// membership returns user's membership as of the builder's state.
func (b *builder) membership(user string) string {
	if ev := b.state.Get(planb.TypeMember, user); ev != nil {
		return ev.Membership()
	}
	return ""
}

// event returns an event of the room by ID (committed or in this record).
func (b *builder) event(id string) *planb.Event {
	for _, e := range b.events {
		if e.EventID == id {
			return e
		}
	}
	if b.view == nil {
		return nil
	}
	return b.view.Event(id)
}

// rollback drops the events from index mark on.
func (b *builder) rollback(mark int) {
	if mark >= len(b.events) {
		return
	}
	b.events = b.events[:mark]
	b.state.top = planb.StateMap{}
	b.prev, b.depth = b.prev0, b.depth0
	for _, e := range b.events {
		b.state.top.Apply(e)
		b.prev, b.depth = e.EventID, e.Depth
	}
}

// add builds, validates and authorises one event.
func (b *builder) add(sender, typ string, stateKey *string, content any, redacts string) (*planb.Event, error) {
	var raw json.RawMessage
	switch c := content.(type) {
	case json.RawMessage:
		raw = c
	default:
		var err error
		if raw, err = json.Marshal(c); err != nil {
			return nil, planb.BadJSON("content: %v", err)
		}
	}
	ev := &planb.Event{RoomID: b.roomID, Sender: sender, Type: typ, StateKey: stateKey, Content: raw,
		Redacts: redacts, OriginServerTS: b.now, Depth: b.depth + 1}
	if b.prev != "" {
		ev.PrevEvents = []string{b.prev}
	} else {
		ev.PrevEvents = []string{}
	}
	ev.ComputeID()
	if err := roomauth.Validate(ev); err != nil {
		return nil, err
	}
	if err := roomauth.Check(ev, b.state); err != nil {
		return nil, err
	}
	b.state.top.Apply(ev)
	b.prev, b.depth = ev.EventID, b.depth+1
	b.events = append(b.events, ev)
	return ev, nil
}
