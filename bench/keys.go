package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// KeysReport is the end-to-end encryption measurement: one-time-key
// claims and to-device delivery, each across data centers.
type KeysReport struct {
	// Claim is POST /keys/claim at one data center for a device whose keys
	// were uploaded at another, one claim at a time.
	Claim Latency `json:"claim"`
	// ToDevice is from PUT /sendToDevice at one data center until the
	// receiving device's /sync long-poll at another returns the message,
	// one message at a time.
	ToDevice Latency `json:"to_device"`
}

// keysPhase measures n claims and n to-device deliveries. The owner of
// the keys and the receiver are at the first data center; claims and sends
// go to the others in turn (to the first when there is only one).
func keysPhase(ctx context.Context, target Target, run string, n int, say func(string, ...any)) (*KeysReport, error) {
	hc := &http.Client{Transport: newTransport(16, nil)}
	defer hc.CloseIdleConnections()
	reg := newRegistrar(run, target.DataCenters)
	defer reg.close()
	owner, err := reg.register(ctx, "keys", 0, 0, hc)
	if err != nil {
		return nil, err
	}
	var others []*user
	for i := range max(len(target.DataCenters)-1, 1) {
		dc := min(i+1, len(target.DataCenters)-1)
		u, err := reg.register(ctx, "keys", i+1, dc, hc)
		if err != nil {
			return nil, err
		}
		others = append(others, u)
	}
	base := func(u *user) string { return target.DataCenters[u.dc].URL + "/_matrix/client/v3" }
	var who struct {
		DeviceID string `json:"device_id"`
	}
	if err := call(ctx, hc, "GET", base(owner)+"/account/whoami", owner.token, nil, &who); err != nil {
		return nil, fmt.Errorf("whoami: %w", err)
	}
	// Upload n one-time keys, at most 500 per request.
	for i := 0; i < n; {
		otks := map[string]any{}
		for ; i < n && len(otks) < 500; i++ {
			otks["signed_curve25519:k"+strconv.Itoa(i)] = map[string]any{"key": "k" + strconv.Itoa(i),
				"signatures": map[string]any{string(owner.id): map[string]string{"ed25519:" + who.DeviceID: "sig"}}}
		}
		body, _ := json.Marshal(map[string]any{"one_time_keys": otks})
		if err := call(ctx, hc, "POST", base(owner)+"/keys/upload", owner.token, body, nil); err != nil {
			return nil, fmt.Errorf("upload one-time keys: %w", err)
		}
	}
	rep := &KeysReport{}
	claims := make([]time.Duration, 0, n)
	claim, _ := json.Marshal(map[string]any{"one_time_keys": map[string]any{string(owner.id): map[string]string{who.DeviceID: "signed_curve25519"}}})
	for i := range n {
		u := others[i%len(others)]
		start := time.Now()
		var got struct {
			Keys map[string]map[string]map[string]json.RawMessage `json:"one_time_keys"`
		}
		if err := call(ctx, hc, "POST", base(u)+"/keys/claim", u.token, claim, &got); err != nil {
			return nil, fmt.Errorf("claim: %w", err)
		}
		if len(got.Keys[string(owner.id)][who.DeviceID]) != 1 {
			return nil, fmt.Errorf("claim %d of %d: no key handed out", i+1, n)
		}
		claims = append(claims, time.Since(start))
		if i%50 == 0 {
			say("e2ee: %d of %d key claims", i, n)
		}
	}
	rep.Claim = summarize(claims)

	// To-device: the owner's device long-polls; each message goes out only
	// after the previous one arrived.
	var first struct {
		Next string `json:"next_batch"`
	}
	if err := call(ctx, hc, "GET", base(owner)+"/sync?timeout=0", owner.token, nil, &first); err != nil {
		return nil, fmt.Errorf("first sync: %w", err)
	}
	since := first.Next
	deliveries := make([]time.Duration, 0, n)
	for i := range n {
		u := others[i%len(others)]
		body, _ := json.Marshal(map[string]any{"messages": map[string]any{string(owner.id): map[string]any{who.DeviceID: map[string]int{"n": i}}}})
		sent := make(chan error, 1)
		start := time.Now()
		go func() {
			sent <- call(ctx, hc, "PUT", base(u)+"/sendToDevice/org.planb.bench/"+run+strconv.Itoa(i), u.token, body, nil)
		}()
		for arrived := false; !arrived; {
			var s struct {
				Next     string `json:"next_batch"`
				ToDevice struct {
					Events []struct {
						Content struct {
							N int `json:"n"`
						} `json:"content"`
					} `json:"events"`
				} `json:"to_device"`
			}
			if err := call(ctx, hc, "GET", base(owner)+"/sync?timeout=30000&since="+url.QueryEscape(since), owner.token, nil, &s); err != nil {
				return nil, fmt.Errorf("sync: %w", err)
			}
			since = s.Next
			for _, e := range s.ToDevice.Events {
				arrived = arrived || e.Content.N == i
			}
		}
		deliveries = append(deliveries, time.Since(start))
		if err := <-sent; err != nil {
			return nil, fmt.Errorf("send to device: %w", err)
		}
		if i%50 == 0 {
			say("e2ee: %d of %d to-device messages", i, n)
		}
	}
	rep.ToDevice = summarize(deliveries)
	return rep, nil
}
