package jetstream

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/planb-chat/planb"
)

// Ack is the engine's receipt for a committed record.
type Ack struct {
	Partition int
	Seq       uint64
	// Duplicate is true when the record was a retry of one already stored
	// under the same message ID; Seq is then the original's sequence.
	Duplicate bool
}

// Partition returns the partition that holds roomID's log.
func (e *Engine) Partition(roomID string) int { return PartitionOf(roomID, e.cfg.Partitions) }

// PartitionOf places a room in one of n partitions. Tools that measure per
// partition (drills, tests) use it too, so there is one placement rule.
//
// It hashes with SHA-256: FNV and similar hashes reduced modulo a power of
// two keep only low bits, which for similar IDs do not spread at all.
func PartitionOf(roomID string, n int) int {
	h := sha256.Sum256([]byte(roomID))
	return int(binary.BigEndian.Uint32(h[:4]) % uint32(n))
}

// RoomSubject returns the subject of roomID's records.
func (e *Engine) RoomSubject(roomID string) string {
	return eventSubjectPrefix(e.Partition(roomID)) + KeyPart(roomID)
}

// AppendRoom commits data as the next record of roomID's log, provided the
// room's last record still has sequence expectLast (0: the room has no
// records yet). msgID, when not empty, makes a retry within the duplicate
// window return the original record's sequence with Duplicate set — but
// JetStream checks expectLast first, so a retry whose first attempt landed
// gets planb.ErrConflict; callers then catch up and find the original
// through the transaction index of the read models (the log is the
// durable transaction record).
//
// It returns planb.ErrConflict when the room moved on, and an error wrapping
// planb.ErrNoQuorum when the engine did not confirm the commit in time — the
// record may still land, so callers retry idempotently.
func (e *Engine) AppendRoom(ctx context.Context, roomID string, data []byte, expectLast uint64, msgID string) (Ack, error) {
	p := e.Partition(roomID)
	msg := nats.NewMsg(e.RoomSubject(roomID))
	msg.Data = data
	opts := []natsjs.PublishOpt{natsjs.WithExpectLastSequencePerSubject(expectLast)}
	if msgID != "" {
		opts = append(opts, natsjs.WithMsgID(msgID))
	}
	ack, err := e.js.PublishMsg(ctx, msg, opts...)
	if err != nil {
		if isWrongLastSeq(err) {
			return Ack{}, planb.ErrConflict
		}
		return Ack{}, fmt.Errorf("append to %s: %w: %w", EventStream(p), planb.ErrNoQuorum, err)
	}
	if ack.Duplicate {
		e.hint(EventStream(p), ack.Sequence)
	} else {
		e.push(EventStream(p), msg.Subject, ack.Sequence, data)
	}
	return Ack{Partition: p, Seq: ack.Sequence, Duplicate: ack.Duplicate}, nil
}

func isWrongLastSeq(err error) bool {
	var apiErr *natsjs.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode == natsjs.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == natsjs.JSErrCodeStreamWrongLastSequenceConstant
	}
	return false
}

// RawMsg is one stored message.
type RawMsg struct {
	Subject string
	Seq     uint64
	Data    []byte
	Header  nats.Header
	Time    time.Time
}

// LeaderGet reads a message from a stream through its leader, so that it
// sees every committed write (direct gets may be served by a lagging
// replica). Give either seq or lastBySubject. Returns planb.ErrNotFound when
// there is no such message.
//
// Each attempt waits at most leaderGetAttempt, and attempts go on until ctx
// ends (5 s when it has no deadline): a request that reached a leader which
// then died or was cut off gets no answer, and while a new leader is being
// elected JetStream answers 503. Either way a new attempt soon succeeds.
func (e *Engine) LeaderGet(ctx context.Context, stream string, seq uint64, lastBySubject string) (*RawMsg, error) {
	req := map[string]any{}
	if lastBySubject != "" {
		req["last_by_subj"] = lastBySubject
	} else {
		req["seq"] = seq
	}
	body, _ := json.Marshal(req)
	return e.leaderGet(ctx, stream, body)
}

// leaderGet sends the message-get request body to stream's leader, with
// LeaderGet's retries.
func (e *Engine) leaderGet(ctx context.Context, stream string, body []byte) (*RawMsg, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	for {
		actx, cancel := context.WithTimeout(ctx, leaderGetAttempt)
		m, err := e.leaderGetOnce(actx, stream, body)
		cancel()
		var apiErr *natsjs.APIError
		if err == nil || errors.Is(err, planb.ErrNotFound) || (errors.As(err, &apiErr) && apiErr.Code < 500) {
			return m, err
		}
		t := time.NewTimer(leaderGetPause)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
	}
}

// A leader read is retried after leaderGetPause when an attempt failed or
// got no answer within leaderGetAttempt.
const (
	leaderGetAttempt = 2 * time.Second
	leaderGetPause   = 100 * time.Millisecond
)

func (e *Engine) leaderGetOnce(ctx context.Context, stream string, body []byte) (*RawMsg, error) {
	resp, err := e.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+stream, body)
	if err != nil {
		return nil, fmt.Errorf("leader get %s: %w: %w", stream, planb.ErrNoQuorum, err)
	}
	var out struct {
		Message *struct {
			Subject string    `json:"subject"`
			Seq     uint64    `json:"seq"`
			Header  []byte    `json:"hdrs"`
			Data    []byte    `json:"data"`
			Time    time.Time `json:"time"`
		} `json:"message"`
		Error *natsjs.APIError `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &out); err != nil {
		return nil, fmt.Errorf("leader get %s: decode: %w", stream, err)
	}
	if out.Error != nil {
		if out.Error.ErrorCode == natsjs.JSErrCodeMessageNotFound || out.Error.Code == 404 {
			return nil, planb.ErrNotFound
		}
		return nil, fmt.Errorf("leader get %s: %w", stream, out.Error)
	}
	if out.Message == nil {
		return nil, fmt.Errorf("leader get %s: empty response", stream)
	}
	m := &RawMsg{Subject: out.Message.Subject, Seq: out.Message.Seq, Data: out.Message.Data, Time: out.Message.Time}
	if len(out.Message.Header) > 0 {
		if h, err := decodeHeaders(out.Message.Header); err == nil {
			m.Header = h
		}
	}
	return m, nil
}

// decodeHeaders parses a "NATS/1.0\r\nKey: Value\r\n..." header block.
func decodeHeaders(b []byte) (nats.Header, error) {
	h := nats.Header{}
	lines := strings.Split(string(b), "\r\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "NATS/1.0") {
		return nil, errors.New("bad header block")
	}
	for _, l := range lines[1:] {
		if k, v, ok := strings.Cut(l, ":"); ok {
			h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
		}
	}
	return h, nil
}

// RoomLastSeq returns the sequence of roomID's last committed record, read
// through the partition leader, or 0 when the room has none.
func (e *Engine) RoomLastSeq(ctx context.Context, roomID string) (uint64, error) {
	m, err := e.LeaderGet(ctx, EventStream(e.Partition(roomID)), 0, e.RoomSubject(roomID))
	if errors.Is(err, planb.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return m.Seq, nil
}

// streamInfo asks the stream's leader for its state and cluster view: one
// API request (looking the stream up already answers with its info).
func (e *Engine) streamInfo(ctx context.Context, stream string) (*natsjs.StreamInfo, error) {
	s, err := e.js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("stream %s info: %w", stream, err)
	}
	return s.CachedInfo(), nil
}

// StreamLastSeq returns the last sequence of a stream, as its leader knows it.
func (e *Engine) StreamLastSeq(ctx context.Context, stream string) (uint64, error) {
	info, err := e.streamInfo(ctx, stream)
	if err != nil {
		return 0, err
	}
	return info.State.LastSeq, nil
}

// ClusterInfo is a stream's cluster view: its leader and the other
// replicas with their state.
type ClusterInfo struct {
	Leader   string
	Replicas []PeerInfo
}

// PeerInfo is one non-leader replica of a stream.
type PeerInfo struct {
	Name    string
	Current bool
	Offline bool
	// Lag is how many operations the replica is behind the leader.
	Lag uint64
}

// StreamCluster returns the cluster view (leader, replicas and their lag)
// of a stream, as its leader reports it.
func (e *Engine) StreamCluster(ctx context.Context, stream string) (*ClusterInfo, error) {
	info, err := e.streamInfo(ctx, stream)
	if err != nil {
		return nil, err
	}
	out := &ClusterInfo{}
	if info.Cluster == nil {
		return out, nil
	}
	out.Leader = info.Cluster.Leader
	for _, r := range info.Cluster.Replicas {
		out.Replicas = append(out.Replicas, PeerInfo{Name: r.Name, Current: r.Current, Offline: r.Offline, Lag: r.Lag})
	}
	return out, nil
}

// StreamNames returns every declared stream: the log partitions, the
// buckets' streams and the media store's.
func (e *Engine) StreamNames() []string {
	var out []string
	for p := 0; p < e.cfg.Partitions; p++ {
		out = append(out, EventStream(p))
	}
	for _, b := range bucketSpecs {
		out = append(out, BucketStream(b.name))
	}
	return append(out, ToDeviceStream, "OBJ_"+MediaStore)
}

// StepDown asks a stream's leader to hand leadership to another replica.
func (e *Engine) StepDown(ctx context.Context, stream string) error {
	return e.StepDownTo(ctx, stream, "")
}

// StepDownTo asks a stream's leader to hand leadership to the replica on
// server preferred ("" lets the replicas elect any of them).
func (e *Engine) StepDownTo(ctx context.Context, stream, preferred string) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	var body []byte
	if preferred != "" {
		body, _ = json.Marshal(map[string]any{"placement": map[string]string{"preferred": preferred}})
	}
	resp, err := e.nc.RequestWithContext(ctx, "$JS.API.STREAM.LEADER.STEPDOWN."+stream, body)
	if err != nil {
		return fmt.Errorf("step down %s: %w", stream, err)
	}
	var out struct {
		Error *natsjs.APIError `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &out); err != nil {
		return fmt.Errorf("step down %s: decode: %w", stream, err)
	}
	if out.Error != nil {
		return fmt.Errorf("step down %s: %w", stream, out.Error)
	}
	return nil
}
