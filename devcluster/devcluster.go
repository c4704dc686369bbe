// Package devcluster runs a local planb cluster for development and tests:
// one `planb serve` child process per data center on loopback, with every
// link between data centers going through an in-process toxiproxy, so that
// drills and tests can kill data centers (their pids are in cluster.json)
// and cut or slow the links between them (toxiproxy's HTTP API).
//
// # Port plan
//
// Everything derives from one base port B; data centers are numbered from 1:
//
//	B + (n-1)            HTTP (Matrix client API) of dcn: dc1 = B, dc2 = B+1, ...
//	B + 98               never listened on: the route address every node advertises
//	B + 99               toxiproxy HTTP API
//	B + 100 + (n-1)      NATS route listener of dcn (reached only via links)
//	B + 200 + 10*a + b   link "dca-to-dcb": dca's route to dcb (dc1-to-dc2 = B+212)
//
// With up to five data centers the ranges never overlap and the highest
// port is B+254; Config.Validate checks both.
//
// # Links
//
// Every node is started with --no-advertise and one --route per other data
// center, each pointing at its own link proxy, so all of a node's route
// traffic passes through the proxies. Cutting dc2 off means disabling every
// proxy from or to dc2 (ClusterFile.LinksOf).
//
// --no-advertise alone does not keep traffic on the links: nats-server's
// cluster no_advertise only hides client URLs, while route gossip still
// tells every server the others' real route address, and a server that
// hears of a peer it has no route to yet dials it directly (an implicit
// route), bypassing the proxies. So each node also gets a small config file
// (DataDir/dcN/dev.json) setting cluster.advertise to B+98, where nothing
// listens: implicit routes fail once and are dropped, and only the explicit
// routes through the links remain. Disabled proxies refuse new
// connections and close the open ones, so the cut is seen at once; for a
// silent black hole use a toxic (e.g. "timeout") instead.
package devcluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/internal/freeport"
)

// Timeouts of the supervisor.
const (
	// ReadyTimeout bounds the wait for every data center's /ready, unless
	// Config.ReadyTimeout says otherwise.
	ReadyTimeout = 3 * time.Minute
	// StopTimeout is how long children get after SIGTERM before SIGKILL.
	StopTimeout = 15 * time.Second
	// progressEvery is how often the wait for readiness is reported.
	progressEvery = 5 * time.Second
)

// ServerName is the Matrix server name of every dev cluster.
const ServerName = "localhost"

// nodeConfigName is the per-data-center config file (in its data dir)
// holding what `planb serve` has no flag for.
const nodeConfigName = "dev.json"

// Config configures Run.
type Config struct {
	// Binary is the planb binary to run as `Binary serve ...`; empty means
	// the running executable (os.Executable).
	Binary string
	// DataDir holds one directory per data center (DataDir/dc1, ...), the
	// toxiproxy log and cluster.json. A second run reuses it.
	DataDir string
	// BasePort is the HTTP port of dc1; every other port derives from it
	// (see the package documentation).
	BasePort int
	// DCs is the number of data centers: 3 (replicas R3) or 5 (R5).
	DCs int
	// Log receives the supervisor's events; nil discards them.
	Log *slog.Logger
	// Stdout receives the progress lines and the table of data centers;
	// nil discards them.
	Stdout io.Writer
	// ReadyTimeout bounds the wait for every data center's /ready; 0 means
	// the package's ReadyTimeout. Nodes that rebuild large read models
	// from their logs need longer.
	ReadyTimeout time.Duration
	// ServeArgs are added to every data center's `planb serve` command
	// (tests use them to shorten thresholds such as --notice-after).
	ServeArgs []string
}

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data dir is required"))
	}
	if c.DCs != 3 && c.DCs != 5 {
		errs = append(errs, fmt.Errorf("data centers %d: want 3 or 5", c.DCs))
	} else if _, err := newPortPlan(c.BasePort, c.DCs).ports(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// portPlan derives every port of a cluster from its base (see the package
// documentation). Data centers are numbered 1..dcs.
type portPlan struct{ base, dcs int }

func newPortPlan(base, dcs int) portPlan { return portPlan{base: base, dcs: dcs} }

func (p portPlan) http(n int) int        { return p.base + n - 1 }
func (p portPlan) api() int              { return p.base + 99 }
func (p portPlan) noGossip() int         { return p.base + 98 }
func (p portPlan) cluster(n int) int     { return p.base + 100 + n - 1 }
func (p portPlan) link(from, to int) int { return p.base + 200 + 10*from + to }

// ports returns every port of the plan with its purpose; it returns an
// error if a port is out of range or two purposes share a port.
func (p portPlan) ports() (map[int]string, error) {
	if p.dcs > 9 {
		return nil, fmt.Errorf("data centers %d: the port plan has room for 9", p.dcs)
	}
	out := map[int]string{}
	var errs []error
	add := func(port int, what string) {
		switch {
		case port < 1 || port > 65535:
			errs = append(errs, fmt.Errorf("base port %d: %s would be port %d, outside 1..65535", p.base, what, port))
		case out[port] != "":
			errs = append(errs, fmt.Errorf("base port %d: %s and %s both on port %d", p.base, out[port], what, port))
		default:
			out[port] = what
		}
	}
	add(p.api(), "toxiproxy API")
	add(p.noGossip(), "advertised route address (never listened on)")
	for n := 1; n <= p.dcs; n++ {
		add(p.http(n), fmt.Sprintf("dc%d HTTP", n))
		add(p.cluster(n), fmt.Sprintf("dc%d cluster", n))
		for m := 1; m <= p.dcs; m++ {
			if m != n {
				add(p.link(n, m), linkName(n, m))
			}
		}
	}
	return out, errors.Join(errs...)
}

// checkFree reports every port of the plan that cannot be listened on.
func (p portPlan) checkFree() error {
	ports, err := p.ports()
	if err != nil {
		return err
	}
	var errs []error
	for _, port := range slices.Sorted(maps.Keys(ports)) {
		if err := freeport.Check(port); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", ports[port], err))
		}
	}
	return errors.Join(errs...)
}

func addr(port int) string         { return "127.0.0.1:" + strconv.Itoa(port) }
func dcName(n int) string          { return "dc" + strconv.Itoa(n) }
func linkName(from, to int) string { return dcName(from) + "-to-" + dcName(to) }

// layout returns the cluster file of a fresh start (pids still zero).
func layout(cfg Config) *ClusterFile {
	p := newPortPlan(cfg.BasePort, cfg.DCs)
	replicas := "3"
	if cfg.DCs == 5 {
		replicas = "5"
	}
	f := &ClusterFile{
		ToxiproxyURL: "http://" + addr(p.api()),
		ServerName:   ServerName,
		Path:         filepath.Join(cfg.DataDir, ClusterFileName),
		// A fresh admin token each run: it lives only in cluster.json and
		// the processes' arguments, never in the replicated data.
		AdminToken: planb.RandomString(24),
	}
	var endpoints []string
	for n := 1; n <= cfg.DCs; n++ {
		endpoints = append(endpoints, "--datacenter", dcName(n)+"=http://"+addr(p.http(n)))
	}
	for n := 1; n <= cfg.DCs; n++ {
		name := dcName(n)
		dir := filepath.Join(cfg.DataDir, name)
		args := []string{cfg.Binary, "serve",
			"--config", filepath.Join(dir, nodeConfigName),
			"--data", dir,
			"--http", addr(p.http(n)),
			"--public-url", "http://" + addr(p.http(n)),
			"--server-name", ServerName,
			"--dc", name,
			"--node", name,
			"--cluster", addr(p.cluster(n)),
			"--no-advertise",
			"--replicas", replicas,
			"--open-registration",
			"--admin-token", f.AdminToken,
		}
		for m := 1; m <= cfg.DCs; m++ {
			if m == n {
				continue
			}
			f.Links = append(f.Links, Link{Name: linkName(n, m), From: name, To: dcName(m),
				Listen: addr(p.link(n, m)), Upstream: addr(p.cluster(m))})
			args = append(args, "--route", addr(p.link(n, m)))
		}
		args = append(args, endpoints...)
		args = append(args, cfg.ServeArgs...)
		f.DataCenters = append(f.DataCenters, DataCenter{
			Name: name, URL: "http://" + addr(p.http(n)), DataDir: dir,
			Log: filepath.Join(dir, "planb.log"), ClusterListen: addr(p.cluster(n)), Args: args,
		})
	}
	return f
}

// child is one data center's process started by Run.
type child struct {
	dc   DataCenter
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and been reaped
	err  error         // the exit status; written before done is closed
}

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// Run starts the toxiproxy and one planb process per data center, waits
// until every data center is ready, prints a table of them, writes
// DataDir/cluster.json and then supervises until ctx ends. It never
// restarts a data center that dies (drills kill them on purpose); it logs
// the exit.
//
// When ctx ends it sends SIGTERM to every data center — its own children
// and any that a tool restarted with RestartDataCenter — waits up to
// StopTimeout, SIGKILLs the rest, then stops the toxiproxy. It removes no
// data: a second run reuses the data directories and the NATS cluster comes
// back from them. A cluster.json from an earlier run is removed at start, so
// its presence means this run is ready.
//
// Run returns nil after a stop through ctx, and an error if the
// configuration is invalid, a port is taken, a process cannot be started, or
// a data center exits or is not ready within ReadyTimeout (the error names
// it and quotes the end of its log).
func Run(ctx context.Context, cfg Config) error {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Stdout == nil {
		cfg.Stdout = io.Discard
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid dev cluster config:\n%w", err)
	}
	if cfg.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find planb binary: %w", err)
		}
		cfg.Binary = exe
	}
	var err error
	if cfg.DataDir, err = filepath.Abs(cfg.DataDir); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	file := layout(cfg)
	if err := checkLeftovers(file.Path); err != nil {
		return err
	}
	if err := newPortPlan(cfg.BasePort, cfg.DCs).checkFree(); err != nil {
		return fmt.Errorf("ports of base port %d:\n%w", cfg.BasePort, err)
	}
	if err := os.Remove(file.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove old cluster file: %w", err)
	}

	log := cfg.Log
	if span, _ := newPortPlan(cfg.BasePort, cfg.DCs).span(); cfg.BasePort+span >= freeport.EphemeralLow() {
		log.Warn("the dev cluster's ports reach into the kernel's ephemeral range: a data center restarted by a drill may find its port taken by an outgoing connection; choose a base port below it",
			"base_port", cfg.BasePort, "ephemeral_from", freeport.EphemeralLow())
	}
	proxy, err := startLinkProxy(addr(newPortPlan(cfg.BasePort, cfg.DCs).api()), file.Links,
		filepath.Join(cfg.DataDir, "toxiproxy.log"))
	if err != nil {
		return err
	}
	log.Info("toxiproxy started", "api", file.ToxiproxyURL, "links", len(file.Links))
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := proxy.Close(sctx); err != nil {
			log.Warn("stop toxiproxy", "err", err)
		}
	}()

	var stopping atomic.Bool
	var children []*child
	defer func() {
		stopping.Store(true)
		stopAll(log, children, file.Path)
	}()
	fmt.Fprintf(cfg.Stdout, "planb dev: starting %d data centers in %s\n", cfg.DCs, cfg.DataDir)
	advertise := addr(newPortPlan(cfg.BasePort, cfg.DCs).noGossip())
	for i := range file.DataCenters {
		dc := &file.DataCenters[i]
		if err := writeNodeConfig(dc.DataDir, advertise); err != nil {
			return fmt.Errorf("start %s: %w", dc.Name, err)
		}
		cmd, err := startProcess(*dc, true)
		if err != nil {
			return fmt.Errorf("start %s: %w", dc.Name, err)
		}
		dc.PID = cmd.Process.Pid
		c := &child{dc: *dc, cmd: cmd, done: make(chan struct{})}
		children = append(children, c)
		log.Info("data center started", "dc", dc.Name, "pid", dc.PID, "url", dc.URL, "log", dc.Log)
		go func() {
			err := c.cmd.Wait()
			// Log before done is closed: once all are done Run returns, and
			// its logger may be gone (a test's).
			if stopping.Load() {
				log.Info("data center stopped", "dc", c.dc.Name, "pid", c.dc.PID, "status", exitStatus(err))
			} else {
				log.Warn("data center exited; not restarting it", "dc", c.dc.Name, "pid", c.dc.PID,
					"status", exitStatus(err), "log", c.dc.Log)
			}
			c.err = err
			close(c.done)
		}()
	}

	start := time.Now()
	readyTimeout := cfg.ReadyTimeout
	if readyTimeout <= 0 {
		readyTimeout = ReadyTimeout
	}
	if err := waitReady(ctx, cfg.Stdout, children, readyTimeout); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return err
	}
	log.Info("cluster ready", "took", time.Since(start).Round(time.Millisecond))
	printTable(cfg.Stdout, file, time.Since(start))
	if err := writeClusterFile(file.Path, file); err != nil {
		return err
	}
	<-ctx.Done()
	fmt.Fprintln(cfg.Stdout, "planb dev: stopping")
	return nil
}

// writeNodeConfig writes the data center's config file: the advertised
// route address that defeats route gossip (see the package documentation).
func writeNodeConfig(dir, advertise string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	b, err := json.Marshal(map[string]any{"cluster": map[string]string{"advertise": advertise}})
	if err != nil {
		return fmt.Errorf("encode node config: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, nodeConfigName), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write node config: %w", err)
	}
	return nil
}

// checkLeftovers refuses to start while a data center recorded in an
// earlier run's cluster file still runs (for example one restarted by a
// tool and orphaned by a SIGKILLed supervisor): it would hold the ports
// and the data directory.
func checkLeftovers(path string) error {
	old, err := ReadClusterFile(path)
	if err != nil {
		return nil // no earlier run, or nothing usable in it
	}
	var errs []error
	for _, dc := range old.DataCenters {
		if dc.PID > 0 && processAlive(dc.PID) && isOurProcess(dc.PID, dc.Args) {
			errs = append(errs, fmt.Errorf("%s of an earlier run still runs as pid %d; stop it first (kill %d)", dc.Name, dc.PID, dc.PID))
		}
	}
	return errors.Join(errs...)
}

// waitReady polls every data center's /ready until all answer 200. It
// prints a progress line every few seconds and fails fast when a process
// exits.
func waitReady(ctx context.Context, out io.Writer, children []*child, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hc := &http.Client{Timeout: 3 * time.Second}
	start, lastProgress := time.Now(), time.Now()
	ready := make([]bool, len(children))
	last := make([]string, len(children)) // last /ready answer, for the error
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		for i, c := range children {
			if !ready[i] && c.exited() {
				return fmt.Errorf("%s exited while starting (%s); end of %s:\n%s",
					c.dc.Name, exitStatus(c.err), c.dc.Log, logTail(c.dc.Log, 20))
			}
		}
		// Probe all at once: a node that cannot commit yet takes seconds
		// to say so.
		var wg sync.WaitGroup
		for i, c := range children {
			if !ready[i] {
				wg.Go(func() { ready[i], last[i] = probeReady(ctx, hc, c.dc.URL) })
			}
		}
		wg.Wait()
		var pending []string
		for i, c := range children {
			if !ready[i] {
				pending = append(pending, c.dc.Name+readyReason(last[i]))
			}
		}
		if len(pending) == 0 {
			return nil
		}
		if time.Since(lastProgress) >= progressEvery {
			lastProgress = time.Now()
			fmt.Fprintf(out, "waiting for %s to be ready… (%s)\n", strings.Join(pending, ", "),
				time.Since(start).Round(time.Second))
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				var errs []error
				for i, c := range children {
					if !ready[i] {
						errs = append(errs, fmt.Errorf("%s not ready after %s (last /ready: %s); end of %s:\n%s",
							c.dc.Name, timeout, last[i], c.dc.Log, logTail(c.dc.Log, 20)))
					}
				}
				return errors.Join(errs...)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// readyReason returns " (why)" from a /ready answer that gives a reason
// (a node catching up with its log says how far it is), or "".
func readyReason(answer string) string {
	_, body, _ := strings.Cut(answer, " ")
	var st struct {
		Reason string `json:"reason"`
	}
	if json.Unmarshal([]byte(body), &st) != nil || st.Reason == "" {
		return ""
	}
	return " (" + st.Reason + ")"
}

// probeReady asks a data center's /ready once; it returns whether it
// answered 200 and a short description of the answer.
func probeReady(ctx context.Context, hc *http.Client, base string) (bool, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/ready", nil)
	if err != nil {
		return false, err.Error()
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return resp.StatusCode == http.StatusOK, fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
}

// stopAll stops every data center: first SIGCONT (a drill may have left
// one stopped) and SIGTERM to all — its own children and the ones restarted
// by tools, found through the cluster file — then, after StopTimeout,
// SIGKILL to the rest.
func stopAll(log *slog.Logger, children []*child, clusterFile string) {
	type proc struct {
		name string
		pid  int
		gone func() bool
		p    *os.Process
	}
	var procs []proc
	mine := map[int]bool{}
	for _, c := range children {
		mine[c.dc.PID] = true
		if !c.exited() {
			procs = append(procs, proc{c.dc.Name, c.dc.PID, c.exited, c.cmd.Process})
		}
	}
	// Data centers a tool restarted are not our children: we cannot wait
	// for them, only watch their pid. isOurProcess guards against a pid the
	// kernel gave to another program since.
	if f, err := ReadClusterFile(clusterFile); err == nil {
		for _, dc := range f.DataCenters {
			if dc.PID <= 0 || mine[dc.PID] || !processAlive(dc.PID) || !isOurProcess(dc.PID, dc.Args) {
				continue
			}
			p, err := os.FindProcess(dc.PID)
			if err != nil {
				continue
			}
			pid := dc.PID
			procs = append(procs, proc{dc.Name, pid, func() bool { return !processAlive(pid) }, p})
		}
	}
	if len(procs) == 0 {
		return
	}
	for _, p := range procs {
		wake(p.p)
		if err := p.p.Signal(syscall.SIGTERM); err != nil && !p.gone() {
			log.Warn("send SIGTERM", "dc", p.name, "pid", p.pid, "err", err)
		}
	}
	waitGone := func(d time.Duration) []proc {
		deadline := time.Now().Add(d)
		for {
			var left []proc
			for _, p := range procs {
				if !p.gone() {
					left = append(left, p)
				}
			}
			if len(left) == 0 || time.Now().After(deadline) {
				return left
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	left := waitGone(StopTimeout)
	for _, p := range left {
		log.Warn("data center did not stop after SIGTERM; sending SIGKILL", "dc", p.name, "pid", p.pid, "after", StopTimeout)
		_ = p.p.Kill()
	}
	if len(left) > 0 {
		procs = left
		for _, p := range waitGone(5 * time.Second) {
			log.Error("data center still running after SIGKILL", "dc", p.name, "pid", p.pid)
		}
	}
}

// printTable prints the data centers and where to find everything else.
func printTable(out io.Writer, f *ClusterFile, took time.Duration) {
	fmt.Fprintf(out, "planb dev: %d data centers ready in %s\n\n", len(f.DataCenters), took.Round(100*time.Millisecond))
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DATA CENTER\tURL\tPID\tDATA DIR")
	for _, dc := range f.DataCenters {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", dc.Name, dc.URL, dc.PID, dc.DataDir)
	}
	_ = tw.Flush()
	fmt.Fprintf(out, "\nserver name %s, open registration; logs in each data dir (planb.log)\n", f.ServerName)
	fmt.Fprintf(out, "toxiproxy API %s: links dcA-to-dcB; cut a data center by disabling every link from or to it\n", f.ToxiproxyURL)
	fmt.Fprintf(out, "cluster file %s; Ctrl-C stops everything\n", f.Path)
}

// exitStatus describes how a process ended.
func exitStatus(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// logTail returns the last n lines of a log file (at most the last 16 KiB).
func logTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	defer f.Close()
	const max = 16 << 10
	if st, err := f.Stat(); err == nil && st.Size() > max {
		_, _ = f.Seek(st.Size()-max, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
