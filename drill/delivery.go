package drill

import (
	"context"
	"slices"
	"sync"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// sentField carries the send time (Unix microseconds, from the drill's own
// clock) in every drill message, so a receiver can tell how long delivery
// took. Microseconds stay inside the integer range of canonical JSON.
const sentField = "org.planb.drill.sent_us"

// Latency summarises delivery latencies of one phase, in milliseconds.
type Latency struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

// delivery is a sample: when the message was sent and how long it took to
// reach another user's /sync.
type delivery struct {
	sent time.Time
	took time.Duration
}

// receivers follow /sync for a few of the drill's users (each through its
// failover client, starting at its own data center) and record the delivery
// latency of every message another drill user sent.
type receivers struct {
	mu      sync.Mutex
	samples []delivery
	// reads is, per receiver, the drill messages of each room in the
	// order its /sync returned them (for CheckReads).
	reads []map[string][]string
	wg    sync.WaitGroup
}

func (w *workload) follow(ctx context.Context, n int) *receivers {
	r := &receivers{}
	filter := `{"room":{"timeline":{"limit":500},"state":{"lazy_load_members":true}},"presence":{"not_types":["*"]},"account_data":{"not_types":["*"]}}`
	for i := 0; i < n && i < len(w.clients); i++ {
		cli, self := w.clients[i], w.users[i]
		r.reads = append(r.reads, map[string][]string{})
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			since := ""
			for ctx.Err() == nil {
				resp, err := cli.SyncRequest(ctx, 5000, since, filter, false, "")
				if err != nil {
					_ = sleep(ctx, 500*time.Millisecond)
					continue
				}
				now := time.Now()
				if since != "" { // the first sync only gives the starting point
					r.record(now, i, self, resp)
				}
				since = resp.NextBatch
			}
		}()
	}
	return r
}

func (r *receivers) record(now time.Time, who int, self id.UserID, resp *mautrix.RespSync) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for roomID, room := range resp.Rooms.Join {
		for _, ev := range room.Timeline.Events {
			if ev.Type != event.EventMessage {
				continue
			}
			if _, drill := ev.Content.Raw["org.planb.drill"].(string); drill {
				r.reads[who][string(roomID)] = append(r.reads[who][string(roomID)], string(ev.ID))
			}
			if ev.Sender == self {
				continue
			}
			us, ok := ev.Content.Raw[sentField].(float64)
			if !ok {
				continue
			}
			sent := time.UnixMicro(int64(us))
			r.samples = append(r.samples, delivery{sent: sent, took: now.Sub(sent)})
		}
	}
}

// history returns what each receiver read (see reads).
func (r *receivers) history() []map[string][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reads
}

// phases splits the samples by the phase the message was sent in.
func (r *receivers) phases(fault, healed time.Time) map[string]Latency {
	r.mu.Lock()
	defer r.mu.Unlock()
	by := map[string][]time.Duration{}
	for _, s := range r.samples {
		p := "after"
		switch {
		case s.sent.Before(fault):
			p = "before"
		case s.sent.Before(healed):
			p = "during"
		}
		by[p] = append(by[p], s.took)
	}
	out := map[string]Latency{}
	for p, ds := range by {
		out[p] = summarize(ds)
	}
	return out
}

func summarize(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	slices.Sort(ds)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	at := func(q float64) time.Duration { return ds[min(len(ds)-1, int(q*float64(len(ds))))] }
	return Latency{Count: len(ds), P50: ms(at(0.50)), P99: ms(at(0.99)), Max: ms(ds[len(ds)-1])}
}
