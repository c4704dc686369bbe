package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/planb-chat/planb/node"
)

// parseServe parses args as planb serve would and returns the result.
func parseServe(t *testing.T, args ...string) (node.Config, error) {
	t.Helper()
	c := newServeCmd()
	fs := flag.NewFlagSet("planb serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.flags(fs)
	if err := fs.Parse(args); err != nil {
		return node.Config{}, err
	}
	err := c.validate()
	return c.cfg, err
}

func TestServeFlagsOverrideTheConfigFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "planb.json")
	file := `{"server_name":"chat.example.org","datacenter":"seoul","replicas":3,
		"cluster":{"listen":"127.0.0.1:7422","routes":["busan=10.0.0.2:7422","daejeon=10.0.0.3:7422"]},
		"datacenters":[{"name":"seoul","base_url":"https://seoul.example.org"}],
		"admin_tokens":["from-file"],"rebalance_every":"1m","write_timeout":"20s","login_burst":3}`
	if err := os.WriteFile(p, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := parseServe(t, "--config", p)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ServerName != "chat.example.org" || cfg.DataCenter != "seoul" || len(cfg.Cluster.Routes) != 2 ||
		cfg.RebalanceEvery.Std() != time.Minute || cfg.WriteTimeout.Std() != 20*time.Second || cfg.LoginBurst != 3 ||
		cfg.LoginPerMinute != node.Default().LoginPerMinute || cfg.MaxUploadBytes != node.Default().MaxUploadBytes {
		t.Fatalf("from the file: %+v", cfg)
	}
	cfg, err = parseServe(t, "--dc", "busan", "--config", p, "--admin-token", "a", "--admin-token", "b",
		"--datacenter", "busan=https://busan.example.org", "--rebalance-every", "0", "--open-registration",
		"--cluster-port", "7500", "--write-timeout", "30s")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataCenter != "busan" || cfg.ServerName != "chat.example.org" {
		t.Errorf("dc %q server %q: want the flag over the file and the file where no flag", cfg.DataCenter, cfg.ServerName)
	}
	if strings.Join(cfg.AdminTokens, ",") != "a,b" {
		t.Errorf("admin tokens %q: want the flags' list to replace the file's", cfg.AdminTokens)
	}
	if len(cfg.Endpoints) != 1 || cfg.Endpoints[0].Name != "busan" || cfg.Endpoints[0].BaseURL != "https://busan.example.org" {
		t.Errorf("endpoints %+v", cfg.Endpoints)
	}
	if cfg.RebalanceEvery != 0 || !cfg.OpenRegistration || cfg.Cluster.Listen != "127.0.0.1:7500" || cfg.WriteTimeout.Std() != 30*time.Second {
		t.Errorf("rebalance %v, open registration %v, cluster %q, write timeout %v", cfg.RebalanceEvery, cfg.OpenRegistration, cfg.Cluster.Listen, cfg.WriteTimeout)
	}
	if len(cfg.Cluster.Routes) != 2 {
		t.Errorf("routes %q: want the file's, no --route was given", cfg.Cluster.Routes)
	}
}

func TestServeRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--datacenter", "no-equals-sign"},
		{"--rebalance-every", "soon"},
		{"--cluster-port", "http"},
	} {
		if _, err := parseServe(t, args...); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
	if _, err := parseServe(t, "--write-timeout", "1ms"); err == nil || !strings.Contains(err.Error(), "write_timeout") {
		t.Errorf("write timeout of 1ms: %v, want an error naming write_timeout", err)
	}
	if _, err := parseServe(t, "--config", filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("a missing config file accepted")
	}
}

func TestServeDefaults(t *testing.T) {
	cfg, err := parseServe(t)
	if err != nil {
		t.Fatal(err)
	}
	d := node.Default()
	if cfg.ServerName != d.ServerName || cfg.HTTPListen != d.HTTPListen || cfg.RebalanceEvery != d.RebalanceEvery ||
		cfg.Partitions != d.Partitions || cfg.Replicas != d.Replicas {
		t.Fatalf("no flags: %+v, want the defaults %+v", cfg, d)
	}
}
