package drill

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	toxiclient "github.com/Shopify/toxiproxy/v2/client"

	"github.com/planb-chat/planb/devcluster"
	"github.com/planb-chat/planb/jetstream"
)

// Scenarios the drill can run on a dev cluster (it has the process ids and
// the fault-injection links).
const (
	ScenarioDCLoss    = "dc-loss"    // SIGKILL the data center, later restart it
	ScenarioDCIsolate = "dc-isolate" // cut every link of the data center, later heal
)

// Config configures one drill.
type Config struct {
	Cluster   *devcluster.ClusterFile
	Scenario  string
	Target    string        // data center to break; default: the second one
	Users     int           // simulated users
	Rooms     int           // rooms, every user in every room
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
	if c.Cluster == nil || len(c.Cluster.DataCenters) < 3 {
		errs = append(errs, errors.New("a cluster file with at least three data centers is required"))
	}
	switch c.Scenario {
	case ScenarioDCLoss, ScenarioDCIsolate:
	default:
		errs = append(errs, fmt.Errorf("scenario %q: this build runs %s and %s", c.Scenario, ScenarioDCLoss, ScenarioDCIsolate))
	}
	if c.Cluster != nil && c.Target != "" {
		if _, ok := c.Cluster.DataCenter(c.Target); !ok {
			errs = append(errs, fmt.Errorf("target %q is not a data center of the cluster", c.Target))
		}
	}
	if c.Users < 1 || c.Users > 200 || c.Rooms < 1 || c.Rooms > 200 {
		errs = append(errs, errors.New("users and rooms must be 1..200"))
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
	Scenario string         `json:"scenario"`
	Target   string         `json:"target"`
	Started  time.Time      `json:"started"`
	Fault    time.Time      `json:"fault"`
	Healed   time.Time      `json:"healed"`
	Ended    time.Time      `json:"ended"`
	Acked    int            `json:"acknowledged_writes"`
	Errors   map[string]int `json:"client_errors"`
	// RTOSeconds is the longest interruption any room saw: the longest gap
	// between acknowledged writes of one room after the fault (it includes
	// the workload's send interval, so an untouched room shows about that).
	RTOSeconds float64 `json:"rto_seconds"`
	// ResumedSeconds is the time until every room had accepted a write
	// after the fault.
	ResumedSeconds float64         `json:"all_rooms_resumed_seconds"`
	Partitions     map[int]float64 `json:"partition_gap_seconds"`
	Rooms          int             `json:"rooms"`
	Smooth         int             `json:"rooms_without_interruption"`
	Missing        int             `json:"rpo_missing_events"`
	Duplicates     int             `json:"duplicates"`
	OrderDiffs     int             `json:"rooms_with_different_order"`
	CatchUp        float64         `json:"catch_up_seconds"`
	Pass           bool            `json:"pass"`
	Failures       []string        `json:"failures,omitempty"`
}

func (c *Config) partitionOf(room string) int { return jetstream.PartitionOf(room, c.Partitions) }

// Run performs the drill and returns its report. Pass is false when any
// acknowledged write was lost or duplicated, or recovery took longer than
// the RTO budget.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Target == "" {
		cfg.Target = cfg.Cluster.DataCenters[1].Name
	}
	w := &workload{run: strconv.FormatInt(time.Now().Unix()%1e8, 36)}
	for _, dc := range cfg.Cluster.DataCenters {
		w.endpoints = append(w.endpoints, Endpoint{Name: dc.Name, URL: dc.URL})
	}
	rep := &Report{Scenario: cfg.Scenario, Target: cfg.Target, Started: time.Now(), Rooms: cfg.Rooms}
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
	phase := "load"
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
				say("[%s] %s %s: %d writes acknowledged, %d client errors, %s elapsed", cfg.Scenario, phase, cfg.Target,
					len(acks), n, time.Since(rep.Started).Round(time.Second))
			}
		}
	}()
	defer close(stopProgress)
	if err := sleep(ctx, cfg.Before); err != nil {
		return nil, err
	}
	phase = "breaking"
	rep.Fault = time.Now()
	heal, err := breakDC(ctx, cfg)
	if err != nil {
		return nil, err
	}
	phase = "broken"
	if err := sleep(ctx, cfg.During); err != nil {
		heal()
		return nil, err
	}
	phase = "healing"
	if err := heal(); err != nil {
		return nil, err
	}
	rep.Healed = time.Now()
	phase = "after"
	if err := sleep(ctx, cfg.After); err != nil {
		return nil, err
	}
	stopLoad()
	w.wg.Wait()
	rep.Ended = time.Now()
	acks, errs := w.snapshot()
	rep.Acked, rep.Errors = len(acks), errs
	rec := Measure(acks, roomNames(w), cfg.partitionOf, rep.Fault, rep.Healed, 2*cfg.Interval)
	rep.ResumedSeconds = rec.AllResumed.Seconds()
	rep.Smooth = rec.Uninterrupted
	rep.Partitions = map[int]float64{}
	for p, d := range rec.Partitions {
		rep.Partitions[p] = d.Seconds()
	}
	if len(rec.Rooms) > 0 {
		rep.RTOSeconds = rec.Rooms[len(rec.Rooms)-1].Longest.Seconds()
	}
	phase = "reading back"
	if err := readAndCheck(ctx, w, acks, rep, cfg.Target); err != nil {
		return nil, err
	}
	say("")
	judge(rep, rec, cfg.RTOBudget)
	return rep, nil
}

func roomNames(w *workload) []string {
	out := make([]string, len(w.rooms))
	for i, r := range w.rooms {
		out[i] = string(r)
	}
	return out
}

// readAndCheck waits until the healed data center has every acknowledged
// write (the catch-up time), then compares all data centers.
func readAndCheck(ctx context.Context, w *workload, acks []Ack, rep *Report, target string) error {
	var target1 Endpoint
	for _, e := range w.endpoints {
		if e.Name == target {
			target1 = e
		}
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		rb, err := w.readBack(ctx, target1)
		if err == nil && len(Check(acks, map[string]map[string]Stored{target: rb}).Missing) == 0 {
			rep.CatchUp = time.Since(rep.Healed).Seconds()
			break
		}
		if time.Now().After(deadline) {
			rep.CatchUp = -1
			break
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
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
	if rec.AllResumed == 0 && len(rec.Rooms) > 0 {
		rep.Failures = append(rep.Failures, "writes did not resume in every room while the fault lasted")
	} else if rep.RTOSeconds > budget.Seconds() {
		rep.Failures = append(rep.Failures, fmt.Sprintf("RTO %.1fs (a room went that long without an acknowledged write) over the budget of %v", rep.RTOSeconds, budget))
	}
	if rep.CatchUp < 0 {
		rep.Failures = append(rep.Failures, "the healed data center did not catch up within 3 minutes")
	}
	rep.Pass = len(rep.Failures) == 0
}

// breakDC applies the scenario's fault and returns how to heal it.
func breakDC(ctx context.Context, cfg Config) (func() error, error) {
	dc, _ := cfg.Cluster.DataCenter(cfg.Target)
	switch cfg.Scenario {
	case ScenarioDCLoss:
		if err := syscall.Kill(dc.PID, syscall.SIGKILL); err != nil {
			return nil, fmt.Errorf("SIGKILL %s (pid %d): %w", dc.Name, dc.PID, err)
		}
		return func() error {
			if _, err := devcluster.RestartDataCenter(ctx, cfg.Cluster, dc.Name); err != nil {
				return fmt.Errorf("restart %s: %w", dc.Name, err)
			}
			return waitReady(ctx, dc.URL)
		}, nil
	case ScenarioDCIsolate:
		toxi := toxiclient.NewClient(strings.TrimPrefix(cfg.Cluster.ToxiproxyURL, "http://"))
		set := func(enabled bool) error {
			for _, l := range cfg.Cluster.LinksOf(dc.Name) {
				p, err := toxi.Proxy(l)
				if err == nil {
					if enabled {
						err = p.Enable()
					} else {
						err = p.Disable()
					}
				}
				if err != nil {
					return fmt.Errorf("link %s: %w", l, err)
				}
			}
			return nil
		}
		if err := set(false); err != nil {
			return nil, err
		}
		return func() error { return set(true) }, nil
	}
	return nil, fmt.Errorf("unknown scenario %q", cfg.Scenario)
}

func waitReady(ctx context.Context, base string) error {
	hc := &http.Client{Timeout: 3 * time.Second}
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		if resp, err := hc.Get(base + "/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("%s not ready within 3 minutes", base)
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
	fmt.Fprintf(w, "drill %s of %s: %s\n", r.Scenario, r.Target, verdict)
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
	fmt.Fprintf(w, "  RPO: %d acknowledged events missing; duplicates: %d; rooms ordered differently: %d\n", r.Missing, r.Duplicates, r.OrderDiffs)
	fmt.Fprintf(w, "  catch-up of %s after healing: %.1fs\n", r.Target, r.CatchUp)
	fmt.Fprintf(w, "  acknowledged writes: %d; client-visible errors: %v\n", r.Acked, r.Errors)
	for _, f := range r.Failures {
		fmt.Fprintf(w, "  FAILED: %s\n", f)
	}
}
