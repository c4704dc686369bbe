// Package node runs one planb node: the engine, the homeserver and its HTTP
// edge, with health, readiness and metrics endpoints.
package node

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/cluster"
	"github.com/planb-chat/planb/faultnet"
	"github.com/planb-chat/planb/homeserver"
	"github.com/planb-chat/planb/httpapi"
	"github.com/planb-chat/planb/jetstream"
)

// ClusterConfig is how the node's embedded NATS server joins the others.
type ClusterConfig struct {
	// Listen is host:port for routes from other nodes.
	Listen string `json:"listen"`
	// Advertise is host:port others reach us at (default: Listen).
	Advertise string `json:"advertise,omitempty"`
	// Routes are the other nodes' route addresses (host:port or
	// nats-route://), optionally named by the peer's data center:
	// "dc2=host:port" (the fault endpoint needs names to slow one link).
	Routes []string `json:"routes"`
	// NoAdvertise turns off route gossip; needed when links go through a
	// fault-injection proxy.
	NoAdvertise bool `json:"no_advertise,omitempty"`
}

// FaultsConfig turns on the admin fault endpoint (/_planb/admin/v1/faults)
// that `planb drill` uses on real deployments to cut or slow this node's
// routes. Off unless enabled; every fault heals by itself after its time
// limit.
type FaultsConfig struct {
	Enabled bool `json:"enabled"`
}

// ExternalConfig points at an operator's existing JetStream cluster.
type ExternalConfig struct {
	URLs      []string `json:"urls"`
	CredsFile string   `json:"creds_file,omitempty"`
}

// Config is the configuration of one node: the engine's and the node's
// own options here, and the options of the homeserver, the HTTP edge's
// limits and the cluster policy embedded, so that the JSON file is flat
// and each option is declared once, beside the code that uses it, with
// its default in that package's Default function.
type Config struct {
	homeserver.Config
	httpapi.Limits
	cluster.Policy
	DataDir    string         `json:"data_dir"`
	HTTPListen string         `json:"http_listen"`
	NodeName   string         `json:"node_name,omitempty"`
	Cluster    ClusterConfig  `json:"cluster"`
	External   ExternalConfig `json:"external_nats"`
	Faults     FaultsConfig   `json:"faults"`
	Replicas   int            `json:"replicas"`
	Partitions int            `json:"partitions"`
	// CacheSizeMB is the read model store's block cache in MiB: with the
	// small hot parts of the models, what bounds the node's memory,
	// whatever the size of the history.
	CacheSizeMB int `json:"cache_size_mb"`
	// MinFreeDiskMB is the free space the read model store's disk must
	// keep: below it the node stops applying the log and is not ready
	// until space is freed (the store must never fill the disk).
	MinFreeDiskMB int `json:"min_free_disk_mb"`
	// RebuildReadModels deletes this node's read model store at start, so
	// that it is rebuilt from the log (an operator's one-off, flag only).
	RebuildReadModels bool `json:"-"`
}

// Default returns the configuration of a single standalone node.
func Default() Config {
	return Config{
		Config:        homeserver.DefaultConfig(),
		Limits:        httpapi.DefaultLimits(),
		Policy:        cluster.DefaultPolicy(),
		DataDir:       "planb-data",
		HTTPListen:    "127.0.0.1:8008",
		Replicas:      1,
		Partitions:    jetstream.DefaultPartitions,
		CacheSizeMB:   64,
		MinFreeDiskMB: 256,
	}
}

// Load reads a JSON config file over the defaults; unknown keys are errors.
func Load(path string) (Config, error) {
	cfg := Default()
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("read config: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return cfg, fmt.Errorf("parse config %s: %w", path, err)
	}
	return cfg, nil
}

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.ServerName == "" || strings.ContainsAny(c.ServerName, " /@!#$") {
		bad("server_name %q: want a DNS name such as chat.example.org", c.ServerName)
	}
	if c.DataDir == "" {
		bad("data_dir is required (the engine's files and this node's read model store live there)")
	}
	if c.MinFreeDiskMB < 64 {
		bad("min_free_disk_mb %d: want at least 64 (MiB): the store must never fill the disk", c.MinFreeDiskMB)
	}
	if c.CacheSizeMB < 8 || c.CacheSizeMB > 1<<20 {
		bad("cache_size_mb %d: want at least 8 (MiB)", c.CacheSizeMB)
	}
	if _, _, err := net.SplitHostPort(c.HTTPListen); err != nil {
		bad("http_listen %q: want host:port", c.HTTPListen)
	}
	if c.DataCenter == "" || strings.ContainsAny(c.DataCenter, " .*>:") {
		bad("datacenter %q: want a short name such as dc1", c.DataCenter)
	}
	switch c.Replicas {
	case 1, 3, 5:
	default:
		bad("replicas %d: want 1 (one node), 3 (three data centers) or 5", c.Replicas)
	}
	if c.Partitions < 1 || c.Partitions > 256 {
		bad("partitions %d: want 1..256", c.Partitions)
	}
	if c.Replicas > 1 && len(c.External.URLs) == 0 {
		if c.Cluster.Listen == "" {
			bad("replicas %d needs cluster.listen so the data centers can form a cluster", c.Replicas)
		}
		if len(c.Cluster.Routes) < c.Replicas-1 {
			bad("replicas %d needs routes to at least %d other data centers, have %d", c.Replicas, c.Replicas-1, len(c.Cluster.Routes))
		}
	}
	if c.Cluster.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Cluster.Listen); err != nil {
			bad("cluster.listen %q: want host:port", c.Cluster.Listen)
		}
	}
	if c.Faults.Enabled {
		if len(c.External.URLs) > 0 {
			bad("faults.enabled works only with the embedded engine (not with external_nats)")
		} else if c.Cluster.Listen == "" || len(c.Cluster.Routes) == 0 {
			bad("faults.enabled needs cluster.listen and routes: there is no link to break on a standalone node")
		}
	}
	for _, r := range c.Cluster.Routes {
		rt := faultnet.ParseRoute(r)
		if rt.Peer != "" && strings.ContainsAny(rt.Peer, " .*>:/") {
			bad("route %q: the name before '=' must be a data center name such as dc2", r)
		}
		if _, _, err := net.SplitHostPort(rt.Addr); err != nil {
			bad("route %q: want [NAME=]host:port", r)
		}
	}
	for _, dc := range c.Endpoints {
		if dc.Name == "" || !strings.HasPrefix(dc.BaseURL, "http") {
			bad("datacenters: entry %+v needs a name and an http(s) base_url", dc)
		}
	}
	if c.MaxUploadBytes < 1 {
		bad("max_upload_bytes must be positive")
	}
	if c.LoginPerMinute < 1 || c.LoginBurst < 1 {
		bad("login_per_minute and login_burst must be positive")
	}
	if d := c.RebalanceEvery.Std(); d < 0 || (d > 0 && d < time.Second) {
		bad("rebalance_every %s: want a duration of at least 1s (such as \"15s\"), or \"0\" to turn automatic rebalancing off", d)
	}
	if d := c.WriteTimeout.Std(); d < time.Second || d > 5*time.Minute {
		bad("write_timeout %s: want between 1s and 5m (leader elections take up to about 10 s)", d)
	}
	if d := c.PresenceTimeout.Std(); d < time.Second || d > 24*time.Hour {
		bad("presence_timeout %s: want between 1s and 24h", d)
	}
	if d := c.RefreshableTokenLifetime.Std(); d < time.Second || d > 30*24*time.Hour {
		bad("refreshable_token_lifetime %s: want between 1s and 720h", d)
	}
	if d := c.IncidentAfter.Std(); d < time.Second || d > time.Hour {
		bad("incident_after %s: want between 1s and 1h", d)
	}
	if d := c.NoticeAfter.Std(); d < time.Second || d > 30*24*time.Hour {
		bad("notice_after %s: want between 1s and 720h (the Korean rule is 2h)", d)
	}
	if c.NoticeLanguage != "ko" && c.NoticeLanguage != "en" {
		bad("notice_language %q: want \"ko\" or \"en\"", c.NoticeLanguage)
	}
	if err := c.Compensation.Validate(); err != nil {
		bad("compensation: %v", err)
	}
	if !planb.ValidLocalpart(c.ServerNoticesUser) {
		bad("server_notices_user %q: not a valid user name", c.ServerNoticesUser)
	}
	return errors.Join(errs...)
}

// Warnings returns advice about a valid configuration that an operator
// should know, e.g. an even number of data centers (a split into halves
// leaves no majority, so one more data center adds no safety).
func (c Config) Warnings() []string {
	var w []string
	if n := len(c.Cluster.Routes) + 1; len(c.External.URLs) == 0 && len(c.Cluster.Routes) > 0 && n%2 == 0 {
		w = append(w, fmt.Sprintf("the cluster has an even number of nodes (%d): a split into halves leaves neither side a majority; use an odd number of data centers", n))
	}
	if len(c.Endpoints) > 0 && len(c.Endpoints)%2 == 0 {
		w = append(w, fmt.Sprintf("%d data centers listed: an even count tolerates no more losses than one fewer would", len(c.Endpoints)))
	}
	if c.Replicas > 1 && len(c.Endpoints) > 0 && len(c.Endpoints) < c.Replicas {
		w = append(w, fmt.Sprintf("replicas %d but only %d data centers listed for clients: each replica must be in its own data center", c.Replicas, len(c.Endpoints)))
	}
	return w
}

// routes parses the configured routes.
func (c Config) routes() []faultnet.Route {
	out := make([]faultnet.Route, 0, len(c.Cluster.Routes))
	for _, r := range c.Cluster.Routes {
		out = append(out, faultnet.ParseRoute(r))
	}
	return out
}

// routeURLs turns route addresses into nats-route:// URLs.
func (c Config) routeURLs() []string {
	out := make([]string, 0, len(c.Cluster.Routes))
	for _, r := range c.routes() {
		out = append(out, "nats-route://"+r.Addr)
	}
	return out
}
