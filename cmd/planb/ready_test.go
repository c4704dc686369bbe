package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestReady is the container health check: 0 only on a 200 from /ready,
// and the node's reason otherwise.
func TestReady(t *testing.T) {
	ready := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ready" {
			http.NotFound(w, r)
			return
		}
		if !ready {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"ready":false,"reason":"catching up with the log: 3 of 9 records in the read models"}`)
			return
		}
		io.WriteString(w, `{"ready":true}`)
	}))
	defer srv.Close()
	var out strings.Builder
	if err := run(context.Background(), []string{"ready", "--url", srv.URL}, &out, io.Discard); err != nil || out.String() != "ready\n" {
		t.Fatalf("ready node: %v, %q", err, out.String())
	}
	ready = false
	err := run(context.Background(), []string{"ready", "--url", srv.URL + "/"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "catching up") {
		t.Fatalf("node not ready: %v", err)
	}
	if err := run(context.Background(), []string{"ready", "--url", "localhost:8008"}, io.Discard, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "want http(s)://host:port") {
		t.Fatalf("bad URL: %v", err)
	}
	srv.Close()
	if err := run(context.Background(), []string{"ready", "--url", srv.URL}, io.Discard, io.Discard); err == nil {
		t.Fatal("a node that does not answer is ready")
	}
}

// TestServerNameFromTheEnvironment is how the Complement image gets its
// server name.
func TestServerNameFromTheEnvironment(t *testing.T) {
	t.Setenv("PLANB_TEST_SERVER_NAME", "hs1")
	cfg, err := parseServe(t, "--data", t.TempDir(), "--server-name-env", "PLANB_TEST_SERVER_NAME")
	if err != nil || cfg.ServerName != "hs1" {
		t.Fatalf("server name %q, %v; want hs1", cfg.ServerName, err)
	}
	if _, err := parseServe(t, "--data", t.TempDir(), "--server-name-env", "PLANB_TEST_NO_SUCH_VARIABLE"); err == nil ||
		!strings.Contains(err.Error(), "PLANB_TEST_NO_SUCH_VARIABLE is not set") {
		t.Fatalf("unset variable: %v", err)
	}
}
