package drill

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"time"

	toxiclient "github.com/Shopify/toxiproxy/v2/client"

	"github.com/planb-chat/planb/devcluster"
	"github.com/planb-chat/planb/jetstream"
)

// Scenarios a drill can run.
const (
	ScenarioDCLoss         = "dc-loss"          // SIGKILL the data center, later restart it
	ScenarioDCFreeze       = "dc-freeze"        // SIGSTOP the data center, later SIGCONT
	ScenarioDCIsolate      = "dc-isolate"       // cut every link of the data center, later heal
	ScenarioDCBlackhole    = "dc-blackhole"     // every link of the data center carries nothing but stays open, later heal
	ScenarioDCFlap         = "dc-flap"          // cut every link of the data center and heal it, again and again
	ScenarioSlowLink       = "slow-link"        // latency and jitter between two data centers
	ScenarioBridge         = "bridge-partition" // cut the link between two data centers; both still see the others
	ScenarioRollingRestart = "rolling-restart"  // restart every node one by one (SIGTERM, start)
	ScenarioDrain          = "drain"            // planned evacuation, later undrain
)

// scenario describes what a scenario needs from the target.
type scenario struct {
	name    string
	process bool // needs process control: a dev cluster
	network bool // needs network faults: dev links or the nodes' fault endpoint
	pair    bool // acts on the link between Target and Peer
	all     bool // acts on every data center in turn (Target is ignored)
	held    bool // the fault is held for During, then healed
}

var scenarios = []scenario{
	{name: ScenarioDCLoss, process: true, held: true},
	{name: ScenarioDCFreeze, process: true, held: true},
	{name: ScenarioDCIsolate, network: true, held: true},
	{name: ScenarioDCBlackhole, network: true, held: true},
	{name: ScenarioDCFlap, network: true, held: true},
	{name: ScenarioSlowLink, network: true, pair: true, held: true},
	{name: ScenarioBridge, network: true, pair: true, held: true},
	{name: ScenarioRollingRestart, process: true, all: true},
	{name: ScenarioDrain, held: true},
}

// Scenarios lists every scenario name.
func Scenarios() []string {
	out := make([]string, len(scenarios))
	for i, s := range scenarios {
		out[i] = s.name
	}
	return out
}

func lookupScenario(name string) (scenario, bool) {
	for _, s := range scenarios {
		if s.name == name {
			return s, true
		}
	}
	return scenario{}, false
}

// DataCenterNodes is one data center of the target: its name and the client
// base URL of each of its nodes.
type DataCenterNodes struct {
	Name  string
	Nodes []string
}

// Target is the cluster a drill runs against.
type Target struct {
	// Dev is set for a `planb dev` cluster: the drill then has process
	// control (pids, restart) and the fault-injection links.
	Dev *devcluster.ClusterFile
	// DataCenters lists every data center and its nodes.
	DataCenters []DataCenterNodes
	// AdminToken authorises the admin API of every node.
	AdminToken string
}

// DevTarget returns the target of a dev cluster.
func DevTarget(f *devcluster.ClusterFile) Target {
	t := Target{Dev: f, AdminToken: f.AdminToken}
	for _, dc := range f.DataCenters {
		t.DataCenters = append(t.DataCenters, DataCenterNodes{Name: dc.Name, Nodes: []string{dc.URL}})
	}
	return t
}

func (t Target) dataCenter(name string) (DataCenterNodes, bool) {
	for _, dc := range t.DataCenters {
		if dc.Name == name {
			return dc, true
		}
	}
	return DataCenterNodes{}, false
}

// endpoints is one client endpoint per data center, for the workload.
func (t Target) endpoints() []Endpoint {
	out := make([]Endpoint, 0, len(t.DataCenters))
	for _, dc := range t.DataCenters {
		out = append(out, Endpoint{Name: dc.Name, URL: dc.Nodes[0]})
	}
	return out
}

// nodes is every node of every data center.
func (t Target) nodes() []Endpoint {
	var out []Endpoint
	for _, dc := range t.DataCenters {
		for _, u := range dc.Nodes {
			out = append(out, Endpoint{Name: dc.Name, URL: u})
		}
	}
	return out
}

// FaultStatus is a node's answer on GET /_planb/admin/v1/faults.
type FaultStatus struct {
	Enabled bool   `json:"enabled"`
	Node    string `json:"node"`
	Reason  string `json:"reason,omitempty"`
}

// check says why sc cannot run on this target, or nil.
func (t Target) check(ctx context.Context, a *admin, sc scenario, involved []string) error {
	if t.Dev != nil {
		return nil
	}
	if sc.process {
		return fmt.Errorf("scenario %s needs process control (SIGKILL, SIGSTOP, restart), which the drill has only on a `planb dev` cluster; "+
			"on a real deployment, break the nodes with your orchestrator while `planb drill --scenario drain` or dc-isolate measures", sc.name)
	}
	if !sc.network {
		return nil
	}
	var problems []error
	for _, name := range involved {
		dc, _ := t.dataCenter(name)
		for _, u := range dc.Nodes {
			var st FaultStatus
			if err := a.At(ctx, u, "GET", "/faults", nil, &st); err != nil {
				problems = append(problems, fmt.Errorf("node %s of %s: %w", u, name, err))
			} else if !st.Enabled {
				problems = append(problems, fmt.Errorf("node %s of %s has the fault endpoint turned off (%s)", u, name, st.Reason))
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("scenario %s needs the admin fault endpoint on every node of %s (faults.enabled in the node config, --enable-faults):\n%w",
			sc.name, strings.Join(involved, " and "), errors.Join(problems...))
	}
	return nil
}

// faults injects one scenario's fault into a target.
type faults struct {
	t     Target
	a     *admin
	cfg   *Config
	say   func(format string, args ...any)
	limit time.Duration // how long a node keeps a fault before healing itself
}

// apply breaks the cluster and returns how to heal it. For scenarios that
// are not held (rolling-restart), apply does the whole work and heal is a
// no-op.
func (f *faults) apply(ctx context.Context, sc scenario) (func(context.Context) error, error) {
	target, peer := f.cfg.Target, f.cfg.Peer
	switch sc.name {
	case ScenarioDCLoss:
		if err := devcluster.SignalDataCenter(f.t.Dev, target, syscall.SIGKILL); err != nil {
			return nil, err
		}
		return func(ctx context.Context) error { return f.restart(ctx, target) }, nil
	case ScenarioDCFreeze:
		if err := devcluster.SignalDataCenter(f.t.Dev, target, syscall.SIGSTOP); err != nil {
			return nil, err
		}
		return func(context.Context) error { return devcluster.SignalDataCenter(f.t.Dev, target, syscall.SIGCONT) }, nil
	case ScenarioDCIsolate:
		if f.t.Dev != nil {
			return f.cutLinks(f.t.Dev.LinksOf(target))
		}
		return f.nodeFaults(ctx, []string{target}, func(string) (string, any) {
			return "/faults/isolate", map[string]any{"duration_seconds": int(f.limit.Seconds())}
		})
	case ScenarioDCBlackhole:
		if f.t.Dev != nil {
			return f.devLinks(f.t.Dev.LinksOf(target), func(p *toxiclient.Proxy) error {
				for _, dir := range []string{"upstream", "downstream"} {
					if _, err := p.AddToxic("drill-blackhole-"+dir, "timeout", dir, 1, toxiclient.Attributes{"timeout": 0}); err != nil {
						return err
					}
				}
				return nil
			}, func(p *toxiclient.Proxy) error { return removeToxics(p, "drill-blackhole-") })
		}
		return f.nodeFaults(ctx, []string{target}, func(string) (string, any) {
			return "/faults/blackhole", map[string]any{"duration_seconds": int(f.limit.Seconds())}
		})
	case ScenarioDCFlap:
		return f.flap(ctx, target)
	case ScenarioBridge:
		if f.t.Dev != nil {
			return f.cutLinks(f.linksBetween(target, peer))
		}
		return f.nodeFaults(ctx, []string{target, peer}, func(dc string) (string, any) {
			other := peer
			if dc == peer {
				other = target
			}
			return "/faults/cut", map[string]any{"peer": other, "duration_seconds": int(f.limit.Seconds())}
		})
	case ScenarioSlowLink:
		lat, jit := int(f.cfg.Latency.Milliseconds()), int(f.cfg.Jitter.Milliseconds())
		if f.t.Dev != nil {
			attrs := toxiclient.Attributes{"latency": lat, "jitter": jit}
			return f.devLinks(f.linksBetween(target, peer), func(p *toxiclient.Proxy) error {
				for _, dir := range []string{"upstream", "downstream"} {
					if _, err := p.AddToxic("drill-slow-"+dir, "latency", dir, 1, attrs); err != nil {
						return err
					}
				}
				return nil
			}, func(p *toxiclient.Proxy) error { return removeToxics(p, "drill-slow-") })
		}
		return f.nodeFaults(ctx, []string{target, peer}, func(dc string) (string, any) {
			other := peer
			if dc == peer {
				other = target
			}
			return "/faults/slow", map[string]any{"peer": other, "latency_ms": lat, "jitter_ms": jit, "duration_seconds": int(f.limit.Seconds())}
		})
	case ScenarioRollingRestart:
		for _, dc := range f.t.Dev.DataCenters {
			f.say("restarting %s", dc.Name)
			if err := devcluster.StopDataCenter(ctx, f.t.Dev, dc.Name, 30*time.Second); err != nil {
				return nil, err
			}
			if err := f.restart(ctx, dc.Name); err != nil {
				return nil, err
			}
			// Take the next one down only when every replica is current
			// again, as an operator's rolling restart should: otherwise
			// two data centers could be behind at once.
			f.say("waiting until every replica is current after restarting %s", dc.Name)
			if err := f.waitReplicasCurrent(ctx); err != nil {
				return nil, err
			}
		}
		return func(context.Context) error { return nil }, nil
	case ScenarioDrain:
		dc, _ := f.t.dataCenter(target)
		for _, u := range dc.Nodes {
			if err := f.a.At(ctx, u, "POST", "/drain", nil, nil); err != nil {
				return nil, fmt.Errorf("drain %s: %w", target, err)
			}
		}
		return func(ctx context.Context) error {
			for _, u := range dc.Nodes {
				if err := f.a.At(ctx, u, "POST", "/undrain", nil, nil); err != nil {
					return fmt.Errorf("undrain %s: %w", target, err)
				}
			}
			return nil
		}, nil
	}
	return nil, fmt.Errorf("unknown scenario %q", sc.name)
}

// waitReplicasCurrent waits until the admin status shows every stream
// with a leader and every replica current and online.
func (f *faults) waitReplicasCurrent(ctx context.Context) error {
	deadline := time.Now().Add(3 * time.Minute)
	var last string
	for time.Now().Before(deadline) {
		var st struct {
			Streams []struct {
				Name     string `json:"name"`
				Leader   string `json:"leader"`
				Replicas []struct {
					Node    string `json:"node"`
					Current bool   `json:"current"`
					Offline bool   `json:"offline"`
				} `json:"replicas"`
			} `json:"streams"`
		}
		last = ""
		if err := f.a.Any(ctx, 10*time.Second, "GET", "/status", nil, &st); err != nil {
			last = err.Error()
		}
		for _, s := range st.Streams {
			if s.Leader == "" {
				last = s.Name + " has no leader"
			}
			for _, r := range s.Replicas {
				if !r.Current || r.Offline {
					last = fmt.Sprintf("%s: replica %s is not current", s.Name, r.Node)
				}
			}
		}
		if last == "" && len(st.Streams) > 0 {
			return nil
		}
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("replicas not current within 3 minutes: %s", last)
}

// partitionLeaders returns the data center that leads each event
// partition, from the admin status; nil when it cannot be read (the report
// then leaves the comparison out).
func (f *faults) partitionLeaders(ctx context.Context) map[int]string {
	var st struct {
		Streams []struct {
			Name     string `json:"name"`
			LeaderDC string `json:"leader_datacenter"`
		} `json:"streams"`
	}
	if err := f.a.Any(ctx, 5*time.Second, "GET", "/status", nil, &st); err != nil {
		return nil
	}
	led := map[string]string{} // stream -> data center of its leader
	for _, s := range st.Streams {
		led[s.Name] = s.LeaderDC
	}
	out := map[int]string{}
	for p := 0; p < f.cfg.Partitions; p++ {
		if dc := led[jetstream.EventStream(p)]; dc != "" {
			out[p] = dc
		}
	}
	return out
}

// restart starts a dev data center again and waits until it is ready.
func (f *faults) restart(ctx context.Context, name string) error {
	if _, err := devcluster.RestartDataCenter(ctx, f.t.Dev, name); err != nil {
		return fmt.Errorf("restart %s: %w", name, err)
	}
	dc, _ := f.t.dataCenter(name)
	return waitReady(ctx, dc.Nodes[0])
}

// flap cuts every link of target for cfg.Flap, heals it for cfg.Flap, and
// again, until the returned heal stops it (and heals). On a deployment each
// cut is a timed isolation of the nodes (they heal by themselves after it).
func (f *faults) flap(ctx context.Context, target string) (func(context.Context) error, error) {
	// inject breaks target's links once and returns what heals them.
	inject := func(ctx context.Context) (func(context.Context) error, error) {
		return f.nodeFaults(ctx, []string{target}, func(string) (string, any) {
			return "/faults/isolate", map[string]any{"duration_seconds": max(1, int(f.cfg.Flap.Seconds()))}
		})
	}
	if f.t.Dev != nil {
		inject = func(context.Context) (func(context.Context) error, error) {
			return f.cutLinks(f.t.Dev.LinksOf(target))
		}
	}
	mend := func(context.Context) error { return nil }
	cut := func(ctx context.Context) error {
		heal, err := inject(ctx)
		if err == nil {
			mend = heal
		}
		return err
	}
	if err := cut(ctx); err != nil {
		_ = mend(context.WithoutCancel(ctx))
		return nil, err
	}
	stop, done := make(chan struct{}), make(chan error, 1)
	go func() {
		down := true
		t := time.NewTicker(f.cfg.Flap)
		defer t.Stop()
		for {
			select {
			case <-stop:
				done <- mend(context.WithoutCancel(ctx))
				return
			case <-t.C:
			}
			var err error
			if down {
				err = mend(ctx)
				f.say("flapping: %s healed", target)
			} else {
				err = cut(ctx)
				f.say("flapping: %s cut", target)
			}
			if err != nil {
				done <- errors.Join(err, mend(context.WithoutCancel(ctx)))
				return
			}
			down = !down
		}
	}()
	return func(context.Context) error {
		close(stop)
		return <-done
	}, nil
}

// linksBetween names the dev cluster's links between data centers a and b,
// both ways.
func (f *faults) linksBetween(a, b string) []string {
	var links []string
	for _, l := range f.t.Dev.Links {
		if (l.From == a && l.To == b) || (l.From == b && l.To == a) {
			links = append(links, l.Name)
		}
	}
	return links
}

// removeToxics removes the toxics prefix+"upstream" and prefix+"downstream".
func removeToxics(p *toxiclient.Proxy, prefix string) error {
	for _, dir := range []string{"upstream", "downstream"} {
		if err := p.RemoveToxic(prefix + dir); err != nil {
			return err
		}
	}
	return nil
}

// cutLinks disables the named links of a dev cluster and returns the heal
// that enables them again.
func (f *faults) cutLinks(names []string) (func(context.Context) error, error) {
	return f.devLinks(names, (*toxiclient.Proxy).Disable, (*toxiclient.Proxy).Enable)
}

// devLinks applies do to the named toxiproxy links of a dev cluster and
// returns the heal that applies undo.
func (f *faults) devLinks(names []string, do, undo func(*toxiclient.Proxy) error) (func(context.Context) error, error) {
	toxi := toxiclient.NewClient(strings.TrimPrefix(f.t.Dev.ToxiproxyURL, "http://"))
	each := func(fn func(*toxiclient.Proxy) error) error {
		for _, l := range names {
			p, err := toxi.Proxy(l)
			if err == nil {
				err = fn(p)
			}
			if err != nil {
				return fmt.Errorf("link %s: %w", l, err)
			}
		}
		return nil
	}
	if len(names) == 0 {
		return nil, errors.New("no links between these data centers in the cluster file")
	}
	if err := each(do); err != nil {
		_ = each(undo) // leave no link half broken
		return nil, err
	}
	return func(context.Context) error { return each(undo) }, nil
}

// nodeFaults asks every node of the given data centers to inject a fault
// through its admin fault endpoint; heal asks them all to heal. A node
// heals by itself after the fault's duration even if the drill dies.
func (f *faults) nodeFaults(ctx context.Context, dcs []string, req func(dc string) (string, any)) (func(context.Context) error, error) {
	var touched []string
	heal := func(ctx context.Context) error {
		var errs []error
		for _, u := range touched {
			if err := f.a.At(ctx, u, "POST", "/faults/heal", nil, nil); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	for _, name := range dcs {
		dc, _ := f.t.dataCenter(name)
		for _, u := range dc.Nodes {
			path, body := req(name)
			touched = append(touched, u)
			if err := f.a.At(ctx, u, "POST", path, body, nil); err != nil {
				_ = heal(ctx)
				return nil, fmt.Errorf("fault on %s (%s): %w", u, name, err)
			}
		}
	}
	return heal, nil
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
