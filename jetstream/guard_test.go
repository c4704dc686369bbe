package jetstream

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/planb-chat/planb/faultnet"
)

// testCluster is three embedded engines whose routes pass through fault
// proxies, as `planb serve` wires them when faults are enabled.
type testCluster struct {
	engines []*Engine
	links   []*faultnet.Links
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startTestCluster(t *testing.T) *testCluster {
	t.Helper()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	names := []string{"dc1", "dc2", "dc3"}
	addrs := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	c := &testCluster{engines: make([]*Engine, 3), links: make([]*faultnet.Links, 3)}
	cfgs := make([]Config, 3)
	for i, name := range names {
		var routes []faultnet.Route
		for j := range names {
			if j != i {
				routes = append(routes, faultnet.Route{Peer: names[j], Addr: addrs[j]})
			}
		}
		links, w, err := faultnet.Start(name, addrs[i], routes, log.With("node", name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(links.Close)
		c.links[i] = links
		cfgs[i] = Config{DataDir: t.TempDir(), NodeName: name, DataCenter: name, ClusterName: "guardtest",
			ClusterListen: w.ClusterListen, ClusterAdvertise: w.Advertise, Routes: w.Routes,
			Replicas: 3, Partitions: 2}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range cfgs {
		wg.Go(func() {
			c.engines[i], errs[i] = Start(ctx, cfgs[i], log.With("node", names[i]))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("start %s: %v", names[i], err)
		}
		t.Cleanup(c.engines[i].Close)
	}
	return c
}

// waitArmed waits until every node hears a quorum and its guard is armed.
func (c *testCluster) waitArmed(t *testing.T) {
	t.Helper()
	waitFor(t, "every node hears a quorum", time.Minute, func() (bool, string) {
		for _, e := range c.engines {
			if q, _ := e.QuorumConnected(); !q || !e.guard.armedNow() {
				return false, e.cfg.NodeName + " not connected or guard not armed"
			}
		}
		return true, ""
	})
}

// nodeIDs maps each server's Raft node ID to its name.
func (c *testCluster) nodeIDs() map[string]string {
	ids := map[string]string{}
	for _, e := range c.engines {
		ids[lookupRaftNode(e.srv, metaGroup).ID()] = e.cfg.NodeName
	}
	return ids
}

// groupView is what one server knows of a Raft group.
type groupView struct {
	leader string
	term   uint64
}

// view returns, for every Raft group on e's server, its leader and term.
func view(t *testing.T, e *Engine) map[string]groupView {
	t.Helper()
	groups, err := raftGroups(e.srv)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]groupView{}
	for _, g := range groups {
		if n := lookupRaftNode(e.srv, g); n != nil {
			out[g] = groupView{leader: n.GroupLeader(), term: n.Term()}
		}
	}
	return out
}

func waitFor(t *testing.T, what string, timeout time.Duration, ok func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		done, state := ok()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s (%s)", what, timeout, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// allLed reports whether every group in v has a leader among leaders.
func allLed(v map[string]groupView, leaders ...string) (bool, string) {
	for g, gv := range v {
		ok := false
		for _, l := range leaders {
			ok = ok || gv.leader == l
		}
		if !ok {
			return false, fmt.Sprintf("group %s led by %q", g, gv.leader)
		}
	}
	return true, ""
}

// TestQuorumGuard cuts one node off for longer than the longest election
// timeout and heals it: while cut off its groups must not campaign (their
// terms stay), and after healing no group of the majority may change its
// leader or term (without the guard, the returning node's higher terms make
// the majority's leaders step down). The cut either closes the routes
// (isolate) or holds them open carrying nothing (blackhole), which only
// the alive messages reveal before the route pings give up (4–6 s).
func TestQuorumGuard(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster and holds a fault for 12 s")
	}
	t.Run("isolate", func(t *testing.T) { testQuorumGuard(t, (*faultnet.Links).Isolate) })
	t.Run("blackhole", func(t *testing.T) { testQuorumGuard(t, (*faultnet.Links).Blackhole) })
	t.Run("bridge", testBridgePartition)
}

// testBridgePartition cuts the link between dc1 and dc3 while both still
// see dc2, for longer than the longest election timeout. Both ends of the
// broken link must stop campaigning, neither counts as cut off, and no
// group may change its leader or term, during the cut or after healing
// (without the guard, dc3's elections would pass higher terms through dc2
// to the leaders in dc1, again and again).
func testBridgePartition(t *testing.T) {
	c := startTestCluster(t)
	bridge := c.engines[1]
	c.waitArmed(t)
	ids := c.nodeIDs()
	waitFor(t, "every group has a leader", 30*time.Second, func() (bool, string) {
		return allLed(view(t, bridge), slices.Collect(maps.Keys(ids))...)
	})
	before := view(t, bridge)

	if err := c.links[0].Cut("dc3", 12*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := c.links[2].Cut("dc1", 12*time.Second); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	ends := []*Engine{c.engines[0], c.engines[2]}
	waitFor(t, "both ends of the broken link observe", 3500*time.Millisecond, func() (bool, string) {
		for _, e := range ends {
			if n := lookupRaftNode(e.srv, metaGroup); n == nil || !n.IsObserver() {
				return false, e.cfg.NodeName + " does not observe"
			}
		}
		return true, ""
	})
	t.Logf("both ends observed %.1fs after the cut", time.Since(cut).Seconds())
	for _, e := range append(ends, bridge) {
		if e.CutOff() {
			t.Errorf("%s counts as cut off, but it still reaches a quorum", e.cfg.NodeName)
		}
	}
	if a, b, m := c.engines[0].BrokenLink(), c.engines[2].BrokenLink(), bridge.BrokenLink(); a != "dc3" || b != "dc1" || m != "" {
		t.Errorf("broken links: dc1 says %q, dc3 %q, dc2 %q; want dc3, dc1 and none", a, b, m)
	}
	if n := lookupRaftNode(bridge.srv, metaGroup); n.IsObserver() {
		t.Error("the bridge node observes")
	}
	time.Sleep(time.Until(cut.Add(11 * time.Second)))
	if err := c.links[0].Heal(); err != nil {
		t.Fatal(err)
	}
	if err := c.links[2].Heal(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the ends rejoin", 30*time.Second, func() (bool, string) {
		for _, e := range ends {
			if n := lookupRaftNode(e.srv, metaGroup); n.IsObserver() {
				return false, e.cfg.NodeName + " still observes"
			}
		}
		return true, ""
	})
	time.Sleep(10 * time.Second)
	changed, after := 0, view(t, bridge)
	for g, b := range before {
		if a := after[g]; a != b {
			changed++
			t.Errorf("group %s: leader %s term %d before the cut, leader %s term %d after healing", g,
				ids[b.leader], b.term, ids[a.leader], a.term)
		}
	}
	t.Logf("%d of %d groups kept their leader and term through the bridge partition", len(before)-changed, len(before))
}

func testQuorumGuard(t *testing.T, fault func(*faultnet.Links, time.Duration) error) {
	c := startTestCluster(t)
	a, island := c.engines[0], c.engines[2]
	ids := c.nodeIDs()
	c.waitArmed(t)
	before := view(t, island)

	if err := fault(c.links[2], 12*time.Second); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	// Well before the shortest election timeout (4 s), the island knows it
	// is cut off and its groups stop campaigning.
	waitFor(t, "the island's groups observe", 3*time.Second, func() (bool, string) {
		if !island.CutOff() {
			return false, "not cut off"
		}
		for g := range before {
			if n := lookupRaftNode(island.srv, g); n != nil && !n.IsObserver() {
				return false, "group " + g + " is not an observer"
			}
		}
		return true, ""
	})
	t.Logf("island's groups observed %.1fs after the cut", time.Since(cut).Seconds())
	// The majority elects leaders for what the island led.
	idA, idB := lookupRaftNode(a.srv, metaGroup).ID(), lookupRaftNode(c.engines[1].srv, metaGroup).ID()
	waitFor(t, "the majority leads every group", 30*time.Second, func() (bool, string) {
		return allLed(view(t, a), idA, idB)
	})
	majority := view(t, a)
	// Hold the cut past the longest election timeout (9 s), then check the
	// island's terms did not grow.
	time.Sleep(time.Until(cut.Add(11 * time.Second)))
	for g, gv := range view(t, island) {
		if b, ok := before[g]; ok && gv.term != b.term {
			t.Errorf("group %s on the island: term %d -> %d while cut off (it campaigned)", g, b.term, gv.term)
		}
	}

	if err := c.links[2].Heal(); err != nil {
		t.Fatal(err)
	}
	healed := time.Now()
	waitFor(t, "the island rejoins", 30*time.Second, func() (bool, string) {
		q, _ := island.QuorumConnected()
		return q, "still cut off"
	})
	t.Logf("island rejoined %.1fs after healing", time.Since(healed).Seconds())
	// Give a disturbance time to show: the island's groups hear the leaders
	// within a second; an election it forced would take 4–9 s.
	time.Sleep(10 * time.Second)
	after := view(t, a)
	changed := 0
	for g, m := range majority {
		if gv := after[g]; gv != m {
			changed++
			t.Errorf("group %s: leader %s term %d before healing, leader %s term %d after", g,
				ids[m.leader], m.term, ids[gv.leader], gv.term)
		}
	}
	t.Logf("%d of %d groups kept their leader and term through healing", len(majority)-changed, len(majority))
	for g, gv := range view(t, island) {
		if n := lookupRaftNode(island.srv, g); n != nil && n.IsObserver() {
			t.Errorf("group %s on the island is still an observer after rejoining", g)
		}
		if m, ok := majority[g]; ok && gv.leader != m.leader {
			t.Errorf("group %s: the island follows %s, the majority %s", g, ids[gv.leader], ids[m.leader])
		}
	}
}

func (g *guard) armedNow() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.armed
}
