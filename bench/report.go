package bench

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is everything one bench run measured.
type Report struct {
	Started  time.Time `json:"started"`
	Took     float64   `json:"took_seconds"`
	Target   Target    `json:"target"`
	Machine  Machine   `json:"machine"`
	Workload Workload  `json:"workload"`
	// EventLeaders is how many room-event partitions each node led when
	// the load started.
	EventLeaders map[string]int `json:"event_leaders,omitempty"`

	// History is what the cluster held before the load (nil: empty).
	History *HistoryReport `json:"history,omitempty"`
	// Saturated is the phase that sends as fast as acknowledgements come.
	Saturated *Phase `json:"saturated,omitempty"`
	// Paced is the phase at a fixed offered rate (half the saturated rate).
	Paced *Phase `json:"paced,omitempty"`
	// Engine is the engine's publish rate on the same cluster.
	Engine *EngineLimit `json:"engine,omitempty"`
	// Idle is the idle /sync long-poll measurement.
	Idle *IdleReport `json:"idle_syncs,omitempty"`
	// Rebuild is the read-model rebuild measurement.
	Rebuild *RebuildReport `json:"rebuild,omitempty"`
	// Keys is the end-to-end encryption measurement.
	Keys *KeysReport `json:"e2ee,omitempty"`
	// Goals compares the figures with the goals of the issue.
	Goals []Goal `json:"goals"`
	// Notes are things the reader should know (skipped phases, caveats).
	Notes []string `json:"notes,omitempty"`
}

// Machine describes where the bench ran.
type Machine struct {
	CPUs      int    `json:"cpus"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
}

// Workload echoes the workload's configuration.
type Workload struct {
	Users       int     `json:"users"`
	Rooms       int     `json:"rooms"`
	Members     int     `json:"members_per_room"`
	Senders     int     `json:"senders"`
	Receivers   int     `json:"receivers"`
	MessageSize int     `json:"message_size"`
	Duration    float64 `json:"duration_seconds"`
	PacedDur    float64 `json:"paced_duration_seconds"`
}

// Latency summarises a set of durations, in milliseconds.
type Latency struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

// summarize returns the latency summary of ds (which it sorts).
func summarize(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	slices.Sort(ds)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	pct := func(p float64) time.Duration { return ds[int(p*float64(len(ds)-1)+0.5)] }
	return Latency{N: len(ds), P50: ms(pct(0.5)), P99: ms(pct(0.99)), Max: ms(ds[len(ds)-1])}
}

func (l Latency) String() string {
	if l.N == 0 {
		return "n/a"
	}
	return fmt.Sprintf("p50 %.1f ms, p99 %.1f ms, max %.1f ms (n=%d)", l.P50, l.P99, l.Max, l.N)
}

// Phase is one load phase.
type Phase struct {
	Name        string  `json:"name"`
	Seconds     float64 `json:"seconds"`
	OfferedRate float64 `json:"offered_rate,omitempty"` // sends/s asked for (paced)
	Acked       int     `json:"acknowledged"`
	SendsPerSec float64 `json:"sends_per_second"`
	SendLatency Latency `json:"send_latency"`
	// Delivery is from the start of a send to its arrival in another
	// user's /sync, per (event, receiver).
	Delivery Latency `json:"delivery_latency"`
	// Undelivered counts (event, receiver) pairs not seen by the end of
	// the grace period after the phase.
	Undelivered int `json:"undelivered"`
	// Push is from the start of a send to its notification's arrival at
	// the bench's push gateway, per (event, receiver), with --pushers;
	// Unpushed and DuplicatePushes count the pairs never pushed and the
	// pushes beyond one per pair.
	Push            *Latency `json:"push_latency,omitempty"`
	Unpushed        int      `json:"unpushed,omitempty"`
	DuplicatePushes int      `json:"duplicate_pushes,omitempty"`
	// LimitedSyncs counts /sync responses whose timeline was cut (events
	// skipped; they show as undelivered).
	LimitedSyncs int            `json:"limited_syncs"`
	Errors       map[string]int `json:"errors"`
	Nodes        []NodeUsage    `json:"nodes"`
	// BenchCPU is the load generator's own CPU use (cores), on the same
	// machine in --dev mode.
	BenchCPU float64 `json:"bench_cpu_cores"`
}

// NodeUsage is one node's resource use during a phase, from its /metrics.
type NodeUsage struct {
	DataCenter string  `json:"datacenter"`
	CPUCores   float64 `json:"cpu_cores"` // CPU seconds per second of the phase
	RSSMiB     float64 `json:"rss_mib"`   // resident memory at the end
	MaxRSSMiB  float64 `json:"max_rss_mib"`
	HeapMiB    float64 `json:"heap_inuse_mib"`
	Error      string  `json:"error,omitempty"`
}

// Goal is one goal of the issue and whether this run met it.
type Goal struct {
	Name     string `json:"name"`
	Target   string `json:"target"`
	Measured string `json:"measured"`
	Met      *bool  `json:"met"` // nil: not measured
}

// Human writes the report for a person.
func (r *Report) Human(w io.Writer) {
	fmt.Fprintf(w, "planb bench — %s, %d CPUs, %s, took %s\n", r.Target.Name, r.Machine.CPUs, r.Machine.GoVersion,
		(time.Duration(r.Took * float64(time.Second))).Round(time.Second))
	wl := r.Workload
	fmt.Fprintf(w, "workload: %d users, %d rooms × %d sending members, %d concurrent senders, %d receivers in every room, %d-byte messages\n",
		wl.Users, wl.Rooms, wl.Members, wl.Senders, wl.Receivers, wl.MessageSize)
	if len(r.EventLeaders) > 0 {
		fmt.Fprintf(w, "room-event partitions led per node at the start: %s\n", formatCounts(r.EventLeaders))
	}
	if h := r.History; h != nil {
		how := "filled by this run"
		if h.Reused {
			how = "reused"
		}
		fmt.Fprintf(w, "history before the load: %d messages in %d rooms (%s, %s), the biggest room %d; cluster ready on it after %.1f s\n",
			h.Messages, h.Rooms, how, h.Dir, h.BigRoomEvents, h.ReadySeconds)
		if h.FillSeconds > 0 {
			fmt.Fprintf(w, "  filling it took %.0f s (%.0f messages/s through the client API)\n", h.FillSeconds, h.FillPerSecond)
		}
		fmt.Fprintf(w, "  /messages of 50 from the middle of the biggest room: %s, failed or short pages %d\n", h.Messages50, h.MessagesErrors)
	}
	fmt.Fprintln(w)
	for _, p := range []*Phase{r.Saturated, r.Paced} {
		if p == nil {
			continue
		}
		fmt.Fprintf(w, "%s phase (%.0f s", p.Name, p.Seconds)
		if p.OfferedRate > 0 {
			fmt.Fprintf(w, ", offered %.0f sends/s", p.OfferedRate)
		}
		fmt.Fprintln(w, ")")
		fmt.Fprintf(w, "  sends/s (acknowledged)  %.0f  (%d sends)\n", p.SendsPerSec, p.Acked)
		fmt.Fprintf(w, "  send latency            %s\n", p.SendLatency)
		fmt.Fprintf(w, "  delivery latency        %s\n", p.Delivery)
		fmt.Fprintf(w, "  undelivered             %d (limited syncs: %d)\n", p.Undelivered, p.LimitedSyncs)
		if p.Push != nil {
			fmt.Fprintf(w, "  push latency            %s\n", *p.Push)
			fmt.Fprintf(w, "  unpushed / duplicates   %d / %d\n", p.Unpushed, p.DuplicatePushes)
		}
		fmt.Fprintf(w, "  errors                  %s\n", errString(p.Errors))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "  node\tCPU (cores)\tRSS MiB\tmax RSS MiB\theap MiB\t")
		for _, n := range p.Nodes {
			if n.Error != "" {
				fmt.Fprintf(tw, "  %s\t%s\t\t\t\t\n", n.DataCenter, n.Error)
				continue
			}
			fmt.Fprintf(tw, "  %s\t%.2f\t%.0f\t%.0f\t%.0f\t\n", n.DataCenter, n.CPUCores, n.RSSMiB, n.MaxRSSMiB, n.HeapMiB)
		}
		fmt.Fprintf(tw, "  bench process\t%.2f\t\t\t\t\n", p.BenchCPU)
		tw.Flush()
		fmt.Fprintln(w)
	}
	if e := r.Engine; e != nil {
		fmt.Fprintf(w, "engine limit (temporary R%d stream led by %s, %d × %d bytes, via %s)\n", e.Replicas, e.Leader, e.Messages, e.Size, e.Node)
		fmt.Fprintf(w, "  one at a time, %d publishers  %.0f msgs/s   planb = %.1f%% of it\n", e.SyncConcurrency, e.SyncRate, 100*e.RatioSync)
		fmt.Fprintf(w, "  pipelined, window %d        %.0f msgs/s   planb = %.1f%% of it\n", e.AsyncWindow, e.AsyncRate, 100*e.RatioAsync)
		if e.Errors != "" {
			fmt.Fprintf(w, "  errors: %s\n", e.Errors)
		}
		fmt.Fprintln(w)
	}
	if i := r.Idle; i != nil {
		fmt.Fprintf(w, "idle /sync long-polls (%d held by %d users against %s)\n", i.Held, i.Users, i.DataCenter)
		fmt.Fprintf(w, "  node memory per connection  %.1f KiB RSS (%.1f KiB Go heap + %.1f KiB goroutine stacks; RSS %.0f → %.0f MiB, goroutines %d → %d)\n",
			i.RSSPerConnKiB, i.HeapPerConnKiB, i.StackPerConnKiB, i.RSSBeforeMiB, i.RSSHeldMiB, i.GoroutinesBefore, i.GoroutinesHeld)
		fmt.Fprintf(w, "  wake-up latency             %s, %d of %d returned with the message\n", i.Wake, i.Woken, i.Held)
		fmt.Fprintf(w, "  set-up                      %.1f s to open, %.1f s until the node held them all\n", i.OpenSeconds, i.SettleSeconds)
		if i.Note != "" {
			fmt.Fprintf(w, "  note                        %s\n", i.Note)
		}
		fmt.Fprintln(w)
	}
	if k := r.Keys; k != nil {
		fmt.Fprintf(w, "end-to-end encryption (across data centers, one request at a time)\n")
		fmt.Fprintf(w, "  one-time key claim          %s\n", k.Claim)
		fmt.Fprintf(w, "  to-device delivery          %s (send at one data center to /sync at another)\n", k.ToDevice)
		fmt.Fprintln(w)
	}
	if b := r.Rebuild; b != nil {
		fmt.Fprintf(w, "read-model rebuild (%d events in %d records, %d rooms, one node)\n", b.Events, b.Records, b.Rooms)
		fmt.Fprintf(w, "  rebuild: ready after %.1f s (engine up %.1f s, read models rebuilt in %.1f s, %.0f events/s), RSS %.0f MiB, Go heap %.0f MiB\n",
			b.ReadySeconds, b.EngineSeconds, b.RebuildSeconds, b.RebuildEventsPerSec, b.RSSMiB, b.HeapMiB)
		fmt.Fprintf(w, "  restart on its store: ready after %.1f s, RSS %.0f MiB, Go heap %.0f MiB (%.0f bytes of RSS per event held)\n",
			b.RestartReadySeconds, b.RestartRSSMiB, b.RestartHeapMiB, b.RestartRSSMiB*(1<<20)/float64(max(b.Events, 1)))
		fmt.Fprintf(w, "  disk: log %.0f MiB (%.0f bytes per event, one replica), read model store %.0f MiB (%.0f bytes per event)\n",
			float64(b.LogBytes)/(1<<20), float64(b.LogBytes)/float64(max(b.Events, 1)),
			float64(b.StoreBytes)/(1<<20), float64(b.StoreBytes)/float64(max(b.Events, 1)))
		if b.FillSeconds > 0 {
			fmt.Fprintf(w, "  (filling the log took %.1f s, %.0f events/s)\n", b.FillSeconds, float64(b.Events)/b.FillSeconds)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "goals")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, g := range r.Goals {
		verdict := "not measured"
		if g.Met != nil {
			verdict = map[bool]string{true: "met", false: "NOT MET"}[*g.Met]
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", g.Name, g.Target, g.Measured, verdict)
	}
	tw.Flush()
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

func errString(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// goals fills r.Goals from the measured figures.
func (r *Report) goals() {
	met := func(ok bool) *bool { return &ok }
	g := Goal{Name: "throughput vs engine", Target: "≥ 50% of pipelined R3 publish"}
	if r.Engine != nil && r.Engine.AsyncRate > 0 {
		g.Measured = fmt.Sprintf("%.1f%%", 100*r.Engine.RatioAsync)
		g.Met = met(r.Engine.RatioAsync >= 0.5)
	}
	r.Goals = append(r.Goals, g)
	held := 0
	if r.History != nil {
		held = r.History.Messages
	}
	g = Goal{Name: "delivery p99 at half the max rate", Target: "≤ 100 ms"}
	if r.Paced != nil && r.Paced.Delivery.N > 0 {
		g.Measured = fmt.Sprintf("%.1f ms", r.Paced.Delivery.P99)
		g.Met = met(r.Paced.Delivery.P99 <= 100 && r.Paced.Undelivered == 0)
	}
	r.Goals = append(r.Goals, g)
	g = Goal{Name: "push latency at half the max rate", Target: "p50 ≤ 50 ms, p99 ≤ 250 ms"}
	if r.Paced != nil && r.Paced.Push != nil && r.Paced.Push.N > 0 {
		g.Measured = fmt.Sprintf("p50 %.1f ms, p99 %.1f ms", r.Paced.Push.P50, r.Paced.Push.P99)
		g.Met = met(r.Paced.Push.P50 <= 50 && r.Paced.Push.P99 <= 250 && r.Paced.Unpushed == 0)
	}
	r.Goals = append(r.Goals, g)
	g = Goal{Name: "the same, ≥ 10,000,000 events in history", Target: "≤ 100 ms"}
	if r.Paced != nil && r.Paced.Delivery.N > 0 && held > 0 {
		g.Measured = fmt.Sprintf("%.1f ms with %d messages held", r.Paced.Delivery.P99, held)
		if held >= 10_000_000 {
			g.Met = met(r.Paced.Delivery.P99 <= 100 && r.Paced.Undelivered == 0)
		}
	}
	r.Goals = append(r.Goals, g)
	g = Goal{Name: "/messages of 50 from the middle of 1,000,000", Target: "p99 ≤ 20 ms"}
	if h := r.History; h != nil && h.Messages50.N > 0 {
		g.Measured = fmt.Sprintf("%.1f ms in a room of %d", h.Messages50.P99, h.BigRoomEvents)
		if h.BigRoomEvents >= 1_000_000 {
			g.Met = met(h.Messages50.P99 <= 20 && h.MessagesErrors == 0)
		}
	}
	r.Goals = append(r.Goals, g)
	g = Goal{Name: "node memory under load, ≥ 10,000,000 held", Target: "≤ 1 GiB RSS"}
	if held > 0 && (r.Saturated != nil || r.Paced != nil) {
		peak := 0.0
		for _, p := range []*Phase{r.Saturated, r.Paced} {
			if p != nil {
				for _, n := range p.Nodes {
					peak = max(peak, n.MaxRSSMiB)
				}
			}
		}
		g.Measured = fmt.Sprintf("%.0f MiB peak RSS with %d messages held", peak, held)
		if held >= 10_000_000 {
			g.Met = met(peak <= 1024)
		}
	}
	r.Goals = append(r.Goals, g)
	g = Goal{Name: "memory per idle /sync", Target: "≤ 16 KiB"}
	if r.Idle != nil && r.Idle.Held > 0 {
		g.Measured = fmt.Sprintf("%.1f KiB", r.Idle.RSSPerConnKiB)
		g.Met = met(r.Idle.RSSPerConnKiB <= 16)
	}
	r.Goals = append(r.Goals, g)
	g = Goal{Name: "full rebuild from the log", Target: "≥ 100,000 events/s"}
	if b := r.Rebuild; b != nil && b.ReadySeconds > 0 {
		g.Measured = fmt.Sprintf("%.0f events/s (%d events in %.1f s)", b.RebuildEventsPerSec, b.Events, b.RebuildSeconds)
		if b.Events >= 1_000_000 {
			g.Met = met(b.RebuildEventsPerSec >= 100_000)
		}
	}
	r.Goals = append(r.Goals, g)
	g = Goal{Name: "restart with ≥ 10,000,000 events held", Target: "/ready ≤ 5 s"}
	if b := r.Rebuild; b != nil && b.RestartReadySeconds > 0 {
		g.Measured = fmt.Sprintf("%.1f s with %d events", b.RestartReadySeconds, b.Events)
		if b.Events >= 10_000_000 {
			g.Met = met(b.RestartReadySeconds <= 5)
		}
	}
	r.Goals = append(r.Goals, g)
	g = Goal{Name: "node memory with ≥ 10,000,000 events held", Target: "≤ 1 GiB RSS"}
	if b := r.Rebuild; b != nil && b.RestartReadySeconds > 0 {
		g.Measured = fmt.Sprintf("%.0f MiB RSS after the restart, %.0f MiB after the rebuild, with %d events", b.RestartRSSMiB, b.RSSMiB, b.Events)
		if b.Events >= 10_000_000 {
			g.Met = met(max(b.RestartRSSMiB, b.RSSMiB) <= 1024)
		}
	}
	r.Goals = append(r.Goals, g)
}

// formatCounts writes counts per name in name order: "dc1 3, dc2 3, dc3 2".
func formatCounts(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
