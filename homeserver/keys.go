package homeserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/jetstream"
	"github.com/planb-chat/planb/projection"
)

// End-to-end encryption keys. planb stores what devices upload and hands
// it out; it never sees a private key or a message's plaintext. Everything
// lives in replicated buckets, so a data center's loss loses no key, and
// one-time keys are claimed by compare-and-delete on the bucket, so that a
// key is handed out at most once even when two data centers serve claims
// for the same device at the same moment.

// KeysUploadRequest is the body of POST /keys/upload.
type KeysUploadRequest struct {
	DeviceKeys   json.RawMessage            `json:"device_keys"`
	OneTimeKeys  map[string]json.RawMessage `json:"one_time_keys"`
	FallbackKeys map[string]json.RawMessage `json:"fallback_keys"`
}

// deviceKeys is the part of a DeviceKeys object the server checks.
type deviceKeys struct {
	UserID     string                        `json:"user_id"`
	DeviceID   string                        `json:"device_id"`
	Algorithms []string                      `json:"algorithms"`
	Keys       map[string]string             `json:"keys"`
	Signatures *map[string]map[string]string `json:"signatures"`
}

// maxKeysPerUpload bounds the keys of one upload.
const maxKeysPerUpload = 1000

// storedFallback is a fallback key with whether it was handed out.
type storedFallback struct {
	KeyID string          `json:"key_id"`
	Key   json.RawMessage `json:"key"`
	Used  bool            `json:"used"`
}

// UploadKeys stores the session's device keys, one-time keys and fallback
// keys and returns how many one-time keys the device has per algorithm.
func (s *Service) UploadKeys(ctx context.Context, sess Session, req KeysUploadRequest) (map[string]int, error) {
	if len(req.OneTimeKeys)+len(req.FallbackKeys) > maxKeysPerUpload {
		return nil, planb.Errorf(planb.CodeTooLarge, 413, "at most %d one-time and fallback keys per upload", maxKeysPerUpload)
	}
	hasDeviceKeys := len(req.DeviceKeys) > 0 && string(req.DeviceKeys) != "null"
	if hasDeviceKeys {
		if err := checkDeviceKeys(req.DeviceKeys, sess); err != nil {
			return nil, err
		}
	}
	otks, err := checkKeyMap(req.OneTimeKeys, "one_time_keys")
	if err != nil {
		return nil, err
	}
	fbs, err := checkKeyMap(req.FallbackKeys, "fallback_keys")
	if err != nil {
		return nil, err
	}
	dev := deviceKey(sess.UserID, sess.DeviceID)
	if hasDeviceKeys {
		if _, err := s.engine.Put(ctx, jetstream.BucketDeviceKeys, dev, req.DeviceKeys); err != nil {
			return nil, s.unavailable(err)
		}
	}
	for _, k := range otks {
		key := dev + "." + jetstream.KeyPart(k.alg) + "." + jetstream.KeyPart(k.id)
		// Revision 0: only if the key never existed. A claimed key leaves a
		// delete marker, so an upload retried after a claim cannot offer it
		// again (a plain create would).
		_, err := s.engine.Update(ctx, jetstream.BucketOneTimeKeys, key, k.value, 0)
		if errors.Is(err, planb.ErrConflict) {
			old, gerr := s.engine.GetLeader(ctx, jetstream.BucketOneTimeKeys, key)
			if gerr == nil && !sameJSON(old.Value, k.value) {
				return nil, planb.InvalidParam("one-time key %s:%s was uploaded before with another value", k.alg, k.id)
			}
			if gerr != nil && !errors.Is(gerr, planb.ErrNotFound) {
				return nil, s.unavailable(gerr)
			}
			continue // the same key again (a retry), or claimed since: never handed out twice
		}
		if err != nil {
			return nil, s.unavailable(err)
		}
	}
	for _, k := range fbs {
		b, _ := json.Marshal(storedFallback{KeyID: k.id, Key: k.value})
		if _, err := s.engine.Put(ctx, jetstream.BucketFallbackKeys, dev+"."+jetstream.KeyPart(k.alg), b); err != nil {
			return nil, s.unavailable(err)
		}
	}
	return s.oneTimeKeyCounts(ctx, sess.UserID, sess.DeviceID)
}

// checkDeviceKeys checks the shape of uploaded device keys: they must be
// the session's own device's and have every field the spec requires
// (M_BAD_JSON otherwise). Signatures are the clients' to verify: like
// Synapse, the server checks neither them nor that the device signed its
// own keys (a client trusts a device only once its self-signature checks
// out), so an upload with an empty "signatures" object is taken.
func checkDeviceKeys(raw json.RawMessage, sess Session) error {
	var dk deviceKeys
	if err := json.Unmarshal(raw, &dk); err != nil {
		return planb.BadJSON("device_keys has the wrong shape: %v", err)
	}
	switch {
	case dk.UserID != sess.UserID:
		return planb.InvalidParam("device_keys.user_id %q is not the session's user %s", dk.UserID, sess.UserID)
	case dk.DeviceID != sess.DeviceID:
		return planb.InvalidParam("device_keys.device_id %q is not the session's device %s", dk.DeviceID, sess.DeviceID)
	case dk.Algorithms == nil || dk.Keys == nil || dk.Signatures == nil:
		return planb.BadJSON("device_keys needs user_id, device_id, algorithms, keys and signatures")
	case len(dk.Algorithms) == 0:
		return planb.InvalidParam("device_keys.algorithms is empty")
	case len(dk.Keys) == 0:
		return planb.InvalidParam("device_keys.keys is empty")
	}
	for id, v := range dk.Keys {
		if alg, dev, ok := strings.Cut(id, ":"); !ok || alg == "" || dev == "" || v == "" {
			return planb.InvalidParam("device_keys.keys: %q is not <algorithm>:<key id> with a key", id)
		}
	}
	return nil
}

// uploadedKey is one checked one-time or fallback key.
type uploadedKey struct {
	alg, id string
	value   json.RawMessage
}

// checkKeyMap checks a map of "<algorithm>:<key id>" to a key: a string
// (curve25519) or an object with a "key" string (signed_curve25519).
func checkKeyMap(m map[string]json.RawMessage, field string) ([]uploadedKey, error) {
	out := make([]uploadedKey, 0, len(m))
	for id, v := range m {
		alg, kid, ok := strings.Cut(id, ":")
		if !ok || alg == "" || kid == "" {
			return nil, planb.InvalidParam("%s: %q is not <algorithm>:<key id>", field, id)
		}
		var str string
		var obj struct {
			Key *string `json:"key"`
		}
		if json.Unmarshal(v, &str) == nil {
			if str == "" {
				return nil, planb.InvalidParam("%s: %s is empty", field, id)
			}
		} else if json.Unmarshal(v, &obj) != nil || obj.Key == nil || *obj.Key == "" {
			return nil, planb.InvalidParam("%s: %s is neither a key nor an object with a key", field, id)
		}
		out = append(out, uploadedKey{alg: alg, id: kid, value: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].alg+":"+out[i].id < out[j].alg+":"+out[j].id })
	return out, nil
}

// sameJSON reports whether two JSON values are equal (key order aside).
func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return string(xb) == string(yb)
}

// oneTimeKeyCounts counts a device's unclaimed one-time keys per algorithm.
func (s *Service) oneTimeKeyCounts(ctx context.Context, userID, deviceID string) (map[string]int, error) {
	keys, err := s.engine.Keys(ctx, jetstream.BucketOneTimeKeys, deviceKey(userID, deviceID)+".>")
	if err != nil {
		return nil, s.unavailable(err)
	}
	counts := map[string]int{}
	for _, k := range keys {
		parts := strings.Split(k, ".")
		if len(parts) == 4 {
			counts[jetstream.DecodeKeyPart(parts[2])]++
		}
	}
	return counts, nil
}

// QueryKeys answers POST /keys/query: the device keys of local users'
// devices (all of a user's when the list is empty), with each device's
// display name. Users of other servers are not known (no federation) and
// are left out, as are unknown users and devices.
func (s *Service) QueryKeys(ctx context.Context, want map[string][]string) (map[string]map[string]json.RawMessage, error) {
	out := map[string]map[string]json.RawMessage{}
	for userID, devices := range want {
		if _, _, server, err := planb.SplitID(userID); err != nil || server != s.cfg.ServerName {
			continue
		}
		ids := devices
		if len(ids) == 0 {
			keys, err := s.engine.Keys(ctx, jetstream.BucketDeviceKeys, jetstream.KeyPart(userID)+".*")
			if err != nil {
				return nil, s.unavailable(err)
			}
			for _, k := range keys {
				if _, dev, _ := strings.Cut(k, "."); isDeviceKeyToken(dev) {
					ids = append(ids, jetstream.DecodeKeyPart(dev))
				}
			}
		}
		got := map[string]json.RawMessage{}
		for _, dev := range ids {
			e, err := s.engine.Get(ctx, jetstream.BucketDeviceKeys, deviceKey(userID, dev))
			if errors.Is(err, planb.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, s.unavailable(err)
			}
			got[dev] = s.withDisplayName(ctx, userID, dev, e.Value)
		}
		out[userID] = got
	}
	return out, nil
}

// withDisplayName adds unsigned.device_display_name to device keys.
func (s *Service) withDisplayName(ctx context.Context, userID, deviceID string, keys []byte) json.RawMessage {
	d, err := s.Device(ctx, userID, deviceID)
	name, _ := d["display_name"].(string)
	if err != nil || name == "" {
		return keys
	}
	var m map[string]any
	if json.Unmarshal(keys, &m) != nil {
		return keys
	}
	unsigned, _ := m["unsigned"].(map[string]any)
	if unsigned == nil {
		unsigned = map[string]any{}
	}
	unsigned["device_display_name"] = name
	m["unsigned"] = unsigned
	b, err := json.Marshal(m)
	if err != nil {
		return keys
	}
	return b
}

// ClaimKeys answers POST /keys/claim: for each (user, device, algorithm)
// one one-time key, removed as it is handed out, or else the device's
// fallback key. Unknown users and devices, and devices without keys, are
// left out of the answer.
func (s *Service) ClaimKeys(ctx context.Context, want map[string]map[string]string) (map[string]map[string]map[string]json.RawMessage, error) {
	out := map[string]map[string]map[string]json.RawMessage{}
	for userID, devices := range want {
		if _, _, server, err := planb.SplitID(userID); err != nil || server != s.cfg.ServerName {
			continue
		}
		for dev, alg := range devices {
			id, key, ok, err := s.claimOne(ctx, userID, dev, alg)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			if out[userID] == nil {
				out[userID] = map[string]map[string]json.RawMessage{}
			}
			out[userID][dev] = map[string]json.RawMessage{alg + ":" + id: key}
		}
	}
	return out, nil
}

// claimOne hands out one key of the device for alg.
func (s *Service) claimOne(ctx context.Context, userID, dev, alg string) (keyID string, key json.RawMessage, ok bool, err error) {
	prefix := deviceKey(userID, dev) + "." + jetstream.KeyPart(alg)
	keys, err := s.engine.Keys(ctx, jetstream.BucketOneTimeKeys, prefix+".*")
	if err != nil {
		return "", nil, false, s.unavailable(err)
	}
	// The listing comes in stream order, the order the keys were uploaded
	// in: the oldest key goes first (MSC4225), so a client that uploaded
	// keys in batches hands out the batch it published first.
	for _, k := range keys {
		e, err := s.engine.GetLeader(ctx, jetstream.BucketOneTimeKeys, k)
		if errors.Is(err, planb.ErrNotFound) {
			continue // claimed meanwhile
		}
		if err != nil {
			return "", nil, false, s.unavailable(err)
		}
		err = s.engine.DeleteIf(ctx, jetstream.BucketOneTimeKeys, k, e.Revision)
		if errors.Is(err, planb.ErrConflict) {
			continue // another claim won it
		}
		if err != nil {
			return "", nil, false, s.unavailable(err)
		}
		return jetstream.DecodeKeyPart(k[strings.LastIndexByte(k, '.')+1:]), e.Value, true, nil
	}
	// No one-time key left: the fallback key, marked as used. A fallback
	// key may go to many claimers, so a conflict (another claim marked it
	// meanwhile, or the device replaced it) needs no second try: the key
	// read was the device's fallback key a moment ago.
	e, err := s.engine.GetLeader(ctx, jetstream.BucketFallbackKeys, prefix)
	if errors.Is(err, planb.ErrNotFound) {
		return "", nil, false, nil
	}
	if err != nil {
		return "", nil, false, s.unavailable(err)
	}
	var fb storedFallback
	if err := json.Unmarshal(e.Value, &fb); err != nil {
		return "", nil, false, s.unavailable(fmt.Errorf("decode fallback key: %w", err))
	}
	if !fb.Used {
		fb.Used = true
		b, _ := json.Marshal(fb)
		if _, err := s.engine.Update(ctx, jetstream.BucketFallbackKeys, prefix, b, e.Revision); err != nil && !errors.Is(err, planb.ErrConflict) {
			return "", nil, false, s.unavailable(err)
		}
	}
	return fb.KeyID, fb.Key, true, nil
}

// deleteDeviceKeys removes a deleted device's keys of every kind.
func (s *Service) deleteDeviceKeys(ctx context.Context, userID, deviceID string) error {
	dev := deviceKey(userID, deviceID)
	if err := s.engine.Delete(ctx, jetstream.BucketDeviceKeys, dev); err != nil {
		return s.unavailable(err)
	}
	for _, b := range []string{jetstream.BucketOneTimeKeys, jetstream.BucketFallbackKeys} {
		keys, err := s.engine.Keys(ctx, b, dev+".>")
		if err != nil {
			return s.unavailable(err)
		}
		for _, k := range keys {
			if err := s.engine.Delete(ctx, b, k); err != nil {
				return s.unavailable(err)
			}
		}
	}
	return nil
}

// followDeviceKeys tells the read models whose device keys changed (an
// upload or a device's deletion), for device_lists and /keys/changes.
func (s *Service) followDeviceKeys(ctx context.Context) error {
	b := jetstream.BucketDeviceKeys
	return s.engine.Follow(ctx, jetstream.BucketStream(b), s.model.Position().DeviceKeys+1, func(m jetstream.RawMsg) error {
		user, _, _ := strings.Cut(jetstream.BucketKey(b, m.Subject), ".")
		if user != "" {
			user = jetstream.DecodeKeyPart(user)
		}
		return s.applyRetrying(ctx, "device keys", func() error { return s.model.ApplyDeviceKeys(m.Seq, user) })
	})
}

// followOneTimeKeys counts each device's one-time keys in the read models:
// an upload adds one, a claim's (or a deletion's) marker takes one away.
func (s *Service) followOneTimeKeys(ctx context.Context) error {
	b := jetstream.BucketOneTimeKeys
	return s.engine.Follow(ctx, jetstream.BucketStream(b), s.model.Position().OneTimeKeys+1, func(m jetstream.RawMsg) error {
		user, device, alg := deviceAlgorithm(b, m.Subject, 4)
		added := !isDeletion(m)
		return s.applyRetrying(ctx, "one-time keys", func() error { return s.model.ApplyOneTimeKey(m.Seq, user, device, alg, added) })
	})
}

// followFallbackKeys tells the read models which fallback keys are unused.
func (s *Service) followFallbackKeys(ctx context.Context) error {
	b := jetstream.BucketFallbackKeys
	return s.engine.Follow(ctx, jetstream.BucketStream(b), s.model.Position().FallbackKeys+1, func(m jetstream.RawMsg) error {
		user, device, alg := deviceAlgorithm(b, m.Subject, 3)
		var fb storedFallback
		unused := !isDeletion(m) && json.Unmarshal(m.Data, &fb) == nil && !fb.Used
		return s.applyRetrying(ctx, "fallback keys", func() error { return s.model.ApplyFallbackKey(m.Seq, user, device, alg, unused) })
	})
}

// deviceAlgorithm decodes the user, device and algorithm that a key of
// bucket b with n parts starts with ("" for a key of another shape).
func deviceAlgorithm(b, subject string, n int) (user, device, alg string) {
	parts := strings.Split(jetstream.BucketKey(b, subject), ".")
	if len(parts) != n {
		return "", "", ""
	}
	return jetstream.DecodeKeyPart(parts[0]), jetstream.DecodeKeyPart(parts[1]), jetstream.DecodeKeyPart(parts[2])
}

// isDeletion reports whether a bucket message is a delete or purge marker.
func isDeletion(m jetstream.RawMsg) bool {
	op := m.Header.Get("KV-Operation")
	return op == "DEL" || op == "PURGE" || len(m.Data) == 0
}

// KeyChanges answers GET /keys/changes: the users whose devices changed
// between two sync tokens, and those the user stopped sharing rooms with.
func (s *Service) KeyChanges(sess Session, from, to string) (changed, left []string, err error) {
	f, err := projection.ParseToken(from, s.engine.Partitions())
	if err != nil {
		return nil, nil, planb.InvalidParam("invalid from token: %v", err)
	}
	t, err := projection.ParseToken(to, s.engine.Partitions())
	if err != nil {
		return nil, nil, planb.InvalidParam("invalid to token: %v", err)
	}
	changed, left, err = s.model.DeviceListChanges(sess.UserID, f, t)
	if err != nil {
		return nil, nil, s.storeUnavailable(err)
	}
	if changed == nil {
		changed = []string{}
	}
	if left == nil {
		left = []string{}
	}
	return changed, left, nil
}
