// Package pushgateway speaks the Push Gateway API (POST
// /_matrix/push/v1/notify) as a homeserver: it builds a notification for
// one pusher and sends it, telling a gateway's rejection of the pushkey, a
// permanent refusal and a failure worth retrying apart.
package pushgateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"time"

	json "github.com/segmentio/encoding/json"
)

// Path is the notify endpoint every pusher's data.url must name.
const Path = "/_matrix/push/v1/notify"

// FormatEventIDOnly is the data.format that keeps content out of pushes.
const FormatEventIDOnly = "event_id_only"

// Notification is the body of a notify request ("notification").
type Notification struct {
	EventID           string          `json:"event_id,omitempty"`
	RoomID            string          `json:"room_id,omitempty"`
	Type              string          `json:"type,omitempty"`
	Sender            string          `json:"sender,omitempty"`
	SenderDisplayName string          `json:"sender_display_name,omitempty"`
	RoomName          string          `json:"room_name,omitempty"`
	UserIsTarget      bool            `json:"user_is_target,omitempty"`
	Prio              string          `json:"prio,omitempty"`
	Content           json.RawMessage `json:"content,omitempty"`
	Counts            Counts          `json:"counts"`
	Devices           []Device        `json:"devices"`
}

// Counts are the user's unread counts.
type Counts struct {
	Unread      int `json:"unread"`
	MissedCalls int `json:"missed_calls,omitempty"`
}

// Device is the pusher a notification is for.
type Device struct {
	AppID     string `json:"app_id"`
	PushKey   string `json:"pushkey"`
	PushKeyTS int64  `json:"pushkey_ts,omitempty"`
	// Data is the pusher's data without url.
	Data   json.RawMessage `json:"data,omitempty"`
	Tweaks map[string]any  `json:"tweaks,omitempty"`
}

// Pusher is what sending needs of an http pusher: its data as set by the
// client (with url and maybe format).
type Pusher struct {
	AppID, PushKey string
	// SetAt is when the pushkey was set.
	SetAt time.Time
	Data  json.RawMessage
}

// Prepared is a pusher ready to be sent to: what its data says, read
// once.
type Prepared struct {
	// Gateway is the notify URL; Format the data.format ("" for the full
	// notification).
	Gateway, Format string
	// Host is the gateway's host:port, for limits per gateway. It never
	// includes credentials, so it can be logged.
	Host   string
	device Device
}

// Prepare reads the pusher's data: an http(s) data.url, and data.format.
func (p Pusher) Prepare() (*Prepared, error) {
	var d struct {
		URL    string `json:"url"`
		Format string `json:"format"`
	}
	if err := json.Unmarshal(p.Data, &d); err != nil {
		return nil, fmt.Errorf("pusher data: %w", err)
	}
	u, err := url.Parse(d.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("pusher data.url is not an http(s) URL")
	}
	pr := &Prepared{Gateway: d.URL, Format: d.Format, Host: u.Host, device: Device{AppID: p.AppID, PushKey: p.PushKey}}
	if !p.SetAt.IsZero() {
		pr.device.PushKeyTS = p.SetAt.Unix()
	}
	var data map[string]json.RawMessage
	if json.Unmarshal(p.Data, &data) == nil {
		delete(data, "url")
		if len(data) > 0 {
			pr.device.Data, _ = json.Marshal(data) // re-encoding decoded JSON cannot fail
		}
	}
	return pr, nil
}

// Device returns the device entry of the pusher with the given tweaks.
func (p *Prepared) Device(tweaks map[string]any) Device {
	d := p.device
	d.Tweaks = tweaks
	return d
}

// Shape returns n as the pusher's format wants it: with format
// event_id_only only the event and room IDs, the counts and the devices
// (and the priority) stay.
func Shape(n Notification, format string) Notification {
	if format != FormatEventIDOnly {
		return n
	}
	return Notification{EventID: n.EventID, RoomID: n.RoomID, Prio: n.Prio, Counts: n.Counts, Devices: n.Devices}
}

// notifyBody is the request body.
type notifyBody struct {
	Notification Notification `json:"notification"`
}

// ErrPermanent wraps a gateway's refusal that retrying cannot change (a
// 4xx other than 429).
var ErrPermanent = errors.New("the push gateway refused the notification")

// Client sends notifications.
type Client struct {
	HTTP *http.Client
}

// maxResponse bounds what is read of a gateway's answer.
const maxResponse = 64 << 10

// Notify posts n to gateway and returns the pushkeys the gateway rejected
// (their pushers should be removed). An error wrapping ErrPermanent means
// the gateway refused this notification for good; any other error is worth
// retrying (network failure, timeout, 5xx, 429).
func (c *Client) Notify(ctx context.Context, gateway string, n Notification) (rejected []string, err error) {
	body, err := json.Marshal(notifyBody{n})
	if err != nil {
		return nil, fmt.Errorf("encode notification: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, gateway, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%w: bad gateway URL", ErrPermanent)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL may carry credentials: keep it out of logs
		}
		return nil, fmt.Errorf("post to push gateway: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, fmt.Errorf("read push gateway answer: %w", err)
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return nil, fmt.Errorf("push gateway answered %d", resp.StatusCode)
	case resp.StatusCode >= 400:
		return nil, fmt.Errorf("%w: HTTP %d", ErrPermanent, resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("push gateway answered %d", resp.StatusCode)
	}
	var ans struct {
		Rejected []string `json:"rejected"`
	}
	if len(bytes.TrimSpace(b)) > 0 && json.Unmarshal(b, &ans) != nil {
		return nil, fmt.Errorf("push gateway answered with something that is not JSON")
	}
	for _, d := range n.Devices {
		if slices.Contains(ans.Rejected, d.PushKey) {
			rejected = append(rejected, d.PushKey)
		}
	}
	return rejected, nil
}
