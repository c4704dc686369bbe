package dctest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/planb-chat/planb/internal/testutil"
)

// TestDrillCommand runs `planb drill` for dc-loss, dc-isolate and dc-flap against a
// real three-data-center cluster and checks its report: RPO 0, no
// duplicates, the same order everywhere, a measured RTO and delivery
// latency, and the report stored in the cluster's drill history. While the
// dc-isolate drill runs, a second drill on the same cluster must be refused.
// (The RTO budget is generous here: tests assert correctness; the figure
// itself is measured and reported, see docs/drills.md.)
func TestDrillCommand(t *testing.T) {
	skipShort(t)
	c := startCluster(t)
	clusterFile := filepath.Join(c.dir, "cluster.json")
	var ids []string
	for _, sc := range []string{"dc-loss", "dc-isolate", "dc-flap"} {
		t.Run(sc, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "report.json")
			cmd := exec.Command(planbBinary, "drill", "--cluster", clusterFile,
				"--scenario", sc, "--target", "dc3", "--users", "3", "--rooms", "4",
				"--before", "4s", "--during", "12s", "--after", "10s", "--rto-budget", "60s", "--flap", "2s", "--out", out)
			var output syncBuffer
			cmd.Stdout, cmd.Stderr = &output, &output
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if sc == "dc-isolate" {
				// Once the first drill is under load it holds the lock.
				testutil.WaitFor(t, 2*time.Minute, "the first drill to run its load", func() error {
					if !strings.Contains(output.String(), "writes acknowledged") {
						return errors.New("no progress line yet")
					}
					return nil
				})
				second, err := exec.Command(planbBinary, "drill", "--cluster", clusterFile, "--scenario", "drain",
					"--users", "2", "--rooms", "1", "--before", "1s", "--during", "1s", "--after", "1s").CombinedOutput()
				if err == nil || !strings.Contains(string(second), "another drill is running") {
					t.Errorf("a second drill while one runs: want refusal, got err=%v:\n%s", err, second)
				}
			}
			err := cmd.Wait()
			t.Logf("planb drill --scenario %s:\n%s", sc, lastLines(output.String(), 16))
			if err != nil {
				t.Fatalf("planb drill: %v", err)
			}
			raw, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			var rep struct {
				ID         string  `json:"id"`
				Pass       bool    `json:"pass"`
				Acked      int     `json:"acknowledged_writes"`
				RTO        float64 `json:"rto_seconds"`
				Missing    int     `json:"rpo_missing_events"`
				Duplicates int     `json:"duplicates"`
				OrderDiffs int     `json:"rooms_with_different_order"`
				CatchUp    float64 `json:"catch_up_seconds"`
				StoredAs   string  `json:"stored_as"`
				Delivery   map[string]struct {
					Count int     `json:"count"`
					P99   float64 `json:"p99_ms"`
				} `json:"delivery"`
			}
			if err := json.Unmarshal(raw, &rep); err != nil {
				t.Fatal(err)
			}
			if !rep.Pass || rep.Missing != 0 || rep.Duplicates != 0 || rep.OrderDiffs != 0 {
				t.Errorf("report: %s", raw)
			}
			if rep.Acked == 0 || rep.RTO <= 0 || rep.CatchUp < 0 {
				t.Errorf("report has no measurements: %s", raw)
			}
			for _, p := range []string{"before", "during", "after"} {
				if d := rep.Delivery[p]; d.Count == 0 || d.P99 <= 0 {
					t.Errorf("no delivery latency measured %s the fault: %s", p, raw)
				}
			}
			if rep.StoredAs == "" {
				t.Errorf("report not stored in the cluster: %s", raw)
			}
			ids = append(ids, rep.ID)
		})
	}
	// Every drill is in the cluster's history, newest first, from any data center.
	b, err := exec.Command(planbBinary, "drill", "history", "--cluster", clusterFile, "--json").Output()
	if err != nil {
		t.Fatalf("planb drill history: %v", err)
	}
	var hist []struct {
		ID       string `json:"id"`
		Scenario string `json:"scenario"`
	}
	if err := json.Unmarshal(b, &hist); err != nil {
		t.Fatalf("history: %v\n%s", err, b)
	}
	var got []string
	for _, h := range hist {
		got = append(got, h.ID)
	}
	want := slices.Clone(ids)
	slices.Reverse(want)
	if len(ids) != 3 || len(got) < 3 || !slices.Equal(got[:3], want) {
		t.Errorf("history (newest first) = %v, want the drills %v in reverse", got, ids)
	}
	// The drill's users send from every data center; sends were forwarded
	// to the nodes leading their rooms' partitions.
	forwarded := 0.0
	for _, dc := range c.file.DataCenters {
		forwarded += metricValue(t, dc.URL, `planb_forwarded_sends_total{result="ok"}`)
	}
	if forwarded == 0 {
		t.Errorf("no send was forwarded to a partition leader")
	}
	t.Logf("sends forwarded to partition leaders: %.0f", forwarded)
	table, err := exec.Command(planbBinary, "drill", "history", "--cluster", clusterFile).Output()
	if err != nil || !strings.Contains(string(table), "dc-isolate") || !strings.Contains(string(table), "PASS") {
		t.Errorf("planb drill history: %v\n%s", err, table)
	}
}

// metricValue reads one sample of a node's /metrics (0 when absent).
func metricValue(t *testing.T, base, sample string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("metrics of %s: %v", base, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}

// syncBuffer is a bytes.Buffer safe for a process's output and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func lastLines(s string, n int) string {
	lines := []string{}
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' || s[i] == '\r' {
			if i > start {
				lines = append(lines, s[start:i])
			}
			start = i + 1
		}
	}
	if start < len(s) {
		lines = append(lines, s[start:])
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	out := ""
	for _, l := range lines {
		out += l + "\n"
	}
	return out
}
