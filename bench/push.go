package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"time"
)

// The bench's push gateway: with --pushers every receiver registers an
// http pusher pointing at a Push Gateway API server inside the bench
// process, which records when each bench message's notification arrives,
// so that the report has the latency from the start of a send to the
// gateway's POST.

// pushGateway is the bench's gateway server.
type pushGateway struct {
	url string
	srv *http.Server
}

// startPushGateway listens on listen (host:port; port 0 picks one) and
// calls got with the bench tag of every notification received.
func startPushGateway(listen string, got func(tag string, at time.Time)) (*pushGateway, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("push gateway: listen on %s: %w", listen, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /_matrix/push/v1/notify", func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		var body struct {
			Notification struct {
				Content struct {
					Tag string `json:"org.planb.bench"`
				} `json:"content"`
			} `json:"notification"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, `{"errcode":"M_NOT_JSON"}`, http.StatusBadRequest)
			return
		}
		if t := body.Notification.Content.Tag; t != "" {
			got(t, now)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"rejected":[]}`))
	})
	g := &pushGateway{url: "http://" + ln.Addr().String() + "/_matrix/push/v1/notify",
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	go func() { _ = g.srv.Serve(ln) }()
	return g, nil
}

func (g *pushGateway) close() { _ = g.srv.Close() }

// setPushers registers a pusher for every receiver.
func (w *workload) setPushers(ctx context.Context, gatewayURL string) error {
	for i, u := range w.receivers {
		body := fmt.Appendf(nil, `{"kind":"http","app_id":"org.planb.bench","pushkey":"bench-%s-%d","app_display_name":"planb bench",`+
			`"device_display_name":"bench","lang":"en","data":{"url":%q}}`, w.run, i, gatewayURL)
		if err := call(ctx, w.hc, http.MethodPost, w.dcs[u.dc].URL+"/_matrix/client/v3/pushers/set", u.token, body, nil); err != nil {
			return fmt.Errorf("set the pusher of receiver %s: %w", u.id, err)
		}
	}
	return nil
}

// pushed records a notification of the send tagged tag.
func (w *workload) pushed(tag string, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if rec := w.sends[tag]; rec != nil {
		rec.pushes = append(rec.pushes, at.Sub(rec.start))
	}
}
