package drill

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/jetstream"
)

// Config configures one drill.
type Config struct {
	Cluster   Target
	Scenario  string
	Target    string        // data center to break; default: the second one
	Peer      string        // slow-link: the other end of the link; default: the one after Target
	Latency   time.Duration // slow-link: added latency each way
	Jitter    time.Duration // slow-link: jitter of that latency
	Flap      time.Duration // dc-flap: how long each cut, and each healed spell between cuts, lasts
	Users     int           // simulated users
	Rooms     int           // rooms, every user in every room
	Receivers int           // users that follow /sync to measure delivery latency (at most Users)
	Interval  time.Duration // between sends of one user into one room
	Before    time.Duration // load before the fault
	During    time.Duration // how long the fault lasts
	After     time.Duration // load after healing
	RTOBudget time.Duration
	// Partitions is the cluster's partition count (rooms are placed by it).
	Partitions int
	Progress   io.Writer
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Cluster.DataCenters) < 3 {
		errs = append(errs, errors.New("a cluster with at least three data centers is required"))
	}
	for _, dc := range c.Cluster.DataCenters {
		if len(dc.Nodes) == 0 {
			errs = append(errs, fmt.Errorf("data center %s has no node URL", dc.Name))
		}
	}
	if c.Cluster.AdminToken == "" {
		errs = append(errs, errors.New("an admin token is required (the drill takes the cluster's drill lock and stores its report)"))
	}
	sc, ok := lookupScenario(c.Scenario)
	if !ok {
		errs = append(errs, fmt.Errorf("scenario %q: want one of %s", c.Scenario, strings.Join(Scenarios(), ", ")))
	}
	for _, dc := range []string{c.Target, c.Peer} {
		if _, ok := c.Cluster.dataCenter(dc); dc != "" && !ok {
			errs = append(errs, fmt.Errorf("%q is not a data center of the cluster", dc))
		}
	}
	if sc.pair && c.Target != "" && c.Target == c.Peer {
		errs = append(errs, fmt.Errorf("%s needs two different data centers (--target and --peer)", sc.name))
	}
	if sc.name == ScenarioSlowLink && (c.Latency <= 0 || c.Latency > 5*time.Second || c.Jitter < 0 || c.Jitter > c.Latency) {
		errs = append(errs, errors.New("slow-link: latency must be in (0, 5s] and jitter in [0, latency]"))
	}
	if sc.name == ScenarioDCFlap && (c.Flap < time.Second || c.Flap > time.Minute) {
		errs = append(errs, errors.New("dc-flap: --flap must be in [1s, 1m]"))
	}
	if c.Users < 2 || c.Users > 200 || c.Rooms < 1 || c.Rooms > 200 {
		errs = append(errs, errors.New("users must be 2..200 and rooms 1..200"))
	}
	if c.Receivers < 0 {
		errs = append(errs, errors.New("receivers must not be negative"))
	}
	if c.Interval < 50*time.Millisecond {
		errs = append(errs, errors.New("interval must be at least 50ms (the drill bounds its request rate)"))
	}
	if c.Before <= 0 || c.During <= 0 || c.After <= 0 || c.Before+c.During+c.After > 30*time.Minute {
		errs = append(errs, errors.New("before, during and after must be positive and together at most 30m"))
	}
	return errors.Join(errs...)
}

// Report is what a drill measured.
type Report struct {
	ID       string         `json:"id"`
	Scenario string         `json:"scenario"`
	Target   string         `json:"target"`
	Peer     string         `json:"peer,omitempty"`
	Started  time.Time      `json:"started"`
	Fault    time.Time      `json:"fault"`
	Healed   time.Time      `json:"healed"`
	Ended    time.Time      `json:"ended"`
	Acked    int            `json:"acknowledged_writes"`
	Errors   map[string]int `json:"client_errors"`
	// RTOSeconds is the longest interruption any room saw: the longest gap
	// between acknowledged writes of one room from the fault to the end of
	// the load, healing included (it includes the workload's send interval,
	// so an untouched room shows about that).
	RTOSeconds float64 `json:"rto_seconds"`
	// ResumedSeconds is the time until every room had accepted a write
	// after the fault.
	ResumedSeconds float64         `json:"all_rooms_resumed_seconds"`
	Partitions     map[int]float64 `json:"partition_gap_seconds"`
	Rooms          int             `json:"rooms"`
	Smooth         int             `json:"rooms_without_interruption"`
	// LedAtFault is the data center that led each event partition just
	// before the fault (absent when the cluster status could not be read).
	LedAtFault map[int]string `json:"partition_leaders_at_fault,omitempty"`
	// LedElsewhere counts the rooms whose partition was led outside the
	// target's data center at the fault, and ElsewhereInterrupted those of
	// them that still went without a write for longer than twice the send
	// interval: a fault of the target alone should leave them untouched.
	LedElsewhere         int `json:"rooms_led_elsewhere"`
	ElsewhereInterrupted int `json:"rooms_led_elsewhere_interrupted"`
	Missing              int `json:"rpo_missing_events"`
	Duplicates           int `json:"duplicates"`
	OrderDiffs           int `json:"rooms_with_different_order"`
	// ReadsChecked counts the drill messages the /sync readers saw;
	// PhantomReads those of them the final history does not hold,
	// ReadsOutOfOrder those seen before a message the history puts
	// earlier; Redelivered those a reader was given more than once.
	ReadsChecked    int     `json:"reads_checked"`
	PhantomReads    int     `json:"phantom_reads"`
	ReadsOutOfOrder int     `json:"reads_out_of_order"`
	Redelivered     int     `json:"reads_redelivered"`
	CatchUp         float64 `json:"catch_up_seconds"`
	CatchUpOf       string  `json:"catch_up_of"`
	// Delivery is the latency from send to arrival in another user's
	// /sync, by the phase the message was sent in: before, during, after.
	Delivery map[string]Latency `json:"delivery"`
	Pass     bool               `json:"pass"`
	Failures []string           `json:"failures,omitempty"`
	// StoredAs is the key of the report in the cluster's drill history.
	StoredAs string `json:"stored_as,omitempty"`
}

func (c *Config) partitionOf(room string) int { return jetstream.PartitionOf(room, c.Partitions) }

// Run performs the drill and returns its report. Pass is false when any
// acknowledged write was lost or duplicated, or recovery took longer than
// the RTO budget. It refuses to start while another drill holds the
// cluster's drill lock (ErrDrillRunning), and stores its report in the
// cluster's drill history.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sc, _ := lookupScenario(cfg.Scenario)
	dcs := cfg.Cluster.DataCenters
	if cfg.Target == "" {
		cfg.Target = dcs[1].Name
	}
	if sc.pair && cfg.Peer == "" {
		for i, dc := range dcs {
			if dc.Name == cfg.Target {
				cfg.Peer = dcs[(i+1)%len(dcs)].Name
			}
		}
	}
	involved := []string{cfg.Target}
	if sc.pair {
		involved = append(involved, cfg.Peer)
	} else {
		cfg.Peer = ""
	}
	if sc.all {
		cfg.Target = dcs[len(dcs)-1].Name // catch-up is measured on the last one restarted
	}
	a := newAdmin(cfg.Cluster.nodes(), cfg.Cluster.AdminToken)
	if err := cfg.Cluster.check(ctx, a, sc, involved); err != nil {
		return nil, err
	}
	run := strconv.FormatInt(time.Now().UnixNano()/1e6%1e9, 36) + strings.ToLower(planb.RandomString(3))
	host, _ := os.Hostname()
	// The lock outlives the drill by a margin; it expires on its own if the
	// drill dies, and a fault a node holds heals by itself within limit.
	limit := cfg.Before + cfg.During + cfg.After + 10*time.Minute
	if err := a.lock(ctx, Lock{ID: run, Scenario: cfg.Scenario, Holder: host}, limit); err != nil {
		return nil, err
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := a.unlock(uctx, run); err != nil {
			fmt.Fprintf(cfg.Progress, "\nwarning: %v (it expires by itself)\n", err)
		}
	}()

	w := &workload{run: run, endpoints: cfg.Cluster.endpoints()}
	rep := &Report{ID: run, Scenario: cfg.Scenario, Target: cfg.Target, Peer: cfg.Peer, Started: time.Now().UTC(), Rooms: cfg.Rooms}
	if sc.all {
		rep.Target = "every data center"
	}
	say := func(format string, args ...any) { fmt.Fprintf(cfg.Progress, "\r\033[K"+format, args...) }
	say("setting up %d users and %d rooms…", cfg.Users, cfg.Rooms)
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	err := w.setup(sctx, cfg.Users, cfg.Rooms)
	cancel()
	if err != nil {
		return nil, err
	}
	lctx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	w.start(lctx, cfg.Interval, cfg.partitionOf)
	recv := w.follow(lctx, cfg.Receivers)
	var phase atomic.Value
	phase.Store("load")
	stopProgress := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-t.C:
				acks, errs := w.snapshot()
				n := 0
				for _, v := range errs {
					n += v
				}
				say("[%s %s] %s: %d writes acknowledged, %d client errors, %s elapsed", cfg.Scenario, rep.Target, phase.Load(),
					len(acks), n, time.Since(rep.Started).Round(time.Second))
			}
		}
	}()
	defer close(stopProgress)
	if err := sleep(ctx, cfg.Before); err != nil {
		return nil, err
	}
	phase.Store("breaking")
	f := &faults{t: cfg.Cluster, a: a, cfg: &cfg, limit: limit,
		say: func(format string, args ...any) { phase.Store(fmt.Sprintf(format, args...)) }}
	rep.LedAtFault = f.partitionLeaders(ctx)
	rep.Fault = time.Now()
	heal, err := f.apply(ctx, sc)
	if err != nil {
		return nil, fmt.Errorf("inject %s: %w", cfg.Scenario, err)
	}
	if sc.held {
		phase.Store("broken")
		if err := sleep(ctx, cfg.During); err != nil {
			_ = heal(context.WithoutCancel(ctx))
			return nil, err
		}
	}
	phase.Store("healing")
	if err := heal(ctx); err != nil {
		return nil, fmt.Errorf("heal %s: %w", cfg.Scenario, err)
	}
	rep.Healed = time.Now()
	caught := w.catchUp(ctx, cfg.Target)
	phase.Store("after")
	if err := sleep(ctx, cfg.After); err != nil {
		return nil, err
	}
	loadStopped := time.Now()
	stopLoad()
	w.wg.Wait()
	recv.wg.Wait()
	rep.Ended = time.Now()
	acks, errs := w.snapshot()
	rep.Acked, rep.Errors = len(acks), errs
	rep.Delivery = recv.phases(rep.Fault, rep.Healed)
	// Gaps count from the fault to the end of the load, so that trouble
	// caused by healing (a returning data center forcing new elections)
	// counts too.
	rec := Measure(acks, roomNames(w), cfg.partitionOf, rep.Fault, loadStopped, 2*cfg.Interval)
	rep.ResumedSeconds = rec.AllResumed.Seconds()
	rep.Smooth = rec.Uninterrupted
	rep.LedElsewhere, rep.ElsewhereInterrupted = ledElsewhere(rec.Rooms, rep.LedAtFault, cfg.partitionOf, cfg.Target, 2*cfg.Interval)
	rep.Partitions = map[int]float64{}
	for p, d := range rec.Partitions {
		rep.Partitions[p] = d.Seconds()
	}
	if len(rec.Rooms) > 0 {
		rep.RTOSeconds = rec.Rooms[len(rec.Rooms)-1].Longest.Seconds()
	}
	phase.Store("waiting for " + cfg.Target + " to catch up")
	rep.CatchUp, rep.CatchUpOf = <-caught, cfg.Target
	phase.Store("reading back from every data center")
	if err := readAndCheck(ctx, w, acks, recv.history(), rep, cfg.Target); err != nil {
		return nil, err
	}
	judge(rep, rec, cfg.RTOBudget)
	phase.Store("storing the report in the cluster")
	if rep.StoredAs, err = a.store(ctx, rep); err != nil {
		say("")
		return rep, err
	}
	say("")
	return rep, nil
}

func roomNames(w *workload) []string {
	out := make([]string, len(w.rooms))
	for i, r := range w.rooms {
		out[i] = string(r)
	}
	return out
}

// endpoint returns the workload's endpoint of data center name.
func (w *workload) endpoint(name string) Endpoint {
	for _, e := range w.endpoints {
		if e.Name == name {
			return e
		}
	}
	return Endpoint{}
}

// hasAll waits until data center name serves every write of acks, for up
// to limit; it reports how long that took, or -1.
func (w *workload) hasAll(ctx context.Context, name string, acks []Ack, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	for {
		rb, err := w.readBack(ctx, w.endpoint(name))
		if err == nil && len(Check(acks, map[string]map[string]Stored{name: rb}).Missing) == 0 {
			return time.Since(start), nil
		}
		if time.Since(start) > limit {
			return -1, nil
		}
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
			return -1, err
		}
	}
}

// catchUp measures, from healing on and while the load goes on, how long
// the healed data center takes to serve every write acknowledged before
// healing.
func (w *workload) catchUp(ctx context.Context, name string) <-chan float64 {
	acks, _ := w.snapshot()
	out := make(chan float64, 1)
	go func() {
		d, err := w.hasAll(ctx, name, acks, 3*time.Minute)
		if err != nil || d < 0 {
			out <- -1
			return
		}
		out <- d.Seconds()
	}()
	return out
}

// readAndCheck waits until the healed data center has every acknowledged
// write, then reads every room back from every data center and compares.
func readAndCheck(ctx context.Context, w *workload, acks []Ack, reads []map[string][]string, rep *Report, target string) error {
	if _, err := w.hasAll(ctx, target, acks, 3*time.Minute); err != nil {
		return err
	}
	all := map[string]map[string]Stored{}
	for _, e := range w.endpoints {
		rb, err := w.readBack(ctx, e)
		if err != nil {
			return fmt.Errorf("read back from %s: %w", e.Name, err)
		}
		all[e.Name] = rb
	}
	loss := Check(acks, all)
	rep.Missing, rep.Duplicates, rep.OrderDiffs = len(loss.Missing), len(loss.Duplicates), len(loss.OrderDiffers)
	rd := CheckReads(reads, all[target])
	rep.ReadsChecked, rep.PhantomReads, rep.ReadsOutOfOrder, rep.Redelivered = rd.Checked, len(rd.Phantom), rd.OutOfOrder, rd.Redelivered
	return nil
}

// judge fills Pass and Failures.
func judge(rep *Report, rec Recovery, budget time.Duration) {
	if rep.Missing > 0 {
		rep.Failures = append(rep.Failures, fmt.Sprintf("RPO: %d acknowledged events missing", rep.Missing))
	}
	if rep.Duplicates > 0 {
		rep.Failures = append(rep.Failures, fmt.Sprintf("%d writes stored more than once", rep.Duplicates))
	}
	if rep.OrderDiffs > 0 {
		rep.Failures = append(rep.Failures, fmt.Sprintf("%d rooms ordered differently between data centers", rep.OrderDiffs))
	}
	if rep.PhantomReads > 0 {
		rep.Failures = append(rep.Failures, fmt.Sprintf("%d messages read through /sync are not in the final history", rep.PhantomReads))
	}
	if rep.ReadsOutOfOrder > 0 {
		rep.Failures = append(rep.Failures, fmt.Sprintf("%d messages read through /sync out of the history's order", rep.ReadsOutOfOrder))
	}
	if rec.AllResumed == 0 && len(rec.Rooms) > 0 {
		rep.Failures = append(rep.Failures, "writes did not resume in every room before the end of the drill")
	} else if rep.RTOSeconds > budget.Seconds() {
		rep.Failures = append(rep.Failures, fmt.Sprintf("RTO %.1fs (a room went that long without an acknowledged write) over the budget of %v", rep.RTOSeconds, budget))
	}
	if rep.CatchUp < 0 {
		rep.Failures = append(rep.Failures, "the healed data center did not catch up within 3 minutes")
	}
	rep.Pass = len(rep.Failures) == 0
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Human writes the report for people.
func (r *Report) Human(w io.Writer) {
	verdict := "PASS"
	if !r.Pass {
		verdict = "FAIL"
	}
	of := r.Target
	if r.Peer != "" {
		of += " and " + r.Peer
	}
	fmt.Fprintf(w, "drill %s %s of %s: %s\n", r.ID, r.Scenario, of, verdict)
	fmt.Fprintf(w, "  fault %s, healed after %.1fs, ended %s\n", r.Fault.Format(time.RFC3339), r.Healed.Sub(r.Fault).Seconds(), r.Ended.Format(time.RFC3339))
	fmt.Fprintf(w, "  RTO (longest time a room went without an acknowledged write): %.2fs\n", r.RTOSeconds)
	fmt.Fprintf(w, "  every room had accepted a write again %.2fs after the fault\n", r.ResumedSeconds)
	var ps []string
	for p := 0; p < 256; p++ {
		if g, ok := r.Partitions[p]; ok {
			ps = append(ps, fmt.Sprintf("%d:%.1fs", p, g))
		}
	}
	fmt.Fprintf(w, "  longest gap per partition: %s\n", strings.Join(ps, " "))
	fmt.Fprintf(w, "  rooms without interruption: %d of %d\n", r.Smooth, r.Rooms)
	if len(r.LedAtFault) > 0 {
		fmt.Fprintf(w, "  rooms whose partition was led outside %s at the fault: %d, of them interrupted: %d\n", r.Target, r.LedElsewhere, r.ElsewhereInterrupted)
	}
	fmt.Fprintf(w, "  RPO: %d acknowledged events missing; duplicates: %d; rooms ordered differently: %d\n", r.Missing, r.Duplicates, r.OrderDiffs)
	fmt.Fprintf(w, "  reads through /sync: %d messages checked, %d not in the final history, %d out of order, %d given twice\n",
		r.ReadsChecked, r.PhantomReads, r.ReadsOutOfOrder, r.Redelivered)
	fmt.Fprintf(w, "  catch-up: %s served every write acknowledged before healing %.1fs after healing\n", r.CatchUpOf, r.CatchUp)
	fmt.Fprintf(w, "  acknowledged writes: %d; client-visible errors: %v\n", r.Acked, r.Errors)
	for _, p := range []string{"before", "during", "after"} {
		if l, ok := r.Delivery[p]; ok {
			fmt.Fprintf(w, "  delivery to /sync, sent %-6s the fault: p50 %.0f ms, p99 %.0f ms, max %.0f ms (%d messages)\n", p, l.P50, l.P99, l.Max, l.Count)
		}
	}
	if r.StoredAs != "" {
		fmt.Fprintf(w, "  stored in the cluster's drill history as %s\n", r.StoredAs)
	}
	for _, f := range r.Failures {
		fmt.Fprintf(w, "  FAILED: %s\n", f)
	}
}
