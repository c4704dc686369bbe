package homeserver

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strconv"
	"strings"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/jetstream"
)

// Server-side key backup (/room_keys). The clients encrypt the room keys;
// the server keeps them in the replicated key_backup bucket:
//
//	user.n                     → the last version number handed out
//	user.v.version             → {"algorithm", "auth_data"} of a version
//	user.e.version             → bumped on every change of its keys: the etag is its revision
//	user.k.version.room.session → KeyBackupData
//
// The current version is the highest that was not deleted.

// BackupVersion is a backup version as GET /room_keys/version shows it.
type BackupVersion struct {
	Algorithm string          `json:"algorithm"`
	AuthData  json.RawMessage `json:"auth_data"`
	Count     int             `json:"count"`
	ETag      string          `json:"etag"`
	Version   string          `json:"version"`
}

// KeyBackupData is one backed-up room key.
type KeyBackupData struct {
	FirstMessageIndex int             `json:"first_message_index"`
	ForwardedCount    int             `json:"forwarded_count"`
	IsVerified        bool            `json:"is_verified"`
	SessionData       json.RawMessage `json:"session_data"`
}

// RoomKeys is a set of backed-up keys: room → session → key.
type RoomKeys map[string]map[string]KeyBackupData

// BackupUpdate is the answer to a change of a backup's keys.
type BackupUpdate struct {
	ETag  string `json:"etag"`
	Count int    `json:"count"`
}

// BackupMeta is what a backup version holds besides its keys: the body of
// POST and PUT /room_keys/version.
type BackupMeta struct {
	Algorithm string          `json:"algorithm"`
	AuthData  json.RawMessage `json:"auth_data"`
}

func backupKey(user string, parts ...string) string {
	k := jetstream.KeyPart(user)
	for _, p := range parts {
		k += "." + p
	}
	return k
}

func checkBackupMeta(m BackupMeta) error {
	if m.Algorithm == "" {
		return planb.MissingParam("algorithm is required")
	}
	var auth map[string]json.RawMessage
	if json.Unmarshal(m.AuthData, &auth) != nil || auth == nil {
		return planb.InvalidParam("auth_data must be an object")
	}
	return nil
}

// CreateBackupVersion answers POST /room_keys/version.
func (s *Service) CreateBackupVersion(ctx context.Context, sess Session, m BackupMeta) (string, error) {
	if err := checkBackupMeta(m); err != nil {
		return "", err
	}
	counter := backupKey(sess.UserID, "n")
	for {
		cur, err := s.engine.GetLeader(ctx, jetstream.BucketKeyBackup, counter)
		if err != nil && !errors.Is(err, planb.ErrNotFound) {
			return "", s.unavailable(err)
		}
		n, _ := strconv.Atoi(string(cur.Value))
		version := strconv.Itoa(n + 1)
		if _, err := s.engine.Update(ctx, jetstream.BucketKeyBackup, counter, []byte(version), cur.Revision); errors.Is(err, planb.ErrConflict) {
			continue // created at the same moment elsewhere
		} else if err != nil {
			return "", s.unavailable(err)
		}
		b, _ := json.Marshal(m)
		if _, err := s.engine.Put(ctx, jetstream.BucketKeyBackup, backupKey(sess.UserID, "v", version), b); err != nil {
			return "", s.unavailable(err)
		}
		return version, nil
	}
}

// currentBackup returns the user's current backup version ("" if none).
func (s *Service) currentBackup(ctx context.Context, user string) (string, error) {
	keys, err := s.engine.Keys(ctx, jetstream.BucketKeyBackup, backupKey(user, "v", "*"))
	if err != nil {
		return "", s.unavailable(err)
	}
	best := 0
	for _, k := range keys {
		if n, err := strconv.Atoi(k[strings.LastIndexByte(k, '.')+1:]); err == nil && n > best {
			best = n
		}
	}
	if best == 0 {
		return "", nil
	}
	return strconv.Itoa(best), nil
}

// BackupMetaOf reads a version's record; M_NOT_FOUND when there is none.
func (s *Service) BackupMetaOf(ctx context.Context, user, version string) (BackupMeta, error) {
	var m BackupMeta
	if _, err := strconv.Atoi(version); err != nil {
		return m, planb.NotFound("no backup version %q", version)
	}
	e, err := s.engine.Get(ctx, jetstream.BucketKeyBackup, backupKey(user, "v", version))
	if errors.Is(err, planb.ErrNotFound) {
		return m, planb.NotFound("no backup version %q", version)
	}
	if err != nil {
		return m, s.unavailable(err)
	}
	if err := json.Unmarshal(e.Value, &m); err != nil {
		return m, errors.New("backup version record: " + err.Error())
	}
	return m, nil
}

// BackupVersionInfo answers GET /room_keys/version[/{version}] ("" for
// the current one).
func (s *Service) BackupVersionInfo(ctx context.Context, sess Session, version string) (*BackupVersion, error) {
	if version == "" {
		v, err := s.currentBackup(ctx, sess.UserID)
		if err != nil {
			return nil, err
		}
		if v == "" {
			return nil, planb.NotFound("no current backup version")
		}
		version = v
	}
	m, err := s.BackupMetaOf(ctx, sess.UserID, version)
	if err != nil {
		return nil, err
	}
	u, err := s.backupState(ctx, sess.UserID, version)
	if err != nil {
		return nil, err
	}
	return &BackupVersion{Algorithm: m.Algorithm, AuthData: m.AuthData, Count: u.Count, ETag: u.ETag, Version: version}, nil
}

// UpdateBackupVersion answers PUT /room_keys/version/{version}: only the
// auth data may change.
func (s *Service) UpdateBackupVersion(ctx context.Context, sess Session, version, bodyVersion string, m BackupMeta) error {
	if err := checkBackupMeta(m); err != nil {
		return err
	}
	if bodyVersion != "" && bodyVersion != version {
		return planb.InvalidParam("version %q in the body is not the path's %q", bodyVersion, version)
	}
	old, err := s.BackupMetaOf(ctx, sess.UserID, version)
	if err != nil {
		return err
	}
	if old.Algorithm != m.Algorithm {
		return planb.InvalidParam("the algorithm of a backup version cannot change")
	}
	b, _ := json.Marshal(m)
	if _, err := s.engine.Put(ctx, jetstream.BucketKeyBackup, backupKey(sess.UserID, "v", version), b); err != nil {
		return s.unavailable(err)
	}
	return nil
}

// DeleteBackupVersion answers DELETE /room_keys/version/{version}, with
// the version's keys.
func (s *Service) DeleteBackupVersion(ctx context.Context, sess Session, version string) error {
	if _, err := s.BackupMetaOf(ctx, sess.UserID, version); err != nil {
		return err
	}
	if _, err := s.deleteBackupKeys(ctx, sess.UserID, version, "", ""); err != nil {
		return err
	}
	if err := s.engine.Delete(ctx, jetstream.BucketKeyBackup, backupKey(sess.UserID, "v", version)); err != nil {
		return s.unavailable(err)
	}
	return nil
}

// backupState returns the count and etag of a version's keys.
func (s *Service) backupState(ctx context.Context, user, version string) (BackupUpdate, error) {
	keys, err := s.engine.Keys(ctx, jetstream.BucketKeyBackup, backupKey(user, "k", version, ">"))
	if err != nil {
		return BackupUpdate{}, s.unavailable(err)
	}
	e, err := s.engine.GetLeader(ctx, jetstream.BucketKeyBackup, backupKey(user, "e", version))
	if err != nil && !errors.Is(err, planb.ErrNotFound) {
		return BackupUpdate{}, s.unavailable(err)
	}
	return BackupUpdate{ETag: strconv.FormatUint(e.Revision, 10), Count: len(keys)}, nil
}

// bumpETag records that a version's keys changed.
func (s *Service) bumpETag(ctx context.Context, user, version string) error {
	if _, err := s.engine.Put(ctx, jetstream.BucketKeyBackup, backupKey(user, "e", version), nil); err != nil {
		return s.unavailable(err)
	}
	return nil
}

// writableBackup checks that version is the user's current backup.
func (s *Service) writableBackup(ctx context.Context, user, version string) error {
	if version == "" {
		return planb.MissingParam("the version query parameter is required")
	}
	cur, err := s.currentBackup(ctx, user)
	if err != nil {
		return err
	}
	if cur == "" {
		return planb.NotFound("no backup version %q", version)
	}
	if cur != version {
		e := planb.Errorf(planb.CodeWrongKeysVersion, 403, "backup version %s is not the current one", version)
		e.Extra = map[string]any{"current_version": cur}
		return e
	}
	return nil
}

// PutBackupKeys answers PUT /room_keys/keys[/{roomId}[/{sessionId}]]. A key
// replaces the stored one only when it is better: verified over not, then
// a lower first message index, then fewer forwards.
func (s *Service) PutBackupKeys(ctx context.Context, sess Session, version string, keys RoomKeys) (BackupUpdate, error) {
	if err := s.writableBackup(ctx, sess.UserID, version); err != nil {
		return BackupUpdate{}, err
	}
	changed := false
	for room, sessions := range keys {
		for id, k := range sessions {
			if len(k.SessionData) == 0 || k.SessionData[0] != '{' {
				return BackupUpdate{}, planb.InvalidParam("session_data of %s/%s must be an object", room, id)
			}
			key := backupKey(sess.UserID, "k", version, jetstream.KeyPart(room), jetstream.KeyPart(id))
			old, err := s.engine.Get(ctx, jetstream.BucketKeyBackup, key)
			if err == nil {
				var o KeyBackupData
				if json.Unmarshal(old.Value, &o) == nil && !better(k, o) {
					continue
				}
			} else if !errors.Is(err, planb.ErrNotFound) {
				return BackupUpdate{}, s.unavailable(err)
			}
			b, _ := json.Marshal(k)
			if _, err := s.engine.Put(ctx, jetstream.BucketKeyBackup, key, b); err != nil {
				return BackupUpdate{}, s.unavailable(err)
			}
			changed = true
		}
	}
	if changed {
		if err := s.bumpETag(ctx, sess.UserID, version); err != nil {
			return BackupUpdate{}, err
		}
	}
	return s.backupState(ctx, sess.UserID, version)
}

// better reports whether backed-up key n should replace o.
func better(n, o KeyBackupData) bool {
	if n.IsVerified != o.IsVerified {
		return n.IsVerified
	}
	if n.FirstMessageIndex != o.FirstMessageIndex {
		return n.FirstMessageIndex < o.FirstMessageIndex
	}
	return n.ForwardedCount < o.ForwardedCount
}

// readableBackup returns the version to read: the one given, or the
// current one.
func (s *Service) readableBackup(ctx context.Context, user, version string) (string, error) {
	if version == "" {
		cur, err := s.currentBackup(ctx, user)
		if err != nil {
			return "", err
		}
		version = cur
	}
	if _, err := s.BackupMetaOf(ctx, user, version); err != nil {
		return "", err
	}
	return version, nil
}

// BackupKeys answers GET /room_keys/keys[/{roomId}] (room "" for all).
func (s *Service) BackupKeys(ctx context.Context, sess Session, version, room string) (RoomKeys, error) {
	version, err := s.readableBackup(ctx, sess.UserID, version)
	if err != nil {
		return nil, err
	}
	filter := backupKey(sess.UserID, "k", version, ">")
	if room != "" {
		filter = backupKey(sess.UserID, "k", version, jetstream.KeyPart(room), "*")
	}
	keys, err := s.engine.Keys(ctx, jetstream.BucketKeyBackup, filter)
	if err != nil {
		return nil, s.unavailable(err)
	}
	sort.Strings(keys)
	out := RoomKeys{}
	for _, k := range keys {
		parts := strings.Split(k, ".")
		if len(parts) != 5 {
			continue
		}
		e, err := s.engine.Get(ctx, jetstream.BucketKeyBackup, k)
		if errors.Is(err, planb.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, s.unavailable(err)
		}
		var d KeyBackupData
		if json.Unmarshal(e.Value, &d) != nil {
			continue
		}
		r, id := jetstream.DecodeKeyPart(parts[3]), jetstream.DecodeKeyPart(parts[4])
		if out[r] == nil {
			out[r] = map[string]KeyBackupData{}
		}
		out[r][id] = d
	}
	return out, nil
}

// BackupKey answers GET /room_keys/keys/{roomId}/{sessionId}.
func (s *Service) BackupKey(ctx context.Context, sess Session, version, room, session string) (*KeyBackupData, error) {
	version, err := s.readableBackup(ctx, sess.UserID, version)
	if err != nil {
		return nil, err
	}
	e, err := s.engine.Get(ctx, jetstream.BucketKeyBackup, backupKey(sess.UserID, "k", version, jetstream.KeyPart(room), jetstream.KeyPart(session)))
	if errors.Is(err, planb.ErrNotFound) {
		return nil, planb.NotFound("no key for session %s of %s in backup %s", session, room, version)
	}
	if err != nil {
		return nil, s.unavailable(err)
	}
	var d KeyBackupData
	if err := json.Unmarshal(e.Value, &d); err != nil {
		return nil, errors.New("backed-up key: " + err.Error())
	}
	return &d, nil
}

// DeleteBackupKeys answers DELETE /room_keys/keys[/{roomId}[/{sessionId}]].
func (s *Service) DeleteBackupKeys(ctx context.Context, sess Session, version, room, session string) (BackupUpdate, error) {
	version, err := s.readableBackup(ctx, sess.UserID, version)
	if err != nil {
		return BackupUpdate{}, err
	}
	n, err := s.deleteBackupKeys(ctx, sess.UserID, version, room, session)
	if err != nil {
		return BackupUpdate{}, err
	}
	if n > 0 {
		if err := s.bumpETag(ctx, sess.UserID, version); err != nil {
			return BackupUpdate{}, err
		}
	}
	return s.backupState(ctx, sess.UserID, version)
}

// deleteBackupKeys deletes a version's keys (of one room, or one session)
// and returns how many.
func (s *Service) deleteBackupKeys(ctx context.Context, user, version, room, session string) (int, error) {
	filter := backupKey(user, "k", version, ">")
	switch {
	case session != "":
		filter = backupKey(user, "k", version, jetstream.KeyPart(room), jetstream.KeyPart(session))
	case room != "":
		filter = backupKey(user, "k", version, jetstream.KeyPart(room), "*")
	}
	keys, err := s.engine.Keys(ctx, jetstream.BucketKeyBackup, filter)
	if err != nil {
		return 0, s.unavailable(err)
	}
	for _, k := range keys {
		if err := s.engine.Delete(ctx, jetstream.BucketKeyBackup, k); err != nil {
			return 0, s.unavailable(err)
		}
	}
	return len(keys), nil
}
