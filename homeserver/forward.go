package homeserver

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/jetstream"
)

// Sends are forwarded to the node that leads the room's partition, so that
// every write to a room meets in one group-commit queue there instead of
// racing the other data centers' writes for the next log position (planb
// bench measured three lost races per commit with writers in three data
// centers). The forwarding is an optimisation only: when the leader does
// not answer within forwardTimeout, or nobody serves the partition, the
// send is committed here as before, and the log's transaction keys make a
// send that landed twice count once.
const (
	forwardTimeout = 3 * time.Second        // then commit locally
	forwardCheck   = 500 * time.Millisecond // how often subscriptions follow leadership
)

// forwarder serves forwarded sends for the partitions this node leads.
// Lock rule: mu guards subs.
type forwarder struct {
	mu   sync.Mutex
	subs map[int]*jetstream.Subscription
}

// forwardReq is a send forwarded to the partition leader's node.
type forwardReq struct {
	UserID    string          `json:"user_id"`
	DeviceID  string          `json:"device_id"`
	RoomID    string          `json:"room_id"`
	EventType string          `json:"type"`
	TxnID     string          `json:"txn_id"`
	Content   json.RawMessage `json:"content"`
	// After is how far the forwarding node's read model had got in the
	// room's partition: the leader checks the send against at least that
	// much (the user's own join a moment ago, say), never against less.
	After uint64 `json:"after"`
}

// forwardResp is its answer: the event ID and how far the leader's read
// model is (so the forwarding node can wait for its own to get there), or
// the Matrix error.
type forwardResp struct {
	NotLeader bool        `json:"not_leader,omitempty"`
	EventID   string      `json:"event_id,omitempty"`
	Position  uint64      `json:"position,omitempty"`
	Error     *forwardErr `json:"error,omitempty"`
}

type forwardErr struct {
	Code       planb.ErrCode `json:"errcode"`
	Status     int           `json:"status"`
	Message    string        `json:"error"`
	RetryAfter int64         `json:"retry_after_ms,omitempty"`
}

// runForwarding keeps the forwarding subscriptions in line with the
// partitions this node leads until ctx ends. Leadership is read from the
// embedded server's own Raft state, so following it costs no request.
func (s *Service) runForwarding(ctx context.Context) error {
	if _, known := s.engine.IsStreamLeader(jetstream.EventStream(0)); !known {
		return nil // standalone or an external engine: every node commits itself
	}
	defer s.stopServing()
	tick := time.NewTicker(forwardCheck)
	defer tick.Stop()
	for {
		for p := 0; p < s.engine.Partitions(); p++ {
			s.serve(p, s.leads(p) && !s.draining.Load())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// leads reports whether this node leads partition p.
func (s *Service) leads(p int) bool {
	l, _ := s.engine.IsStreamLeader(jetstream.EventStream(p))
	return l
}

// serve starts or stops serving forwarded sends of partition p.
func (s *Service) serve(p int, on bool) {
	f := &s.fwd
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.subs == nil {
		f.subs = map[int]*jetstream.Subscription{}
	}
	switch sub := f.subs[p]; {
	case on && sub == nil:
		sub, err := s.engine.Serve(jetstream.ForwardSubject(p), jetstream.ForwardQueue, s.serveForward)
		if err != nil {
			s.log.Warn("serve forwarded sends", "partition", p, "err", err)
			return
		}
		f.subs[p] = sub
	case !on && sub != nil:
		sub.Stop()
		delete(f.subs, p)
	}
}

func (s *Service) stopServing() {
	f := &s.fwd
	f.mu.Lock()
	defer f.mu.Unlock()
	for p, sub := range f.subs {
		sub.Stop()
		delete(f.subs, p)
	}
}

// serveForward commits a forwarded send here and answers it.
func (s *Service) serveForward(data []byte) []byte {
	var req forwardReq
	var resp forwardResp
	if err := json.Unmarshal(data, &req); err == nil && (!s.leads(s.engine.Partition(req.RoomID)) || !s.seen(req)) {
		// Leadership moved since we subscribed, or this node's read
		// model lags behind the sender's: let the sender commit.
		resp.NotLeader = true
	} else if err != nil {
		resp.Error = &forwardErr{Code: planb.CodeBadJSON, Status: 400, Message: "forwarded send: " + err.Error()}
	} else {
		sess := Session{UserID: req.UserID, DeviceID: req.DeviceID}
		id, err := s.sendLocal(context.Background(), sess, req.RoomID, req.EventType, req.TxnID, req.Content)
		if err != nil {
			resp.Error = toForwardErr(s.notFoundAsForbidden(err, req.RoomID))
		} else {
			resp.EventID = id
			resp.Position = s.model.Position().Parts[s.engine.Partition(req.RoomID)]
		}
	}
	b, _ := json.Marshal(resp)
	return b
}

// seen waits briefly until this node's read model has what the forwarding
// node had seen of the room's partition.
func (s *Service) seen(req forwardReq) bool {
	ctx, cancel := context.WithTimeout(context.Background(), readOwnWriteWait)
	defer cancel()
	return s.model.WaitPartition(ctx, s.engine.Partition(req.RoomID), req.After) == nil
}

func toForwardErr(err error) *forwardErr {
	e, ok := planb.AsError(err)
	if !ok {
		return &forwardErr{Code: planb.CodeUnavailable, Status: 503, Message: err.Error(), RetryAfter: 2000}
	}
	return &forwardErr{Code: e.Code, Status: e.Status, Message: e.Message, RetryAfter: e.RetryAfter.Milliseconds()}
}

// forwardSend sends through the partition leader's node. handled is false
// when the send should be committed here instead.
func (s *Service) forwardSend(ctx context.Context, sess Session, roomID, eventType, txnID string, content json.RawMessage) (eventID string, handled bool, err error) {
	p := s.engine.Partition(roomID)
	if leader, known := s.engine.IsStreamLeader(jetstream.EventStream(p)); !known || leader {
		return "", false, nil
	}
	b, _ := json.Marshal(forwardReq{UserID: sess.UserID, DeviceID: sess.DeviceID, RoomID: roomID,
		EventType: eventType, TxnID: txnID, Content: content, After: s.model.Position().Parts[p]})
	fctx, cancel := context.WithTimeout(ctx, forwardTimeout)
	reply, rerr := s.engine.Request(fctx, jetstream.ForwardSubject(p), b)
	cancel()
	if rerr != nil {
		// Nobody serves the partition (a handover, a lost data center) or
		// its leader did not answer in time: commit here.
		if ctx.Err() == nil {
			s.m.forwarded.WithLabelValues("fallback").Inc()
			return "", false, nil
		}
		return "", true, ctx.Err()
	}
	var resp forwardResp
	if err := json.Unmarshal(reply, &resp); err != nil || resp.NotLeader {
		s.m.forwarded.WithLabelValues("fallback").Inc()
		return "", false, nil
	}
	if resp.Error != nil {
		s.m.forwarded.WithLabelValues("error").Inc()
		return "", true, &planb.Error{Code: resp.Error.Code, Status: resp.Error.Status, Message: resp.Error.Message,
			RetryAfter: time.Duration(resp.Error.RetryAfter) * time.Millisecond}
	}
	s.m.forwarded.WithLabelValues("ok").Inc()
	// Read your own writes here too: wait briefly until this node's read
	// model has what the leader's had when it answered.
	wctx, wcancel := context.WithTimeout(ctx, readOwnWriteWait)
	if err := s.model.WaitPartition(wctx, p, resp.Position); err != nil && !errors.Is(err, context.Canceled) {
		s.log.Debug("read model lags behind a forwarded write", "room", roomID)
	}
	wcancel()
	return resp.EventID, true, nil
}
