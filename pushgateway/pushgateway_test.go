package pushgateway

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestDeviceAndShape(t *testing.T) {
	p := Pusher{AppID: "a", PushKey: "k", SetAt: time.Unix(1700000000, 0),
		Data: json.RawMessage(`{"url":"https://user:secret@gw.example/_matrix/push/v1/notify","format":"event_id_only","x":1}`)}
	pr, err := p.Prepare()
	if err != nil || pr.Format != FormatEventIDOnly || !strings.HasPrefix(pr.Gateway, "https://") {
		t.Fatalf("Prepare = %+v %v", pr, err)
	}
	if pr.Host != "gw.example" {
		t.Errorf("Host = %q, want gw.example (no credentials)", pr.Host)
	}
	d := pr.Device(map[string]any{"sound": "default"})
	if d.PushKeyTS != 1700000000 || strings.Contains(string(d.Data), "url") || !strings.Contains(string(d.Data), `"format"`) || d.Tweaks["sound"] != "default" {
		t.Errorf("Device = %+v data %s", d, d.Data)
	}
	n := Notification{EventID: "$e", RoomID: "!r", Type: "m.room.message", Sender: "@a:b", Content: json.RawMessage(`{"body":"secret"}`),
		Prio: "high", Counts: Counts{Unread: 2}, Devices: []Device{d}}
	s := Shape(n, FormatEventIDOnly)
	if s.Sender != "" || s.Content != nil || s.Type != "" || s.EventID != "$e" || s.RoomID != "!r" || s.Counts.Unread != 2 || len(s.Devices) != 1 {
		t.Errorf("event_id_only shape = %+v", s)
	}
	if full := Shape(n, ""); full.Sender != "@a:b" || full.Content == nil {
		t.Errorf("full shape lost fields: %+v", full)
	}
	for _, bad := range []string{`{"url":"ftp://x/_matrix/push/v1/notify"}`, `{"url":"/relative"}`, `[]`} {
		if _, err := (Pusher{Data: json.RawMessage(bad)}).Prepare(); err == nil {
			t.Errorf("Prepare(%s) accepted", bad)
		}
	}
}

func TestNotifyAnswers(t *testing.T) {
	status, answer := 200, `{"rejected":["k2","other"]}`
	var got map[string]Notification
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = nil
		_ = json.NewDecoder(r.Body).Decode(&got)
		w.WriteHeader(status)
		_, _ = w.Write([]byte(answer))
	}))
	defer srv.Close()
	c := &Client{HTTP: srv.Client()}
	n := Notification{EventID: "$e", Devices: []Device{{AppID: "a", PushKey: "k1"}, {AppID: "a", PushKey: "k2"}}}
	rejected, err := c.Notify(t.Context(), srv.URL+Path, n)
	if err != nil || len(rejected) != 1 || rejected[0] != "k2" {
		t.Errorf("rejected = %v, %v; want [k2] (pushkeys not sent are ignored)", rejected, err)
	}
	if got["notification"].EventID != "$e" {
		t.Errorf("the gateway received %+v", got)
	}
	for _, tc := range []struct {
		status    int
		answer    string
		permanent bool
	}{{500, "", false}, {503, "", false}, {429, "", false}, {400, "", true}, {404, "", true}, {200, "not json", false}} {
		status, answer = tc.status, tc.answer
		_, err := c.Notify(t.Context(), srv.URL+Path, n)
		if err == nil || errors.Is(err, ErrPermanent) != tc.permanent {
			t.Errorf("HTTP %d %q: err %v, permanent want %v", tc.status, tc.answer, err, tc.permanent)
		}
	}
	status, answer = 200, ""
	if _, err := c.Notify(t.Context(), srv.URL+Path, n); err != nil {
		t.Errorf("an empty 200 answer: %v", err)
	}
	srv.Close()
	if _, err := c.Notify(t.Context(), "http://user:pw@"+strings.TrimPrefix(srv.URL, "http://")+Path, n); err == nil ||
		errors.Is(err, ErrPermanent) || strings.Contains(err.Error(), "pw") {
		t.Errorf("a closed gateway: %v (want a retryable error without the URL's credentials)", err)
	}
}
