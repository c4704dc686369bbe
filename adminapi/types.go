package adminapi

import (
	"errors"
	"fmt"
	"time"
)

// The admin API's wire types: what /_planb/admin/v1 answers and accepts.
// homeserver builds them, httpapi encodes them, and the commands decode
// them through Client.

// Status is a node's view of its ability to commit, for /ready and admin.
type Status struct {
	DataCenter string    `json:"datacenter"`
	Ready      bool      `json:"ready"`
	CaughtUp   bool      `json:"caught_up"`
	CanCommit  bool      `json:"can_commit"`
	Reason     string    `json:"reason,omitempty"`
	Since      time.Time `json:"since"`
	LastProbe  time.Time `json:"last_probe"`
	Events     int       `json:"events"`
	Rooms      int       `json:"rooms"`
	Users      int       `json:"users"`
}

// NodeHeartbeat is one node's last successful quorum probe, read from the
// replicated meta bucket — so every node can report on every data center.
type NodeHeartbeat struct {
	DataCenter string    `json:"datacenter"`
	Node       string    `json:"node"`
	LastCommit time.Time `json:"last_commit"`
	AgeSeconds float64   `json:"age_seconds"`
	Healthy    bool      `json:"healthy"`
}

// StreamStatus is the placement and health of one replicated stream.
type StreamStatus struct {
	Name      string          `json:"name"`
	Leader    string          `json:"leader"`
	LeaderDC  string          `json:"leader_datacenter,omitempty"`
	Replicas  []ReplicaStatus `json:"replicas"`
	Reachable bool            `json:"reachable"`
	Error     string          `json:"error,omitempty"`
}

// ReplicaStatus is one follower of a stream.
type ReplicaStatus struct {
	Node    string `json:"node"`
	Current bool   `json:"current"`
	Lag     uint64 `json:"lag"`
	Offline bool   `json:"offline"`
}

// ClusterStatus is the admin view of the whole cluster from this node.
type ClusterStatus struct {
	This        Status          `json:"this_node"`
	Draining    bool            `json:"draining"`
	DataCenters []NodeHeartbeat `json:"datacenters"`
	Streams     []StreamStatus  `json:"streams"`
}

// DrainReport says what a drain did.
type DrainReport struct {
	Node        string   `json:"node"`
	DataCenter  string   `json:"datacenter"`
	SteppedDown []string `json:"stepped_down"`
	StillLeader []string `json:"still_leader,omitempty"`
	Message     string   `json:"message"`
}

// Move is one leadership handed from one node to another.
type Move struct {
	Stream string `json:"stream"`
	From   string `json:"from"`
	To     string `json:"to"`
	Error  string `json:"error,omitempty"`
}

// RebalanceReport says which leaderships Rebalance moved.
type RebalanceReport struct {
	LeadersBefore map[string]int `json:"leaders_before"`
	LeadersAfter  map[string]int `json:"leaders_after"`
	// EventLeadersBefore/After count only the room-event partitions,
	// which decide how many rooms one data-center loss interrupts.
	EventLeadersBefore map[string]int `json:"event_leaders_before"`
	EventLeadersAfter  map[string]int `json:"event_leaders_after"`
	Moves              []Move         `json:"moves"`
	// Draining lists the nodes that were given no leadership because
	// they are being drained.
	Draining []string `json:"draining,omitempty"`
}

// DrillLock is the cluster-wide lock a drill holds while it runs, so two
// drills never break the same cluster at once. It lives in the replicated
// drills bucket, so every data center sees it; it expires on its own when
// the drill that took it died.
type DrillLock struct {
	ID       string    `json:"id"`
	Scenario string    `json:"scenario"`
	Holder   string    `json:"holder"`
	Acquired time.Time `json:"acquired"`
	Expires  time.Time `json:"expires"`
}

// EngineBenchRequest asks for an engine benchmark: Messages messages of
// Size bytes, published to a temporary stream configured like a room-event
// partition (same replicas, file storage, and the server-wide SyncAlways),
// first one at a time by Concurrency publishers, then pipelined with at most
// Window unacknowledged publishes.
type EngineBenchRequest struct {
	Messages    int `json:"messages"`
	Size        int `json:"size"`
	Concurrency int `json:"concurrency"`
	Window      int `json:"window"`
}

// EngineBenchMode is the result of one way of publishing.
type EngineBenchMode struct {
	Messages   int     `json:"messages"`
	Seconds    float64 `json:"seconds"`
	PerSecond  float64 `json:"per_second"`
	Errors     int     `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
}

// EngineBenchReport is the result of an engine benchmark.
type EngineBenchReport struct {
	Node       string          `json:"node"`
	DataCenter string          `json:"datacenter"`
	Stream     string          `json:"stream"`
	Leader     string          `json:"leader,omitempty"`
	Replicas   int             `json:"replicas"`
	Size       int             `json:"size"`
	Sync       EngineBenchMode `json:"sync"`
	Async      EngineBenchMode `json:"async"`
	AsyncWin   int             `json:"async_window"`
	SyncConc   int             `json:"sync_concurrency"`
}

// Bounds of one engine benchmark (POST /_planb/admin/v1/bench/engine): it
// runs inside a production node, so it must never be able to fill a disk or
// hold the engine for long.
const (
	BenchMaxMessages    = 1_000_000
	BenchMaxSize        = 64 * 1024
	BenchMaxBytes       = 1 << 30 // messages × size, per mode
	BenchMaxConcurrency = 1024
	BenchMaxWindow      = 4096
)

// Validate reports every problem of the request at once.
func (r EngineBenchRequest) Validate() error {
	var errs []error
	if r.Messages < 1 || r.Messages > BenchMaxMessages {
		errs = append(errs, fmt.Errorf("messages %d: want 1..%d", r.Messages, BenchMaxMessages))
	}
	if r.Size < 1 || r.Size > BenchMaxSize {
		errs = append(errs, fmt.Errorf("size %d: want 1..%d", r.Size, BenchMaxSize))
	}
	if int64(r.Messages)*int64(r.Size) > BenchMaxBytes {
		errs = append(errs, fmt.Errorf("messages × size = %d bytes: want at most %d", int64(r.Messages)*int64(r.Size), int64(BenchMaxBytes)))
	}
	if r.Concurrency < 1 || r.Concurrency > BenchMaxConcurrency {
		errs = append(errs, fmt.Errorf("concurrency %d: want 1..%d", r.Concurrency, BenchMaxConcurrency))
	}
	if r.Window < 1 || r.Window > BenchMaxWindow {
		errs = append(errs, fmt.Errorf("window %d: want 1..%d", r.Window, BenchMaxWindow))
	}
	return errors.Join(errs...)
}
