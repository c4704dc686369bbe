package homeserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/jetstream"
	"github.com/planb-chat/planb/projection"
)

// Pushers live in the replicated pushers bucket, one record per user, app
// ID and pushkey (<user>.<app_id>.<pushkey>, each part encoded), holding
// the device whose access token set it. A password change deletes the
// pushers of the user's other devices (unless logout_devices is false), as
// does the deletion of the device that set one. pushsend.go sends the
// notifications; this is the storage and the API.

// Bounds of a pusher (client-server API, POST /pushers/set).
const (
	maxAppIDChars    = 64
	maxPushkeyBytes  = 512
	maxPusherData    = 16 << 10
	pushGatewayPath  = "/_matrix/push/v1/notify"
	pusherKindHTTP   = "http"
	pusherKindEmail  = "email"
	maxPusherStrings = 512 // display names, language, profile tag
)

// pusher is the record of one pusher.
type pusher struct {
	Pusher
	// DeviceID is the device whose access token set the pusher.
	DeviceID  string `json:"device_id"`
	CreatedTS int64  `json:"created_ts"`
}

// Pusher is a pusher as GET /pushers shows it.
type Pusher struct {
	PushKey           string          `json:"pushkey"`
	Kind              string          `json:"kind"`
	AppID             string          `json:"app_id"`
	AppDisplayName    string          `json:"app_display_name"`
	DeviceDisplayName string          `json:"device_display_name"`
	ProfileTag        string          `json:"profile_tag,omitempty"`
	Lang              string          `json:"lang"`
	Data              json.RawMessage `json:"data"`
}

// pusherKey is the pushers-bucket key of one pusher.
func pusherKey(userID, appID, pushkey string) string {
	return jetstream.KeyPart(userID) + "." + jetstream.KeyPart(appID) + "." + jetstream.KeyPart(pushkey)
}

// Pushers returns the session user's pushers (GET /pushers), ordered by
// app ID and pushkey.
func (s *Service) Pushers(ctx context.Context, sess Session) ([]Pusher, error) {
	ps, err := s.pushersOf(ctx, sess.UserID)
	if err != nil {
		return nil, err
	}
	out := make([]Pusher, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.Pusher)
	}
	return out, nil
}

// pushersOf lists userID's pushers from the bucket.
func (s *Service) pushersOf(ctx context.Context, userID string) ([]pusher, error) {
	keys, err := s.engine.Keys(ctx, jetstream.BucketPushers, jetstream.KeyPart(userID)+".*.*")
	if err != nil {
		return nil, s.unavailable(err)
	}
	var out []pusher
	for _, k := range keys {
		e, err := s.engine.Get(ctx, jetstream.BucketPushers, k)
		if errors.Is(err, planb.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, s.unavailable(err)
		}
		var p pusher
		if err := json.Unmarshal(e.Value, &p); err != nil {
			return nil, fmt.Errorf("decode pusher %s: %w", k, err)
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].AppID != out[j].AppID {
			return out[i].AppID < out[j].AppID
		}
		return out[i].PushKey < out[j].PushKey
	})
	return out, nil
}

// deletePushers deletes userID's pushers for which drop is true.
func (s *Service) deletePushers(ctx context.Context, userID string, drop func(pusher) bool) error {
	ps, err := s.pushersOf(ctx, userID)
	if err != nil {
		return err
	}
	for _, p := range ps {
		if !drop(p) {
			continue
		}
		if err := s.engine.Delete(ctx, jetstream.BucketPushers, pusherKey(userID, p.AppID, p.PushKey)); err != nil {
			return s.unavailable(err)
		}
	}
	return nil
}

// setPusherRequest is the body of POST /pushers/set; kind is decoded apart
// because null (delete) differs from absent.
type setPusherRequest struct {
	AppID             *string         `json:"app_id"`
	PushKey           *string         `json:"pushkey"`
	AppDisplayName    *string         `json:"app_display_name"`
	DeviceDisplayName *string         `json:"device_display_name"`
	ProfileTag        string          `json:"profile_tag"`
	Lang              *string         `json:"lang"`
	Data              json.RawMessage `json:"data"`
	Append            bool            `json:"append"`
}

// SetPusher creates, replaces or (kind null) deletes one of the session
// user's pushers (POST /pushers/set). M_MISSING_PARAM for a missing field,
// M_INVALID_PARAM for a bad kind, URL or length, M_BAD_JSON for fields of
// the wrong type.
func (s *Service) SetPusher(ctx context.Context, sess Session, body json.RawMessage) error {
	var fields map[string]json.RawMessage
	var req setPusherRequest
	if json.Unmarshal(body, &fields) != nil || json.Unmarshal(body, &req) != nil {
		return planb.BadJSON("the pusher has fields of the wrong type")
	}
	if missing := missingFields(fields, "kind", "app_id", "pushkey"); missing != "" {
		return planb.MissingParam("missing parameters: %s", missing)
	}
	appID, pushkey := *req.AppID, *req.PushKey
	if err := checkPusherIDs(appID, pushkey); err != nil {
		return err
	}
	rawKind := fields["kind"]
	if string(bytes.TrimSpace(rawKind)) == "null" {
		key := pusherKey(sess.UserID, appID, pushkey)
		if _, err := s.engine.Get(ctx, jetstream.BucketPushers, key); errors.Is(err, planb.ErrNotFound) {
			return nil // nothing to delete
		}
		if err := s.engine.Delete(ctx, jetstream.BucketPushers, key); err != nil {
			return s.unavailable(err)
		}
		return nil
	}
	var kind string
	if json.Unmarshal(rawKind, &kind) != nil {
		return planb.BadJSON("kind must be a string or null")
	}
	if missing := missingFields(fields, "app_display_name", "device_display_name", "lang", "data"); missing != "" {
		return planb.MissingParam("missing parameters: %s", missing)
	}
	for _, f := range []string{*req.AppDisplayName, *req.DeviceDisplayName, *req.Lang, req.ProfileTag} {
		if len(f) > maxPusherStrings {
			return planb.InvalidParam("pusher fields are limited to %d bytes", maxPusherStrings)
		}
	}
	if len(req.Data) > maxPusherData {
		return planb.Errorf(planb.CodeTooLarge, http.StatusRequestEntityTooLarge, "data is larger than %d bytes", maxPusherData)
	}
	if err := checkPusherData(kind, req.Data); err != nil {
		return err
	}
	p := pusher{Pusher: Pusher{PushKey: pushkey, Kind: kind, AppID: appID, AppDisplayName: *req.AppDisplayName,
		DeviceDisplayName: *req.DeviceDisplayName, ProfileTag: req.ProfileTag, Lang: *req.Lang, Data: req.Data},
		DeviceID: sess.DeviceID, CreatedTS: time.Now().UnixMilli()}
	if !req.Append {
		// The spec: without append, other users' pushers with the same app
		// ID and pushkey go (the device changed hands).
		if err := s.deleteOthersPushers(ctx, sess.UserID, appID, pushkey); err != nil {
			return err
		}
	}
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encode pusher: %w", err)
	}
	if _, err := s.engine.Put(ctx, jetstream.BucketPushers, pusherKey(sess.UserID, appID, pushkey), b); err != nil {
		return s.unavailable(err)
	}
	return nil
}

// deleteOthersPushers deletes the pushers of users other than userID with
// appID and pushkey.
func (s *Service) deleteOthersPushers(ctx context.Context, userID, appID, pushkey string) error {
	keys, err := s.engine.Keys(ctx, jetstream.BucketPushers, "*."+jetstream.KeyPart(appID)+"."+jetstream.KeyPart(pushkey))
	if err != nil {
		return s.unavailable(err)
	}
	own := jetstream.KeyPart(userID) + "."
	for _, k := range keys {
		if strings.HasPrefix(k, own) {
			continue
		}
		if err := s.engine.Delete(ctx, jetstream.BucketPushers, k); err != nil {
			return s.unavailable(err)
		}
	}
	return nil
}

// missingFields returns the names of the fields absent from fields (or
// null), comma-separated.
func missingFields(fields map[string]json.RawMessage, names ...string) string {
	var missing []string
	for _, n := range names {
		v, ok := fields[n]
		if !ok || (n != "kind" && string(bytes.TrimSpace(v)) == "null") {
			missing = append(missing, n)
		}
	}
	return strings.Join(missing, ", ")
}

// checkPusherIDs checks the app ID and pushkey that identify a pusher.
func checkPusherIDs(appID, pushkey string) error {
	switch {
	case appID == "":
		return planb.InvalidParam("app_id is empty")
	case utf8.RuneCountInString(appID) > maxAppIDChars:
		return planb.InvalidParam("app_id is longer than %d characters", maxAppIDChars)
	case pushkey == "":
		return planb.InvalidParam("pushkey is empty")
	case len(pushkey) > maxPushkeyBytes:
		return planb.InvalidParam("pushkey is longer than %d bytes", maxPushkeyBytes)
	}
	return nil
}

// checkPusherData checks a pusher's kind and data: an http pusher needs a
// data.url that is an http(s) URL of a push gateway's notify endpoint.
func checkPusherData(kind string, data json.RawMessage) error {
	switch kind {
	case pusherKindHTTP:
	case pusherKindEmail:
		return planb.InvalidParam("email pushers are not supported: this server keeps no email addresses")
	default:
		return planb.InvalidParam("unknown pusher kind %q", kind)
	}
	var d map[string]json.RawMessage
	if json.Unmarshal(data, &d) != nil || d == nil {
		return planb.BadJSON("data must be an object")
	}
	rawURL, ok := d["url"]
	if !ok {
		return planb.MissingParam("data.url is required for http pushers")
	}
	var s string
	if json.Unmarshal(rawURL, &s) != nil {
		return planb.InvalidParam("data.url must be a string")
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return planb.InvalidParam("data.url must be an http or https URL")
	}
	if u.Path != pushGatewayPath {
		return planb.InvalidParam("data.url must have the path %s", pushGatewayPath)
	}
	if f, ok := d["format"]; ok {
		var format string
		if json.Unmarshal(f, &format) != nil {
			return planb.InvalidParam("data.format must be a string")
		}
	}
	return nil
}

// Notifications lists the session user's notifications (GET
// /notifications): from is a next_token of an earlier page, only
// "highlight" keeps the highlights.
func (s *Service) Notifications(sess Session, from string, limit int, only string) (*projection.NotificationsPage, error) {
	if err := s.readable(readHistory, "notifications"); err != nil {
		return nil, err
	}
	v, err := s.model.Notifications(sess.UserID, sess.DeviceID, from, limit, only == "highlight")
	return storeRead(s, v, err)
}
