// Package faultnet lets an operator's drill break the network of one node
// on purpose: when a node's fault endpoint is enabled, every route between
// its NATS server and the other nodes passes through in-process toxiproxy
// proxies that the admin API can cut (isolate) or slow down, always with a
// time limit after which the node heals by itself.
//
// Each route connection passes through exactly one outgoing proxy (that of
// the node that dialled it) and one incoming proxy (that of the node that
// accepted it). Cutting a node's incoming proxy and all its outgoing ones
// therefore cuts it off completely. Slowing the outgoing proxies of both
// ends of a link slows every connection of that link, whichever end dialled.
//
// Route gossip would let servers dial each other around the proxies, so a
// node with faults enabled advertises a sink address that refuses every
// route: every node must list every other node in its routes.
package faultnet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/planb-chat/planb"
)

// Route is a route to another node: the peer's data center name (optional,
// needed to slow one link) and its cluster address.
type Route struct {
	Peer string
	Addr string
}

// MaxDuration bounds how long a fault may be held.
const MaxDuration = time.Hour

// Links holds one node's route proxies.
type Links struct {
	log  *slog.Logger
	node string
	in   *toxiproxy.Proxy
	out  []outLink
	sink net.Listener

	mu      sync.Mutex
	state   State
	healAt  *time.Timer
	stopped bool
}

type outLink struct {
	peer  string
	proxy *toxiproxy.Proxy
}

// State is what the fault endpoint reports.
type State struct {
	Enabled  bool   `json:"enabled"`
	Node     string `json:"node"`
	Isolated bool   `json:"isolated"`
	// Blackholed: every route stays connected but carries nothing.
	Blackholed bool `json:"blackholed"`
	// Cut lists the data centers this node's own routes to are cut.
	Cut     []string            `json:"cut,omitempty"`
	Slow    map[string]Slowness `json:"slow,omitempty"`
	HealsAt *time.Time          `json:"heals_at,omitempty"`
	Links   []LinkState         `json:"links"`
}

// Slowness is the latency added to a link, each way.
type Slowness struct {
	LatencyMS int `json:"latency_ms"`
	JitterMS  int `json:"jitter_ms"`
}

// LinkState is one proxy.
type LinkState struct {
	Name     string `json:"name"`
	Listen   string `json:"listen"`
	Upstream string `json:"upstream"`
	Enabled  bool   `json:"enabled"`
}

// Wiring is how the node's NATS server must be configured to use the
// proxies.
type Wiring struct {
	// ClusterListen is where the NATS server listens for routes (loopback,
	// behind the incoming proxy).
	ClusterListen string
	// Routes are the URLs the NATS server dials (the outgoing proxies).
	Routes []string
	// Advertise is the sink address the NATS server advertises, so gossip
	// never creates routes around the proxies.
	Advertise string
}

// Start starts the proxies: the incoming one on listen (the node's public
// cluster address), one outgoing proxy per route on loopback.
func Start(node, listen string, routes []Route, log *slog.Logger) (*Links, Wiring, error) {
	zl := zerolog.New(io.Discard)
	api := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zl)
	l := &Links{log: log, node: node}
	inner, err := freeLoopback()
	if err != nil {
		return nil, Wiring{}, err
	}
	l.in = toxiproxy.NewProxy(api, "in", listen, inner)
	if err := l.in.Start(); err != nil {
		return nil, Wiring{}, fmt.Errorf("fault proxy for incoming routes on %s: %w", listen, err)
	}
	w := Wiring{ClusterListen: inner}
	for i, r := range routes {
		p := toxiproxy.NewProxy(api, fmt.Sprintf("to-%d-%s", i, r.Peer), "127.0.0.1:0", r.Addr)
		if err := p.Start(); err != nil {
			l.Close()
			return nil, Wiring{}, fmt.Errorf("fault proxy for the route to %s: %w", r.Addr, err)
		}
		l.out = append(l.out, outLink{peer: r.Peer, proxy: p})
		w.Routes = append(w.Routes, "nats-route://"+p.Listen)
	}
	if l.sink, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		l.Close()
		return nil, Wiring{}, fmt.Errorf("route sink: %w", err)
	}
	go refuse(l.sink)
	w.Advertise = l.sink.Addr().String()
	return l, w, nil
}

// refuse closes every connection the sink accepts.
func refuse(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

func freeLoopback() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free loopback port: %w", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr, nil
}

func checkDuration(d time.Duration) error {
	if d <= 0 || d > MaxDuration {
		return planb.InvalidParam("duration_seconds must be 1..%d", int(MaxDuration.Seconds()))
	}
	return nil
}

// Isolate cuts every route of this node, in both directions, for d.
func (l *Links) Isolate(d time.Duration) error {
	if err := checkDuration(d); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.in.Stop()
	for _, o := range l.out {
		o.proxy.Stop()
	}
	l.state.Isolated = true
	l.armLocked(d)
	l.log.Warn("fault injected: this node is cut off from every other node", "heals_in", d)
	return nil
}

// Cut stops this node's outgoing routes to the data center peer for d.
// Connections the peer dialled to this node pass through the peer's
// outgoing proxy, so cutting the link between two nodes takes a Cut at
// both ends (the drill's bridge-partition does).
func (l *Links) Cut(peer string, d time.Duration) error {
	if err := checkDuration(d); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	links, err := l.linksToLocked(peer)
	if err != nil {
		return err
	}
	for _, o := range links {
		o.proxy.Stop()
	}
	if !slices.Contains(l.state.Cut, peer) {
		l.state.Cut = append(l.state.Cut, peer)
	}
	l.armLocked(d)
	l.log.Warn("fault injected: the routes this node dials to a peer are cut", "peer", peer, "heals_in", d)
	return nil
}

// linksToLocked returns the outgoing links to the data center peer.
func (l *Links) linksToLocked(peer string) ([]outLink, error) {
	var links []outLink
	var names []string
	for _, o := range l.out {
		names = append(names, o.peer)
		if o.peer == peer {
			links = append(links, o)
		}
	}
	if len(links) == 0 {
		return nil, planb.InvalidParam("no route to a data center called %q; routes are named %q (name routes NAME=host:port)", peer, names)
	}
	return links, nil
}

// blackholeToxic holds every byte without closing the connection, as a
// firewall that drops packets or a dead fibre does (no reset): the peers
// notice only when their pings go unanswered.
const blackholeToxic = "blackhole"

// Blackhole makes every route of this node, both ways, carry nothing for
// d, while the connections stay open. Healing closes the held connections
// (toxiproxy's timeout toxic does), and NATS dials its routes again.
func (l *Links) Blackhole(d time.Duration) error {
	if err := checkDuration(d); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.proxiesLocked() {
		for _, dir := range []string{"upstream", "downstream"} {
			name := blackholeToxic + "-" + dir
			_ = p.Toxics.RemoveToxic(context.Background(), name)
			spec, _ := json.Marshal(map[string]any{"name": name, "type": "timeout", "stream": dir, "toxicity": 1,
				"attributes": map[string]int{"timeout": 0}})
			if _, err := p.Toxics.AddToxicJson(bytes.NewReader(spec)); err != nil {
				return fmt.Errorf("blackhole %s: %w", p.Name, err)
			}
		}
	}
	l.state.Blackholed = true
	l.armLocked(d)
	l.log.Warn("fault injected: every route of this node carries nothing (connections stay open)", "heals_in", d)
	return nil
}

// proxiesLocked returns the incoming proxy and every outgoing one.
func (l *Links) proxiesLocked() []*toxiproxy.Proxy {
	all := []*toxiproxy.Proxy{l.in}
	for _, o := range l.out {
		all = append(all, o.proxy)
	}
	return all
}

// Slow adds latency (with jitter) each way to this node's routes to the
// data center peer, for d.
func (l *Links) Slow(peer string, latency, jitter, d time.Duration) error {
	if err := checkDuration(d); err != nil {
		return err
	}
	if latency <= 0 || latency > 10*time.Second || jitter < 0 || jitter > latency {
		return planb.InvalidParam("latency_ms must be 1..10000 and jitter_ms 0..latency_ms")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	links, err := l.linksToLocked(peer)
	if err != nil {
		return err
	}
	for _, o := range links {
		for _, dir := range []string{"upstream", "downstream"} {
			name := "slow-" + dir
			_ = o.proxy.Toxics.RemoveToxic(context.Background(), name)
			spec, _ := json.Marshal(map[string]any{"name": name, "type": "latency", "stream": dir, "toxicity": 1,
				"attributes": map[string]int{"latency": int(latency.Milliseconds()), "jitter": int(jitter.Milliseconds())}})
			if _, err := o.proxy.Toxics.AddToxicJson(bytes.NewReader(spec)); err != nil {
				return fmt.Errorf("slow the route to %s: %w", peer, err)
			}
		}
	}
	if l.state.Slow == nil {
		l.state.Slow = map[string]Slowness{}
	}
	l.state.Slow[peer] = Slowness{LatencyMS: int(latency.Milliseconds()), JitterMS: int(jitter.Milliseconds())}
	l.armLocked(d)
	l.log.Warn("fault injected: routes slowed", "peer", peer, "latency", latency, "jitter", jitter, "heals_in", d)
	return nil
}

// armLocked (re)starts the timer after which the node heals by itself.
func (l *Links) armLocked(d time.Duration) {
	if l.healAt != nil {
		l.healAt.Stop()
	}
	at := time.Now().Add(d).UTC()
	l.state.HealsAt = &at
	l.healAt = time.AfterFunc(d, func() {
		l.log.Warn("fault time limit reached: healing by itself")
		if err := l.Heal(); err != nil {
			l.log.Error("heal after the time limit", "err", err)
		}
	})
}

// Heal removes every fault: routes open again, latency removed.
func (l *Links) Heal() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return nil
	}
	if l.healAt != nil {
		l.healAt.Stop()
		l.healAt = nil
	}
	var errs []error
	for _, p := range l.proxiesLocked() {
		for _, dir := range []string{"upstream", "downstream"} {
			for _, name := range []string{"slow-" + dir, blackholeToxic + "-" + dir} {
				if p.Toxics.GetToxic(name) != nil {
					if err := p.Toxics.RemoveToxic(context.Background(), name); err != nil {
						errs = append(errs, err)
					}
				}
			}
		}
	}
	for _, o := range l.out {
		if err := o.proxy.Start(); err != nil && !errors.Is(err, toxiproxy.ErrProxyAlreadyStarted) {
			errs = append(errs, fmt.Errorf("reopen route to %s: %w", o.proxy.Upstream, err))
		}
	}
	if err := l.in.Start(); err != nil && !errors.Is(err, toxiproxy.ErrProxyAlreadyStarted) {
		errs = append(errs, fmt.Errorf("reopen incoming routes on %s: %w", l.in.Listen, err))
	}
	was := l.state.Isolated || l.state.Blackholed || len(l.state.Cut) > 0 || len(l.state.Slow) > 0
	l.state = State{}
	if was {
		l.log.Warn("faults healed")
	}
	return errors.Join(errs...)
}

// Status reports the current faults and every proxy.
func (l *Links) Status() State {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.state
	st.Enabled, st.Node = true, l.node
	st.Cut = slices.Clone(l.state.Cut)
	st.Slow = map[string]Slowness{}
	for k, v := range l.state.Slow {
		st.Slow[k] = v
	}
	for _, p := range l.proxiesLocked() {
		st.Links = append(st.Links, LinkState{Name: p.Name, Listen: p.Listen, Upstream: p.Upstream, Enabled: p.Enabled})
	}
	sort.Slice(st.Links, func(i, j int) bool { return st.Links[i].Name < st.Links[j].Name })
	return st
}

// Close stops every proxy for good.
func (l *Links) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopped = true
	if l.healAt != nil {
		l.healAt.Stop()
	}
	if l.in != nil {
		l.in.Stop()
	}
	for _, o := range l.out {
		o.proxy.Stop()
	}
	if l.sink != nil {
		l.sink.Close()
	}
}

// ParseRoute reads "NAME=host:port" or "host:port" (or a nats-route://
// URL in either form).
func ParseRoute(s string) Route {
	name, addr, ok := strings.Cut(s, "=")
	if !ok {
		name, addr = "", s
	}
	addr = strings.TrimPrefix(strings.TrimPrefix(addr, "nats-route://"), "nats://")
	return Route{Peer: name, Addr: addr}
}
