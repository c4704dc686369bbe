package homeserver

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/jetstream"
)

// Cross-signing keys live in the device-keys bucket beside the devices'
// keys, under user.=master, user.=self_signing and user.=user_signing ('='
// is never part of an encoded device ID), so that uploading one shows in
// device_lists like a device's keys do. A signature a user makes with
// their user-signing key on another user's master key is theirs alone to
// see: it is kept under signer.=signed.<target>, and added to the target's
// master key only in the signer's /keys/query.

// The cross-signing key kinds, as named in the bucket and in requests.
var crossSigningKinds = []string{"master", "self_signing", "user_signing"}

func crossSigningKey(userID, kind string) string { return jetstream.KeyPart(userID) + ".=" + kind }

func userSignedKey(signer, target string) string {
	return jetstream.KeyPart(signer) + ".=signed." + jetstream.KeyPart(target)
}

// crossSigningKeyBody is the part of a CrossSigningKey the server checks.
type crossSigningKeyBody struct {
	UserID     string                       `json:"user_id"`
	Usage      []string                     `json:"usage"`
	Keys       map[string]string            `json:"keys"`
	Signatures map[string]map[string]string `json:"signatures"`
}

// UploadCrossSigningKeys answers POST /keys/device_signing/upload. The
// first upload needs no password (the spec allows that when the user has
// no master key yet); replacing a master key does.
func (s *Service) UploadCrossSigningKeys(ctx context.Context, sess Session, keys map[string]json.RawMessage, auth *UIAuth) error {
	for _, kind := range crossSigningKinds {
		raw, ok := keys[kind+"_key"]
		if !ok || string(raw) == "null" {
			continue
		}
		var k crossSigningKeyBody
		if err := json.Unmarshal(raw, &k); err != nil {
			return planb.BadJSON("%s_key has the wrong shape: %v", kind, err)
		}
		switch {
		case k.UserID != sess.UserID:
			return planb.InvalidParam("%s_key.user_id %q is not %s", kind, k.UserID, sess.UserID)
		case len(k.Keys) != 1:
			return planb.InvalidParam("%s_key must have exactly one key", kind)
		case !slices.Contains(k.Usage, kind):
			return planb.InvalidParam("%s_key.usage must include %q", kind, kind)
		case kind != "master" && len(k.Signatures[sess.UserID]) == 0:
			return planb.InvalidParam("%s_key must be signed by the master key", kind)
		}
	}
	old, err := s.engine.Get(ctx, jetstream.BucketDeviceKeys, crossSigningKey(sess.UserID, "master"))
	switch {
	case errors.Is(err, planb.ErrNotFound):
	case err != nil:
		return s.unavailable(err)
	default:
		if m, ok := keys["master_key"]; !ok || !sameJSON(old.Value, m) || auth != nil {
			if err := s.confirmPassword(ctx, sess, auth); err != nil {
				return err
			}
		}
	}
	for _, kind := range crossSigningKinds {
		raw, ok := keys[kind+"_key"]
		if !ok || string(raw) == "null" {
			continue
		}
		if _, err := s.engine.Put(ctx, jetstream.BucketDeviceKeys, crossSigningKey(sess.UserID, kind), raw); err != nil {
			return s.unavailable(err)
		}
	}
	return nil
}

// SignatureFailure is one entry of the failures of /keys/signatures/upload.
type SignatureFailure struct {
	Code  string `json:"errcode"`
	Error string `json:"error"`
}

// UploadSignatures answers POST /keys/signatures/upload: signatures of the
// user's own devices and master key are merged into the stored objects;
// signatures of another user's master key are kept for the signer.
func (s *Service) UploadSignatures(ctx context.Context, sess Session, body map[string]map[string]json.RawMessage) (map[string]map[string]SignatureFailure, error) {
	failures := map[string]map[string]SignatureFailure{}
	fail := func(user, key string, err *planb.Error) {
		if failures[user] == nil {
			failures[user] = map[string]SignatureFailure{}
		}
		failures[user][key] = SignatureFailure{Code: string(err.Code), Error: err.Message}
	}
	for user, objs := range body {
		for keyID, raw := range objs {
			var obj struct {
				Signatures map[string]map[string]string `json:"signatures"`
			}
			if err := json.Unmarshal(raw, &obj); err != nil || len(obj.Signatures[sess.UserID]) == 0 {
				fail(user, keyID, planb.InvalidParam("no signature of %s", sess.UserID))
				continue
			}
			if err := s.addSignatures(ctx, sess, user, keyID, obj.Signatures[sess.UserID]); err != nil {
				var pe *planb.Error
				if !errors.As(err, &pe) {
					return nil, s.unavailable(err)
				}
				fail(user, keyID, pe)
			}
		}
	}
	return failures, nil
}

// addSignatures adds the signer's signatures to user's object keyID: a
// device ID, or the public key of a cross-signing key.
func (s *Service) addSignatures(ctx context.Context, sess Session, user, keyID string, sigs map[string]string) error {
	bucketKey := ""
	if user == sess.UserID {
		if _, err := s.engine.Get(ctx, jetstream.BucketDeviceKeys, deviceKey(user, keyID)); err == nil {
			bucketKey = deviceKey(user, keyID)
		}
	}
	if bucketKey == "" {
		master, err := s.engine.Get(ctx, jetstream.BucketDeviceKeys, crossSigningKey(user, "master"))
		if err != nil && !errors.Is(err, planb.ErrNotFound) {
			return err
		}
		if err != nil || !hasPublicKey(master.Value, keyID) {
			return planb.NotFound("%s has no device or master key %q", user, keyID)
		}
		bucketKey = crossSigningKey(user, "master")
		if user != sess.UserID {
			bucketKey = userSignedKey(sess.UserID, user)
			return s.mergeSignatures(ctx, bucketKey, master.Value, sess.UserID, sigs)
		}
	}
	return s.mergeSignatures(ctx, bucketKey, nil, sess.UserID, sigs)
}

func hasPublicKey(raw []byte, pub string) bool {
	var k crossSigningKeyBody
	if json.Unmarshal(raw, &k) != nil {
		return false
	}
	for _, v := range k.Keys {
		if v == pub {
			return true
		}
	}
	return false
}

// mergeSignatures adds signer's sigs to the object at key, by compare and
// set. A missing object starts as base when base is set.
func (s *Service) mergeSignatures(ctx context.Context, key string, base []byte, signer string, sigs map[string]string) error {
	for {
		cur, err := s.engine.GetLeader(ctx, jetstream.BucketDeviceKeys, key)
		rev := cur.Revision
		val := cur.Value
		if errors.Is(err, planb.ErrNotFound) && base != nil {
			val, rev = base, 0
		} else if err != nil {
			return err
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(val, &m); err != nil {
			return planb.InvalidParam("the stored key cannot be read: %v", err)
		}
		all := map[string]map[string]string{}
		_ = json.Unmarshal(m["signatures"], &all)
		if all[signer] == nil {
			all[signer] = map[string]string{}
		}
		for k, v := range sigs {
			all[signer][k] = v
		}
		m["signatures"], _ = json.Marshal(all)
		b, _ := json.Marshal(m)
		_, err = s.engine.Update(ctx, jetstream.BucketDeviceKeys, key, b, rev)
		if errors.Is(err, planb.ErrConflict) {
			continue // signed at the same moment elsewhere: merge again
		}
		return err
	}
}

// CrossSigningKeys returns the cross-signing keys of the users in want, as
// requester may see them: master_keys, self_signing_keys and, for the
// requester only, user_signing_keys.
func (s *Service) CrossSigningKeys(ctx context.Context, requester string, users []string) (map[string]map[string]json.RawMessage, error) {
	out := map[string]map[string]json.RawMessage{"master_keys": {}, "self_signing_keys": {}, "user_signing_keys": {}}
	for _, user := range users {
		for _, kind := range crossSigningKinds {
			if kind == "user_signing" && user != requester {
				continue
			}
			key := crossSigningKey(user, kind)
			if kind == "master" && user != requester {
				if e, err := s.engine.Get(ctx, jetstream.BucketDeviceKeys, userSignedKey(requester, user)); err == nil {
					if cur, err := s.engine.Get(ctx, jetstream.BucketDeviceKeys, key); err == nil && sameKeys(cur.Value, e.Value) {
						key = userSignedKey(requester, user)
					}
				}
			}
			e, err := s.engine.Get(ctx, jetstream.BucketDeviceKeys, key)
			if errors.Is(err, planb.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, s.unavailable(err)
			}
			out[kind+"_keys"][user] = e.Value
		}
	}
	return out, nil
}

// sameKeys reports whether two cross-signing key objects hold the same
// public keys (a signed copy of an older master key is not shown).
func sameKeys(a, b []byte) bool {
	var x, y crossSigningKeyBody
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil || len(x.Keys) != len(y.Keys) {
		return false
	}
	for k, v := range x.Keys {
		if y.Keys[k] != v {
			return false
		}
	}
	return true
}

// isDeviceKeyToken reports whether a key token of the device-keys bucket
// names a device (and not a cross-signing key).
func isDeviceKeyToken(tok string) bool { return !strings.HasPrefix(tok, "=") }
