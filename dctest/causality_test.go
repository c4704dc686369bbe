package dctest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
)

// TestJoinThenSendElsewhere joins rooms through one data center and sends
// into them through another at once, as a client does that fails over
// right after joining. The other data center's read model may not have
// applied the join yet; the send must still be accepted (checked against
// the end of the room's log before any refusal), never refused with 403.
func TestJoinThenSendElsewhere(t *testing.T) {
	skipShort(t)
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	owner, ownerTok := c.register("causal-owner", "dc1")
	const rounds = 20
	for i := 0; i < rounds; i++ {
		u, tok := c.register(fmt.Sprintf("causal-%d", i), []string{"dc1", "dc2", "dc3"}[i%3]) // spread: registration is rate-limited per data center
		room, err := c.pinned(owner, ownerTok, "dc1").CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatalf("create room: %v", err)
		}
		joinDC, sendDC := []string{"dc1", "dc2", "dc3"}[i%3], []string{"dc2", "dc3", "dc1"}[i%3]
		if _, err := c.pinned(u, tok, joinDC).JoinRoomByID(ctx, room.RoomID); err != nil {
			t.Fatalf("round %d: join at %s: %v", i, joinDC, err)
		}
		if _, err := c.pinned(u, tok, sendDC).SendMessageEvent(ctx, room.RoomID, event.EventMessage,
			map[string]any{"msgtype": "m.text", "body": "right after joining"}, mautrix.ReqSendEvent{TransactionID: fmt.Sprintf("causal-%d", i)}); err != nil {
			t.Errorf("round %d: joined at %s, sent at %s at once: %v", i, joinDC, sendDC, err)
		}
	}
}

// TestLogoutEverywhere: a token works at every data center right after it
// was issued at one, and stops working at every data center right after a
// logout at another, although each node remembers the sessions it looked
// up (homeserver/sessions.go).
func TestLogoutEverywhere(t *testing.T) {
	skipShort(t)
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dcs := []string{"dc1", "dc2", "dc3"}
	var worst time.Duration
	for i := 0; i < 6; i++ {
		at := dcs[i%3]
		u, tok := c.register(fmt.Sprintf("logout-%d", i), at)
		// Issued at one data center, used at once at the others (a miss
		// of their caches), then again (a hit).
		for range 3 {
			for _, dc := range dcs {
				if who, err := c.pinned(u, tok, dc).Whoami(ctx); err != nil || who.UserID != u {
					t.Fatalf("round %d: whoami at %s with a token issued at %s: %v %v", i, dc, at, who, err)
				}
			}
		}
		out := dcs[(i+1)%3]
		logoutAt := time.Now()
		if _, err := c.pinned(u, tok, out).Logout(ctx); err != nil {
			t.Fatalf("round %d: logout at %s: %v", i, out, err)
		}
		for _, dc := range dcs {
			for {
				_, err := c.pinned(u, tok, dc).Whoami(ctx)
				if errors.Is(err, mautrix.MUnknownToken) {
					break
				}
				if took := time.Since(logoutAt); took > 5*time.Second {
					t.Fatalf("round %d: token logged out at %s still accepted at %s after %v (%v)", i, out, dc, took, err)
				}
				if dc == out {
					t.Errorf("round %d: the data center that logged the token out accepted it again: %v", i, err)
				}
				time.Sleep(10 * time.Millisecond)
			}
			worst = max(worst, time.Since(logoutAt))
		}
	}
	t.Logf("MEASURED: a logged-out token was refused at every data center within %v of the logout", worst.Round(time.Millisecond))
}
