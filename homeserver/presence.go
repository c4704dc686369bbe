package homeserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/jetstream"
	"github.com/planb-chat/planb/projection"
)

// Presence. Each user's presence is one record of the replicated presence
// bucket, key KeyPart(user) (see projection.PresenceRecord). Any node
// writes it, always by compare-and-set on the revision its model holds, so
// that of two writers the later one decides again on what the first wrote:
//
//   - PUT /presence/{userId}/status sets the state and status message;
//   - a /sync (set_presence online, the default, or unavailable) sets the
//     state when it differs, and otherwise moves the last-active time on
//     only when the stored one is older than the refresh interval: a client
//     syncing every 30 s writes once per interval, not once per sync. A
//     long-poll that waits longer than half the interval refreshes it too;
//   - every node sweeps its model every few seconds and sets offline whoever
//     is online or unavailable and was last active longer ago than the
//     presence timeout. The first node's write wins; the others' fail their
//     compare-and-set or find the user offline already. No node is special.
//
// Presence is not critical: a write that fails (a cut-off node) is logged
// and dropped, and the sync that tried it goes on.

// presenceWriteWait bounds a presence write made on a sync's behalf or by
// the sweep: a sync is not held up longer for it.
const presenceWriteWait = 2 * time.Second

// maxStatusMsg bounds a status message, which every sync of every room
// member may carry.
const maxStatusMsg = 4096

// presenceRefresh is how often the last-active time of an active user is
// written at most: two fifths of the timeout (2 minutes of 5), so that a
// user who keeps syncing never looks inactive for longer than the timeout.
func (s *Service) presenceRefresh() time.Duration { return s.cfg.PresenceTimeout.Std() * 2 / 5 }

// presenceActive is how recently an online user must have been active to
// show as currently_active: three fifths of the timeout, longer than the
// refresh interval, so a syncing user stays currently active.
func (s *Service) presenceActive() time.Duration { return s.cfg.PresenceTimeout.Std() * 3 / 5 }

// presenceSweep is how often a node looks for users to set offline.
func (s *Service) presenceSweep() time.Duration {
	return min(max(s.cfg.PresenceTimeout.Std()/10, 200*time.Millisecond), 5*time.Second)
}

// validPresence reports whether p is a presence state a client may set.
func validPresence(p string) bool {
	switch p {
	case projection.PresenceOnline, projection.PresenceOffline, projection.PresenceUnavailable:
		return true
	}
	return false
}

// SetPresence answers PUT /presence/{userId}/status: the state and status
// message of the session's user, and their activity now. Once it returns,
// this node's syncs show it.
func (s *Service) SetPresence(ctx context.Context, sess Session, userID, presence, statusMsg string) error {
	if userID != sess.UserID {
		return planb.Forbidden("you can only set your own presence")
	}
	if !validPresence(presence) {
		return planb.InvalidParam("presence must be online, offline or unavailable, not %q", presence)
	}
	if len(statusMsg) > maxStatusMsg {
		return planb.InvalidParam("status_msg is longer than %d bytes", maxStatusMsg)
	}
	now := time.Now()
	rev, _, err := s.updatePresence(ctx, userID, func(cur projection.PresenceRecord, ok bool) (projection.PresenceRecord, bool) {
		next := cur.At(s.cfg.DataCenter, now)
		next.Presence, next.StatusMsg = presence, statusMsg
		return next, !ok || !cur.SameState(next) || cur.DataCenter != next.DataCenter || s.activityDue(cur, now)
	})
	if err != nil {
		return err
	}
	if rev > 0 {
		wctx, cancel := context.WithTimeout(ctx, s.cfg.WriteTimeout.Std())
		defer cancel()
		_ = s.model.WaitFor(wctx, projection.Token{Presence: rev})
	}
	return nil
}

// activityDue reports whether cur's last-active time is old enough at now
// to be written again.
func (s *Service) activityDue(cur projection.PresenceRecord, now time.Time) bool {
	return now.UnixMilli()-cur.LastActiveMS >= s.presenceRefresh().Milliseconds()
}

// Presence answers GET /presence/{userId}/status. A user with no presence
// record is offline; an unknown user is M_NOT_FOUND; another user's
// presence is shown only to those who share a room with them (as Synapse
// does), M_FORBIDDEN otherwise.
func (s *Service) Presence(ctx context.Context, sess Session, userID string) (projection.PresenceContent, error) {
	if err := s.readable(readLive, "presence"); err != nil {
		return projection.PresenceContent{}, err
	}
	rec, _, ok := s.model.Presence(userID)
	if !ok {
		sigil, local, server, err := planb.SplitID(userID)
		if err != nil || sigil != '@' || server != s.cfg.ServerName {
			return projection.PresenceContent{}, planb.NotFound("no such user %s", userID)
		}
		if _, _, err := s.getAccount(ctx, local); errors.Is(err, planb.ErrNotFound) {
			return projection.PresenceContent{}, planb.NotFound("no such user %s", userID)
		} else if err != nil {
			return projection.PresenceContent{}, s.unavailable(err)
		}
	}
	if userID != sess.UserID && !s.model.SharesRoom(sess.UserID, userID) {
		return projection.PresenceContent{}, planb.Forbidden("you are not allowed to see the presence of %s: you share no room", userID)
	}
	return projection.NewPresenceContent(rec, ok, time.Now(), s.presenceActive()), nil
}

// syncPresence applies a sync's set_presence ("" is online) for user: it
// sets the state when it differs and refreshes the last-active time when
// it is due; a state change is waited for, so that the sync shows it.
// "offline" changes nothing (the spec: the client is not marked online).
// Failures are logged, never the sync's.
func (s *Service) syncPresence(ctx context.Context, user, set string) {
	if set == "" {
		set = projection.PresenceOnline
	}
	if set == projection.PresenceOffline {
		return
	}
	now := time.Now()
	due := func(cur projection.PresenceRecord, ok bool) bool {
		return !ok || cur.Presence != set || cur.DataCenter != s.cfg.DataCenter || s.activityDue(cur, now)
	}
	if cur, _, ok := s.model.Presence(user); !due(cur, ok) {
		return // the common case: nothing to write, nothing asked of the engine
	}
	ctx, cancel := context.WithTimeout(ctx, presenceWriteWait)
	defer cancel()
	rev, changed, err := s.updatePresence(ctx, user, func(cur projection.PresenceRecord, ok bool) (projection.PresenceRecord, bool) {
		next := cur.At(s.cfg.DataCenter, now)
		next.Presence = set
		return next, due(cur, ok)
	})
	if err != nil {
		s.log.Debug("presence from sync not written", "user", user, "err", err)
		return
	}
	if changed {
		_ = s.model.WaitFor(ctx, projection.Token{Presence: rev})
	}
}

// updatePresence writes user's presence record as decide makes it from
// the current one (ok false: none), if decide says so, by compare-and-set:
// first on the record this node's model holds, then, after a conflict, on
// the record the bucket's leader holds. It returns the new revision (0:
// nothing written) and whether the visible state changed, or a Matrix error
// when the engine does not commit.
func (s *Service) updatePresence(ctx context.Context, user string, decide func(cur projection.PresenceRecord, ok bool) (projection.PresenceRecord, bool)) (uint64, bool, error) {
	key := jetstream.KeyPart(user)
	cur, rev, ok := s.model.Presence(user)
	for range 5 {
		next, write := decide(cur, ok)
		if !write {
			return 0, false, nil
		}
		changed := !ok || !next.SameState(cur)
		next.ChangedRev = 0
		if !changed {
			next.ChangedRev = cur.ChangedRev
			if next.ChangedRev == 0 {
				next.ChangedRev = rev
			}
		}
		b, err := json.Marshal(next)
		if err != nil {
			return 0, false, fmt.Errorf("encode presence of %s: %w", user, err)
		}
		var n uint64
		if ok {
			n, err = s.engine.Update(ctx, jetstream.BucketPresence, key, b, rev)
		} else {
			n, err = s.engine.Create(ctx, jetstream.BucketPresence, key, b)
		}
		if err == nil {
			return n, changed, nil
		}
		if !errors.Is(err, planb.ErrConflict) && !errors.Is(err, planb.ErrExists) {
			return 0, false, s.unavailable(err)
		}
		// Written meanwhile, here or at another node: decide again on what
		// the leader holds.
		e, err := s.engine.GetLeader(ctx, jetstream.BucketPresence, key)
		switch {
		case errors.Is(err, planb.ErrNotFound):
			cur, rev, ok = projection.PresenceRecord{}, 0, false
		case err != nil:
			return 0, false, s.unavailable(err)
		default:
			cur, rev, ok = projection.PresenceRecord{}, e.Revision, true
			if err := json.Unmarshal(e.Value, &cur); err != nil {
				return 0, false, fmt.Errorf("decode presence of %s: %w", user, err)
			}
		}
	}
	return 0, false, s.unavailable(fmt.Errorf("presence of %s kept changing", user))
}

// runPresence sets offline, every sweep interval, the users this node's
// model shows online or unavailable and inactive for longer than the
// presence timeout. Every node does; compare-and-set lets one write win.
func (s *Service) runPresence(ctx context.Context) error {
	tick := time.NewTicker(s.presenceSweep())
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			if s.CaughtUp() {
				s.expirePresence(ctx, now)
			}
		}
	}
}

// expirePresence is one sweep of runPresence at now.
func (s *Service) expirePresence(ctx context.Context, now time.Time) {
	cutoff := now.Add(-s.cfg.PresenceTimeout.Std()).UnixMilli()
	for _, user := range s.model.StalePresence(time.UnixMilli(cutoff)) {
		wctx, cancel := context.WithTimeout(ctx, presenceWriteWait)
		_, _, err := s.updatePresence(wctx, user, func(cur projection.PresenceRecord, ok bool) (projection.PresenceRecord, bool) {
			next := cur
			next.Presence = projection.PresenceOffline
			return next, ok && cur.Presence != projection.PresenceOffline && cur.LastActiveMS < cutoff
		})
		cancel()
		if err != nil {
			// The engine does not commit now: try again at the next sweep.
			s.log.Debug("presence timeout not written", "user", user, "err", err)
			return
		}
	}
}

// followPresence follows the presence bucket into the read models, from
// its beginning at every start (the model holds presence in memory only).
func (s *Service) followPresence(ctx context.Context) error {
	b := jetstream.BucketPresence
	return s.engine.Follow(ctx, jetstream.BucketStream(b), s.model.Position().Presence+1, func(m jetstream.RawMsg) error {
		user := jetstream.DecodeKeyPart(jetstream.BucketKey(b, m.Subject))
		var rec *projection.PresenceRecord
		if !isDeletion(m) {
			var r projection.PresenceRecord
			if err := json.Unmarshal(m.Data, &r); err == nil {
				rec = &r
			} else {
				s.log.Error("undecodable presence record skipped", "seq", m.Seq, "err", err)
			}
		}
		s.model.ApplyPresence(m.Seq, user, rec)
		return nil
	})
}
