package homeserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/projection"
	"github.com/planb-chat/planb/roomauth"
)

type roomView = projection.RoomView

// errSkip tells commit that there is nothing to write.
var errSkip = errors.New("nothing to write")

// maxCommitAttempts bounds optimistic-concurrency retries of one write.
const maxCommitAttempts = 50

// commit builds events for roomID against the room's current state, appends
// them as one record that must land right after the state they were checked
// against, and waits until this node's read model has applied them. When
// another write got there first, it catches up and builds again, so an
// event is always authorised against the state where it lands.
//
// txn, when set, makes the write idempotent: a retry returns the original
// events, whichever node or data center took the first attempt.
func (s *Service) commit(ctx context.Context, roomID string, txn *planb.Txn, build func(roomView) ([]*planb.Event, error)) ([]*planb.Event, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.WriteTimeout)
	defer cancel()
	for attempt := 0; attempt < maxCommitAttempts; attempt++ {
		if txn != nil {
			if ev := s.model.TxnEvent(txn.Key); ev != nil {
				return []*planb.Event{ev}, nil
			}
		}
		var events []*planb.Event
		var expect uint64
		err := s.model.WithRoom(roomID, func(v roomView) error {
			expect = v.LastSeq()
			var err error
			events, err = build(v)
			return err
		})
		if errors.Is(err, planb.ErrNotFound) {
			if err := s.awaitRoom(ctx, roomID); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		rec := planb.Record{Events: events, Txn: txn}
		data, err := json.Marshal(rec)
		if err != nil {
			return nil, fmt.Errorf("encode record: %w", err)
		}
		msgID := ""
		if txn != nil {
			msgID = txn.Key
		}
		ack, err := s.engine.AppendRoom(ctx, roomID, data, expect, msgID)
		if errors.Is(err, planb.ErrConflict) {
			if err := s.catchUpRoom(ctx, roomID); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, s.unavailable(err)
		}
		if err := s.model.WaitPartition(ctx, ack.Partition, ack.Seq); err != nil {
			// Committed, but this node's read model lags: the write stands.
			s.log.Warn("read model lags behind own write", "room", roomID, "seq", ack.Seq)
			if ack.Duplicate {
				return nil, s.unavailable(err)
			}
			return events, nil
		}
		if ack.Duplicate && txn != nil {
			if ev := s.model.TxnEvent(txn.Key); ev != nil {
				return []*planb.Event{ev}, nil
			}
		}
		return events, nil
	}
	return nil, s.unavailable(errors.New("room is too busy: too many concurrent writes"))
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
// left by the ones before it.
type builder struct {
	roomID string
	state  overlay
	prev   string
	depth  int64
	now    int64
	events []*planb.Event
}

func newBuilder(v *roomView, roomID string) *builder {
	b := &builder{roomID: roomID, state: overlay{top: planb.StateMap{}}, now: time.Now().UnixMilli()}
	if v != nil {
		b.state.base = v.State()
		b.prev = v.LastEventID()
		b.depth = v.Depth()
	}
	return b
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

// buildEvent builds one event on top of the room's current state.
func (s *Service) buildEvent(v roomView, sender, typ string, stateKey *string, content any) (*planb.Event, error) {
	return newBuilder(&v, v.ID()).add(sender, typ, stateKey, content, "")
}
