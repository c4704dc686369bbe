package e2e

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// BenchmarkSendAndDeliver measures a standard client workload against one
// real planb process: `senders` clients send b.N messages in total into one
// room at once while a separate client follows /sync. It reports
// acknowledged sends per second and the delivery latency from the start of
// each send to its arrival in the receiver's /sync (p50, p99, max).
//
//	go test ./e2e -run '^$' -bench SendAndDeliver -benchtime 2000x
func BenchmarkSendAndDeliver(b *testing.B) {
	for _, senders := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("senders=%d", senders), func(b *testing.B) { benchSendAndDeliver(b, senders) })
	}
}

func benchSendAndDeliver(b *testing.B, senders int) {
	srv := startServer(b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	recv := newUser(b, srv, "receiver")
	room, err := recv.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	must(b, "create room", err)
	clients := make([]*mautrix.Client, senders)
	for i := range clients {
		clients[i] = newUser(b, srv, fmt.Sprintf("sender%d", i))
		_, err := clients[i].JoinRoomByID(ctx, room.RoomID)
		must(b, "join", err)
	}
	first, err := recv.SyncRequest(ctx, 0, "", "", false, "")
	must(b, "initial sync", err)

	var mu sync.Mutex
	sentAt := make(map[string]time.Time, b.N)
	arrived := make(map[string]time.Duration, b.N)
	done := make(chan struct{})
	go func() { // the receiver
		defer close(done)
		since := first.NextBatch
		for len(arrived) < b.N && ctx.Err() == nil {
			resp, err := recv.SyncRequest(ctx, 30000, since, `{"room":{"timeline":{"limit":1000}}}`, false, "")
			if err != nil {
				b.Errorf("receiver sync: %v", err)
				return
			}
			now := time.Now()
			since = resp.NextBatch
			if jr, ok := resp.Rooms.Join[room.RoomID]; ok {
				if jr.Timeline.Limited {
					b.Errorf("receiver timeline was limited; raise the filter's limit")
				}
				mu.Lock()
				for _, ev := range jr.Timeline.Events {
					if tag, _ := ev.Content.Raw["tag"].(string); tag != "" {
						if t0, ok := sentAt[tag]; ok {
							arrived[tag] = now.Sub(t0)
						}
					}
				}
				mu.Unlock()
			}
		}
	}()

	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	next := make(chan int)
	for _, c := range clients {
		wg.Add(1)
		go func(c *mautrix.Client) {
			defer wg.Done()
			for i := range next {
				tag := strconv.Itoa(i)
				mu.Lock()
				sentAt[tag] = time.Now()
				mu.Unlock()
				_, err := c.SendMessageEvent(ctx, room.RoomID, event.EventMessage,
					map[string]any{"msgtype": "m.text", "body": "benchmark message " + tag, "tag": tag},
					mautrix.ReqSendEvent{TransactionID: "bench-" + tag})
				if err != nil {
					b.Errorf("send %s: %v", tag, err)
				}
			}
		}(c)
	}
	for i := 0; i < b.N; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		b.Fatalf("receiver got %d of %d messages", len(arrived), b.N)
	}
	b.StopTimer()
	if len(arrived) != b.N {
		b.Fatalf("receiver got %d of %d messages", len(arrived), b.N)
	}
	lat := make([]time.Duration, 0, len(arrived))
	for _, d := range arrived {
		lat = append(lat, d)
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "sends/s")
	b.ReportMetric(pct(0.5), "deliver-p50-ms")
	b.ReportMetric(pct(0.99), "deliver-p99-ms")
	b.ReportMetric(pct(1), "deliver-max-ms")
	_ = id.RoomID("")
}
