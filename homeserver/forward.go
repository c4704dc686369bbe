package homeserver

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

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
	forwardSubject = "planb.send."   // + partition
	forwardQueue   = "planb-send"    // one leader serves a partition; two during a handover
	forwardTimeout = 3 * time.Second // then commit locally
	leaderAdvisory = "$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED."
	leaderRefresh  = 5 * time.Second
)

// forwarder tracks which partitions this node leads and serves forwarded
// sends for them. Lock rule: mu guards every field below it.
type forwarder struct {
	mu      sync.Mutex
	leaders map[int]string // partition → leader node name
	subs    map[int]*nats.Subscription
}

// forwardReq is a send forwarded to the partition leader's node.
type forwardReq struct {
	UserID    string          `json:"user_id"`
	DeviceID  string          `json:"device_id"`
	RoomID    string          `json:"room_id"`
	EventType string          `json:"type"`
	TxnID     string          `json:"txn_id"`
	Content   json.RawMessage `json:"content"`
}

// forwardResp is its answer: the event ID and how far the leader's read
// model is (so the forwarding node can wait for its own to get there), or
// the Matrix error.
type forwardResp struct {
	EventID  string      `json:"event_id,omitempty"`
	Position uint64      `json:"position,omitempty"`
	Error    *forwardErr `json:"error,omitempty"`
}

type forwardErr struct {
	Code       planb.ErrCode `json:"errcode"`
	Status     int           `json:"status"`
	Message    string        `json:"error"`
	RetryAfter int64         `json:"retry_after_ms,omitempty"`
}

// runForwarding keeps the forwarding subscriptions in line with the
// partitions this node leads until ctx ends.
func (s *Service) runForwarding(ctx context.Context) error {
	nc := s.engine.Conn()
	adv, err := nc.Subscribe(leaderAdvisory+"*", func(m *nats.Msg) {
		var a struct {
			Stream string `json:"stream"`
			Leader string `json:"leader"`
		}
		if json.Unmarshal(m.Data, &a) != nil {
			return
		}
		if p, ok := partitionOfStream(a.Stream); ok && a.Leader != "" {
			s.setLeader(p, a.Leader)
		}
	})
	if err != nil {
		return err
	}
	defer adv.Unsubscribe()
	defer s.stopServing()
	tick := time.NewTicker(leaderRefresh)
	defer tick.Stop()
	for {
		// Advisories can be missed (a reconnect, a restart); a slow poll
		// corrects the view.
		for p := 0; p < s.engine.Partitions(); p++ {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			ci, err := s.engine.StreamCluster(cctx, jetstream.EventStream(p))
			cancel()
			if err == nil && ci.Leader != "" {
				s.setLeader(p, ci.Leader)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func partitionOfStream(stream string) (int, bool) {
	n, ok := strings.CutPrefix(stream, "EVENTS_")
	if !ok {
		return 0, false
	}
	p, err := strconv.Atoi(n)
	return p, err == nil
}

// setLeader records partition p's leader and serves or stops serving it.
func (s *Service) setLeader(p int, leader string) {
	f := &s.fwd
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.leaders == nil {
		f.leaders, f.subs = map[int]string{}, map[int]*nats.Subscription{}
	}
	f.leaders[p] = leader
	mine := leader == s.engine.NodeName() && !s.draining.Load()
	switch sub := f.subs[p]; {
	case mine && sub == nil:
		sub, err := s.engine.Conn().QueueSubscribe(forwardSubject+strconv.Itoa(p), forwardQueue, s.serveForward)
		if err != nil {
			s.log.Warn("serve forwarded sends", "partition", p, "err", err)
			return
		}
		f.subs[p] = sub
	case !mine && sub != nil:
		_ = sub.Unsubscribe()
		delete(f.subs, p)
	}
}

func (s *Service) stopServing() {
	f := &s.fwd
	f.mu.Lock()
	defer f.mu.Unlock()
	for p, sub := range f.subs {
		_ = sub.Unsubscribe()
		delete(f.subs, p)
	}
}

// remoteLeader returns the node leading partition p when it is another.
func (s *Service) remoteLeader(p int) (string, bool) {
	f := &s.fwd
	f.mu.Lock()
	defer f.mu.Unlock()
	l, ok := f.leaders[p]
	return l, ok && l != s.engine.NodeName()
}

// serveForward commits a forwarded send here and answers it.
func (s *Service) serveForward(m *nats.Msg) {
	go func() {
		var req forwardReq
		var resp forwardResp
		if err := json.Unmarshal(m.Data, &req); err != nil {
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
		_ = m.Respond(b)
	}()
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
	if _, remote := s.remoteLeader(p); !remote {
		return "", false, nil
	}
	b, _ := json.Marshal(forwardReq{UserID: sess.UserID, DeviceID: sess.DeviceID, RoomID: roomID,
		EventType: eventType, TxnID: txnID, Content: content})
	fctx, cancel := context.WithTimeout(ctx, forwardTimeout)
	m, rerr := s.engine.Conn().RequestWithContext(fctx, forwardSubject+strconv.Itoa(p), b)
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
	if err := json.Unmarshal(m.Data, &resp); err != nil {
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
