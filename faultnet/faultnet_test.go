package faultnet

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

// echo serves a line-echo server on addr (a free port when empty) and
// returns its address.
func echo(t *testing.T, addr string) string {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

// roundTrip dials addr, sends a line and waits for it back.
func roundTrip(addr string) (time.Duration, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	start := time.Now()
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return 0, err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return 0, err
	}
	if strings.TrimSpace(line) != "ping" {
		return 0, io.ErrUnexpectedEOF
	}
	return time.Since(start), nil
}

func TestIsolateSlowHeal(t *testing.T) {
	peer := echo(t, "")
	listen := freeAddr(t)
	l, w, err := Start("dc1", listen, []Route{{Peer: "dc2", Addr: peer}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// The NATS server listens where the wiring says, behind the incoming
	// proxy; an echo server stands in for it.
	echo(t, w.ClusterListen)
	if _, err := roundTrip(listen); err != nil {
		t.Fatalf("incoming route through the proxy: %v", err)
	}
	out := strings.TrimPrefix(w.Routes[0], "nats-route://")
	if _, err := roundTrip(out); err != nil {
		t.Fatalf("route through the outgoing proxy: %v", err)
	}
	if c, err := net.Dial("tcp", w.Advertise); err == nil {
		buf := make([]byte, 1)
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Read(buf); err == nil {
			t.Fatal("the advertised sink must close every connection")
		}
		c.Close()
	}

	if err := l.Slow("dc2", 150*time.Millisecond, 0, time.Minute); err != nil {
		t.Fatal(err)
	}
	rtt, err := roundTrip(out)
	if err != nil || rtt < 250*time.Millisecond {
		t.Fatalf("slowed route: rtt %v err %v, want ≥ 300ms (150ms each way)", rtt, err)
	}
	if st := l.Status(); st.Slow["dc2"].LatencyMS != 150 || st.HealsAt == nil {
		t.Fatalf("status: %+v", st)
	}
	if err := l.Slow("dc9", time.Millisecond, 0, time.Minute); err == nil {
		t.Fatal("slowing a route to an unknown data center must fail")
	}

	if err := l.Isolate(time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := roundTrip(out); err == nil {
		t.Fatal("isolated: the outgoing route still works")
	}
	if _, err := roundTrip(listen); err == nil {
		t.Fatal("isolated: the incoming route still works")
	}
	if err := l.Heal(); err != nil {
		t.Fatal(err)
	}
	rtt, err = roundTrip(out)
	if err != nil || rtt > 100*time.Millisecond {
		t.Fatalf("healed route: rtt %v err %v", rtt, err)
	}
	if _, err := roundTrip(listen); err != nil {
		t.Fatalf("healed incoming route: %v", err)
	}
	if st := l.Status(); st.Isolated || len(st.Slow) > 0 || st.HealsAt != nil {
		t.Fatalf("status after heal: %+v", st)
	}

	// A cut stops the routes this node dials to the peer, not the ones the
	// peer dials (those pass through the peer's own proxy).
	if err := l.Cut("dc2", time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := roundTrip(out); err == nil {
		t.Fatal("cut: the outgoing route to dc2 still works")
	}
	if _, err := roundTrip(listen); err != nil {
		t.Fatalf("cut: the incoming route must still work: %v", err)
	}
	if st := l.Status(); len(st.Cut) != 1 || st.Cut[0] != "dc2" {
		t.Fatalf("status: %+v", st)
	}
	if err := l.Cut("dc9", time.Minute); err == nil {
		t.Fatal("cutting a route to an unknown data center must fail")
	}
	if err := l.Heal(); err != nil {
		t.Fatal(err)
	}
	if _, err := roundTrip(out); err != nil {
		t.Fatalf("healed cut: %v", err)
	}

	// A blackhole keeps a connection made before it open, but nothing
	// crosses it either way; healing lets new connections through.
	held, err := net.DialTimeout("tcp", out, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := l.Blackhole(time.Minute); err != nil {
		t.Fatal(err)
	}
	if !l.Status().Blackholed {
		t.Fatalf("status: %+v", l.Status())
	}
	if _, err := held.Write([]byte("held\n")); err != nil {
		t.Fatalf("write into the blackhole: %v", err)
	}
	r := bufio.NewReader(held)
	_ = held.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("blackholed: data came through")
	} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("blackholed: the connection must stay open, got %v", err)
	}
	if _, err := roundTrip(listen); err == nil {
		t.Fatal("blackholed: the incoming route still works")
	}
	if err := l.Heal(); err != nil {
		t.Fatal(err)
	}
	if _, err := roundTrip(out); err != nil {
		t.Fatalf("after healing the blackhole: %v", err)
	}
	if st := l.Status(); st.Blackholed {
		t.Fatalf("status after heal: %+v", st)
	}

	// A fault heals by itself after its duration, even if nobody asks.
	if err := l.Isolate(time.Second); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := roundTrip(out); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the fault did not heal by itself")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := l.Isolate(2 * MaxDuration); err == nil {
		t.Fatal("a fault longer than MaxDuration must be refused")
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestParseRoute(t *testing.T) {
	for in, want := range map[string]Route{
		"dc2=10.0.0.2:7422":              {Peer: "dc2", Addr: "10.0.0.2:7422"},
		"10.0.0.2:7422":                  {Addr: "10.0.0.2:7422"},
		"nats-route://10.0.0.2:7422":     {Addr: "10.0.0.2:7422"},
		"dc3=nats-route://10.0.0.3:7422": {Peer: "dc3", Addr: "10.0.0.3:7422"},
	} {
		if got := ParseRoute(in); got != want {
			t.Errorf("ParseRoute(%q) = %+v, want %+v", in, got, want)
		}
	}
}
