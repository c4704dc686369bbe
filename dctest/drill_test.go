package dctest

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestDrillCommand runs `planb drill` for dc-loss and dc-isolate against a
// real three-data-center cluster and checks its report: RPO 0, no
// duplicates, the same order everywhere, and a measured RTO. (The RTO
// budget is generous here: tests assert correctness; the figure itself is
// measured and reported, see docs/drills.md.)
func TestDrillCommand(t *testing.T) {
	skipShort(t)
	c := startCluster(t)
	for _, sc := range []string{"dc-loss", "dc-isolate"} {
		t.Run(sc, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "report.json")
			cmd := exec.Command(planbBinary, "drill", "--cluster", filepath.Join(c.dir, "cluster.json"),
				"--scenario", sc, "--target", "dc3", "--users", "3", "--rooms", "4",
				"--before", "4s", "--during", "12s", "--after", "4s", "--rto-budget", "60s", "--out", out)
			b, err := cmd.CombinedOutput()
			t.Logf("planb drill --scenario %s:\n%s", sc, lastLines(string(b), 12))
			if err != nil {
				t.Fatalf("planb drill: %v", err)
			}
			raw, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			var rep struct {
				Pass       bool    `json:"pass"`
				Acked      int     `json:"acknowledged_writes"`
				RTO        float64 `json:"rto_seconds"`
				Missing    int     `json:"rpo_missing_events"`
				Duplicates int     `json:"duplicates"`
				OrderDiffs int     `json:"rooms_with_different_order"`
				CatchUp    float64 `json:"catch_up_seconds"`
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
		})
	}
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
