package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/homeserver"
)

func TestValidateReportsEveryProblem(t *testing.T) {
	c := Default()
	c.ServerName = ""
	c.HTTPListen = "nope"
	c.Replicas = 3
	c.Partitions = 0
	err := c.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"server_name", "http_listen", "cluster.listen", "routes to at least 2", "partitions"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	if err := Default().Validate(); err != nil {
		t.Errorf("default config rejected: %v", err)
	}
}

func TestLoadRejectsUnknownKeys(t *testing.T) {
	p := filepath.Join(t.TempDir(), "planb.json")
	if err := os.WriteFile(p, []byte(`{"server_name":"x.org","replicaz":3}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "replicaz") {
		t.Fatalf("Load with an unknown key: %v, want an error naming it", err)
	}
	if err := os.WriteFile(p, []byte(`{"server_name":"x.org","replicas":3,"cluster":{"listen":"127.0.0.1:1","routes":["a:1","b:2"]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil || c.Replicas != 3 || c.ServerName != "x.org" || c.MaxUploadBytes != Default().MaxUploadBytes {
		t.Fatalf("Load = %+v, %v", c, err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("valid file config rejected: %v", err)
	}
}

func TestWarningsForEvenCounts(t *testing.T) {
	c := Default()
	c.Cluster.Routes = []string{"a:1"}
	c.Endpoints = []homeserver.Endpoint{{Name: "a", BaseURL: "http://a"}, {Name: "b", BaseURL: "http://b"}}
	if w := c.Warnings(); len(w) < 2 {
		t.Fatalf("two nodes / two data centers: warnings %q, want both counts warned", w)
	}
	c.Cluster.Routes = []string{"a:1", "b:2"}
	c.Endpoints = append(c.Endpoints, homeserver.Endpoint{Name: "c", BaseURL: "http://c"})
	if w := c.Warnings(); len(w) != 0 {
		t.Fatalf("three data centers: unexpected warnings %q", w)
	}
}

func TestFaultsAndNamedRoutes(t *testing.T) {
	c := Default()
	c.Faults.Enabled = true
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "faults.enabled needs") {
		t.Fatalf("faults on a standalone node: %v, want a refusal", err)
	}
	c.Replicas = 3
	c.Cluster.Listen = "127.0.0.1:7422"
	c.Cluster.Routes = []string{"dc2=10.0.0.2:7422", "nats-route://10.0.0.3:7422"}
	if err := c.Validate(); err != nil {
		t.Fatalf("named and unnamed routes with faults: %v", err)
	}
	if got := c.routeURLs(); len(got) != 2 || got[0] != "nats-route://10.0.0.2:7422" || got[1] != "nats-route://10.0.0.3:7422" {
		t.Fatalf("routeURLs = %q", got)
	}
	c.Cluster.Routes = []string{"d.c=10.0.0.2:7422", "dc3=nowhere"}
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "data center name") || !strings.Contains(err.Error(), "[NAME=]host:port") {
		t.Fatalf("bad routes: %v", err)
	}
	c.Cluster.Routes = []string{"a:1", "b:2"}
	c.External.URLs = []string{"nats://x:4222"}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "embedded engine") {
		t.Fatalf("faults with an external engine: %v", err)
	}
}

func TestRebalanceEvery(t *testing.T) {
	p := filepath.Join(t.TempDir(), "planb.json")
	load := func(v string) (Config, error) {
		t.Helper()
		if err := os.WriteFile(p, []byte(`{"rebalance_every":"`+v+`"}`), 0o600); err != nil {
			t.Fatal(err)
		}
		return Load(p)
	}
	for in, want := range map[string]time.Duration{"15s": 15 * time.Second, "0": 0, "2m": 2 * time.Minute} {
		c, err := load(in)
		if err != nil {
			t.Fatalf("rebalance_every %q: %v", in, err)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("rebalance_every %q rejected: %v", in, err)
		}
		if got := c.RebalanceEvery.Std(); got != want {
			t.Errorf("rebalance_every %q = %v, want %v", in, got, want)
		}
	}
	for _, in := range []string{"", "soon"} {
		if _, err := load(in); err == nil || !strings.Contains(err.Error(), "duration") {
			t.Errorf("rebalance_every %q: %v, want an error about the duration", in, err)
		}
	}
	for _, in := range []string{"-5s", "10ms"} {
		c, err := load(in)
		if err != nil {
			t.Fatalf("rebalance_every %q: %v", in, err)
		}
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "rebalance_every") {
			t.Errorf("rebalance_every %q: %v, want an error naming it", in, err)
		}
	}
}

func TestWriteTimeoutIsValidated(t *testing.T) {
	c := Default()
	if c.WriteTimeout.Std() != 10*time.Second {
		t.Fatalf("default write_timeout %v", c.WriteTimeout)
	}
	c.WriteTimeout = 0
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "write_timeout") {
		t.Fatalf("write_timeout 0: %v, want an error naming it", err)
	}
}

func TestPresenceTimeoutIsValidated(t *testing.T) {
	c := Default()
	if c.PresenceTimeout.Std() != 5*time.Minute {
		t.Fatalf("default presence_timeout %v", c.PresenceTimeout)
	}
	for _, d := range []time.Duration{0, 500 * time.Millisecond, 25 * time.Hour} {
		c.PresenceTimeout = planb.Duration(d)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "presence_timeout") {
			t.Errorf("presence_timeout %v: %v, want an error naming it", d, err)
		}
	}
	c.PresenceTimeout = planb.Duration(3 * time.Second)
	if err := c.Validate(); err != nil {
		t.Errorf("presence_timeout 3s: %v", err)
	}
}

// TestIncidentConfig reads the incident options and the compensation rule
// from a file, as docs/DESIGN.md shows them, and refuses bad ones.
func TestIncidentConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "planb.json")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"incident_after": "3s", "notice_after": "1m", "notice_language": "en", "compensation": {"currency": "KRW", "threshold_minutes": 120,
  "free":   {"tiers": [{"min_minutes": 120, "amount": 5000}, {"min_minutes": 360, "amount": 10000},
                       {"min_minutes": 720, "amount": 20000}], "cap": 50000},
  "paying": {"tiers": [{"min_minutes": 120, "amount": 10000}, {"min_minutes": 360, "amount": 20000},
                       {"min_minutes": 720, "amount": 40000}], "cap": 100000},
  "paying_users": ["@shop:example.org"]}}`)
	c, err := Load(path)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("validate: %v", err)
	}
	if c.IncidentAfter.Std() != 3*time.Second || c.NoticeAfter.Std() != time.Minute || c.NoticeLanguage != "en" ||
		len(c.Compensation.PayingUsers) != 1 || c.Compensation.Paying == nil || c.Compensation.Free.Cap != 50000 {
		t.Errorf("read %+v", c.Policy)
	}
	c.Compensation.Free.Tiers[1].MinMinutes = 100 // not increasing
	c.NoticeLanguage, c.NoticeAfter = "fr", 0
	err = c.Validate()
	for _, want := range []string{"compensation:", "notice_language", "notice_after"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("validate: %v, want it to name %s", err, want)
		}
	}
}
