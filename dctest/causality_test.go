package dctest

import (
	"context"
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
