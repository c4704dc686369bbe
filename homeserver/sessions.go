package homeserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/jetstream"
)

// Every request authenticates its access token. Asking the tokens bucket
// each time costs a request to a replica (often in another data center),
// so a node remembers the sessions it has looked up. It forgets one as soon
// as its follower of the tokens bucket sees the token's key change (a
// logout anywhere, a new login on the device): a token logged out at one
// data center stops working at the others as soon as they have read the
// deletion, within the poll of a follower (100 ms) at the latest when the
// hint is lost, as before with reads from a replica.
//
// A miss is filled from the bucket's leader, which has every committed
// change, and only after the follower started, so that every later change
// reaches the follower; a value that the follower has seen change since is
// not remembered. Entries also expire (sessionTTL), and the cache is off
// while the follower is not running.
const (
	// leaderAuthWait bounds asking the leader on a miss; during an
	// election a replica answers instead.
	leaderAuthWait    = time.Second
	sessionTTL        = 5 * time.Minute
	sessionCacheMax   = 100_000
	sessionChangeKeep = 2 * time.Minute
)

type cachedSession struct {
	sess Session
	at   time.Time
}

type tokenChange struct {
	seq uint64
	at  time.Time
}

// sessionCache is the node's memory of looked-up sessions. Lock rule: mu
// guards every field.
type sessionCache struct {
	mu      sync.Mutex
	live    bool                     // the tokens follower runs
	epoch   uint64                   // counts starts of the follower
	entries map[string]cachedSession // token hash → session
	changed map[string]tokenChange   // token hash → last change the follower saw
}

// fill is a ticket for remembering a session: taken before the bucket is
// read, it is good only if the follower was running then and still is the
// same run, so that every change after the read reaches the follower.
type fill struct {
	epoch uint64
	ok    bool
}

func (c *sessionCache) ticket() fill {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fill{epoch: c.epoch, ok: c.live}
}

func newSessionCache() *sessionCache {
	return &sessionCache{entries: map[string]cachedSession{}, changed: map[string]tokenChange{}}
}

func (c *sessionCache) get(hash string, now time.Time) (Session, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[hash]
	if !c.live || !ok || now.Sub(e.at) >= sessionTTL {
		return Session{}, false
	}
	return e.sess, true
}

// put remembers sess, read at revision rev with ticket t, unless the
// follower saw the key change after rev.
func (c *sessionCache) put(t fill, hash string, sess Session, rev uint64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !t.ok || !c.live || c.epoch != t.epoch || c.changed[hash].seq > rev {
		return
	}
	if len(c.entries) >= sessionCacheMax {
		for h, e := range c.entries { // drop the expired, or a tenth at random
			if now.Sub(e.at) >= sessionTTL || len(c.entries) > sessionCacheMax*9/10 {
				delete(c.entries, h)
			}
		}
	}
	c.entries[hash] = cachedSession{sess: sess, at: now}
}

// changedAt forgets hash: the follower saw its key change at seq.
func (c *sessionCache) changedAt(hash string, seq uint64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, hash)
	c.changed[hash] = tokenChange{seq: seq, at: now}
	if len(c.changed) > 10_000 {
		for h, ch := range c.changed {
			if now.Sub(ch.at) > sessionChangeKeep {
				delete(c.changed, h)
			}
		}
	}
}

// forget drops hash at once, for a token this node deleted: its own
// follower reads the deletion only a moment later.
func (c *sessionCache) forget(hash string, now time.Time) {
	c.changedAt(hash, math.MaxUint64, now)
}

func (c *sessionCache) setLive(live bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.live = live
	if live {
		c.epoch++
	} else {
		clear(c.entries)
	}
}

// followTokens keeps the session cache honest: it follows the tokens bucket
// from its end and forgets every token whose key changes.
func (s *Service) followTokens(ctx context.Context) error {
	stream := jetstream.BucketStream(jetstream.BucketTokens)
	for ctx.Err() == nil {
		last, err := s.engine.StreamLastSeq(ctx, stream)
		if err != nil {
			// No leader now (election, cut off): authenticate without the
			// cache until the follower runs.
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		s.sessions.setLive(true)
		err = s.engine.Follow(ctx, stream, last+1, func(m jetstream.RawMsg) error {
			s.sessions.changedAt(jetstream.BucketKey(jetstream.BucketTokens, m.Subject), m.Seq, time.Now())
			return nil
		})
		s.sessions.setLive(false)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("following the tokens bucket stopped; authenticating without the session cache", "err", err)
		}
	}
	return nil
}

// Authenticate returns the session of an access token, or M_UNKNOWN_TOKEN.
func (s *Service) Authenticate(ctx context.Context, token string) (Session, error) {
	hash := tokenHash(token)
	if sess, ok := s.sessions.get(hash, time.Now()); ok {
		return sess, nil
	}
	t := s.sessions.ticket()
	lctx, cancel := context.WithTimeout(ctx, leaderAuthWait)
	e, err := s.engine.GetLeader(lctx, jetstream.BucketTokens, hash)
	cancel()
	cacheable := err == nil
	if err != nil && !errors.Is(err, planb.ErrNotFound) {
		// The leader cannot be asked now (an election): a replica may
		// answer, but what it says is not remembered.
		e, err = s.engine.Get(ctx, jetstream.BucketTokens, hash)
	}
	if errors.Is(err, planb.ErrNotFound) {
		return Session{}, &planb.Error{Code: planb.CodeUnknownToken, Status: 401,
			Message: "unknown or expired access token", Extra: map[string]any{"soft_logout": false}}
	}
	if err != nil {
		return Session{}, s.unavailable(err)
	}
	var sess Session
	if err := json.Unmarshal(e.Value, &sess); err != nil {
		return Session{}, fmt.Errorf("decode session: %w", err)
	}
	if cacheable {
		s.sessions.put(t, hash, sess, e.Revision, time.Now())
	}
	return sess, nil
}
