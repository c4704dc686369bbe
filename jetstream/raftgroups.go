package jetstream

import (
	"fmt"
	_ "unsafe" // for go:linkname

	"github.com/nats-io/nats-server/v2/server"
)

// The embedded server's Raft groups, for the quorum guard (guard.go).
//
// NATS Raft has observer mode, the state in which a group member keeps
// replicating and voting but never campaigns, and uses it itself for lame
// duck mode and for leaf-node migration. It offers no exported way to reach
// a server's groups, so planb reaches the one lookup it needs by name. If a
// nats-server release renames it the build fails at link time; if it
// changes its signature, TestQuorumGuard (guard_test.go) fails.

// metaGroup is the name of JetStream's meta group (placement, stream
// assignments) on every server.
const metaGroup = "_meta_"

//go:linkname lookupRaftNode github.com/nats-io/nats-server/v2/server.(*Server).lookupRaftNode
func lookupRaftNode(s *server.Server, group string) server.RaftNode

// raftGroups returns the names of the Raft groups this server runs: the
// meta group, and every replicated stream and consumer it holds.
func raftGroups(s *server.Server) ([]string, error) {
	jsz, err := s.Jsz(&server.JSzOptions{Accounts: true, Streams: true, Consumer: true, RaftGroups: true, Limit: 1 << 20})
	if err != nil {
		return nil, fmt.Errorf("list the server's raft groups: %w", err)
	}
	groups := []string{metaGroup}
	for _, acc := range jsz.AccountDetails {
		for _, st := range acc.Streams {
			if st.RaftGroup != "" {
				groups = append(groups, st.RaftGroup)
			}
			for _, c := range st.ConsumerRaftGroups {
				if c != nil && c.RaftGroup != "" {
					groups = append(groups, c.RaftGroup)
				}
			}
		}
	}
	return groups, nil
}

// observe puts every named group that runs on s into observer mode (on) or
// takes it out (off), and returns how many groups it changed. A leader is
// left leading: if the cut is short it goes on as if nothing happened, and
// if it is not, the majority elects a leader with a higher term and the
// old one follows it when it hears it. Alone it could not commit anyway.
func observe(s *server.Server, groups []string, on bool) int {
	changed := 0
	for _, g := range groups {
		n := lookupRaftNode(s, g)
		if n == nil || n.IsObserver() == on {
			continue
		}
		n.SetObserver(on)
		changed++
	}
	return changed
}
