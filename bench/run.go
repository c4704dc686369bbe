package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/adminapi"
)

// deliveryGrace is how long a phase waits after its last send for the
// receivers to see every acknowledged message.
const deliveryGrace = 15 * time.Second

// Run runs every configured phase against the target (or a dev cluster it
// starts and stops) and returns the report. Phases that cannot run (no
// admin token for the engine limit, say) are skipped with a note; an error
// means the run could not measure what it was asked to (the target is not
// reachable, users cannot be registered, the open-file limit is too low).
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	if cfg.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find the planb binary: %w", err)
		}
		cfg.Binary = exe
	}
	pr := newProgress(cfg.Progress)
	defer pr.clear()
	say := pr.say
	rep := &Report{Started: time.Now(), Machine: Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH},
		Workload: Workload{Users: cfg.Users, Rooms: cfg.Rooms, Members: cfg.Members, Senders: cfg.Senders, Receivers: cfg.Receivers,
			MessageSize: cfg.MessageSize, Duration: cfg.Duration.Seconds(), PacedDur: cfg.PacedDuration.Seconds()}}
	defer func() { rep.Took = time.Since(rep.Started).Seconds() }()
	if cfg.IdleSyncs > 0 {
		// Before starting a dev cluster: its nodes inherit the limit.
		if err := raiseFDLimit(uint64(cfg.IdleSyncs + 1024)); err != nil {
			return nil, err
		}
	}

	target := cfg.Target
	var dev *devCluster
	if cfg.Dev && (cfg.Duration > 0 || cfg.IdleSyncs > 0 || cfg.HistoryMessages > 0 || cfg.KeysSamples > 0) {
		var err error
		dev, err = startHistory(ctx, cfg, rep, say)
		if dev != nil {
			defer func() {
				if dev != nil {
					dev.stop()
				}
			}()
		}
		if err != nil {
			return rep, err
		}
		target = dev.target()
	}
	rep.Target = target
	run := strings.ToLower(planb.RandomLetters(6))
	if rep.History == nil {
		rep.Notes = append(rep.Notes, "no history before the load (--history-messages 0): the cluster starts empty")
	}
	if cfg.Duration > 0 {
		if err := workloadPhases(ctx, cfg, target, run, rep, say); err != nil {
			return rep, err
		}
	} else {
		rep.Notes = append(rep.Notes, "load phases and engine limit skipped (--duration 0)")
	}
	if cfg.IdleSyncs > 0 {
		idx := cfg.IdleNode
		if idx >= len(target.DataCenters) {
			idx = 0
		}
		idle, err := idleSyncs(ctx, cfg, target, idx, run, say)
		if err != nil {
			return rep, fmt.Errorf("idle syncs: %w", err)
		}
		rep.Idle = idle
	} else {
		rep.Notes = append(rep.Notes, "idle /sync long-polls skipped (--idle-syncs 0)")
	}
	if cfg.KeysSamples > 0 {
		k, err := keysPhase(ctx, target, run, cfg.KeysSamples, say)
		if err != nil {
			return rep, fmt.Errorf("end-to-end encryption: %w", err)
		}
		rep.Keys = k
	} else {
		rep.Notes = append(rep.Notes, "end-to-end encryption phase skipped (--e2ee-samples 0)")
	}
	if dev != nil {
		say("dev cluster: stopping")
		dev.stop()
		dev = nil
	}
	if cfg.RebuildEvents > 0 {
		rb, err := rebuild(ctx, cfg, cfg.Binary, say)
		if err != nil {
			return rep, fmt.Errorf("rebuild: %w", err)
		}
		rep.Rebuild = rb
	} else {
		rep.Notes = append(rep.Notes, "read-model rebuild skipped (--rebuild-events 0)")
	}
	rep.goals()
	return rep, nil
}

// startHistory starts the --dev cluster and, when the run asks for a
// history, fills it (or reuses the one in cfg.HistoryDir) and times
// /messages from the middle of its big room. The cluster is returned
// whenever it was started, also with an error.
func startHistory(ctx context.Context, cfg Config, rep *Report, say func(string, ...any)) (*devCluster, error) {
	if cfg.HistoryMessages == 0 {
		return startDev(ctx, cfg, "", cfg.DevBasePort, cfg.Log, say)
	}
	dir, tmp := cfg.HistoryDir, cfg.HistoryDir == ""
	var err error
	if tmp {
		if dir, err = os.MkdirTemp("", "planb-bench-history-"); err != nil {
			return nil, fmt.Errorf("history dir: %w", err)
		}
	} else if dir, err = filepath.Abs(dir); err != nil {
		return nil, fmt.Errorf("history dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("history dir: %w", err)
	}
	h, err := readHistory(dir)
	if err != nil {
		return nil, err
	}
	reused := h != nil && h.Complete && h.messages() >= cfg.HistoryMessages
	if h == nil {
		h = &historyState{BigRoom: min(histBigMax, cfg.HistoryMessages/histBigShare)}
	}
	if h.Target < cfg.HistoryMessages {
		h.Target, h.Complete = cfg.HistoryMessages, false
	}
	base := cfg.DevBasePort
	if base == 0 {
		base = h.BasePort // the same ports as the run that made it
	}
	start := time.Now()
	dev, err := startDev(ctx, cfg, dir, base, cfg.Log, say)
	if err != nil {
		if tmp {
			os.RemoveAll(dir)
		}
		return nil, fmt.Errorf("start the dev cluster on the history in %s: %w", dir, err)
	}
	if tmp {
		dev.keep = cfg.KeepDev
	}
	hr := &HistoryReport{ReadySeconds: time.Since(start).Seconds(), Dir: dir, Reused: reused, Rooms: histRooms}
	h.BasePort = dev.base
	if !reused {
		say("history: filling %d messages into %s", h.Target, dir)
		if err := fillHistory(ctx, h, dir, dev.target().DataCenters, say); err != nil {
			return dev, fmt.Errorf("fill the history: %w", err)
		}
		h.Complete = true
		if err := h.save(dir); err != nil {
			return dev, err
		}
	}
	hr.Messages, hr.BigRoomEvents, hr.FillSeconds = h.messages(), h.Sent[0], h.FillSeconds
	if h.FillSeconds > 0 {
		hr.FillPerSecond = float64(hr.Messages) / h.FillSeconds
	}
	say("history: /messages from the middle of a room of %d messages", h.Sent[0])
	hr.Messages50, hr.MessagesErrors = messagesFromTheMiddle(ctx, h, dev.target().DataCenters)
	rep.History = hr
	return dev, nil
}

// workloadPhases sets the workload up and runs the saturated phase, the
// engine limit and the paced phase.
func workloadPhases(ctx context.Context, cfg Config, target Target, run string, rep *Report, say func(string, ...any)) error {
	if target.AdminToken != "" {
		led, err := spreadLeaders(ctx, target, say)
		if err != nil {
			rep.Notes = append(rep.Notes, "leaders not spread before the load: "+err.Error())
		}
		rep.EventLeaders = led
	} else {
		rep.Notes = append(rep.Notes, "leaders not spread before the load: that needs the admin token")
	}
	w := newWorkload(cfg, target.DataCenters, run)
	// Leave no idle keep-alive connection behind on the nodes: they would
	// close at the nodes' idle timeout, in the middle of a later phase that
	// counts the node's goroutines and memory.
	defer w.hc.CloseIdleConnections()
	if err := w.setup(ctx, say); err != nil {
		return err
	}
	if cfg.Pushers {
		gw, err := startPushGateway(cfg.PushGatewayListen, w.pushed)
		if err != nil {
			return err
		}
		defer gw.close()
		say("set-up: registering %d pushers at %s", len(w.receivers), gw.url)
		if err := w.setPushers(ctx, gw.url); err != nil {
			return err
		}
	} else {
		rep.Notes = append(rep.Notes, "no pushers (--pushers false): push latency not measured")
	}
	rctx, stopReceivers := context.WithCancel(ctx)
	var rwg sync.WaitGroup
	defer func() { stopReceivers(); rwg.Wait() }()
	if err := w.startReceivers(rctx, &rwg); err != nil {
		return err
	}
	if cfg.Receivers == 0 {
		rep.Notes = append(rep.Notes, "no receivers (--receivers 0): delivery latency not measured")
	}
	rep.Saturated = runPhase(ctx, cfg, w, target, "saturated", cfg.Duration, 0, say)
	if cfg.Engine && target.AdminToken != "" && rep.Saturated.Acked > 0 {
		say("engine limit: publishing %d × %d bytes to a temporary stream", rep.Saturated.Acked, cfg.MessageSize)
		el, err := engineLimit(ctx, target.DataCenters[0], target.AdminToken, adminapi.EngineBenchRequest{
			Messages: rep.Saturated.Acked, Size: cfg.MessageSize, Concurrency: cfg.Senders, Window: cfg.EngineWindow},
			rep.Saturated.SendsPerSec)
		if err != nil {
			rep.Notes = append(rep.Notes, "engine limit failed: "+err.Error())
		} else {
			rep.Engine = el
		}
	} else if cfg.Engine {
		rep.Notes = append(rep.Notes, "engine limit skipped: it needs the admin token (from the cluster file, or --admin-token) and acknowledged sends")
	}
	if cfg.PacedDuration > 0 && rep.Saturated.SendsPerSec > 0 {
		rate := cfg.PacedRate
		if rate == 0 {
			rate = rep.Saturated.SendsPerSec / 2
		}
		rep.Paced = runPhase(ctx, cfg, w, target, "paced", cfg.PacedDuration, rate, say)
	}
	return nil
}

// runPhase runs one load phase and waits for its deliveries.
func runPhase(ctx context.Context, cfg Config, w *workload, target Target, name string, d time.Duration, rate float64, say func(string, ...any)) *Phase {
	mhc := &http.Client{Timeout: 5 * time.Second}
	meter := newUsageMeter(ctx, mhc, target.DataCenters)
	lim0 := w.limited.Load()
	p := &phaseRun{name: name, start: time.Now(), errs: map[string]int{}}
	p.end = p.start.Add(d)
	sent := make(chan struct{})
	go func() { w.sendLoop(ctx, p, rate); close(sent) }()
	var profErr []error
	profDone := make(chan struct{})
	if cfg.PprofDir != "" && name == "saturated" && target.AdminToken != "" {
		go func() {
			defer close(profDone)
			profErr = profileNodes(ctx, target.DataCenters, target.AdminToken, cfg.PprofDir, max(time.Second, d-2*time.Second))
		}()
	} else {
		close(profDone)
	}
	tick := time.NewTicker(time.Second)
	prevAcked, prevAt := 0, time.Now()
loop:
	for {
		select {
		case <-sent:
			break loop
		case now := <-tick.C:
			meter.sample(ctx, false)
			acked := p.ackedNow()
			_, complete := w.delivered(p)
			p.mu.Lock()
			nerr := 0
			for _, v := range p.errs {
				nerr += v
			}
			p.mu.Unlock()
			say("%s: %.0f/%.0f s  %.0f sends/s  acknowledged %d  delivered to all receivers %d  errors %d", name,
				min(now.Sub(p.start), d).Seconds(), d.Seconds(), float64(acked-prevAcked)/now.Sub(prevAt).Seconds(), acked, complete, nerr)
			prevAcked, prevAt = acked, now
		}
	}
	tick.Stop()
	p.end = time.Now()
	nodes, benchCPU := meter.finish(ctx)
	graceEnd := time.Now().Add(deliveryGrace)
	for len(w.receivers) > 0 && time.Now().Before(graceEnd) && ctx.Err() == nil {
		acked, complete := w.delivered(p)
		if complete >= acked {
			break
		}
		say("%s: waiting for deliveries: %d of %d acknowledged sends seen by every receiver", name, complete, acked)
		time.Sleep(200 * time.Millisecond)
	}
	<-profDone
	res := w.result(p)
	res.Nodes, res.BenchCPU = nodes, benchCPU
	res.OfferedRate = rate
	res.LimitedSyncs = int(w.limited.Load() - lim0)
	for _, err := range profErr {
		res.Errors["profile: "+err.Error()]++
	}
	return res
}

// progress writes one live status line, overwriting itself.
type progress struct {
	mu   sync.Mutex // guards w and last
	w    io.Writer
	last time.Time
}

func newProgress(w io.Writer) *progress { return &progress{w: w} }

// say replaces the status line; it drops updates that come faster than
// ten a second.
func (p *progress) say(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	fmt.Fprintf(p.w, "\r\033[K"+format, args...)
}

// clear removes the status line.
func (p *progress) clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprint(p.w, "\r\033[K")
}
