package homeserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/jetstream"
	"github.com/planb-chat/planb/projection"
)

// To-device messages (PUT /sendToDevice, /sync to_device). Each message is
// committed to the replicated TODEVICE stream, on the receiving device's
// own subject, before the sender hears "ok": a data center's loss loses
// none. A device's sync reads its messages above its since token in stream
// order and returns the last one's sequence in next_batch; its next sync,
// on whichever node, purges what that token shows it received. So a device
// that moves to another data center gets each message exactly once.
//
// A send is idempotent per sending device and transaction ID: every
// message carries a Nats-Msg-Id made of both (the stream drops a repeat
// within its duplicate window), and once all are committed the
// transaction is recorded in a bucket that remembers it for a day.

// toDeviceMsg is a stored to-device message, as /sync hands it out.
type toDeviceMsg struct {
	Sender  string          `json:"sender"`
	Type    string          `json:"type"`
	Content json.RawMessage `json:"content"`
}

// maxToDevicePerSync bounds the to-device messages of one sync answer;
// the rest come with the next.
const maxToDevicePerSync = 100

// maxToDeviceTargets bounds the devices one send reaches.
const maxToDeviceTargets = 10000

// SendToDevice commits the messages of PUT /sendToDevice: user → device
// ("*": all of the user's devices) → content. Messages for users of other
// servers or unknown devices are dropped (there is no federation).
func (s *Service) SendToDevice(ctx context.Context, sess Session, evType, txnID string, messages map[string]map[string]json.RawMessage) error {
	if evType == "" || txnID == "" {
		return planb.InvalidParam("event type and transaction ID must not be empty")
	}
	txnKey := deviceKey(sess.UserID, sess.DeviceID) + "." + jetstream.KeyPart(txnID)
	if _, err := s.engine.Get(ctx, jetstream.BucketToDeviceTxns, txnKey); err == nil {
		return nil // sent before: a retry
	} else if !errors.Is(err, planb.ErrNotFound) {
		return s.unavailable(err)
	}
	type target struct{ user, device string }
	var targets []target
	var contents []json.RawMessage
	for user, devices := range messages {
		if _, _, server, err := planb.SplitID(user); err != nil || server != s.cfg.ServerName {
			if err != nil {
				return planb.InvalidParam("messages: %q is not a user ID", user)
			}
			continue // another server's user: not reachable without federation
		}
		for device, content := range devices {
			if !isObject(content) {
				return planb.BadJSON("messages.%s.%s must be an object", user, device)
			}
			if device != "*" {
				targets, contents = append(targets, target{user, device}), append(contents, content)
				continue
			}
			all, err := s.Devices(ctx, user)
			if err != nil {
				return err
			}
			for _, d := range all {
				if id, _ := d["device_id"].(string); id != "" {
					targets, contents = append(targets, target{user, id}), append(contents, content)
				}
			}
		}
	}
	if len(targets) > maxToDeviceTargets {
		return planb.Errorf(planb.CodeTooLarge, 413, "a send reaches at most %d devices", maxToDeviceTargets)
	}
	for i, t := range targets {
		data, _ := json.Marshal(toDeviceMsg{Sender: sess.UserID, Type: evType, Content: contents[i]})
		id := sha256.Sum256([]byte(txnKey + "\x00" + t.user + "\x00" + t.device))
		if _, err := s.engine.PublishToDevice(ctx, t.user, t.device, data, hex.EncodeToString(id[:16])); err != nil {
			return s.unavailable(err)
		}
	}
	if _, err := s.engine.Create(ctx, jetstream.BucketToDeviceTxns, txnKey, nil); err != nil && !errors.Is(err, planb.ErrExists) {
		return s.unavailable(err)
	}
	return nil
}

func isObject(b json.RawMessage) bool {
	var m map[string]json.RawMessage
	return json.Unmarshal(b, &m) == nil && m != nil
}

// toDeviceAcks remembers, per device, up to which sequence this node has
// purged its to-device messages, so that a sync purges only when its token
// acknowledges messages not purged yet. It is only a shortcut: a node that
// does not know purges once more, which changes nothing.
type toDeviceAcks struct {
	mu     sync.Mutex // guards purged
	purged map[string]uint64
}

// deliverToDevice completes a sync answer of sess's device with its
// to-device messages (see projection.SyncResponse.ToDeviceNewest) and
// purges those the since token acknowledges. It reports whether it added
// any. When the stream cannot be read, the answer goes without them (the
// next sync brings them).
func (s *Service) deliverToDevice(ctx context.Context, req projection.SyncRequest, resp *projection.SyncResponse) bool {
	since := req.Since.ToDeviceOr0()
	s.purgeAcknowledged(req.User, req.Device, since, resp.ToDeviceNewest)
	if resp.ToDeviceNewest <= since {
		return false
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	msgs, err := s.engine.ToDeviceMessages(rctx, req.User, req.Device, since, maxToDevicePerSync)
	cancel()
	if err != nil && len(msgs) == 0 {
		s.log.Warn("to-device messages not read; they come with a later sync", "user", req.User, "device", req.Device, "err", err)
		return false
	}
	events := make([]any, 0, len(msgs))
	for _, m := range msgs {
		events = append(events, json.RawMessage(m.Data))
		resp.Next.ToDevice = m.Seq
	}
	if err == nil && len(msgs) < maxToDevicePerSync {
		last := since
		if len(msgs) > 0 {
			last = msgs[len(msgs)-1].Seq
		}
		// The leader has nothing more up to the newest message the model
		// counted. That message was purged (received at another node) if
		// the leader's stream reaches past it; a leader elected a moment
		// ago may not have applied it yet, and skipping it then would lose
		// it (a room key, say): then the token stays where delivery
		// stopped, and a later sync reads again.
		if last >= resp.ToDeviceNewest || s.toDevicePassed(ctx, resp.ToDeviceNewest) {
			resp.Next.ToDevice = max(resp.Next.ToDevice, resp.ToDeviceNewest)
		}
	}
	resp.NextBatch = resp.Next.String()
	if len(events) == 0 {
		return false
	}
	resp.ToDevice = &projection.EventList{Events: events}
	return true
}

// toDevicePassed reports whether the to-device stream's leader has applied
// sequence seq.
func (s *Service) toDevicePassed(ctx context.Context, seq uint64) bool {
	ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	lastSeq, err := s.engine.ToDeviceLastSeq(ictx)
	if err != nil {
		s.log.Warn("to-device stream not reached; its messages come with a later sync", "err", err)
		return false
	}
	return lastSeq >= seq
}

// purgeAcknowledged purges the device's messages up to since when the
// device may have some there that this node did not purge yet (newest is
// the sequence of the device's newest message, 0 if it never had one).
func (s *Service) purgeAcknowledged(user, device string, since, newest uint64) {
	if since == 0 {
		return
	}
	k := deviceKey(user, device)
	a := &s.tdAcks
	a.mu.Lock()
	done := a.purged[k]
	if since <= done || newest <= done {
		a.mu.Unlock()
		return
	}
	if a.purged == nil {
		a.purged = map[string]uint64{}
	}
	a.purged[k] = since
	a.mu.Unlock()
	// Off the sync's path: the messages above since are read regardless.
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.engine.PurgeToDevice(ctx, user, device, since); err != nil {
			s.log.Warn("received to-device messages not purged yet", "user", user, "device", device, "err", err)
			a.mu.Lock()
			if a.purged[k] == since {
				a.purged[k] = done
			}
			a.mu.Unlock()
		}
	}()
}

func (s *Service) followToDevice(ctx context.Context) error {
	return s.engine.Follow(ctx, jetstream.ToDeviceStream, s.model.Position().ToDevice+1, func(m jetstream.RawMsg) error {
		user, device, ok := jetstream.ToDeviceOf(m.Subject)
		if !ok {
			return s.applyRetrying(ctx, "to-device", func() error { return s.model.SkipToDevicePos(m.Seq) })
		}
		return s.applyRetrying(ctx, "to-device", func() error { return s.model.ApplyToDevice(m.Seq, user, device) })
	})
}
