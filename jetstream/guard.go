package jetstream

import (
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// The quorum guard keeps a node that is cut off from the rest of the
// cluster from disturbing it when it comes back.
//
// NATS Raft has no pre-vote. A group member that hears no leader starts an
// election every 4–9 s and raises its term each time; alone, it can never
// win, but its terms keep growing. When the links return, its higher term
// makes the majority's healthy leaders step down, in every group it belongs
// to (with three data centers and R3, every group), and a second round of
// elections follows the healing.
//
// So every node tells the others it is alive, four times a second, over
// core NATS (nothing stored). A node that hears from too few peers to make
// a quorum with itself, or that has lost its routes to them, puts all its
// Raft groups into observer mode: they keep their logs, still vote and
// replicate, and do not campaign, so their terms stay where they were (a
// leader keeps leading, and follows the majority's new leader when it
// hears its higher term). It notices within aliveSilence, well before the 4 s minimum
// election timeout. Once it hears a quorum again for rejoinAfter, its
// groups have heard the current leaders (who send heartbeats every second)
// and adopted their terms; it lets them campaign again, as followers with
// the cluster's terms. While it observes, the node reports itself cut off
// (CutOff), so it answers writes with 503 and is not ready.
//
// The guard arms once the node has heard a quorum: a cluster that is still
// forming elects its first leaders as usual. (A node restarted while it is
// cut off therefore campaigns until it first hears a quorum.)
const (
	aliveSubject = "planb.alive"
	aliveEvery   = 250 * time.Millisecond
	aliveSilence = 2 * time.Second
	rejoinAfter  = time.Second
)

type guard struct {
	srv  *server.Server
	log  *slog.Logger
	name string
	size int // nodes in the cluster, this one included
	pub  func([]byte) error

	mu        sync.Mutex
	heard     map[string]time.Time // peer node -> last alive message
	observing bool
	groups    map[string]bool // groups put into observer mode
	since     time.Time       // when the current verdict began
	reachable bool            // the current verdict
	armed     bool            // a quorum has been heard once

	stop chan struct{}
	done chan struct{}
}

func newGuard(srv *server.Server, log *slog.Logger, name string, size int, pub func([]byte) error) *guard {
	return &guard{srv: srv, log: log, name: name, size: size, pub: pub,
		heard: map[string]time.Time{}, groups: map[string]bool{},
		stop: make(chan struct{}), done: make(chan struct{})}
}

// alive records an alive message.
func (g *guard) alive(data []byte) {
	peer := string(data)
	if peer == g.name || peer == "" {
		return
	}
	g.mu.Lock()
	g.heard[peer] = time.Now()
	g.mu.Unlock()
}

// run announces this node and checks the quorum until close.
func (g *guard) run() {
	defer close(g.done)
	t := time.NewTicker(aliveEvery)
	defer t.Stop()
	for {
		if err := g.pub([]byte(g.name)); err != nil {
			g.log.Debug("announce alive", "err", err)
		}
		g.check(time.Now())
		select {
		case <-g.stop:
			return
		case <-t.C:
		}
	}
}

func (g *guard) close() {
	close(g.stop)
	<-g.done
}

// quorum is the number of nodes, this one included, that can commit.
func (g *guard) quorum() int { return g.size/2 + 1 }

// check applies the verdict at now.
func (g *guard) check(now time.Time) {
	routes := g.srv.NumRemotes()+1 >= g.quorum()
	g.mu.Lock()
	live := 1
	for _, at := range g.heard {
		if now.Sub(at) < aliveSilence {
			live++
		}
	}
	reachable := routes && live >= g.quorum()
	if reachable != g.reachable || g.since.IsZero() {
		g.reachable, g.since = reachable, now
	}
	if reachable {
		g.armed = true
	}
	observing, held, armed := g.observing, now.Sub(g.since), g.armed
	g.mu.Unlock()
	if !armed {
		return
	}

	switch {
	case !reachable:
		// Enter at once (the silence was the wait), and keep new groups
		// (streams recovered or created meanwhile) in observer mode too.
		g.enter(!observing, routes, live)
	case observing && held >= rejoinAfter:
		g.leave()
	}
}

func (g *guard) enter(first, routes bool, live int) {
	groups, err := raftGroups(g.srv)
	if err != nil {
		g.log.Warn("quorum guard", "err", err)
	}
	n := observe(g.srv, groups, true)
	g.mu.Lock()
	for _, name := range groups {
		g.groups[name] = true
	}
	g.observing = true
	g.mu.Unlock()
	if first {
		g.log.Warn("cut off from the cluster's quorum: this node's Raft groups stop campaigning until it rejoins",
			"routes_to_quorum", routes, "nodes_heard", live, "of", g.size, "groups", n)
	}
}

func (g *guard) leave() {
	groups, err := raftGroups(g.srv)
	if err != nil {
		g.log.Warn("quorum guard", "err", err)
	}
	g.mu.Lock()
	for name := range g.groups {
		groups = append(groups, name)
	}
	g.groups = map[string]bool{}
	g.observing = false
	g.mu.Unlock()
	n := observe(g.srv, groups, false)
	g.log.Warn("rejoined the cluster's quorum: this node's Raft groups follow the current leaders and may campaign again", "groups", n)
}

// cutOff reports whether the guard holds this node out of elections.
func (g *guard) cutOff() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.observing
}
