package e2e

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/pushrules"

	"github.com/planb-chat/planb/internal/pushgwtest"
)

// setPusher registers an http pusher for gateway with mautrix.
func setPusher(t *testing.T, cli *mautrix.Client, pushkey, format string, gw *pushgwtest.Gateway) {
	t.Helper()
	kind := mautrix.PusherKindHTTP
	data := mautrix.PusherData{"url": gw.URL}
	if format != "" {
		data["format"] = format
	}
	must(t, "set pusher "+pushkey, cli.SetPusher(t.Context(), &mautrix.Pusher{Kind: &kind, AppID: "org.example.e2e",
		PushKey: pushkey, AppDisplayName: "e2e", DeviceDisplayName: "phone", Language: "en", Data: data}))
}

// pushFor waits for the notification of eventID to pushkey.
func pushFor(t *testing.T, gw *pushgwtest.Gateway, eventID id.EventID, pushkey string) pushgwtest.Notification {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var found pushgwtest.Notification
	_, ok := gw.WaitFor(ctx, func(ns []pushgwtest.Notification) bool {
		for _, n := range pushgwtest.ForEvent(ns, string(eventID)) {
			if len(n.Devices) == 1 && n.Devices[0].PushKey == pushkey {
				found = n
				return true
			}
		}
		return false
	})
	if !ok {
		t.Fatalf("no push of %s to %s within 60 s; received %d notifications", eventID, pushkey, len(gw.Received()))
	}
	return found
}

// pushesTo counts the notifications of eventID to pushkey received so far.
func pushesTo(gw *pushgwtest.Gateway, eventID id.EventID, pushkey string) int {
	n := 0
	for _, got := range pushgwtest.ForEvent(gw.Received(), string(eventID)) {
		if len(got.Devices) == 1 && got.Devices[0].PushKey == pushkey {
			n++
		}
	}
	return n
}

// TestPushDelivery: pushers registered through mautrix get the right
// notification from a real gateway over HTTP for a group message, a
// mention and a direct message; a muted room and one's own messages push
// nothing; a failing gateway is retried; a rejected pushkey's pusher is
// removed.
func TestPushDelivery(t *testing.T) {
	srv := startServer(t)
	ctx := t.Context()
	gw := pushgwtest.Start(t)
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")
	carol := newUser(t, srv, "carol")
	must(t, "bob's display name", bob.SetDisplayName(ctx, "Bob B"))
	setPusher(t, alice, "alice-phone", "", gw)
	setPusher(t, bob, "bob-phone", "", gw)
	setPusher(t, carol, "carol-phone", "event_id_only", gw)

	group, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "Lunch club",
		Invite: []id.UserID{bob.UserID, carol.UserID}})
	must(t, "create the group", err)
	dm, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", IsDirect: true, Invite: []id.UserID{bob.UserID}})
	must(t, "create the DM", err)
	for _, j := range []struct {
		c    *mautrix.Client
		room id.RoomID
	}{{bob, group.RoomID}, {carol, group.RoomID}, {bob, dm.RoomID}} {
		_, err := j.c.JoinRoomByID(ctx, j.room)
		must(t, "join", err)
	}

	// A group message: bob gets it with content, carol only the IDs.
	hello := sendText(t, alice, group.RoomID, "hello everyone")
	nb := pushFor(t, gw, hello, "bob-phone")
	if nb.RoomID != string(group.RoomID) || nb.Sender != string(alice.UserID) || nb.Type != "m.room.message" ||
		nb.RoomName != "Lunch club" || len(nb.Content) == 0 || nb.Counts.Unread != 1 || nb.Prio != "low" ||
		nb.Devices[0].AppID != "org.example.e2e" || nb.Devices[0].Tweaks["highlight"] != nil || nb.Devices[0].Tweaks["sound"] != nil {
		t.Errorf("bob's push of the group message: %+v", nb)
	}
	nc := pushFor(t, gw, hello, "carol-phone")
	if nc.RoomID != string(group.RoomID) || nc.Sender != "" || len(nc.Content) != 0 || nc.Counts.Unread != 1 {
		t.Errorf("carol's event_id_only push: %+v", nc)
	}

	// A mention of bob highlights, with sound, at high priority.
	mention := sendContent(t, alice, group.RoomID, "m.room.message", map[string]any{"msgtype": "m.text", "body": "Bob B: lunch?",
		"m.mentions": map[string]any{"user_ids": []string{string(bob.UserID)}}})
	nm := pushFor(t, gw, mention, "bob-phone")
	if nm.Devices[0].Tweaks["highlight"] != true || nm.Devices[0].Tweaks["sound"] != "default" || nm.Prio != "high" || nm.Counts.Unread != 2 {
		t.Errorf("bob's push of the mention: %+v", nm)
	}
	if cm := pushFor(t, gw, mention, "carol-phone"); cm.Devices[0].Tweaks["highlight"] != nil {
		t.Errorf("carol's push of a mention of bob highlights: %+v", cm)
	}

	// A direct message rings with the default sound.
	direct := sendText(t, alice, dm.RoomID, "just you and me")
	nd := pushFor(t, gw, direct, "bob-phone")
	if nd.Devices[0].Tweaks["sound"] != "default" || nd.Counts.Unread != 3 {
		t.Errorf("bob's push of the DM: %+v", nd)
	}

	// Bob mutes the group: carol still gets its messages, bob does not.
	must(t, "mute the group", bob.PutPushRule(ctx, "global", pushrules.RoomRule, string(group.RoomID),
		&mautrix.ReqPutPushRule{Actions: []*pushrules.PushAction{}}))
	waitRules := time.Now().Add(30 * time.Second)
	var muted id.EventID
	for {
		// The rule reaches the sending node's read model through the
		// account-data bucket; the first message after it is muted.
		muted = sendText(t, alice, group.RoomID, "anyone for tea?")
		pushFor(t, gw, muted, "carol-phone")
		time.Sleep(500 * time.Millisecond) // bob's push, if any, was sent with carol's
		if pushesTo(gw, muted, "bob-phone") == 0 {
			break
		}
		if time.Now().After(waitRules) {
			t.Fatalf("bob's muted room still pushes after 30 s")
		}
	}
	for _, ev := range []id.EventID{hello, mention, direct, muted} {
		if n := pushesTo(gw, ev, "alice-phone"); n != 0 {
			t.Errorf("alice got %d pushes of her own message %s", n, ev)
		}
	}

	// GET /notifications lists what pushed, newest first, and the
	// highlights alone on request.
	listed := func(query string) []string {
		t.Helper()
		r := srv.raw(t, "GET", "/_matrix/client/v3/notifications"+query, bob.AccessToken, nil)
		ns, ok := r.json["notifications"].([]any)
		if r.status != 200 || !ok {
			t.Fatalf("GET /notifications%s: %s", query, r)
		}
		var ids []string
		for _, n := range ns {
			m := n.(map[string]any)
			ev, _ := m["event"].(map[string]any)
			if _, ok := m["actions"].([]any); !ok || m["room_id"] == nil || m["ts"] == nil || m["read"] != false {
				t.Errorf("notification entry %v", m)
			}
			ids = append(ids, ev["event_id"].(string))
		}
		return ids
	}
	// The list follows the rules as they are now: the group is muted, so
	// its plain messages are left out, while the mention (an override
	// rule, checked before room rules) stays.
	if got, want := listed(""), []string{string(direct), string(mention)}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("bob's notifications %v, want %v", got, want)
	}
	if got := listed("?only=highlight"); len(got) != 1 || got[0] != string(mention) {
		t.Errorf("bob's highlights %v, want [%s]", got, mention)
	}
	if r := srv.raw(t, "GET", "/_matrix/client/v3/notifications?from=nonsense", bob.AccessToken, nil); !checkRaw(t, "bad from", r, want{400, "M_INVALID_PARAM"}) {
		t.Log(r)
	}

	// A gateway failing twice gets the push on a retry.
	gw.Fail(2)
	retried := sendText(t, alice, dm.RoomID, "are you there?")
	pushFor(t, gw, retried, "bob-phone")

	// A rejected pushkey's pusher is removed.
	gw.Reject("carol-phone")
	rejected := sendText(t, alice, group.RoomID, "carol?")
	pushFor(t, gw, rejected, "carol-phone")
	deadline := time.Now().Add(30 * time.Second)
	for len(pushkeys(t, srv, carol.AccessToken)) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("carol's rejected pusher still listed after 30 s: %v", pushkeys(t, srv, carol.AccessToken))
		}
		time.Sleep(200 * time.Millisecond)
	}
	after := sendText(t, alice, group.RoomID, "gone")
	time.Sleep(2 * time.Second)
	if n := pushesTo(gw, after, "carol-phone"); n != 0 {
		t.Errorf("carol's removed pusher got %d pushes", n)
	}
}

// TestPushHungGateway: a gateway that accepts requests and never answers
// delays neither sends nor the pushes of other users.
func TestPushHungGateway(t *testing.T) {
	srv := startServer(t)
	ctx := t.Context()
	good, hung := pushgwtest.Start(t), pushgwtest.Start(t)
	hung.Hang()
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")
	carol := newUser(t, srv, "carol")
	setPusher(t, bob, "bob-phone", "", good)
	setPusher(t, carol, "carol-phone", "", hung)
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Invite: []id.UserID{bob.UserID, carol.UserID}})
	must(t, "create room", err)
	for _, c := range []*mautrix.Client{bob, carol} {
		_, err := c.JoinRoomByID(ctx, room.RoomID)
		must(t, "join", err)
	}
	// More messages than the window of first attempts a partition holds
	// would allow if the hung gateway held them all.
	const n = 60
	start := time.Now()
	var last id.EventID
	for i := range n { // bob's gateway gets only these: his join and the room's state notify nothing
		last = sendText(t, alice, room.RoomID, "message "+strconv.Itoa(i))
	}
	sent := time.Since(start)
	pushFor(t, good, last, "bob-phone")
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	got, ok := good.WaitFor(wctx, func(ns []pushgwtest.Notification) bool { return len(ns) >= n })
	if !ok {
		t.Errorf("bob got %d of %d pushes within 60 s", len(got), n)
	}
	if hung.Hung() == 0 {
		t.Errorf("the hung gateway was never asked")
	}
	t.Logf("%d sends took %.1f s and every push to the good gateway arrived %.1f s after the first send while %d requests hung",
		n, sent.Seconds(), time.Since(start).Seconds(), hung.Hung())
	if sent > 30*time.Second {
		t.Errorf("%d sends took %.1f s with a hung gateway", n, sent.Seconds())
	}
}

// TestPushAcrossRestart: after the node restarts, a new message is pushed
// (the pushers are followed again from their bucket before any event is
// looked at), and what was pushed before the restart is not pushed again
// (the partition's cursor is replicated, not the node's).
func TestPushAcrossRestart(t *testing.T) {
	srv := startServer(t)
	ctx := t.Context()
	gw := pushgwtest.Start(t)
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")
	setPusher(t, bob, "bob-phone", "", gw)
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	must(t, "create room", err)
	_, err = bob.JoinRoomByID(ctx, room.RoomID)
	must(t, "bob joins", err)
	before := sendText(t, alice, room.RoomID, "before the restart")
	pushFor(t, gw, before, "bob-phone")
	// The saved cursor moves at most every 250 ms after a push.
	time.Sleep(time.Second)
	srv.restart(t)
	after := sendText(t, alice, room.RoomID, "after the restart")
	pushFor(t, gw, after, "bob-phone")
	if n := pushesTo(gw, before, "bob-phone"); n != 1 {
		t.Errorf("the message before the restart was pushed %d times", n)
	}
}
