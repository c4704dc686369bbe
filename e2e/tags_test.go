package e2e

import (
	"context"
	"sync"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
)

// TestRoomTags tags a room through mautrix: tags are listed, an order is
// kept, two tags set at once from two devices are both kept (the tags are
// changed by compare-and-set), a removed tag is gone, /sync carries m.tag
// in the room's account data, and another user's tags are forbidden.
func TestRoomTags(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	alice := newUser(t, s, "tags-alice")
	bob := newUser(t, s, "tags-bob")
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	must(t, "create room", err)

	must(t, "tag favourite", alice.AddTag(ctx, room.RoomID, event.RoomTagFavourite, 0.25))
	second, err := login(t, s, "tags-alice", password("tags-alice"))
	must(t, "second device", err)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Go(func() { errs[0] = alice.AddTag(ctx, room.RoomID, "u.work", 0.5) })
	wg.Go(func() { errs[1] = second.AddTag(ctx, room.RoomID, "u.family", 0.75) })
	wg.Wait()
	must(t, "tag work", errs[0])
	must(t, "tag family", errs[1])

	tags, err := alice.GetTags(ctx, room.RoomID)
	must(t, "get tags", err)
	fav, _ := tags.Tags[event.RoomTagFavourite].Order.Float64()
	fam, _ := tags.Tags["u.family"].Order.Float64()
	if len(tags.Tags) != 3 || fav != 0.25 || fam != 0.75 {
		t.Errorf("tags %+v, want favourite 0.25, u.work, u.family 0.75", tags.Tags)
	}
	must(t, "remove work", alice.RemoveTag(ctx, room.RoomID, "u.work"))
	if tags, err = alice.GetTags(ctx, room.RoomID); err != nil || len(tags.Tags) != 2 {
		t.Errorf("after removing u.work: %+v %v", tags.Tags, err)
	}
	resp, err := alice.SyncRequest(ctx, 0, "", "", true, event.PresenceOnline)
	must(t, "sync", err)
	found := false
	for _, ev := range resp.Rooms.Join[room.RoomID].AccountData.Events {
		if ev.Type == event.AccountDataRoomTags {
			found = true
		}
	}
	if !found {
		t.Errorf("/sync has no m.tag in the room's account data")
	}
	if r := s.raw(t, "GET", "/_matrix/client/v3/user/"+string(alice.UserID)+"/rooms/"+string(room.RoomID)+"/tags", bob.AccessToken, nil); r.status != 403 {
		t.Errorf("bob reads alice's tags: %s", r)
	}
	if r := s.raw(t, "PUT", "/_matrix/client/v3/user/"+string(alice.UserID)+"/rooms/"+string(room.RoomID)+"/tags/u.x", alice.AccessToken, []byte(`{"order":"first"}`)); r.status != 400 {
		t.Errorf("a tag with a string order: %s", r)
	}
}
