package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/planb-chat/planb/internal/freeport"
)

// serveForTest runs `planb serve` in this process until the test ends and
// returns its base URL once it is ready.
func serveForTest(t *testing.T, token string) string {
	t.Helper()
	port, err := freeport.Transient()
	if err != nil {
		t.Fatal(err)
	}
	// The data directory first: its removal is a cleanup too, and must run
	// after the node has stopped (cleanups run last first).
	dataDir := t.TempDir()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var logs bytes.Buffer
	go func() {
		done <- run(ctx, []string{"serve", "--data", dataDir, "--http", fmt.Sprintf("127.0.0.1:%d", port),
			"--admin-token", token, "--log-level", "warn"}, io.Discard, &logs)
	}()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("serve: %v\n%s", err, logs.String())
		}
	})
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := http.Get(url + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return url
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node did not become ready: %v\n%s", err, logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// admin runs `planb admin args...` and returns its output.
func admin(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := run(ctx, append([]string{"admin"}, args...), &out, &errOut)
	return out.String() + errOut.String(), err
}

func TestAdminCommandOnARealNode(t *testing.T) {
	url := serveForTest(t, "admin-secret")
	target := []string{"--datacenter", "seoul=" + url, "--admin-token", "admin-secret"}

	out, err := admin(t, append([]string{"status"}, target...)...)
	if err != nil || !strings.Contains(out, "ready=true") || !strings.Contains(out, "EVENTS_0") {
		t.Fatalf("status: %v\n%s", err, out)
	}
	out, err = admin(t, append([]string{"drain"}, target...)...)
	if err != nil || !strings.Contains(out, "not-ready") {
		t.Fatalf("drain: %v\n%s", err, out)
	}
	out, err = admin(t, append([]string{"status"}, target...)...)
	if err != nil || !strings.Contains(out, "ready=false draining") {
		t.Fatalf("status after drain: %v\n%s", err, out)
	}
	if resp, err := http.Get(url + "/ready"); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/ready of a drained node: %v %v, want 503", resp, err)
	}
	if out, err = admin(t, append([]string{"undrain"}, target...)...); err != nil {
		t.Fatalf("undrain: %v\n%s", err, out)
	}
	out, err = admin(t, append([]string{"status", "--json"}, target...)...)
	if err != nil || !strings.Contains(out, `"ready": true`) {
		t.Fatalf("status --json after undrain: %v\n%s", err, out)
	}
	if out, err = admin(t, append([]string{"rebalance"}, target...)...); err != nil || !strings.Contains(out, "leaders_after") {
		t.Fatalf("rebalance: %v\n%s", err, out)
	}

	// The token comes from the environment when no flag gives it.
	t.Setenv("PLANB_ADMIN_TOKEN", "admin-secret")
	if out, err = admin(t, "status", "--datacenter", url); err != nil {
		t.Fatalf("status with $PLANB_ADMIN_TOKEN: %v\n%s", err, out)
	}
	if out, err = admin(t, "status", "--datacenter", url, "--admin-token", "wrong"); err == nil || !strings.Contains(err.Error(), "M_UNKNOWN_TOKEN") {
		t.Fatalf("status with a wrong token: %v\n%s", err, out)
	}
}

func TestAdminTargetFlagsAreChecked(t *testing.T) {
	t.Setenv("PLANB_ADMIN_TOKEN", "")
	two := []string{"--datacenter", "seoul=http://127.0.0.1:1", "--datacenter", "busan=http://127.0.0.1:2", "--admin-token", "x"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{append([]string{"drain"}, two...), "name its data center with --dc"},
		{append([]string{"status", "--dc", "daejeon"}, two...), "the target has data centers seoul, busan"},
		{[]string{"status", "--datacenter", "http://127.0.0.1:1"}, "--admin-token (or $PLANB_ADMIN_TOKEN) is required"},
		{[]string{"status", "--datacenter", "seoul=ftp://x", "--admin-token", "x"}, "want NAME=http(s)://host:port"},
		{[]string{"status", "--cluster", filepath.Join(t.TempDir(), "none.json")}, "--cluster"},
		{[]string{"status", "--cluster", "a.json", "--datacenter", "http://x", "--admin-token", "x"}, "not both"},
		{[]string{"explode", "--datacenter", "http://x", "--admin-token", "x"}, "unknown admin action"},
	} {
		_, err := admin(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("admin %q: %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}

func TestAdminDefaultsToTheDevClusterFile(t *testing.T) {
	dir := t.TempDir()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chdir(wd) })
	_, err = admin(t, "status")
	if err == nil || !strings.Contains(err.Error(), devClusterFile) {
		t.Fatalf("status without a target or a dev cluster: %v, want the missing %s named", err, devClusterFile)
	}
}
