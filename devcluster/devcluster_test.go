package devcluster

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	toxiclient "github.com/Shopify/toxiproxy/v2/client"

	"github.com/planb-chat/planb/internal/testutil"
)

// Timeouts are generous: the suite must pass on a loaded 2-core machine.
const (
	httpTimeout = 30 * time.Second // one HTTP request
	waitTimeout = 60 * time.Second // default for waitFor conditions
)

func TestPortPlan(t *testing.T) {
	ports, err := newPortPlan(8008, 5).ports()
	if err != nil {
		t.Fatalf("default plan: %v", err)
	}
	// 5 HTTP + 5 cluster + 20 links + API + advertised address.
	if len(ports) != 32 {
		t.Errorf("5 data centers use %d ports, want 32", len(ports))
	}
	for port, want := range map[int]string{8008: "dc1 HTTP", 8010: "dc3 HTTP", 8107: "toxiproxy API", 8108: "dc1 cluster", 8220: "dc1-to-dc2", 8262: "dc5-to-dc4"} {
		if ports[port] != want {
			t.Errorf("port %d is %q, want %q", port, ports[port], want)
		}
	}
	if _, err := newPortPlan(65400, 3).ports(); err == nil {
		t.Error("base port 65400: want an error for ports above 65535")
	}
	cfg := Config{DataDir: "", BasePort: 0, DCs: 4}
	err = cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "data dir") || !strings.Contains(err.Error(), "want 3 or 5") {
		t.Errorf("Validate(%+v) = %v, want both problems reported", cfg, err)
	}
}

// TestCluster runs a real three-data-center cluster, talks Matrix to every
// data center, cuts one off through toxiproxy and heals it.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three planb processes; skipped with -short")
	}
	bin := planbBinary(t)
	dir := t.TempDir()
	if d := os.Getenv("PLANB_DEV_TEST_DATA"); d != "" {
		dir = d // kept after the test, to read the logs
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	cfg := Config{Binary: bin, DataDir: dir, BasePort: freeBasePort(t, 3), DCs: 3,
		Log: slog.New(slog.NewTextHandler(t.Output(), nil)), Stdout: t.Output()}
	start := time.Now()
	go func() { runErr <- Run(ctx, cfg) }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-runErr:
			return err
		case <-time.After(StopTimeout + 30*time.Second):
			return errors.New("Run did not return after cancel")
		}
	}
	t.Cleanup(func() { _ = stop() })

	file := waitClusterFile(t, filepath.Join(dir, ClusterFileName), runErr)
	t.Cleanup(func() {
		if t.Failed() {
			for _, dc := range file.DataCenters {
				t.Logf("end of %s:\n%s", dc.Log, logTail(dc.Log, 40))
			}
		}
	})
	t.Logf("MEASURED: cluster ready (first boot, fresh data) after %s", time.Since(start).Round(100*time.Millisecond))
	checkNoDirectRoutes(t, file)
	dc1, dc2, dc3 := file.DataCenters[0].URL, file.DataCenters[1].URL, file.DataCenters[2].URL

	// Register on dc1, log in on dc2, create a room on dc1, send on dc3 with
	// dc2's token: no data center is special.
	var reg struct {
		UserID      string `json:"user_id"`
		AccessToken string `json:"access_token"`
	}
	mustDo(t, http.MethodPost, dc1+"/_matrix/client/v3/register", "", map[string]any{
		"username": "alice", "password": "correct horse battery", "auth": map[string]string{"type": "m.login.dummy"}}, &reg)
	var login struct {
		AccessToken string `json:"access_token"`
	}
	testutil.WaitFor(t, waitTimeout, "login on dc2", func() error {
		return do(http.MethodPost, dc2+"/_matrix/client/v3/login", "", map[string]any{
			"type": "m.login.password", "identifier": map[string]string{"type": "m.id.user", "user": "alice"},
			"password": "correct horse battery"}, &login)
	})
	var room struct {
		RoomID string `json:"room_id"`
	}
	mustDo(t, http.MethodPost, dc1+"/_matrix/client/v3/createRoom", reg.AccessToken, map[string]any{"name": "drill"}, &room)
	var sent []string // bodies of every acknowledged message
	send := func(base, token, body string) error {
		txn := "txn-" + strings.ReplaceAll(body, " ", "-")
		err := do(http.MethodPut, base+"/_matrix/client/v3/rooms/"+url.PathEscape(room.RoomID)+
			"/send/m.room.message/"+txn, token, map[string]string{"msgtype": "m.text", "body": body}, nil)
		if err == nil {
			sent = append(sent, body)
		}
		return err
	}
	testutil.WaitFor(t, waitTimeout, "send on dc3 with dc2's token", func() error { return send(dc3, login.AccessToken, "hello from dc3") })
	for _, dc := range file.DataCenters {
		waitHasMessages(t, dc, room.RoomID, login.AccessToken, sent)
	}

	// Cut dc3 off: disable every link from or to it.
	beforeCut := slices.Clone(sent)
	tp := toxiclient.NewClient(file.ToxiproxyURL)
	setLinks(t, tp, file.LinksOf("dc3"), false)
	cut := time.Now()
	notReady := make(chan time.Duration, 1) // when dc3's /ready first said 503
	go func() {
		for time.Since(cut) < 30*time.Second {
			if code, _ := getStatus(dc3 + "/ready"); code == http.StatusServiceUnavailable {
				notReady <- time.Since(cut)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		close(notReady)
	}()

	// The other two keep a quorum and keep accepting writes, after at most
	// an election if a leader was in dc3.
	sendUntilOK := func(name, base, token string) {
		var failures []string
		var took time.Duration
		testutil.WaitFor(t, waitTimeout, "send on "+name+" while dc3 is cut", func() error {
			at := time.Since(cut)
			err := send(base, token, name+" during cut")
			took = time.Since(cut) - at
			if err != nil {
				failures = append(failures, fmt.Sprintf("at %s (took %s): %.200v", at.Round(10*time.Millisecond),
					took.Round(10*time.Millisecond), err))
			}
			return err
		})
		t.Logf("MEASURED: send on %s acknowledged %s after the cut (the request took %s; %d failed attempts before)",
			name, time.Since(cut).Round(10*time.Millisecond), took.Round(10*time.Millisecond), len(failures))
		for _, f := range failures {
			t.Logf("  failed send on %s %s", name, f)
		}
	}
	sendUntilOK("dc1", dc1, reg.AccessToken)
	sendUntilOK("dc2", dc2, login.AccessToken)

	d, ok := <-notReady
	if !ok {
		t.Fatalf("dc3 /ready still not 503 30s after its links were cut")
	}
	t.Logf("MEASURED: dc3 /ready answered 503 %s after its links were cut", d.Round(10*time.Millisecond))

	// A write on the cut-off data center must fail, never be acknowledged.
	sendStart := time.Now()
	status, resp, hdr, err := rawDo(http.MethodPut, dc3+"/_matrix/client/v3/rooms/"+url.PathEscape(room.RoomID)+
		"/send/m.room.message/txn-during-cut", login.AccessToken, map[string]string{"msgtype": "m.text", "body": "written on cut dc3"})
	took := time.Since(sendStart).Round(10 * time.Millisecond)
	switch {
	case err != nil:
		t.Logf("MEASURED: send on cut dc3 timed out or failed at the transport after %s: %v", took, err)
	case status == http.StatusServiceUnavailable && resp["errcode"] == "M_UNAVAILABLE":
		t.Logf("MEASURED: send on cut dc3 answered 503 M_UNAVAILABLE after %s (Retry-After %q): %v", took, hdr.Get("Retry-After"), resp["error"])
		if hdr.Get("Retry-After") == "" {
			t.Errorf("503 from cut dc3 has no Retry-After header")
		}
	default:
		t.Errorf("send on cut dc3: got %d %v after %s, want 503 M_UNAVAILABLE (or a timeout)", status, resp, took)
	}
	// Reads keep working from the read models.
	readStart := time.Now()
	if err := hasMessages(dc3, room.RoomID, login.AccessToken, beforeCut); err != nil {
		t.Errorf("read on cut dc3 (after %s): %v", time.Since(readStart).Round(10*time.Millisecond), err)
	} else {
		t.Logf("MEASURED: read on cut dc3 served in %s", time.Since(readStart).Round(10*time.Millisecond))
	}

	for _, base := range []string{dc1, dc2} {
		if code, body := getStatus(base + "/ready"); code != http.StatusOK {
			t.Errorf("%s /ready during the cut: %d %s", base, code, body)
		}
	}

	// Heal: dc3 becomes ready and catches up with everything it missed.
	setLinks(t, tp, file.LinksOf("dc3"), true)
	heal := time.Now()
	testutil.WaitFor(t, 90*time.Second, "dc3 ready after heal", func() error {
		if code, body := getStatus(dc3 + "/ready"); code != http.StatusOK {
			return fmt.Errorf("/ready: %d %s", code, body)
		}
		return nil
	})
	t.Logf("MEASURED: dc3 ready %s after the links were restored", time.Since(heal).Round(10*time.Millisecond))
	dc, _ := file.DataCenter("dc3")
	waitHasMessages(t, dc, room.RoomID, login.AccessToken, sent)
	t.Logf("MEASURED: dc3 has all %d acknowledged messages %s after heal", len(sent), time.Since(heal).Round(10*time.Millisecond))
	testutil.WaitFor(t, waitTimeout, "send on dc3 after heal", func() error { return send(dc3, login.AccessToken, "dc3 after heal") })
	for _, dc := range file.DataCenters {
		waitHasMessages(t, dc, room.RoomID, login.AccessToken, sent)
	}
	// The message attempted during the cut was never acknowledged; if it
	// shows up later the engine committed it anyway (it reached a quorum
	// after the client had its error), which clients must tolerate through
	// txnId retries but which we want to know about.
	if err := hasMessages(dc1, room.RoomID, login.AccessToken, []string{"written on cut dc3"}); err == nil {
		t.Logf("NOTE: the send that failed on cut dc3 was committed after all")
	}

	// SIGKILL dc2 and bring it back the way a drill does: the supervisor
	// does not restart it, RestartDataCenter does, from cluster.json.
	old, _ := file.DataCenter("dc2")
	if _, err := RestartDataCenter(ctx, file, "dc1"); err == nil {
		t.Errorf("RestartDataCenter(dc1) while dc1 runs: no error")
	}
	if err := syscall.Kill(old.PID, syscall.SIGKILL); err != nil {
		t.Fatalf("kill dc2: %v", err)
	}
	testutil.WaitFor(t, waitTimeout, "dc2 gone", func() error {
		if processAlive(old.PID) {
			return errors.New("still running")
		}
		return nil
	})
	restart := time.Now()
	pid, err := RestartDataCenter(ctx, file, "dc2")
	if err != nil {
		t.Fatalf("restart dc2: %v", err)
	}
	if onDisk, err := ReadClusterFile(file.Path); err != nil {
		t.Fatal(err)
	} else if dc, _ := onDisk.DataCenter("dc2"); dc.PID != pid || pid == old.PID {
		t.Errorf("cluster.json records dc2 as pid %d, want the new pid %d (old %d)", dc.PID, pid, old.PID)
	}
	testutil.WaitFor(t, 90*time.Second, "dc2 ready after restart", func() error {
		if code, body := getStatus(dc2 + "/ready"); code != http.StatusOK {
			return fmt.Errorf("/ready: %d %s", code, body)
		}
		return nil
	})
	t.Logf("MEASURED: dc2 ready %s after RestartDataCenter", time.Since(restart).Round(10*time.Millisecond))
	dc, _ = file.DataCenter("dc2")
	waitHasMessages(t, dc, room.RoomID, login.AccessToken, sent)

	// Ctrl-C: every process exits, the restarted one too; nothing is left
	// behind.
	stopStart := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	t.Logf("MEASURED: stopped in %s", time.Since(stopStart).Round(10*time.Millisecond))
	for _, dc := range file.DataCenters {
		if processAlive(dc.PID) {
			t.Errorf("%s (pid %d) still runs after Run returned", dc.Name, dc.PID)
		}
	}
	if processAlive(old.PID) {
		t.Errorf("dc2's first process (pid %d) still runs", old.PID)
	}
}

// planbBinary builds ./cmd/planb from the module root, or returns
// $PLANB_DEV_BINARY to test a binary built elsewhere.
func planbBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("PLANB_DEV_BINARY"); bin != "" {
		t.Logf("using PLANB_DEV_BINARY=%s", bin)
		return bin
	}
	bin := testutil.MustBuildPlanb(t)
	return bin
}

// freeBasePort picks a free base port below the ephemeral range.
func freeBasePort(t *testing.T, dcs int) int {
	t.Helper()
	base, err := FreeBasePort(dcs)
	if err != nil {
		t.Fatal(err)
	}
	return base
}

// waitClusterFile waits until Run has written the cluster file, failing at
// once if Run returns first.
func waitClusterFile(t *testing.T, path string, runErr chan error) *ClusterFile {
	t.Helper()
	deadline := time.Now().Add(ReadyTimeout + 30*time.Second)
	for time.Now().Before(deadline) {
		if f, err := ReadClusterFile(path); err == nil {
			return f
		}
		select {
		case err := <-runErr:
			runErr <- err // for stop
			t.Fatalf("Run returned before the cluster was ready: %v", err)
		case <-time.After(250 * time.Millisecond):
		}
	}
	t.Fatalf("no %s after %s", path, ReadyTimeout+30*time.Second)
	return nil
}

// checkNoDirectRoutes asserts that every connection to a node's route port
// comes from the toxiproxy (this process), none straight from another
// node: otherwise disabling links cuts nothing. Linux only (/proc).
func checkNoDirectRoutes(t *testing.T, f *ClusterFile) {
	t.Helper()
	if runtime.GOOS != "linux" {
		return
	}
	ours := map[string]bool{}
	fds, _ := os.ReadDir("/proc/self/fd")
	for _, fd := range fds {
		if l, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil && strings.HasPrefix(l, "socket:[") {
			ours[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	routePorts := map[string]string{} // hex port -> data center
	for _, dc := range f.DataCenters {
		_, port, _ := strings.Cut(dc.ClusterListen, ":")
		p, _ := strconv.Atoi(port)
		routePorts[fmt.Sprintf("%04X", p)] = dc.Name
	}
	tcp, err := os.Open("/proc/net/tcp")
	if err != nil {
		t.Logf("cannot check routes: %v", err)
		return
	}
	defer tcp.Close()
	sc := bufio.NewScanner(tcp)
	proxied := 0
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[3] != "01" { // 01 = ESTABLISHED
			continue
		}
		_, remPort, _ := strings.Cut(fields[2], ":")
		dc, ok := routePorts[remPort]
		if !ok {
			continue
		}
		if ours[fields[9]] {
			proxied++
			continue
		}
		t.Errorf("a route connection to %s's route port bypasses the links (socket inode %s)", dc, fields[9])
	}
	if proxied == 0 {
		t.Errorf("no route connection passes through the links")
	}
}

// setLinks enables or disables the named toxiproxy proxies.
func setLinks(t *testing.T, c *toxiclient.Client, names []string, enabled bool) {
	t.Helper()
	for _, name := range names {
		p, err := c.Proxy(name)
		if err != nil {
			t.Fatalf("get link %s: %v", name, err)
		}
		if enabled {
			err = p.Enable()
		} else {
			err = p.Disable()
		}
		if err != nil {
			t.Fatalf("set link %s enabled=%v: %v", name, enabled, err)
		}
	}
}

// waitHasMessages waits until the data center's /messages of room lists
// every body in want.
func waitHasMessages(t *testing.T, dc DataCenter, roomID, token string, want []string) {
	t.Helper()
	testutil.WaitFor(t, waitTimeout, dc.Name+" has every message", func() error { return hasMessages(dc.URL, roomID, token, want) })
}

// hasMessages reads the room's latest messages from base and reports which
// of want are missing.
func hasMessages(base, roomID, token string, want []string) error {
	var resp struct {
		Chunk []struct {
			Type    string         `json:"type"`
			Content map[string]any `json:"content"`
		} `json:"chunk"`
	}
	if err := do(http.MethodGet, base+"/_matrix/client/v3/rooms/"+url.PathEscape(roomID)+"/messages?dir=b&limit=100", token, nil, &resp); err != nil {
		return err
	}
	var have []string
	for _, ev := range resp.Chunk {
		if body, ok := ev.Content["body"].(string); ok && ev.Type == "m.room.message" {
			have = append(have, body)
		}
	}
	var missing []string
	for _, w := range want {
		if !slices.Contains(have, w) {
			missing = append(missing, w)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %q (have %q)", missing, have)
	}
	return nil
}

// mustDo is do that fails the test.
func mustDo(t *testing.T, method, url, token string, body, out any) {
	t.Helper()
	if err := do(method, url, token, body, out); err != nil {
		t.Fatal(err)
	}
}

// do sends a JSON request and decodes a 200 answer into out; any other
// status is an error carrying the Matrix error.
func do(method, url, token string, body, out any) error {
	status, resp, _, err := rawDo(method, url, token, body)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("%s %s: %d %v", method, url, status, resp)
	}
	if out == nil {
		return nil
	}
	b, _ := json.Marshal(resp)
	return json.Unmarshal(b, out)
}

// rawDo sends a JSON request and returns the status, the decoded JSON
// body and the headers; err is set only for transport failures.
func rawDo(method, url, token string, body any) (int, map[string]any, http.Header, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, nil, fmt.Errorf("encode body: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), httpTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("new request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	out := map[string]any{}
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil {
		out["raw"] = string(b)
	}
	return resp.StatusCode, out, resp.Header, nil
}

// getStatus GETs url and returns the status and body (0 on a transport
// error, with the error as body).
func getStatus(url string) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	return resp.StatusCode, strings.TrimSpace(string(b))
}
