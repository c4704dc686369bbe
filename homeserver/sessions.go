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
//
// A follower that runs is not enough: a node cut off from the other data
// centers keeps following its own replica, which hears of no logout made
// elsewhere. So the follower proves every second that it is current: it
// asks the bucket's leader for the last sequence and counts itself fresh
// as of that question once it has applied that far. The cache answers only
// while the follower was fresh within sessionFreshness; after that every
// request asks the leader, and a node that cannot reach the leader (cut
// off) refuses tokens with 503 M_UNAVAILABLE rather than accept one that
// may have been logged out. A logout therefore takes effect everywhere
// within sessionFreshness + confirmEvery, also at an island.
const (
	// leaderAuthWait bounds asking the leader on a miss; during an
	// election a replica answers instead.
	leaderAuthWait    = time.Second
	sessionTTL        = 5 * time.Minute
	sessionCacheMax   = 100_000
	sessionChangeKeep = 2 * time.Minute
	// sessionFreshness bounds how stale this node's view of the tokens
	// bucket may be while it still authenticates without the leader.
	sessionFreshness = 15 * time.Second
	// confirmEvery is how often the follower proves it is current.
	confirmEvery = time.Second
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
	applied uint64                   // last bucket sequence the follower applied
	want    uint64                   // a confirmation waits until applied reaches want
	wantAt  time.Time                // when the leader said want (zero: none waits)
	freshAt time.Time                // the follower was current as of this time
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

// fresh reports whether the follower was current within sessionFreshness.
func (c *sessionCache) fresh(now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.freshLocked(now)
}

func (c *sessionCache) freshLocked(now time.Time) bool {
	return c.live && !c.freshAt.IsZero() && now.Sub(c.freshAt) < sessionFreshness
}

// confirm records that the bucket's leader, asked at at, had last as its
// last sequence: the follower is current as of at once it applied last.
func (c *sessionCache) confirm(last uint64, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.applied >= last:
		if at.After(c.freshAt) {
			c.freshAt = at
		}
	case c.wantAt.IsZero() || at.Sub(c.wantAt) >= sessionFreshness:
		// A wait that never ends (the record was gone before the
		// follower read it) must not switch the cache off for good: a
		// newer sequence replaces it, and later records reach the
		// follower.
		c.want, c.wantAt = last, at
	}
}

// apply records that the follower applied the bucket's record seq.
func (c *sessionCache) apply(seq uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.applied = max(c.applied, seq)
	if !c.wantAt.IsZero() && c.applied >= c.want {
		if c.wantAt.After(c.freshAt) {
			c.freshAt = c.wantAt
		}
		c.wantAt = time.Time{}
	}
}

func (c *sessionCache) get(hash string, now time.Time) (Session, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[hash]
	if !c.freshLocked(now) || !ok || now.Sub(e.at) >= sessionTTL {
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

// setLive records that the follower starts (from after sequence from) or
// stops.
func (c *sessionCache) setLive(live bool, from uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.live = live
	c.applied, c.wantAt, c.freshAt = from, time.Time{}, time.Time{}
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
		s.sessions.setLive(true, last)
		fctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.confirmTokens(fctx, stream)
		}()
		err = s.engine.Follow(fctx, stream, last+1, func(m jetstream.RawMsg) error {
			s.sessions.changedAt(jetstream.BucketKey(jetstream.BucketTokens, m.Subject), m.Seq, time.Now())
			s.sessions.apply(m.Seq)
			return nil
		})
		stop()
		<-done
		s.sessions.setLive(false, 0)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("following the tokens bucket stopped; authenticating without the session cache", "err", err)
		}
	}
	return nil
}

// confirmTokens proves, every confirmEvery until ctx ends, that the tokens
// follower is current (see sessionCache.confirm).
func (s *Service) confirmTokens(ctx context.Context, stream string) {
	tick := time.NewTicker(confirmEvery)
	defer tick.Stop()
	for {
		at := time.Now()
		// A leader in a cut-off minority may still answer for a while
		// before it steps down: only a node with routes to a quorum,
		// before and after asking, takes the answer as proof.
		if !s.isCutOff() {
			cctx, cancel := context.WithTimeout(ctx, 2*confirmEvery)
			last, err := s.engine.StreamLastSeq(cctx, stream)
			cancel()
			if err == nil && !s.isCutOff() {
				s.sessions.confirm(last, at)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// errTokenUnverifiable is the answer of a node that cannot tell whether a
// token is still valid.
func errTokenUnverifiable() error {
	return planb.Unavailable(2*time.Second, "this data center is cut off from the other data centers and cannot check your access token; retry at another data center")
}

// Authenticate returns the session of an access token, or M_UNKNOWN_TOKEN.
// A node whose view of the tokens bucket may be stale by more than
// sessionFreshness, and that cannot ask the bucket's leader, answers 503.
func (s *Service) Authenticate(ctx context.Context, token string) (Session, error) {
	hash := tokenHash(token)
	now := time.Now()
	if sess, ok := s.sessions.get(hash, now); ok {
		return checkSession(sess, now)
	}
	fresh := s.sessions.fresh(now)
	if !fresh && s.isCutOff() {
		return Session{}, errTokenUnverifiable()
	}
	t := s.sessions.ticket()
	lctx, cancel := context.WithTimeout(ctx, leaderAuthWait)
	e, err := s.engine.GetLeader(lctx, jetstream.BucketTokens, hash)
	cancel()
	cacheable := err == nil
	if err != nil && !errors.Is(err, planb.ErrNotFound) {
		// The leader cannot be asked now (an election). A replica may
		// answer, but what it says is not remembered, and only a node
		// whose follower was current a moment ago, or that is not cut
		// off, may trust its replica.
		if s.isCutOff() && !s.sessions.fresh(time.Now()) {
			return Session{}, errTokenUnverifiable()
		}
		e, err = s.engine.Get(ctx, jetstream.BucketTokens, hash)
	}
	if errors.Is(err, planb.ErrNotFound) {
		return Session{}, planb.UnknownToken("unknown or expired access token")
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
	return checkSession(sess, time.Now())
}
