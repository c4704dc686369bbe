package e2e

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// TestWorkload drives a small realistic load: 6 users, 3 rooms. Creators
// invite everyone; each user follows /sync, joins the rooms it is invited
// to, sends into all rooms while the others do the same, reads its sync
// stream until it has every event, and finally every event is read back by
// ID by a user other than its sender. Zero errors, zero missing events.
func TestWorkload(t *testing.T) {
	const (
		nUsers   = 6
		nRooms   = 3
		perRoom  = 10 // messages per user and room
		wantMsgs = nUsers * nRooms * perRoom
	)
	srv := startServer(t)
	ctx := ctxTimeout(t, 150*time.Second)

	users := make([]*mautrix.Client, nUsers)
	for i := range users {
		users[i] = newUser(t, srv, fmt.Sprintf("load%d", i))
	}
	rooms := make([]id.RoomID, nRooms)
	for r := range rooms {
		resp, err := users[r].CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: fmt.Sprintf("load room %d", r)})
		must(t, "create room", err)
		rooms[r] = resp.RoomID
		for i, u := range users {
			if i == r {
				continue
			}
			_, err := users[r].InviteUser(ctx, rooms[r], &mautrix.ReqInviteUser{UserID: u.UserID})
			must(t, "invite "+u.UserID.String(), err)
		}
	}

	// Phase 1: every user syncs, joins what it is invited to, and waits
	// until it is joined to all rooms.
	syncers := make([]*syncer, nUsers)
	for i, u := range users {
		syncers[i] = newSyncer(u)
	}
	runAll(t, "join phase", nUsers, func(i int) error {
		s, u := syncers[i], users[i]
		joined := map[id.RoomID]bool{}
		return s.untilCtx(ctx, func() error {
			for r := range s.invite {
				if !joined[r] {
					if _, err := u.JoinRoomByID(ctx, r); err != nil {
						return fmt.Errorf("%s joins %s: %w", u.UserID, r, err)
					}
					joined[r] = true
				}
			}
			for _, r := range rooms {
				if _, ok := s.rooms[r]; !ok || s.invite[r] {
					return fmt.Errorf("%s not yet joined to %s in /sync", u.UserID, r)
				}
			}
			return nil
		})
	})
	for _, r := range rooms {
		jm, err := users[0].JoinedMembers(ctx, r)
		must(t, "joined_members", err)
		if len(jm.Joined) != nUsers {
			t.Fatalf("room %s has %d joined members, want %d", r, len(jm.Joined), nUsers)
		}
	}

	// Phase 2: all users send concurrently, round-robin over the rooms,
	// while following /sync; each stops syncing when it has everything.
	type sentEvent struct {
		room   id.RoomID
		sender int
		body   string
	}
	var mu sync.Mutex // guards sent
	sent := map[id.EventID]sentEvent{}
	start := make(chan struct{})
	var senders sync.WaitGroup
	sendErrs := make([]error, nUsers)
	for i, u := range users {
		senders.Go(func() {
			<-start
			for j := range perRoom {
				for _, r := range rooms {
					b := fmt.Sprintf("load-%d-%d-%s", i, j, r)
					resp, err := u.SendMessageEvent(ctx, r, event.EventMessage, text(b))
					if err != nil {
						sendErrs[i] = errors.Join(sendErrs[i], fmt.Errorf("%s sends %s: %w", u.UserID, b, err))
						continue
					}
					mu.Lock()
					sent[resp.EventID] = sentEvent{room: r, sender: i, body: b}
					mu.Unlock()
				}
			}
		})
	}
	close(start)
	runAll(t, "sync phase", nUsers, func(i int) error {
		s := syncers[i]
		return s.untilCtx(ctx, func() error {
			n := 0
			for _, r := range rooms {
				n += len(s.messages(r, "load-"))
			}
			if n < wantMsgs {
				return fmt.Errorf("%s synced %d of %d messages", s.cli.UserID, n, wantMsgs)
			}
			return nil
		})
	})
	senders.Wait()
	if err := errors.Join(sendErrs...); err != nil {
		t.Fatalf("send errors: %v", err)
	}
	if len(sent) != wantMsgs {
		t.Fatalf("%d distinct event IDs for %d sends", len(sent), wantMsgs)
	}

	// Every syncer has every event exactly once, with the sent body, in
	// the room it was sent to.
	for _, s := range syncers {
		if d := s.duplicates(); len(d) > 0 {
			t.Errorf("%s: /sync delivered events more than once: %v", s.cli.UserID, d)
		}
		for _, r := range rooms {
			for _, ev := range s.messages(r, "load-") {
				want, ok := sent[ev.ID]
				if !ok {
					t.Errorf("%s: unknown event %s (%q) in %s", s.cli.UserID, ev.ID, body(ev), r)
				} else if want.room != r || want.body != body(ev) || ev.Sender != users[want.sender].UserID {
					t.Errorf("%s: event %s arrived as %q from %s in %s, sent as %q by %s in %s", s.cli.UserID,
						ev.ID, body(ev), ev.Sender, r, want.body, users[want.sender].UserID, want.room)
				}
			}
		}
		if s.gapsFilled > nRooms {
			t.Logf("%s: %d limited timelines back-filled from /messages", s.cli.UserID, s.gapsFilled)
		}
	}
	// All members of a room agree on its order.
	for _, r := range rooms {
		ref := ids(syncers[0].messages(r, "load-"))
		for _, s := range syncers[1:] {
			if got := ids(s.messages(r, "load-")); !slices.Equal(got, ref) {
				t.Errorf("%s and %s see room %s in different orders (first difference at %d)",
					s.cli.UserID, syncers[0].cli.UserID, r, firstDiff(got, ref))
			}
		}
	}

	// Phase 3: read every event back by ID, as a member other than its sender.
	evIDs := make([]id.EventID, 0, len(sent))
	for e := range sent {
		evIDs = append(evIDs, e)
	}
	runAll(t, "read-back phase", nUsers, func(i int) error {
		var errs []error
		for k, e := range evIDs {
			want := sent[e]
			// Spread the reads over all members but the sender.
			if reader := (want.sender + 1 + k%(nUsers-1)) % nUsers; reader != i {
				continue
			}
			ev, err := users[i].GetEvent(ctx, want.room, e)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s GET event %s (%s): %w", users[i].UserID, e, want.body, err))
				continue
			}
			if ev.ID != e || body(ev) != want.body || ev.Sender != users[want.sender].UserID {
				errs = append(errs, fmt.Errorf("%s GET event %s: got %q from %s, want %q", users[i].UserID, e, body(ev), ev.Sender, want.body))
			}
		}
		return errors.Join(errs...)
	})
}

// runAll runs f(0..n-1) concurrently and fails the test with every error.
func runAll(t *testing.T, what string, n int, f func(i int) error) {
	t.Helper()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = f(i) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}
