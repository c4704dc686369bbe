package roomauth

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/planb-chat/planb"
)

func TestParsePowerLevels(t *testing.T) {
	defaults := PowerLevels{Ban: 50, Kick: 50, Invite: 0, Redact: 50, StateDefault: 50, EventsDefault: 0, UsersDefault: 0,
		Users: map[string]int64{}, Events: map[string]int64{}, NotificationsRoom: 50}
	with := func(f func(*PowerLevels)) PowerLevels {
		pl := defaults
		pl.Users, pl.Events = map[string]int64{}, map[string]int64{}
		f(&pl)
		return pl
	}
	plState := func(content string) planb.StateMap {
		s := bareRoom(t).state
		s.Apply(&planb.Event{RoomID: roomID, Sender: alice, Type: planb.TypePowerLevels, StateKey: planb.StrPtr(""), Content: json.RawMessage(content)})
		return s
	}
	noCreator := planb.StateMap{}
	noCreator.Apply(&planb.Event{RoomID: roomID, Sender: bob, Type: planb.TypeCreate, StateKey: planb.StrPtr(""), Content: json.RawMessage(`{}`)})

	for _, tc := range []struct {
		name  string
		state planb.StateReader
		want  PowerLevels
	}{
		{"nil state", nil, defaults},
		{"empty state", planb.StateMap{}, defaults},
		{"no power levels: creator has 100", bareRoom(t).state, with(func(pl *PowerLevels) { pl.Users[alice] = 100 })},
		{"no power levels and no creator key: create sender has 100", noCreator, with(func(pl *PowerLevels) { pl.Users[bob] = 100 })},
		{"power levels without users: creator has no special level", plState(`{}`), defaults},
		{"every key", plState(`{"ban":1,"kick":2,"invite":3,"redact":4,"state_default":5,"events_default":6,"users_default":7,
			"users":{"@alice:x":80},"events":{"m.room.name":9},"notifications":{"room":10}}`),
			PowerLevels{Ban: 1, Kick: 2, Invite: 3, Redact: 4, StateDefault: 5, EventsDefault: 6, UsersDefault: 7,
				Users: map[string]int64{alice: 80}, Events: map[string]int64{"m.room.name": 9}, NotificationsRoom: 10}},
		{"numeric strings of older room versions", plState(`{"ban":" +075 ","kick":"-3","users":{"@bob:x":"0042"}}`),
			with(func(pl *PowerLevels) { pl.Ban, pl.Kick, pl.Users[bob] = 75, -3, 42 })},
		{"malformed values fall back to the defaults", plState(`{"ban":1.5,"kick":"x","invite":null,"redact":1e2,
			"users":{"@bob:x":true,"@carol:x":5},"events":[1],"notifications":{"room":"many"}}`),
			with(func(pl *PowerLevels) { pl.Users[carol] = 5 })},
		{"content not an object", plState(`[1,2]`), defaults},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ParsePowerLevels(tc.state); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestPowerLevelsLookups(t *testing.T) {
	pl := PowerLevels{StateDefault: 50, EventsDefault: 10, UsersDefault: 5,
		Users: map[string]int64{alice: 100}, Events: map[string]int64{planb.TypeName: 20, "org.example.ping": 0}}
	for _, tc := range []struct {
		name string
		got  int64
		want int64
	}{
		{"listed user", pl.UserLevel(alice), 100},
		{"other user gets users_default", pl.UserLevel(bob), 5},
		{"listed state event", pl.EventLevel(planb.TypeName, true), 20},
		{"listed message event", pl.EventLevel("org.example.ping", false), 0},
		{"other state event", pl.EventLevel(planb.TypeTopic, true), 50},
		{"other message event", pl.EventLevel(planb.TypeMessage, false), 10},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %d, want %d", tc.name, tc.got, tc.want)
		}
	}
}
