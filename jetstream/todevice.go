package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/planb-chat/planb"
)

// ToDeviceStream holds the to-device messages not yet received, one
// subject per receiving device. A device's messages are read in stream
// order and purged once the device's next sync shows it has them.
const ToDeviceStream = "TODEVICE"

// toDeviceDuplicates is the stream's Nats-Msg-Id window: a send retried
// before its transaction was recorded publishes nothing twice within it.
const toDeviceDuplicates = 10 * time.Minute

// ToDeviceSubject is the subject of the messages for user's device.
func ToDeviceSubject(user, device string) string {
	return "td." + KeyPart(user) + "." + KeyPart(device)
}

// ToDeviceOf returns the user and device of a to-device subject.
func ToDeviceOf(subject string) (user, device string, ok bool) {
	rest, ok := strings.CutPrefix(subject, "td.")
	u, d, cut := strings.Cut(rest, ".")
	if !ok || !cut || u == "" || d == "" {
		return "", "", false
	}
	return DecodeKeyPart(u), DecodeKeyPart(d), true
}

func (e *Engine) toDeviceStreamConfig() natsjs.StreamConfig {
	return natsjs.StreamConfig{
		Name:        ToDeviceStream,
		Description: "planb to-device messages not yet received",
		Subjects:    []string{"td.*.*"},
		Storage:     natsjs.FileStorage,
		Replicas:    e.cfg.Replicas,
		Retention:   natsjs.LimitsPolicy,
		Discard:     natsjs.DiscardNew,
		Duplicates:  toDeviceDuplicates,
		MaxMsgSize:  1 << 20,
		AllowDirect: true,
		DenyDelete:  true, // messages go only by purge, per device
	}
}

// PublishToDevice commits one message for user's device. msgID makes a
// retry within the duplicate window a no-op. It returns the message's
// sequence, or an error wrapping planb.ErrNoQuorum.
func (e *Engine) PublishToDevice(ctx context.Context, user, device string, data []byte, msgID string) (uint64, error) {
	m := nats.NewMsg(ToDeviceSubject(user, device))
	m.Data = data
	ack, err := e.js.PublishMsg(ctx, m, natsjs.WithMsgID(msgID))
	if err != nil {
		return 0, fmt.Errorf("to-device message for %s/%s: %w: %w", user, device, planb.ErrNoQuorum, err)
	}
	e.hint(ToDeviceStream, ack.Sequence)
	return ack.Sequence, nil
}

// ToDeviceMessages returns up to limit messages for user's device with
// sequences above after, oldest first, read through the stream's leader so
// that what it does not return does not exist.
func (e *Engine) ToDeviceMessages(ctx context.Context, user, device string, after uint64, limit int) ([]RawMsg, error) {
	subj := ToDeviceSubject(user, device)
	var out []RawMsg
	for len(out) < limit {
		body, _ := json.Marshal(map[string]any{"seq": after + 1, "next_by_subj": subj})
		m, err := e.leaderGet(ctx, ToDeviceStream, body)
		if errors.Is(err, planb.ErrNotFound) {
			break
		}
		if err != nil {
			return out, err
		}
		out = append(out, *m)
		after = m.Seq
	}
	return out, nil
}

// ToDeviceLastSeq returns the last sequence of the to-device stream as its
// leader has it.
func (e *Engine) ToDeviceLastSeq(ctx context.Context) (uint64, error) {
	s, err := e.js.Stream(ctx, ToDeviceStream)
	if err != nil {
		return 0, fmt.Errorf("to-device stream info: %w: %w", planb.ErrNoQuorum, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("to-device stream info: %w: %w", planb.ErrNoQuorum, err)
	}
	return info.State.LastSeq, nil
}

// PurgeToDevice deletes the messages for user's device with sequences up
// to and including upto (all of them when upto is 0).
func (e *Engine) PurgeToDevice(ctx context.Context, user, device string, upto uint64) error {
	s, err := e.js.Stream(ctx, ToDeviceStream)
	if err != nil {
		return fmt.Errorf("purge to-device messages: %w: %w", planb.ErrNoQuorum, err)
	}
	opts := []natsjs.StreamPurgeOpt{natsjs.WithPurgeSubject(ToDeviceSubject(user, device))}
	if upto > 0 {
		opts = append(opts, natsjs.WithPurgeSequence(upto+1))
	}
	if err := s.Purge(ctx, opts...); err != nil {
		return fmt.Errorf("purge to-device messages of %s/%s: %w: %w", user, device, planb.ErrNoQuorum, err)
	}
	return nil
}
