package dctest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/planb-chat/planb/internal/testutil"
)

// deployment is three `planb serve` processes started the way an operator
// would on three hosts: named routes, an admin token and the fault endpoint
// turned on, with no planb dev and no external proxy. planb drill then
// knows only their URLs and the token.
type deployment struct {
	urls  []string
	token string
}

func startDeployment(t *testing.T) *deployment {
	t.Helper()
	base := freeBase(t) - 1 // dcN listens on base+N and base+100+N: dev's port plan
	d := &deployment{token: "deploy-admin"}
	var dcFlags []string
	for i := 1; i <= 3; i++ {
		u := fmt.Sprintf("http://127.0.0.1:%d", base+i)
		d.urls = append(d.urls, u)
		dcFlags = append(dcFlags, "--datacenter", fmt.Sprintf("dc%d=%s", i, u))
	}
	for i := 1; i <= 3; i++ {
		args := []string{"serve", "--data", filepath.Join(t.TempDir(), "data"), "--http", fmt.Sprintf("127.0.0.1:%d", base+i),
			"--dc", fmt.Sprintf("dc%d", i), "--cluster", fmt.Sprintf("127.0.0.1:%d", base+100+i), "--replicas", "3",
			"--server-name", "deploy.test", "--admin-token", d.token, "--open-registration", "--enable-faults"}
		for j := 1; j <= 3; j++ {
			if j != i {
				args = append(args, "--route", fmt.Sprintf("dc%d=127.0.0.1:%d", j, base+100+j))
			}
		}
		args = append(args, dcFlags...)
		logf, err := os.Create(filepath.Join(t.TempDir(), "planb.log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(planbBinary, args...)
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("dc%d", i)
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
			logf.Close()
			if t.Failed() {
				b, _ := os.ReadFile(logf.Name())
				t.Logf("%s log (tail):\n%s", name, lastLines(string(b), 40))
			}
		})
	}
	for _, u := range d.urls {
		testutil.WaitFor(t, 3*time.Minute, u+" ready", func() error { return getStatus(u+"/ready", "", 200) })
	}
	return d
}

func getStatus(url, token string, want int) error {
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: HTTP %d %s", url, resp.StatusCode, b)
	}
	return nil
}

func (d *deployment) drillArgs(scenario string, extra ...string) []string {
	args := []string{"drill", "--admin-token", d.token, "--scenario", scenario}
	for i, u := range d.urls {
		args = append(args, "--datacenter", fmt.Sprintf("dc%d=%s", i+1, u))
	}
	return append(args, extra...)
}

// TestDrillOnDeployment drills a deployment through the nodes' admin fault
// endpoint: dc-isolate, dc-blackhole and slow-link run and keep RPO 0; the
// fault really happens (the isolated or blackholed node stops being ready; both ends of the slowed
// link report it); dc-loss, which needs process control, is refused with a
// clear reason; and the history is read back by URL.
func TestDrillOnDeployment(t *testing.T) {
	skipShort(t)
	d := startDeployment(t)

	out, err := exec.Command(planbBinary, d.drillArgs("dc-loss")...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "needs process control") {
		t.Fatalf("dc-loss on a deployment: want a refusal naming process control, got err=%v:\n%s", err, out)
	}

	for _, sc := range []string{"dc-isolate", "dc-blackhole", "bridge-partition", "slow-link"} {
		t.Run(sc, func(t *testing.T) {
			report := filepath.Join(t.TempDir(), "report.json")
			cmd := exec.Command(planbBinary, d.drillArgs(sc, "--target", "dc3", "--users", "3", "--rooms", "4",
				"--before", "4s", "--during", "12s", "--after", "4s", "--rto-budget", "60s",
				"--latency", "200ms", "--jitter", "20ms", "--out", report)...)
			var output syncBuffer
			cmd.Stdout, cmd.Stderr = &output, &output
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// Watch the fault take effect while the drill holds it.
			var sawFault string
			deadline := time.Now().Add(2 * time.Minute)
			for sawFault == "" && time.Now().Before(deadline) {
				switch sc {
				case "dc-isolate", "dc-blackhole":
					if getStatus(d.urls[2]+"/ready", "", 503) == nil {
						sawFault = "dc3 not ready while cut off"
					}
				case "bridge-partition":
					var st3, st1 struct {
						Cut []string `json:"cut"`
					}
					if getJSON(d.urls[2]+"/_planb/admin/v1/faults", d.token, &st3) == nil && slices.Equal(st3.Cut, []string{"dc1"}) &&
						getJSON(d.urls[0]+"/_planb/admin/v1/faults", d.token, &st1) == nil && slices.Equal(st1.Cut, []string{"dc3"}) {
						sawFault = "dc3 and dc1 both cut the link between them"
					}
				case "slow-link":
					var st3, st1 struct {
						Slow map[string]struct {
							LatencyMS int `json:"latency_ms"`
						} `json:"slow"`
					}
					if getJSON(d.urls[2]+"/_planb/admin/v1/faults", d.token, &st3) == nil && st3.Slow["dc1"].LatencyMS == 200 &&
						getJSON(d.urls[0]+"/_planb/admin/v1/faults", d.token, &st1) == nil && st1.Slow["dc3"].LatencyMS == 200 {
						sawFault = "dc3 and dc1 both slow the link between them"
					}
				}
				time.Sleep(200 * time.Millisecond)
			}
			err := cmd.Wait()
			t.Logf("planb drill --scenario %s (%s):\n%s", sc, sawFault, lastLines(output.String(), 16))
			if err != nil {
				t.Fatalf("planb drill: %v", err)
			}
			if sawFault == "" {
				t.Errorf("the %s fault was never observed on the nodes", sc)
			}
			raw, err := os.ReadFile(report)
			if err != nil {
				t.Fatal(err)
			}
			var rep struct {
				Pass       bool   `json:"pass"`
				Peer       string `json:"peer"`
				Missing    int    `json:"rpo_missing_events"`
				Duplicates int    `json:"duplicates"`
				Acked      int    `json:"acknowledged_writes"`
				StoredAs   string `json:"stored_as"`
			}
			if err := json.Unmarshal(raw, &rep); err != nil {
				t.Fatal(err)
			}
			if !rep.Pass || rep.Missing != 0 || rep.Duplicates != 0 || rep.Acked == 0 || rep.StoredAs == "" {
				t.Errorf("report: %s", raw)
			}
			if (sc == "slow-link" || sc == "bridge-partition") && rep.Peer != "dc1" {
				t.Errorf("slow-link peer = %q, want dc1 (the data center after dc3)", rep.Peer)
			}
			// Healed: no node holds a fault any more.
			for _, u := range d.urls {
				var st struct {
					Isolated   bool           `json:"isolated"`
					Blackholed bool           `json:"blackholed"`
					Cut        []string       `json:"cut"`
					Slow       map[string]any `json:"slow"`
				}
				if err := getJSON(u+"/_planb/admin/v1/faults", d.token, &st); err != nil || st.Isolated || st.Blackholed || len(st.Cut) > 0 || len(st.Slow) > 0 {
					t.Errorf("%s after the drill: %+v, %v", u, st, err)
				}
			}
		})
	}
	hist, err := exec.Command(planbBinary, "drill", "history", "--admin-token", d.token, "--datacenter", "dc2="+d.urls[1]).CombinedOutput()
	if err != nil || !strings.Contains(string(hist), "slow-link") || !strings.Contains(string(hist), "dc-isolate") {
		t.Errorf("planb drill history by URL: %v\n%s", err, hist)
	}
}

func getJSON(url, token string, out any) error {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
