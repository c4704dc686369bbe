package dctest

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/planb-chat/planb/internal/testutil"
)

// TestPresenceAcrossDataCenters sets presence at one data center and sees
// it in /sync at another; after the first data center is SIGKILLed its
// presence record is still there (it is replicated, not the node's), and a
// change made at a survivor reaches a client of the third.
func TestPresenceAcrossDataCenters(t *testing.T) {
	skipShort(t)
	c := startCluster(t)
	ctx := context.Background()
	aliceID, aliceTok := c.register("presence-alice", "dc1")
	bobID, bobTok := c.register("presence-bob", "dc2")
	alice := c.pinned(aliceID, aliceTok, "dc1")
	bob := c.pinned(bobID, bobTok, "dc2")

	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatalf("create room: %v", err)
	}
	testutil.WaitFor(t, 30*time.Second, "bob joins at dc2", func() error {
		_, err := bob.JoinRoomByID(ctx, room.RoomID)
		return err
	})
	first, err := bob.SyncRequest(ctx, 0, "", "", false, event.PresenceOffline)
	if err != nil {
		t.Fatalf("bob's first sync: %v", err)
	}
	if err := alice.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceUnavailable, StatusMsg: "at lunch"}); err != nil {
		t.Fatalf("alice sets her presence at dc1: %v", err)
	}
	awaitPresence(t, bob, first.NextBatch, aliceID, event.PresenceUnavailable, "at lunch")
	t.Logf("bob at dc2 saw alice's presence set at dc1")

	c.signal("dc1", syscall.SIGKILL)
	aliceAt3 := c.pinned(aliceID, aliceTok, "dc3")
	testutil.WaitFor(t, 60*time.Second, "dc3 shows alice's presence after dc1's loss", func() error {
		p, err := aliceAt3.GetPresence(ctx, aliceID)
		if err != nil {
			return err
		}
		if p.Presence != event.PresenceUnavailable || p.StatusMsg != "at lunch" {
			return fmt.Errorf("presence %+v", p)
		}
		return nil
	})
	since, err := aliceAt3.SyncRequest(ctx, 0, "", "", false, event.PresenceOffline)
	if err != nil {
		t.Fatalf("alice's sync at dc3: %v", err)
	}
	testutil.WaitFor(t, 60*time.Second, "bob sets his presence at dc2 without dc1", func() error {
		return bob.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceOnline, StatusMsg: "back"})
	})
	awaitPresence(t, aliceAt3, since.NextBatch, bobID, event.PresenceOnline, "back")
}

// awaitPresence long-polls cli's syncs from since until one carries user's
// presence with the state and status message.
func awaitPresence(t *testing.T, cli *mautrix.Client, since string, user id.UserID, want event.Presence, msg string) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(60 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		resp, err := cli.SyncRequest(ctx, 5000, since, "", false, event.PresenceOffline)
		if err != nil {
			last = err.Error()
			time.Sleep(500 * time.Millisecond)
			continue
		}
		since = resp.NextBatch
		for _, ev := range resp.Presence.Events {
			if ev.Sender != user {
				continue
			}
			p, _ := ev.Content.Raw["presence"].(string)
			s, _ := ev.Content.Raw["status_msg"].(string)
			last = fmt.Sprintf("%s %q", p, s)
			if event.Presence(p) == want && s == msg {
				return
			}
		}
	}
	t.Fatalf("%s never saw %s's presence %s %q in /sync (last: %s)", cli.UserID, user, want, msg, last)
}
