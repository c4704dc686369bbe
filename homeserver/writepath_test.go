package homeserver_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/homeserver"
	"github.com/planb-chat/planb/internal/freeport"
	"github.com/planb-chat/planb/internal/testutil"
	"github.com/planb-chat/planb/jetstream"
	"github.com/planb-chat/planb/projection"
)

// The write path on a real in-process engine: group commit, optimistic
// concurrency between nodes, idempotent transaction IDs and forwarding to
// the partition leader. Nothing is mocked: every node is a homeserver.Service
// on a JetStream engine whose files live in t.TempDir().

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// node is one Service with its own read model and metrics.
type node struct {
	svc *homeserver.Service
	eng *jetstream.Engine
	reg *prometheus.Registry
}

// startNode runs a Service on eng until the test ends and waits until its
// read model has caught up with the log.
func startNode(t *testing.T, eng *jetstream.Engine, dc string) *node {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg := homeserver.DefaultConfig()
	cfg.ServerName, cfg.OpenRegistration, cfg.DataCenter = "test.local", true, dc
	cfg.WriteTimeout = planb.Duration(30 * time.Second)
	svc := homeserver.New(cfg, eng, projection.New(eng.Partitions(), eng.Partition), quiet, reg)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("service on %s: %v", dc, err)
		}
	})
	testutil.WaitFor(t, 30*time.Second, dc+" read model caught up", func() error {
		if !svc.CaughtUp() {
			return errors.New("not caught up")
		}
		return nil
	})
	return &node{svc: svc, eng: eng, reg: reg}
}

// standalone starts a one-replica engine in t.TempDir().
func standalone(t *testing.T) *jetstream.Engine {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	eng, err := jetstream.Start(ctx, jetstream.Config{DataDir: t.TempDir(), NodeName: "n1", DataCenter: "dc1",
		Replicas: 1, Partitions: 2}, quiet)
	if err != nil {
		t.Fatalf("start engine: %v", err)
	}
	t.Cleanup(eng.Close)
	return eng
}

// user registers a user at n and returns its session.
func (n *node) user(t *testing.T, name string) homeserver.Session {
	t.Helper()
	resp, err := n.svc.Register(context.Background(), homeserver.RegisterRequest{
		Auth: json.RawMessage(`{"type":"m.login.dummy"}`), Username: name, Password: "password-of-" + name})
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	return homeserver.Session{UserID: resp.UserID, DeviceID: resp.DeviceID}
}

// room creates a public room owned by owner at n.
func (n *node) room(t *testing.T, owner homeserver.Session) string {
	t.Helper()
	id, err := n.svc.CreateRoom(context.Background(), owner, homeserver.CreateRoomRequest{Preset: "public_chat"})
	if err != nil {
		t.Fatalf("create room: %v", err)
	}
	return id
}

func text(body string) json.RawMessage {
	b, _ := json.Marshal(map[string]string{"msgtype": "m.text", "body": body})
	return b
}

// counter reads a counter of n's registry (0 when it has not been set).
func (n *node) counter(t *testing.T, name, label, value string) float64 {
	t.Helper()
	mfs, err := n.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// logRecords reads roomID's records from the log (the truth, not a model)
// until it has seen want message events.
func logRecords(t *testing.T, eng *jetstream.Engine, roomID string, want int) []planb.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	subject := eng.RoomSubject(roomID)
	var recs []planb.Record
	msgs := 0
	errEnough := errors.New("enough")
	err := eng.Follow(ctx, jetstream.EventStream(eng.Partition(roomID)), 1, func(m jetstream.RawMsg) error {
		if m.Subject != subject {
			return nil
		}
		var r planb.Record
		if err := json.Unmarshal(m.Data, &r); err != nil {
			return fmt.Errorf("record %d: %w", m.Seq, err)
		}
		recs = append(recs, r)
		for _, ev := range r.Events {
			if ev.Type == "m.room.message" {
				msgs++
			}
		}
		if msgs >= want {
			return errEnough
		}
		return nil
	})
	if !errors.Is(err, errEnough) {
		t.Fatalf("log of %s: %d of %d messages: %v", roomID, msgs, want, err)
	}
	return recs
}

// messageBodies counts the bodies of roomID's message events in the log.
func messageBodies(recs []planb.Record) map[string]int {
	out := map[string]int{}
	for _, r := range recs {
		for _, ev := range r.Events {
			if ev.Type != "m.room.message" {
				continue
			}
			var c struct{ Body string }
			_ = json.Unmarshal(ev.Content, &c)
			out[c.Body]++
		}
	}
	return out
}

// sendAll sends n messages to roomID at once, from as many goroutines, and
// fails on any error.
func sendAll(t *testing.T, at *node, sess homeserver.Session, roomID, prefix string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := at.svc.SendEvent(context.Background(), sess, roomID, "m.room.message",
				prefix+"-"+strconv.Itoa(i), text(prefix+" "+strconv.Itoa(i)))
			if err != nil {
				errs <- fmt.Errorf("send %s %d: %w", prefix, i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestGroupCommitPutsConcurrentSendsInFewerRecords(t *testing.T) {
	n := startNode(t, standalone(t), "dc1")
	alice := n.user(t, "alice")
	room := n.room(t, alice)
	const sends = 200
	sendAll(t, n, alice, room, "burst", sends)
	recs := logRecords(t, n.eng, room, sends)
	bodies := messageBodies(recs)
	for i := range sends {
		if c := bodies["burst "+strconv.Itoa(i)]; c != 1 {
			t.Errorf("message %d is %d times in the log, want once", i, c)
		}
	}
	withMessages := 0
	for _, r := range recs {
		for _, ev := range r.Events {
			if ev.Type == "m.room.message" {
				withMessages++
				break
			}
		}
	}
	t.Logf("%d concurrent sends landed in %d records", sends, withMessages)
	if withMessages >= sends {
		t.Errorf("%d concurrent sends took %d records: no group commit", sends, withMessages)
	}
}

func TestConcurrentWritersOnTwoNodesConflictAndRetry(t *testing.T) {
	eng := standalone(t)
	a, b := startNode(t, eng, "dc1"), startNode(t, eng, "dc2")
	alice := a.user(t, "alice")
	room := a.room(t, alice)
	bob := b.user(t, "bob")
	testutil.WaitFor(t, 30*time.Second, "bob joins through node b", func() error {
		_, err := b.svc.Join(context.Background(), bob, room, nil)
		return err
	})
	const each = 60
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); sendAll(t, a, alice, room, "from-a", each) }()
	go func() { defer wg.Done(); sendAll(t, b, bob, room, "from-b", each) }()
	wg.Wait()
	bodies := messageBodies(logRecords(t, eng, room, 2*each))
	for _, p := range []string{"from-a", "from-b"} {
		for i := range each {
			if c := bodies[p+" "+strconv.Itoa(i)]; c != 1 {
				t.Errorf("%s %d is %d times in the log, want once", p, i, c)
			}
		}
	}
	conflicts := a.counter(t, "planb_commit_errors_total", "kind", "conflict") +
		b.counter(t, "planb_commit_errors_total", "kind", "conflict")
	t.Logf("two nodes writing one room: %.0f lost races, every write landed once", conflicts)
	// Both models end with the same timeline, in the log's order.
	pa, err := a.svc.Messages(alice, room, "", "", true, 500, nil)
	if err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 30*time.Second, "node b's timeline equals node a's", func() error {
		pb, err := b.svc.Messages(bob, room, "", "", true, 500, nil)
		if err != nil {
			return err
		}
		if len(pb.Chunk) != len(pa.Chunk) {
			return fmt.Errorf("%d events at b, %d at a", len(pb.Chunk), len(pa.Chunk))
		}
		for i := range pa.Chunk {
			if pa.Chunk[i].EventID != pb.Chunk[i].EventID {
				t.Fatalf("timelines differ at %d: %s vs %s", i, pa.Chunk[i].EventID, pb.Chunk[i].EventID)
			}
		}
		return nil
	})
}

func TestDuplicateTxnIDsYieldOneEvent(t *testing.T) {
	eng := standalone(t)
	a, b := startNode(t, eng, "dc1"), startNode(t, eng, "dc2")
	alice := a.user(t, "alice")
	room := a.room(t, alice)
	// The same transaction, 20 times at once, at two nodes.
	ids := make(chan string, 20)
	var wg sync.WaitGroup
	for i := range 20 {
		at := a
		if i%2 == 1 {
			at = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := at.svc.SendEvent(context.Background(), alice, room, "m.room.message", "txn-1", text("once"))
			if err != nil {
				t.Errorf("retry %d: %v", i, err)
				return
			}
			ids <- id
		}()
	}
	wg.Wait()
	close(ids)
	first := ""
	for id := range ids {
		if first == "" {
			first = id
		}
		if id != first {
			t.Errorf("retries of one transaction returned %s and %s", first, id)
		}
	}
	// A later retry, and one after a different transaction, still match.
	if _, err := a.svc.SendEvent(context.Background(), alice, room, "m.room.message", "txn-2", text("twice")); err != nil {
		t.Fatal(err)
	}
	again, err := b.svc.SendEvent(context.Background(), alice, room, "m.room.message", "txn-1", text("once"))
	if err != nil || again != first {
		t.Errorf("later retry = %s, %v; want %s", again, err, first)
	}
	bodies := messageBodies(logRecords(t, eng, room, 2))
	if bodies["once"] != 1 || bodies["twice"] != 1 {
		t.Errorf("log has %v, want each message once", bodies)
	}
	// Another device of the same user may reuse the transaction ID.
	other := alice
	other.DeviceID = "OTHERDEVICE"
	id3, err := a.svc.SendEvent(context.Background(), other, room, "m.room.message", "txn-1", text("other device"))
	if err != nil || id3 == first {
		t.Errorf("same txnId from another device = %s, %v; want a new event", id3, err)
	}
}

// cluster starts three engines in-process, routed to each other on
// loopback, with three replicas: leaders of the partitions are spread over
// them, so sends at a non-leader are forwarded.
func cluster(t *testing.T) []*jetstream.Engine {
	t.Helper()
	ports := make([]int, 3)
	for i := range ports {
		p, err := freeport.Transient() // never restarted: keep clear of the ports restarted processes use
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = p
	}
	engines := make([]*jetstream.Engine, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range engines {
		var routes []string
		for j, p := range ports {
			if j != i {
				routes = append(routes, "nats-route://127.0.0.1:"+strconv.Itoa(p))
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			name := "dc" + strconv.Itoa(i+1)
			engines[i], errs[i] = jetstream.Start(ctx, jetstream.Config{DataDir: t.TempDir(), NodeName: name,
				DataCenter: name, ClusterName: "writepath", ClusterListen: "127.0.0.1:" + strconv.Itoa(ports[i]),
				Routes: routes, Replicas: 3, Partitions: 3}, quiet)
		}()
	}
	wg.Wait()
	for i, e := range engines {
		if errs[i] != nil {
			t.Fatalf("start engine %d: %v", i, errs[i])
		}
		t.Cleanup(e.Close)
	}
	return engines
}

func TestSendAtANonLeaderIsForwardedToThePartitionLeader(t *testing.T) {
	engines := cluster(t)
	nodes := make([]*node, len(engines))
	for i, e := range engines {
		nodes[i] = startNode(t, e, "dc"+strconv.Itoa(i+1))
	}
	alice := nodes[0].user(t, "alice")
	room := nodes[0].room(t, alice)
	stream := jetstream.EventStream(engines[0].Partition(room))
	sent := 0
	testutil.WaitFor(t, time.Minute, "a send forwarded to the partition leader", func() error {
		var at *node
		for _, n := range nodes {
			if leader, known := n.eng.IsStreamLeader(stream); known && !leader {
				at = n
				break
			}
		}
		if at == nil {
			return errors.New("no node knows it is not the leader")
		}
		sent++
		if _, err := at.svc.SendEvent(context.Background(), alice, room, "m.room.message",
			"fwd-"+strconv.Itoa(sent), text("forwarded "+strconv.Itoa(sent))); err != nil {
			return err
		}
		if at.counter(t, "planb_forwarded_sends_total", "result", "ok") == 0 {
			return errors.New("committed locally (the leader does not serve forwarded sends yet)")
		}
		return nil
	})
	bodies := messageBodies(logRecords(t, engines[0], room, sent))
	for i := 1; i <= sent; i++ {
		if c := bodies["forwarded "+strconv.Itoa(i)]; c != 1 {
			t.Errorf("forwarded %d is %d times in the log, want once", i, c)
		}
	}
}
