// Package bench is `planb bench`: a load generator and report for a planb
// cluster. It measures, in one run: acknowledged sends per second and send
// latency through the Matrix API; delivery latency from a send to its
// arrival in other users' /sync; the engine's own publish rate on the same
// cluster (the headline figure is planb's throughput as a ratio of it);
// memory per idle /sync long-poll and the wake-up latency when a message
// reaches all of them; and the time a node takes to rebuild its read models
// from a large log. Figures are measured, never asserted; see
// docs/benchmarks.md for the method and the results on one machine.
package bench

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"time"
)

// Target says which cluster to load.
type Target struct {
	// Name is a label for the report ("dev", a cluster file, a URL list).
	Name string `json:"name"`
	// DataCenters are the data centers' client URLs, in order.
	DataCenters []DataCenter `json:"datacenters"`
	// AdminToken authorises the admin API; without it the engine limit and
	// profiles are skipped.
	AdminToken string `json:"-"`
}

// DataCenter is one data center's name and client URL.
type DataCenter struct {
	Name string `json:"name"`
	URL  string `json:"url"`
}

// Config configures one bench run.
type Config struct {
	// Target is the cluster; ignored when Dev is set (Run starts one).
	Target Target
	// Dev starts a local three-data-center cluster in a temporary directory
	// and tears it down afterwards.
	Dev bool
	// DevBasePort is the dev cluster's base port; 0 picks a free one.
	DevBasePort int
	// KeepDev keeps the dev cluster's directory (logs) after the run.
	KeepDev bool

	// The workload.
	Users       int           // users that send, spread over the data centers
	Rooms       int           // rooms
	Members     int           // sending members per room (≤ Users)
	Senders     int           // concurrent senders (each a user in one of its rooms)
	Receivers   int           // extra users in every room, following /sync
	MessageSize int           // body size of each message in bytes
	Duration    time.Duration // the saturation phase: send as fast as acknowledged (0 skips the load phases)
	// PacedDuration is the latency phase at PacedRate (0 skips it).
	PacedDuration time.Duration
	// PacedRate is the offered send rate of the latency phase; 0 means half
	// the rate the saturation phase sustained.
	PacedRate float64

	// Pushers registers an http pusher for every receiver, pointing at a
	// push gateway the bench serves on PushGatewayListen (an address the
	// nodes can reach), and measures push latency.
	Pushers           bool
	PushGatewayListen string

	// Engine runs the engine-limit comparison (needs the admin token).
	Engine bool
	// EngineWindow is the pipelined publisher's window of unacknowledged
	// publishes.
	EngineWindow int

	// IdleSyncs is the number of idle /sync long-polls held against one
	// node (0 skips the phase); IdleUsers the users they belong to, all in
	// one room; IdleNode the index of the data center they go to.
	IdleSyncs   int
	IdleUsers   int
	IdleNode    int
	IdleTimeout time.Duration // the long-polls' timeout

	// RebuildEvents is the size of the log a fresh node rebuilds its read
	// models from (0 skips the phase). RebuildDir, when set, keeps the
	// filled log there and reuses it on a later run.
	RebuildEvents int
	RebuildDir    string
	// HistoryMessages is how many messages the --dev cluster holds in its
	// history before the load phases (0: it starts empty); a tenth of them
	// (at most 1,000,000) in one room, whose /messages from the middle is
	// timed. HistoryDir, when set, keeps that cluster there and reuses it
	// on a later run (an interrupted fill goes on where it stopped).
	HistoryMessages int
	HistoryDir      string
	// KeysSamples is how many one-time-key claims and to-device messages
	// the end-to-end encryption phase times (0 skips it).
	KeysSamples int
	// Binary is the planb binary that serves the rebuild node (and the dev
	// cluster); empty means the running executable.
	Binary string

	// PprofDir, when set, receives a CPU profile of every node taken
	// during the saturation phase (needs the admin token).
	PprofDir string

	// Progress receives the live progress line (stderr); nil discards it.
	Progress io.Writer
	// Log receives diagnostics; nil discards them.
	Log *slog.Logger
}

// Default returns the default configuration: a modest workload that a
// 2-core machine runs in a few minutes, the 10,000 idle long-polls and the
// 1,000,000-event rebuild of the goals. There are as many senders
// as the pipelined engine publisher's window, so that both are offered the
// same concurrency: each sender waits for its acknowledgement, and with
// fewer of them planb's rate is bound by the latency of one send, not by
// what the cluster can do.
func Default() Config {
	return Config{
		Users:         24,
		Rooms:         8,
		Members:       6,
		Senders:       256,
		Receivers:     3,
		MessageSize:   256,
		Duration:      30 * time.Second,
		PacedDuration: 30 * time.Second,
		Engine:        true,
		EngineWindow:  256,
		IdleSyncs:     10000,
		IdleUsers:     100,
		IdleTimeout:   120 * time.Second,
		RebuildEvents: 1_000_000,
		KeysSamples:   200,

		PushGatewayListen: "127.0.0.1:0",
	}
}

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	needsTarget := c.Duration > 0 || c.IdleSyncs > 0 || c.KeysSamples > 0
	if !c.Dev {
		if needsTarget && len(c.Target.DataCenters) == 0 {
			bad("no target: give --dev, --cluster FILE or --datacenter NAME=URL (repeatable)")
		}
		for _, dc := range c.Target.DataCenters {
			if u, err := url.Parse(dc.URL); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
				bad("data center %s: URL %q: want http(s)://host:port", dc.Name, dc.URL)
			}
		}
	}
	if c.DevBasePort != 0 && (c.DevBasePort < 1024 || c.DevBasePort > 65535-260) {
		bad("dev base port %d: want 1024..%d (the dev cluster uses base..base+260)", c.DevBasePort, 65535-260)
	}
	if c.Users < 1 || c.Users > 10000 {
		bad("users %d: want 1..10000", c.Users)
	}
	if c.Rooms < 1 || c.Rooms > 10000 {
		bad("rooms %d: want 1..10000", c.Rooms)
	}
	if c.Members < 1 || c.Members > c.Users {
		bad("members per room %d: want 1..users (%d)", c.Members, c.Users)
	}
	if c.Senders < 1 || c.Senders > 4096 {
		bad("senders %d: want 1..4096", c.Senders)
	}
	if c.Receivers < 0 || c.Receivers > 100 {
		bad("receivers %d: want 0..100", c.Receivers)
	}
	if c.MessageSize < 16 || c.MessageSize > 60000 {
		bad("message size %d: want 16..60000 bytes", c.MessageSize)
	}
	if c.Duration != 0 && (c.Duration < time.Second || c.Duration > time.Hour) {
		bad("duration %s: want 0 (skip the load phases) or 1s..1h", c.Duration)
	}
	if c.PacedDuration < 0 || c.PacedDuration > time.Hour {
		bad("paced duration %s: want 0 (skip) ..1h", c.PacedDuration)
	}
	if c.PacedRate < 0 {
		bad("paced rate %g: want ≥ 0 (0: half the saturated rate)", c.PacedRate)
	}
	if c.EngineWindow < 1 || c.EngineWindow > 4096 {
		bad("engine window %d: want 1..4096", c.EngineWindow)
	}
	if c.KeysSamples < 0 || c.KeysSamples > 100000 {
		bad("e2ee samples %d: want 0..100000", c.KeysSamples)
	}
	if c.IdleSyncs < 0 || c.IdleSyncs > 100000 {
		bad("idle syncs %d: want 0..100000", c.IdleSyncs)
	}
	if c.IdleSyncs > 0 && (c.IdleUsers < 1 || c.IdleUsers > c.IdleSyncs || c.IdleUsers > 5000) {
		bad("idle users %d: want 1..min(idle syncs, 5000)", c.IdleUsers)
	}
	if c.IdleNode < 0 || (!c.Dev && len(c.Target.DataCenters) > 0 && c.IdleNode >= len(c.Target.DataCenters)) {
		bad("idle node %d: want the index of a data center (0 = the first)", c.IdleNode)
	}
	if c.IdleSyncs > 0 && (c.IdleTimeout < 10*time.Second || c.IdleTimeout > 5*time.Minute) {
		bad("idle timeout %s: want 10s..5m (the long-polls must outlast their set-up)", c.IdleTimeout)
	}
	if c.HistoryMessages < 0 || c.HistoryMessages > 100_000_000 {
		bad("history messages %d: want 0..100000000", c.HistoryMessages)
	}
	if c.HistoryMessages > 0 && c.HistoryMessages < 10_000 {
		bad("history messages %d: want 0 (an empty cluster) or at least 10000", c.HistoryMessages)
	}
	if (c.HistoryMessages > 0 || c.HistoryDir != "") && !c.Dev {
		bad("a history (--history-messages, --history-dir) is filled into the --dev cluster only; give --dev")
	}
	if c.HistoryDir != "" && c.HistoryMessages == 0 {
		bad("--history-dir needs --history-messages (how many messages the history holds)")
	}
	if c.RebuildEvents < 0 || c.RebuildEvents > 20_000_000 {
		bad("rebuild events %d: want 0..20000000", c.RebuildEvents)
	}
	if c.RebuildEvents > 0 && c.RebuildEvents < 1000 {
		bad("rebuild events %d: want 0 (skip) or at least 1000", c.RebuildEvents)
	}
	return errors.Join(errs...)
}
