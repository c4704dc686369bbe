package cluster

import (
	"errors"
	"fmt"
	"testing"
)

// threeNodes is a layout of 8 event partitions and 2 other streams over
// nodes a, b and c, led as lead says, every replica current.
func threeNodes(lead map[string]int) leaderLayout {
	l := leaderLayout{nodes: map[string]bool{"a": true, "b": true, "c": true}}
	i := 0
	for _, n := range []string{"a", "b", "c"} {
		for k := 0; k < lead[n]; k++ {
			l.streams = append(l.streams, streamLeader{name: fmt.Sprintf("EVENTS_%d", i), leader: n,
				class: "events", peers: []string{"a", "b", "c"}})
			i++
		}
	}
	for _, name := range []string{"KV_meta", "KV_tokens"} {
		l.streams = append(l.streams, streamLeader{name: name, leader: "a", class: "other", peers: []string{"a", "b", "c"}})
	}
	return l
}

func TestRebalanceSpreadsEventLeadersEvenly(t *testing.T) {
	var moved []string
	rep := rebalance(threeNodes(map[string]int{"a": 8}), nil, func(stream, to string) error {
		moved = append(moved, stream+"→"+to)
		return nil
	})
	after := rep.EventLeadersAfter
	if after["a"] > 3 || after["b"] > 3 || after["c"] > 3 || after["a"]+after["b"]+after["c"] != 8 {
		t.Fatalf("event leaders after: %v, want at most 3 each of 8", after)
	}
	if rep.EventLeadersBefore["a"] != 8 {
		t.Fatalf("event leaders before: %v", rep.EventLeadersBefore)
	}
	if len(moved) != len(rep.Moves) || len(moved) != 5+1 {
		t.Fatalf("moves %v (report %v): want 5 event partitions and 1 other stream moved", moved, rep.Moves)
	}
}

func TestRebalanceLeavesAnEvenLayoutAlone(t *testing.T) {
	rep := rebalance(threeNodes(map[string]int{"a": 3, "b": 3, "c": 2}), nil, func(stream, to string) error {
		if stream[0] == 'E' {
			t.Errorf("moved %s to %s in an even layout", stream, to)
		}
		return nil
	})
	for _, m := range rep.Moves {
		if m.Stream[0] == 'E' {
			t.Fatalf("moves %v", rep.Moves)
		}
	}
}

func TestRebalanceEmptiesADrainingNode(t *testing.T) {
	rep := rebalance(threeNodes(map[string]int{"a": 3, "b": 3, "c": 2}), map[string]bool{"c": true}, func(stream, to string) error {
		if to == "c" {
			t.Errorf("handed %s to the draining node", stream)
		}
		return nil
	})
	if rep.EventLeadersAfter["c"] != 0 || rep.LeadersAfter["c"] != 0 {
		t.Fatalf("draining node still leads: %v", rep.LeadersAfter)
	}
	if rep.EventLeadersAfter["a"]+rep.EventLeadersAfter["b"] != 8 || rep.EventLeadersAfter["a"] > 4 {
		t.Fatalf("event leaders after: %v, want 4 and 4", rep.EventLeadersAfter)
	}
	if len(rep.Draining) != 1 || rep.Draining[0] != "c" {
		t.Fatalf("draining: %v", rep.Draining)
	}
}

func TestRebalanceReportsAFailedMoveAndKeepsCounts(t *testing.T) {
	rep := rebalance(threeNodes(map[string]int{"a": 8}), nil, func(stream, to string) error {
		return errors.New("no quorum")
	})
	if len(rep.Moves) == 0 {
		t.Fatal("no move tried")
	}
	for _, m := range rep.Moves {
		if m.Error == "" {
			t.Fatalf("move %v: want its error reported", m)
		}
	}
	if rep.EventLeadersAfter["a"] != 8 {
		t.Fatalf("event leaders after failed moves: %v, want unchanged", rep.EventLeadersAfter)
	}
}

func TestRebalanceMovesOnlyToCurrentFollowers(t *testing.T) {
	l := threeNodes(map[string]int{"a": 8})
	for i := range l.streams {
		l.streams[i].peers = []string{"a", "b"} // c is behind everywhere
	}
	rebalance(l, nil, func(stream, to string) error {
		if to == "c" {
			t.Errorf("moved %s to c, which is not a current follower", stream)
		}
		return nil
	})
}
