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

// timeStart starts `binary serve` on the log in dir as a standalone node
// twice: first with --rebuild-read-models, so that it rebuilds its read
// models from the whole log, then again on the store that left, so that it
// resumes from it. It fills in how long each start took to answer /health
// (engine up) and /ready, and the node's memory once ready.
//
// With pprofDir set, it also saves a CPU profile of the rebuilding node's
// first seconds after its engine is up there.
func timeStart(ctx context.Context, binary, dir, pprofDir string, rep *RebuildReport, say func(string, ...any)) error {
	first, err := startOnce(ctx, binary, dir, pprofDir, true, rep.Events, say)
	if err != nil {
		return err
	}
	rep.EngineSeconds, rep.ReadySeconds, rep.RebuildSeconds = first.engine, first.ready, first.caughtUp
	rep.RSSMiB, rep.HeapMiB, rep.PeakRSSMiB = first.rss, first.heap, first.peakRSS
	if rep.RebuildSeconds > 0 {
		rep.RebuildEventsPerSec = float64(rep.Events) / rep.RebuildSeconds
	}
	again, err := startOnce(ctx, binary, dir, "", false, rep.Events, say)
	if err != nil {
		return err
	}
	rep.RestartReadySeconds, rep.RestartRSSMiB, rep.RestartHeapMiB = again.ready, again.rss, again.heap
	rep.LogBytes, rep.StoreBytes = dirSize(filepath.Join(dir, "jetstream")), dirSize(filepath.Join(dir, "readmodel"))
	return nil
}

// dirSize returns the bytes the files below dir take.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// nodeStart is what one start of the rebuild node measured.
type nodeStart struct {
	engine, ready, caughtUp float64 // seconds
	rss, heap, peakRSS      float64 // MiB
}

// startOnce starts the node on dir once, as timeStart describes, and stops
// it again.
func startOnce(ctx context.Context, binary, dir, pprofDir string, rebuild bool, events int, say func(string, ...any)) (nodeStart, error) {
	var rep nodeStart
	what := "restart"
	if rebuild {
		what = "rebuild"
	}
	port, err := freeport.One()
	if err != nil {
		return rep, err
	}
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	logPath := filepath.Join(dir, what+"-node.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return rep, fmt.Errorf("%s node log: %w", what, err)
	}
	defer logf.Close()
	args := []string{"serve", "--data", dir, "--http", "127.0.0.1:" + strconv.Itoa(port),
		"--dc", fillNode, "--node", fillNode, "--server-name", fillServerName, "--replicas", "1"}
	if rebuild {
		args = append(args, "--rebuild-read-models")
	}
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
		return rep, fmt.Errorf("start %s node: %w", what, err)
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
	deadline := time.Now().Add(30 * time.Minute)
	for rep.ready == 0 {
		select {
		case err := <-exited:
			exited <- err
			return rep, fmt.Errorf("%s node exited (%v); see %s", what, err, logPath)
		case <-ctx.Done():
			return rep, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return rep, fmt.Errorf("%s node not ready after 30 minutes; see %s", what, logPath)
		}
		if rep.engine == 0 && get("/health") == 200 {
			rep.engine = time.Since(start).Seconds()
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
		if rep.engine > 0 && get("/ready") == 200 {
			rep.ready = time.Since(start).Seconds()
		}
		say("rebuild: %s of a node on the log of %d events: %.0f s", what, events, time.Since(start).Seconds())
	}
	s, err := scrape(ctx, hc, base)
	if err != nil {
		return rep, err
	}
	rep.rss, rep.heap = s.rss/(1<<20), s.heapInuse/(1<<20)
	rep.peakRSS = peakRSS(cmd.Process.Pid)
	rep.caughtUp = caughtUpTook(logPath)
	if rep.caughtUp == 0 {
		rep.caughtUp = rep.ready - rep.engine
	}
	return rep, nil
}

// caughtUpTook reads the node's own measurement from its log line
// `msg="read models caught up with the log" ... took=12.3s`.
func caughtUpTook(logPath string) float64 {
	f, err := os.Open(logPath)
	if err != nil {
		return 0
	}
	defer f.Close()
	re := regexp.MustCompile(`took=(\S+)`)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "read models caught up with the log") {
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
