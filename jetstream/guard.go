package jetstream

import (
	"encoding/json"
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
// A partial cut is caught the same way. Each alive message also says how
// long ago its sender last heard each of its peers. A node that has not
// heard a peer for aliveSilence while another peer it hears reports having
// heard that one within the last freshReport is on a broken link (a
// "bridge" partition: dc1 and dc3 cannot see each other, both see dc2).
// Without pre-vote, the end of such a link that follows a leader on the
// other end would campaign every 4–9 s, and the bridge node would pass its
// higher terms on to the leader, which steps down: leadership would flap
// for as long as the link is down. So both ends observe too: their leaders
// go on leading (the bridge node replicates for them) and no term grows.
// They do not count as cut off: each can still commit through the bridge
// node to the groups it leads or that the bridge node leads, and its
// commit probe says whether it is ready. A peer that died is heard by
// nobody, so it makes no one observe; the freshness bound (1 s, against
// the 2 s silence) keeps the survivors from mistaking a death that one of
// them has not noticed yet for a broken link.
//
// The guard arms once the node has heard a quorum: a cluster that is still
// forming elects its first leaders as usual. (A node restarted while it is
// cut off therefore campaigns until it first hears a quorum.)
const (
	aliveSubject = "planb.alive"
	aliveEvery   = 250 * time.Millisecond
	aliveSilence = 2 * time.Second
	rejoinAfter  = time.Second
	freshReport  = time.Second
)

// aliveMsg is what a node announces: its name, and for each peer how many
// milliseconds ago it last heard it.
type aliveMsg struct {
	Node  string           `json:"n"`
	Heard map[string]int64 `json:"h,omitempty"`
}

// report is a peer's last alive message, as received.
type report struct {
	at    time.Time
	heard map[string]time.Duration
}

type guard struct {
	srv  *server.Server
	log  *slog.Logger
	name string
	size int // nodes in the cluster, this one included
	pub  func([]byte) error

	mu        sync.Mutex
	heard     map[string]time.Time // peer node -> last alive message
	reports   map[string]report    // peer node -> what it said it hears
	observing bool
	isolated  bool            // observing because no quorum is heard
	broken    string          // observing for a broken link to this peer
	groups    map[string]bool // groups put into observer mode
	since     time.Time       // when the current verdict began
	steady    bool            // the current verdict: a quorum heard, no broken link
	armed     bool            // a quorum has been heard once

	stop chan struct{}
	done chan struct{}
}

func newGuard(srv *server.Server, log *slog.Logger, name string, size int, pub func([]byte) error) *guard {
	return &guard{srv: srv, log: log, name: name, size: size, pub: pub,
		heard: map[string]time.Time{}, reports: map[string]report{}, groups: map[string]bool{},
		stop: make(chan struct{}), done: make(chan struct{})}
}

// announcement is this node's alive message at now.
func (g *guard) announcement(now time.Time) []byte {
	m := aliveMsg{Node: g.name, Heard: map[string]int64{}}
	g.mu.Lock()
	for peer, at := range g.heard {
		m.Heard[peer] = now.Sub(at).Milliseconds()
	}
	g.mu.Unlock()
	b, _ := json.Marshal(m)
	return b
}

// alive records an alive message.
func (g *guard) alive(data []byte) {
	var m aliveMsg
	if err := json.Unmarshal(data, &m); err != nil || m.Node == g.name || m.Node == "" {
		return
	}
	now := time.Now()
	r := report{at: now, heard: make(map[string]time.Duration, len(m.Heard))}
	for peer, ms := range m.Heard {
		r.heard[peer] = time.Duration(ms) * time.Millisecond
	}
	g.mu.Lock()
	g.heard[m.Node] = now
	g.reports[m.Node] = r
	g.mu.Unlock()
}

// run announces this node and checks the quorum until close.
func (g *guard) run() {
	defer close(g.done)
	t := time.NewTicker(aliveEvery)
	defer t.Stop()
	for {
		if err := g.pub(g.announcement(time.Now())); err != nil {
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
	broken := g.brokenLinkLocked(now)
	steady := reachable && broken == ""
	if steady != g.steady || g.since.IsZero() {
		g.steady, g.since = steady, now
	}
	if reachable {
		g.armed = true
	}
	observing, held, armed := g.observing, now.Sub(g.since), g.armed
	g.isolated = observing && !reachable
	g.mu.Unlock()
	if !armed {
		return
	}

	switch {
	case !steady:
		// Enter at once (the silence was the wait), and keep new groups
		// (streams recovered or created meanwhile) in observer mode too.
		g.enter(!observing, reachable, routes, live, broken)
	case observing && held >= rejoinAfter:
		g.leave()
	}
}

// brokenLinkLocked returns a peer this node heard once but not for
// aliveSilence, although another peer it hears heard it within
// freshReport, or "".
func (g *guard) brokenLinkLocked(now time.Time) string {
	for via, r := range g.reports {
		if now.Sub(g.heard[via]) >= aliveSilence || now.Sub(r.at) >= freshReport {
			continue
		}
		for peer, ago := range r.heard {
			if peer == g.name || peer == via || ago >= freshReport {
				continue
			}
			// A peer never heard is not a broken link but one not yet
			// connected (a cluster forming, a node just started).
			if at, ok := g.heard[peer]; ok && now.Sub(at) >= aliveSilence {
				return peer
			}
		}
	}
	return ""
}

func (g *guard) enter(first, reachable, routes bool, live int, broken string) {
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
	g.isolated = !reachable
	if reachable {
		g.broken = broken
	}
	g.mu.Unlock()
	switch {
	case first && !reachable:
		g.log.Warn("cut off from the cluster's quorum: this node's Raft groups stop campaigning until it rejoins",
			"routes_to_quorum", routes, "nodes_heard", live, "of", g.size, "groups", n)
	case first:
		g.log.Warn("the link to a peer is broken while others still reach it: this node's Raft groups stop campaigning until it heals",
			"peer", broken, "nodes_heard", live, "of", g.size, "groups", n)
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
	g.observing, g.isolated, g.broken = false, false, ""
	g.mu.Unlock()
	n := observe(g.srv, groups, false)
	g.log.Warn("rejoined the cluster's quorum: this node's Raft groups follow the current leaders and may campaign again", "groups", n)
}

// brokenLink returns the peer whose link to this node is broken while
// others still reach it, while the guard holds this node out of elections
// for that reason; "" otherwise.
func (g *guard) brokenLink() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.isolated {
		return ""
	}
	return g.broken
}

// cutOff reports whether the guard holds this node out of elections
// because it hears no quorum (not for a broken link to one peer).
func (g *guard) cutOff() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.isolated
}
