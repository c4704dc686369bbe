package bench

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/planb-chat/planb/internal/freeport"
)

// timeStart starts `binary serve` on the log in dir as a standalone node and
// fills in how long it took to answer /health (engine up) and /ready (read
// models rebuilt), and its memory once ready.
//
// With pprofDir set, it also saves a CPU profile of the node's first
// seconds after its engine is up (the rebuild) there.
func timeStart(ctx context.Context, binary, dir, pprofDir string, rep *RebuildReport, say func(string, ...any)) error {
	port, err := freeport.One()
	if err != nil {
		return err
	}
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	logPath := filepath.Join(dir, "rebuild-node.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("rebuild node log: %w", err)
	}
	defer logf.Close()
	args := []string{"serve", "--data", dir, "--http", "127.0.0.1:" + strconv.Itoa(port),
		"--dc", fillNode, "--node", fillNode, "--server-name", fillServerName, "--replicas", "1"}
	adminToken := ""
	if pprofDir != "" {
		adminToken = "bench-" + strconv.FormatInt(time.Now().UnixNano(), 36)
		args = append(args, "--admin-token", adminToken)
	}
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = childAttr()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start rebuild node: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	hc := &http.Client{Timeout: 2 * time.Second}
	get := func(path string) int {
		resp, err := hc.Get(base + path)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	var profDone chan struct{} // closed when the rebuild's profile is saved
	defer func() {
		if profDone != nil {
			<-profDone
		}
	}()
	deadline := time.Now().Add(15 * time.Minute)
	for rep.ReadySeconds == 0 {
		select {
		case err := <-exited:
			exited <- err
			return fmt.Errorf("rebuild node exited (%v); see %s", err, logPath)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("rebuild node not ready after 15 minutes; see %s", logPath)
		}
		if rep.EngineSeconds == 0 && get("/health") == 200 {
			rep.EngineSeconds = time.Since(start).Seconds()
			if adminToken != "" {
				profDone = make(chan struct{})
				go func() {
					defer close(profDone)
					_ = os.MkdirAll(pprofDir, 0o755)
					if err := fetchProfile(ctx, DataCenter{Name: "rebuild", URL: base}, adminToken, 10, filepath.Join(pprofDir, "rebuild-cpu.pprof")); err != nil {
						say("rebuild: profile: %v", err)
					}
				}()
			}
		}
		if rep.EngineSeconds > 0 && get("/ready") == 200 {
			rep.ReadySeconds = time.Since(start).Seconds()
		}
		say("rebuild: node starting on the log of %d events: %.0f s", rep.Events, time.Since(start).Seconds())
	}
	s, err := scrape(ctx, hc, base)
	if err != nil {
		return err
	}
	rep.RSSMiB, rep.HeapMiB = s.rss/(1<<20), s.heapInuse/(1<<20)
	rep.PeakRSSMiB = peakRSS(cmd.Process.Pid)
	rep.RebuildSeconds = rebuiltTook(logPath)
	if rep.RebuildSeconds == 0 {
		rep.RebuildSeconds = rep.ReadySeconds - rep.EngineSeconds
	}
	return nil
}

// rebuiltTook reads the node's own measurement from its log line
// `msg="read models rebuilt" ... took=12.3s`.
func rebuiltTook(logPath string) float64 {
	f, err := os.Open(logPath)
	if err != nil {
		return 0
	}
	defer f.Close()
	re := regexp.MustCompile(`took=(\S+)`)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "read models rebuilt") {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				if d, err := time.ParseDuration(m[1]); err == nil {
					return d.Seconds()
				}
			}
		}
	}
	return 0
}

// peakRSS returns a process's peak resident memory (VmHWM) in MiB, where
// the platform reports it (Linux), else 0.
func peakRSS(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err == nil {
				return kb / 1024
			}
		}
	}
	return 0
}
