package bench

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/planb-chat/planb/internal/testutil"
)

// TestBenchDev runs `planb bench --dev` from a freshly built binary with
// tiny numbers and checks that the report has every figure. It asserts
// that the bench measures, not what it measures.
func TestBenchDev(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-data-center cluster")
	}
	dir := t.TempDir()
	bin := testutil.MustBuildPlanb(t)
	out := filepath.Join(dir, "report.json")
	rep := runBench(t, bin, "--dev", "--users", "4", "--rooms", "2", "--members", "2",
		"--senders", "4", "--receivers", "2", "--size", "64", "--duration", "3s", "--paced-duration", "2s",
		"--idle-syncs", "50", "--idle-users", "5", "--rebuild-events", "2000", "--rebuild-dir", filepath.Join(dir, "rebuild"),
		"--history-messages", "10000", "--history-dir", filepath.Join(dir, "history"),
		"--e2ee-samples", "20", "--pprof", filepath.Join(dir, "pprof"), "--pushers", "--out", out)
	if _, err := os.Stat(out); err != nil {
		t.Errorf("--out file: %v", err)
	}
	s := rep.Saturated
	switch {
	case s == nil || s.Acked == 0 || s.SendsPerSec <= 0 || s.SendLatency.N == 0:
		t.Errorf("saturated phase measured nothing: %+v", s)
	case s.Delivery.N == 0:
		t.Errorf("no delivery latency: %+v", s)
	case len(s.Nodes) != 3 || s.Nodes[0].RSSMiB <= 0 || s.Nodes[0].CPUCores <= 0:
		t.Errorf("node usage missing: %+v", s.Nodes)
	}
	if p := rep.Paced; p == nil || p.OfferedRate <= 0 || p.Delivery.N == 0 {
		t.Errorf("paced phase measured nothing: %+v", p)
	}
	for _, p := range []*Phase{rep.Saturated, rep.Paced} {
		if p != nil && (p.Push == nil || p.Push.N == 0 || p.Unpushed != 0) {
			t.Errorf("%s phase: push latency %+v, unpushed %d", p.Name, p.Push, p.Unpushed)
		}
	}
	if e := rep.Engine; e == nil || e.SyncRate <= 0 || e.AsyncRate <= 0 || e.RatioAsync <= 0 {
		t.Errorf("engine limit missing: %+v (notes %q)", e, rep.Notes)
	}
	if i := rep.Idle; i == nil || i.Held != 50 || i.Woken != 50 || i.Wake.N != 50 {
		t.Errorf("idle syncs: %+v", i)
	}
	if b := rep.Rebuild; b == nil || b.Events < 2000 || b.ReadySeconds <= 0 || b.RSSMiB <= 0 || b.RestartReadySeconds <= 0 || b.RestartRSSMiB <= 0 {
		t.Errorf("rebuild: %+v", b)
	}
	if h := rep.History; h == nil || h.Reused || h.Messages < 10000 || h.BigRoomEvents < 1000 || h.FillSeconds <= 0 ||
		h.Messages50.N == 0 || h.MessagesErrors != 0 {
		t.Errorf("history: %+v", h)
	}
	if k := rep.Keys; k == nil || k.Claim.N != 20 || k.ToDevice.N != 20 || k.ToDevice.P50 <= 0 {
		t.Errorf("e2ee: %+v", k)
	}
	if len(rep.Goals) != 10 {
		t.Errorf("goals: %+v", rep.Goals)
	}
	for _, f := range []string{"dc1-cpu.pprof", "dc2-cpu.pprof", "dc3-cpu.pprof"} {
		if _, err := os.Stat(filepath.Join(dir, "pprof", f)); err != nil {
			t.Errorf("profile: %v", err)
		}
	}
}

// TestBenchHistoryReused starts the bench's dev cluster again on the
// history an earlier run filled: the cluster comes back from its data
// directories, nothing is sent again, and /messages from the middle of the
// big room still answers.
func TestBenchHistoryReused(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-data-center cluster twice")
	}
	dir := t.TempDir()
	bin := testutil.MustBuildPlanb(t)
	run := func(messages string) Report {
		t.Helper()
		return runBench(t, bin, "--dev", "--duration", "0", "--idle-syncs", "0", "--rebuild-events", "0", "--e2ee-samples", "0",
			"--history-messages", messages, "--history-dir", filepath.Join(dir, "history"))
	}
	first := run("10000").History
	if first == nil || first.Reused || first.Messages < 10000 {
		t.Fatalf("first run: %+v", first)
	}
	again := run("10000").History
	if again == nil || !again.Reused || again.Messages != first.Messages || again.Messages50.N != first.Messages50.N || again.MessagesErrors != 0 {
		t.Errorf("second run: %+v (first %+v)", again, first)
	}
	// Asking for more history goes on filling the same cluster.
	more := run("12000").History
	if more == nil || more.Reused || more.Messages < 12000 || more.MessagesErrors != 0 {
		t.Errorf("third run: %+v", more)
	}
	if _, err := os.Stat(filepath.Join(dir, "history", "dc1", "planb.log")); err != nil {
		t.Errorf("the history's cluster was not kept: %v", err)
	}
}

// TestConfigValidate reports every problem at once.
func TestConfigValidate(t *testing.T) {
	c := Default()
	c.Users, c.Members, c.Senders, c.MessageSize = 0, 5, 0, 1
	err := c.Validate()
	if err == nil {
		t.Fatal("want errors")
	}
	c.HistoryMessages, c.HistoryDir = 5, "h"
	err = c.Validate()
	for _, want := range []string{"no target", "users 0", "members per room 5", "senders 0", "message size 1",
		"history messages 5", "give --dev"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	d := Default()
	d.Dev = true
	if err := d.Validate(); err != nil {
		t.Errorf("default --dev config: %v", err)
	}
}

func TestSummarize(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	l := summarize(ds)
	if l.N != 100 || l.P50 < 50 || l.P50 > 51 || l.P99 < 99 || l.Max != 100 {
		t.Errorf("summarize: %+v", l)
	}
	if summarize(nil).N != 0 {
		t.Error("empty summary")
	}
}

// runBench runs `planb bench ... --json` and returns its report.
func runBench(t *testing.T, bin string, args ...string) Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(append([]string{"bench"}, args...), "--json")...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("planb bench: %v\nstderr:\n%s", err, tail(stderr.String()))
	}
	var rep Report
	if err := json.Unmarshal(stdout, &rep); err != nil {
		t.Fatalf("decode --json output: %v\n%s", err, stdout)
	}
	return rep
}

func tail(s string) string {
	s = strings.ReplaceAll(s, "\r", "\n")
	if len(s) > 3000 {
		s = s[len(s)-3000:]
	}
	return s
}
