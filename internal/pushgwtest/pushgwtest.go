// Package pushgwtest is a real push gateway for tests: an HTTP server on
// loopback that speaks the Push Gateway API (POST /_matrix/push/v1/notify),
// records every notification it accepts, and can be told to reject
// pushkeys or to fail.
package pushgwtest

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// Notification is one received notification (the fields tests look at).
type Notification struct {
	EventID           string          `json:"event_id"`
	RoomID            string          `json:"room_id"`
	Type              string          `json:"type"`
	Sender            string          `json:"sender"`
	SenderDisplayName string          `json:"sender_display_name"`
	RoomName          string          `json:"room_name"`
	Prio              string          `json:"prio"`
	Content           json.RawMessage `json:"content"`
	Counts            struct {
		Unread int `json:"unread"`
	} `json:"counts"`
	Devices []struct {
		AppID   string          `json:"app_id"`
		PushKey string          `json:"pushkey"`
		Data    json.RawMessage `json:"data"`
		Tweaks  map[string]any  `json:"tweaks"`
	} `json:"devices"`
	// Received is when the gateway got it.
	Received time.Time `json:"-"`
}

// Gateway is a running test gateway.
type Gateway struct {
	// URL is the notify endpoint to put in a pusher's data.url.
	URL string

	mu       sync.Mutex
	got      []Notification
	reject   map[string]bool
	failures int // answer 500 to this many more requests
	hang     chan struct{}
	hung     int // requests held by Hang
	changed  chan struct{}
}

// Start runs a gateway on a free loopback port until the test ends.
func Start(t testing.TB) *Gateway {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("push gateway listen: %v", err)
	}
	g := &Gateway{URL: "http://" + ln.Addr().String() + "/_matrix/push/v1/notify", reject: map[string]bool{},
		changed: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /_matrix/push/v1/notify", g.notify)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		g.mu.Lock()
		if g.hang != nil {
			close(g.hang)
			g.hang = nil
		}
		g.mu.Unlock()
		_ = srv.Close()
	})
	return g
}

// Hang makes the gateway hold every request without answering.
func (g *Gateway) Hang() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.hang == nil {
		g.hang = make(chan struct{})
	}
}

// Hung returns how many requests the gateway has held.
func (g *Gateway) Hung() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.hung
}

func (g *Gateway) notify(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Notification Notification `json:"notification"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, `{"errcode":"M_NOT_JSON"}`, http.StatusBadRequest)
		return
	}
	g.mu.Lock()
	if hang := g.hang; hang != nil {
		g.hung++
		g.mu.Unlock()
		select { // hold the request until the test ends or the client gives up
		case <-hang:
		case <-r.Context().Done():
		}
		return
	}
	if g.failures > 0 {
		g.failures--
		g.mu.Unlock()
		http.Error(w, "try later", http.StatusInternalServerError)
		return
	}
	n := body.Notification
	n.Received = time.Now()
	rejected := []string{}
	for _, d := range n.Devices {
		if g.reject[d.PushKey] {
			rejected = append(rejected, d.PushKey)
		}
	}
	g.got = append(g.got, n)
	close(g.changed)
	g.changed = make(chan struct{})
	g.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"rejected": rejected})
}

// Reject makes the gateway answer that pushkey is rejected.
func (g *Gateway) Reject(pushkey string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.reject[pushkey] = true
}

// Fail makes the gateway answer 500 to its next n requests.
func (g *Gateway) Fail(n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.failures = n
}

// Received returns the notifications accepted so far, in arrival order.
func (g *Gateway) Received() []Notification {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]Notification(nil), g.got...)
}

// WaitFor waits until ok holds for the notifications received, or ctx
// ends; it returns them either way.
func (g *Gateway) WaitFor(ctx context.Context, ok func([]Notification) bool) ([]Notification, bool) {
	for {
		g.mu.Lock()
		got := append([]Notification(nil), g.got...)
		ch := g.changed
		g.mu.Unlock()
		if ok(got) {
			return got, true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return got, false
		}
	}
}

// ForEvent returns the notifications received for eventID.
func ForEvent(ns []Notification, eventID string) []Notification {
	var out []Notification
	for _, n := range ns {
		if n.EventID == eventID {
			out = append(out, n)
		}
	}
	return out
}
