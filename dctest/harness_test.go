// Package dctest tests planb across data centers with real processes and
// real faults: a local three-data-center cluster (package devcluster) whose
// nodes are killed (SIGKILL), frozen (SIGSTOP) and cut off (toxiproxy
// between data centers), under load from mautrix clients that fail over
// between data centers (package failover).
package dctest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	toxiclient "github.com/Shopify/toxiproxy/v2/client"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/planb-chat/planb/devcluster"
	"github.com/planb-chat/planb/failover"
	"github.com/planb-chat/planb/internal/testutil"
)

// binary is the planb binary built once for all tests.
var planbBinary string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "planb-dctest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "dctest:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if planbBinary, err = testutil.BuildPlanb(dir); err != nil {
		fmt.Fprintln(os.Stderr, "dctest: building planb failed:", err)
		return 1
	}
	return m.Run()
}

// cluster is a running three-data-center dev cluster.
type cluster struct {
	t      testing.TB
	dir    string
	file   *devcluster.ClusterFile
	toxi   *toxiclient.Client
	cancel context.CancelFunc
	done   chan error
}

// freeBase finds a base port whose dev-cluster port plan is free and below
// the ephemeral range (see devcluster.FreeBasePort).
func freeBase(t testing.TB) int {
	t.Helper()
	base, err := devcluster.FreeBasePort(3)
	if err != nil {
		t.Fatal(err)
	}
	return base
}

// startCluster starts a three-data-center cluster and waits until every
// data center is ready; serveArgs are added to every node's command.
func startCluster(t testing.TB, serveArgs ...string) *cluster {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	c := &cluster{t: t, dir: dir, cancel: cancel, done: make(chan error, 1)}
	logf, err := os.Create(filepath.Join(dir, "supervisor.log"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := devcluster.Config{Binary: planbBinary, DataDir: dir, BasePort: freeBase(t), DCs: 3,
		Log: slog.New(slog.NewTextHandler(logf, nil)), Stdout: io.Discard, ServeArgs: serveArgs}
	go func() { c.done <- devcluster.Run(ctx, cfg) }()
	t.Cleanup(func() { c.stop(); logf.Close() })
	testutil.WaitFor(t, 3*time.Minute, "cluster.json", func() error {
		select {
		case err := <-c.done:
			c.done <- err
			t.Fatalf("dev cluster stopped: %v", err)
		default:
		}
		f, err := devcluster.ReadClusterFile(filepath.Join(dir, "cluster.json"))
		if err != nil {
			return err
		}
		c.file = f
		return nil
	})
	c.toxi = toxiclient.NewClient(strings.TrimPrefix(c.file.ToxiproxyURL, "http://"))
	for _, dc := range c.file.DataCenters {
		c.waitReady(dc.Name, 2*time.Minute)
	}
	return c
}

// stop ends the cluster (and any data center a test restarted by hand).
func (c *cluster) stop() {
	c.cancel()
	select {
	case <-c.done:
	case <-time.After(60 * time.Second):
		c.t.Errorf("dev cluster did not stop within 60s")
	}
	if f, err := devcluster.ReadClusterFile(filepath.Join(c.dir, "cluster.json")); err == nil {
		for _, dc := range f.DataCenters {
			_ = syscall.Kill(dc.PID, syscall.SIGKILL) // restarted ones are not the supervisor's
		}
	}
	if c.t.Failed() {
		logs, _ := filepath.Glob(filepath.Join(c.dir, "dc*", "planb.log"))
		for _, log := range logs {
			b, _ := os.ReadFile(log)
			if len(b) > 6000 {
				b = b[len(b)-6000:]
			}
			c.t.Logf("--- tail of %s ---\n%s", log, b)
		}
	}
}

func (c *cluster) dc(name string) devcluster.DataCenter {
	f, err := devcluster.ReadClusterFile(filepath.Join(c.dir, "cluster.json"))
	if err == nil {
		c.file = f
	}
	d, ok := c.file.DataCenter(name)
	if !ok {
		c.t.Fatalf("no data center %s", name)
	}
	return d
}

func (c *cluster) names() []string {
	var out []string
	for _, d := range c.file.DataCenters {
		out = append(out, d.Name)
	}
	return out
}

func (c *cluster) signal(name string, sig syscall.Signal) {
	c.t.Helper()
	d := c.dc(name)
	if err := syscall.Kill(d.PID, sig); err != nil {
		c.t.Fatalf("signal %v to %s (pid %d): %v", sig, name, d.PID, err)
	}
}

// restart starts a killed data center again and waits until it is ready.
func (c *cluster) restart(name string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := devcluster.RestartDataCenter(ctx, c.file, name); err != nil {
		c.t.Fatalf("restart %s: %v", name, err)
	}
	c.waitReady(name, 2*time.Minute)
}

// setLinks enables or disables every link from or to a data center.
func (c *cluster) setLinks(name string, enabled bool) {
	c.t.Helper()
	for _, l := range c.file.LinksOf(name) {
		p, err := c.toxi.Proxy(l)
		if err != nil {
			c.t.Fatalf("proxy %s: %v", l, err)
		}
		if enabled {
			err = p.Enable()
		} else {
			err = p.Disable()
		}
		if err != nil {
			c.t.Fatalf("set link %s enabled=%v: %v", l, enabled, err)
		}
	}
}

// ready reports whether a data center's /ready answers 200.
func (c *cluster) ready(name string) error {
	hc := &http.Client{Timeout: 3 * time.Second}
	resp, err := hc.Get(c.dc(name).URL + "/ready")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s not ready: %d %s", name, resp.StatusCode, b)
	}
	return nil
}

func (c *cluster) waitReady(name string, timeout time.Duration) {
	c.t.Helper()
	testutil.WaitFor(c.t, timeout, name+" ready", func() error { return c.ready(name) })
}

// client returns a mautrix client that starts at data center first and
// fails over to the others.
func (c *cluster) client(userID id.UserID, token, first string) *mautrix.Client {
	c.t.Helper()
	var eps []failover.Endpoint
	names := c.names()
	start := 0
	for i, n := range names {
		if n == first {
			start = i
		}
	}
	for i := range names {
		d := c.dc(names[(start+i)%len(names)])
		u, err := urlParse(d.URL)
		if err != nil {
			c.t.Fatal(err)
		}
		eps = append(eps, failover.Endpoint{Name: d.Name, URL: u})
	}
	tr, err := failover.New(eps, failover.Options{RetryBudget: 60 * time.Second, AttemptTimeout: 15 * time.Second,
		Cooldown: 3 * time.Second})
	if err != nil {
		c.t.Fatal(err)
	}
	cli, err := mautrix.NewClient(eps[0].URL.String(), userID, token)
	if err != nil {
		c.t.Fatal(err)
	}
	cli.Client = &http.Client{Transport: tr}
	return cli
}

// pinned returns a mautrix client bound to one data center only.
func (c *cluster) pinned(userID id.UserID, token, dc string) *mautrix.Client {
	c.t.Helper()
	cli, err := mautrix.NewClient(c.dc(dc).URL, userID, token)
	if err != nil {
		c.t.Fatal(err)
	}
	cli.Client = &http.Client{Timeout: 30 * time.Second}
	return cli
}

// register creates a user at a data center and returns its credentials.
func (c *cluster) register(name, dc string) (id.UserID, string) {
	c.t.Helper()
	cli, err := mautrix.NewClient(c.dc(dc).URL, "", "")
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := cli.RegisterDummy(ctx, &mautrix.ReqRegister[any]{Username: name, Password: "pw-" + name + "-secret"})
	if err != nil {
		c.t.Fatalf("register %s at %s: %v", name, dc, err)
	}
	return resp.UserID, resp.AccessToken
}

// streamLeaders returns the leader of every stream, from the admin status
// of data center via ("" for a stream without a leader).
func (c *cluster) streamLeaders(via string) (map[string]string, error) {
	req, _ := http.NewRequest(http.MethodGet, c.dc(via).URL+"/_planb/admin/v1/status", nil)
	req.Header.Set("Authorization", "Bearer "+c.file.AdminToken)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var st struct {
		Streams []struct {
			Name   string `json:"name"`
			Leader string `json:"leader"`
		} `json:"streams"`
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("admin status: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("admin status: %w", err)
	}
	out := map[string]string{}
	for _, s := range st.Streams {
		out[s.Name] = s.Leader
	}
	return out, nil
}

// eventLeaders counts the room-event partitions each node leads, from the
// admin status of data center via.
func (c *cluster) eventLeaders(via string) (map[string]int, error) {
	leaders, err := c.streamLeaders(via)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for name, leader := range leaders {
		if strings.HasPrefix(name, "EVENTS_") {
			if leader == "" {
				return nil, fmt.Errorf("%s has no leader", name)
			}
			out[leader]++
		}
	}
	return out, nil
}

// ledEvenly reports whether no data center of names leads more than one
// room-event partition more than another (one missing from counts leads
// none).
func ledEvenly(counts map[string]int, names []string) bool {
	lo, hi := 1<<30, 0
	for _, n := range names {
		lo, hi = min(lo, counts[n]), max(hi, counts[n])
	}
	return hi-lo <= 1
}

// rebalance spreads stream leaders evenly through the admin API and waits
// until no node leads more than one room-event partition more than another.
func (c *cluster) rebalance() {
	c.t.Helper()
	post := func() (map[string]any, error) {
		req, _ := http.NewRequest(http.MethodPost, c.dc(c.names()[0]).URL+"/_planb/admin/v1/rebalance", nil)
		req.Header.Set("Authorization", "Bearer "+c.file.AdminToken)
		resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			return nil, err
		}
		if resp.StatusCode != 200 {
			return nil, fmt.Errorf("rebalance: %d %v", resp.StatusCode, out)
		}
		return out, nil
	}
	// A data center that just came back leads nothing and its replicas
	// catch up first; keep asking until no node leads more than one
	// stream more than another.
	var last any
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		out, err := post()
		if err == nil {
			// event_leaders_before is the actual state of the room-event
			// partitions when the call was made.
			last = out["event_leaders_before"]
			if raw, ok := out["event_leaders_before"].(map[string]any); ok {
				counts := map[string]int{}
				for n, v := range raw {
					counts[n] = int(v.(float64))
				}
				if ledEvenly(counts, c.names()) {
					c.t.Logf("stream leaders per node: %v", counts)
					return
				}
			}
		}
		time.Sleep(time.Second)
	}
	c.t.Logf("leaders not evenly spread after 90 s: %v", last)
}
