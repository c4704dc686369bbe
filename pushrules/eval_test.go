package pushrules

import (
	"encoding/json"
	"strings"
	"testing"
)

const me = "@bob:example.org"

func msg(body string, extra map[string]any) []byte {
	content := map[string]any{"msgtype": "m.text", "body": body}
	for k, v := range extra {
		content[k] = v
	}
	b, _ := json.Marshal(map[string]any{"type": "m.room.message", "sender": "@alice:example.org",
		"room_id": "!r:example.org", "event_id": "$e", "content": content})
	return b
}

func group(ctx Context) Context {
	ctx.UserID, ctx.MemberCount, ctx.SenderPower = me, 5, 0
	if ctx.DisplayName == "" {
		ctx.DisplayName = "Bobby Tables"
	}
	return ctx
}

func TestEvaluateDefaults(t *testing.T) {
	c := Compile((&Stored{}).Effective(me))
	dm := group(Context{})
	dm.MemberCount = 2
	mod := group(Context{})
	mod.SenderPower = 50
	cases := []struct {
		name              string
		event             []byte
		ctx               Context
		rule              string
		notify, highlight bool
		sound             string
	}{
		{name: "group message", event: msg("hello all", nil), ctx: group(Context{}), rule: ".m.rule.message", notify: true},
		{name: "direct message", event: msg("hello", nil), ctx: dm, rule: ".m.rule.room_one_to_one", notify: true, sound: "default"},
		{name: "intentional mention", event: msg("hi", map[string]any{"m.mentions": map[string]any{"user_ids": []string{me}}}),
			ctx: group(Context{}), rule: ".m.rule.is_user_mention", notify: true, highlight: true, sound: "default"},
		{name: "display name in body", event: msg("ask Bobby Tables, please", nil), ctx: group(Context{}),
			rule: ".m.rule.contains_display_name", notify: true, highlight: true, sound: "default"},
		{name: "display name inside a word", event: msg("xBobby Tablesx", nil), ctx: group(Context{}), rule: ".m.rule.message", notify: true},
		{name: "user name in body", event: msg("BOB: look", nil), ctx: group(Context{}), rule: ".m.rule.contains_user_name", notify: true, highlight: true, sound: "default"},
		{name: "m.mentions without me skips legacy rules", event: msg("Bobby Tables bob", map[string]any{"m.mentions": map[string]any{}}),
			ctx: group(Context{}), rule: ".m.rule.message", notify: true},
		{name: "notice", event: func() []byte {
			b, _ := json.Marshal(map[string]any{"type": "m.room.message", "sender": "@x:y", "content": map[string]any{"msgtype": "m.notice", "body": "bob"}})
			return b
		}(), ctx: group(Context{}), rule: ".m.rule.suppress_notices"},
		{name: "room mention by a moderator", event: msg("hey", map[string]any{"m.mentions": map[string]any{"room": true}}),
			ctx: mod, rule: ".m.rule.is_room_mention", notify: true, highlight: true},
		{name: "room mention by anyone", event: msg("hey", map[string]any{"m.mentions": map[string]any{"room": true}}),
			ctx: group(Context{}), rule: ".m.rule.message", notify: true},
		{name: "legacy @room by a moderator", event: msg("@room lunch", nil), ctx: mod, rule: ".m.rule.roomnotif", notify: true, highlight: true},
		{name: "edit", event: msg("* fixed", map[string]any{"m.relates_to": map[string]any{"rel_type": "m.replace", "event_id": "$x"}}),
			ctx: group(Context{}), rule: ".m.rule.suppress_edits"},
		{name: "reaction", event: []byte(`{"type":"m.reaction","sender":"@a:b","content":{"m.relates_to":{"rel_type":"m.annotation","key":"👍"}}}`),
			ctx: group(Context{}), rule: ".m.rule.reaction"},
		{name: "invite for me", event: []byte(`{"type":"m.room.member","state_key":"` + me + `","sender":"@a:b","content":{"membership":"invite"}}`),
			ctx: group(Context{}), rule: ".m.rule.invite_for_me", notify: true, sound: "default"},
		{name: "someone joins", event: []byte(`{"type":"m.room.member","state_key":"@c:b","sender":"@c:b","content":{"membership":"join"}}`),
			ctx: group(Context{}), rule: ".m.rule.member_event"},
		{name: "encrypted in a DM", event: []byte(`{"type":"m.room.encrypted","sender":"@a:b","content":{"algorithm":"m.megolm.v1.aes-sha2"}}`),
			ctx: dm, rule: ".m.rule.encrypted_room_one_to_one", notify: true, sound: "default"},
		{name: "topic change", event: []byte(`{"type":"m.room.topic","state_key":"","sender":"@a:b","content":{"topic":"bob"}}`),
			ctx: group(Context{}), rule: ""},
	}
	for _, tc := range cases {
		got := c.Evaluate(Flatten(tc.event), tc.ctx)
		if got.RuleID != tc.rule || got.Notify != tc.notify || got.Highlight != tc.highlight || got.Sound != tc.sound {
			t.Errorf("%s: got rule %q notify %v highlight %v sound %q; want %q %v %v %q", tc.name,
				got.RuleID, got.Notify, got.Highlight, got.Sound, tc.rule, tc.notify, tc.highlight, tc.sound)
		}
	}
}

func TestEvaluateUserRules(t *testing.T) {
	s := &Stored{}
	// A muted room (a room rule without notify), a sender who always
	// highlights, and a custom override on a property.
	if err := s.Put(KindRoom, "!muted:example.org", json.RawMessage(`{"actions":[]}`), "", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(KindSender, "@boss:example.org", json.RawMessage(`{"actions":["notify",{"set_tweak":"highlight"}]}`), "", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(KindOverride, "lunch", json.RawMessage(`{"actions":["notify",{"set_tweak":"sound","value":"bell"}],
		"conditions":[{"kind":"event_match","key":"content.body","pattern":"lun?h*"},{"kind":"room_member_count","is":">2"}]}`), "", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(KindOverride, "future", json.RawMessage(`{"actions":["notify"],"conditions":[{"kind":"org.example.unknown"}]}`), "", ""); err != nil {
		t.Fatal(err)
	}
	c := Compile(s.Effective(me))
	ctx := group(Context{})
	muted := []byte(`{"type":"m.room.message","room_id":"!muted:example.org","sender":"@a:b","content":{"msgtype":"m.text","body":"hi"}}`)
	if r := c.Evaluate(Flatten(muted), ctx); r.Notify || r.RuleID != "!muted:example.org" {
		t.Errorf("muted room: %+v", r)
	}
	boss := []byte(`{"type":"m.room.message","room_id":"!r:example.org","sender":"@boss:example.org","content":{"msgtype":"m.text","body":"hi"}}`)
	if r := c.Evaluate(Flatten(boss), ctx); !r.Notify || !r.Highlight {
		t.Errorf("sender rule: %+v", r)
	}
	if r := c.Evaluate(Flatten(msg("lunches today?", nil)), ctx); r.RuleID != "lunch" || r.Sound != "bell" {
		t.Errorf("lunch rule: %+v", r)
	}
	dm := ctx
	dm.MemberCount = 2
	if r := c.Evaluate(Flatten(msg("lunch", nil)), dm); r.RuleID == "lunch" {
		t.Errorf("room_member_count >2 matched 2 members")
	}
	// The master rule, enabled, silences everything.
	if err := s.SetEnabled(me, KindOverride, ".m.rule.master", true); err != nil {
		t.Fatal(err)
	}
	if r := Compile(s.Effective(me)).Evaluate(Flatten(boss), ctx); r.Notify || r.RuleID != ".m.rule.master" {
		t.Errorf("master: %+v", r)
	}
}

func TestConditions(t *testing.T) {
	ev := Flatten([]byte(`{"type":"m.room.topic","content":{"topic":"Lunch plans","m.federate":true,"n":3,
		"aliases":["#a:b","#c:d",1],"a.b":{"c\\d":"x"}}}`))
	cases := []struct {
		cond string
		want bool
	}{
		{`{"kind":"event_match","key":"content.topic","pattern":"lunc?*"}`, true},
		{`{"kind":"event_match","key":"content.topic","pattern":"lunc"}`, false},
		{`{"kind":"event_match","key":"content.topic","pattern":"plans"}`, false}, // whole value only
		{`{"kind":"event_match","key":"content.m\\.federate","pattern":"*"}`, false},
		{`{"kind":"event_match","key":"content.absent","pattern":"*"}`, false},
		{`{"kind":"event_property_is","key":"content.m\\.federate","value":true}`, true},
		{`{"kind":"event_property_is","key":"content.m\\.federate","value":"true"}`, false},
		{`{"kind":"event_property_is","key":"content.n","value":3}`, true},
		{`{"kind":"event_property_is","key":"content.n","value":"3"}`, false},
		{`{"kind":"event_property_contains","key":"content.aliases","value":"#c:d"}`, true},
		{`{"kind":"event_property_contains","key":"content.aliases","value":1}`, true},
		{`{"kind":"event_property_contains","key":"content.aliases","value":":d"}`, false},
		{`{"kind":"event_property_is","key":"content.a\\.b.c\\\\d","value":"x"}`, true},
	}
	for _, tc := range cases {
		conds, broken := compileConditions(json.RawMessage("[" + tc.cond + "]"))
		if broken {
			t.Errorf("%s: not understood", tc.cond)
			continue
		}
		if got := conds[0].holds(ev, Context{}); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.cond, got, tc.want)
		}
	}
	body := Flatten(msg("An exciting triple-whammy", nil))
	for pattern, want := range map[string]bool{"ex*ple": true, "exciting": true, "xciting": false, "whammy": true, "triple": true} {
		conds, _ := compileConditions(json.RawMessage(`[{"kind":"event_match","key":"content.body","pattern":"` + pattern + `"}]`))
		if got := conds[0].holds(body, Context{}); got != want {
			t.Errorf("content.body %q: %v, want %v", pattern, got, want)
		}
	}
	for is, want := range map[string]bool{"5": true, "==5": true, "<6": true, ">5": false, ">=5": true, "<=4": false} {
		conds, broken := compileConditions(json.RawMessage(`[{"kind":"room_member_count","is":"` + is + `"}]`))
		if broken || conds[0].holds(Flat{}, Context{MemberCount: 5}) != want {
			t.Errorf("room_member_count %q: want %v", is, want)
		}
	}
	for _, bad := range []string{`[{"kind":"room_member_count","is":"x5"}]`, `[{"kind":"event_match","key":"type"}]`, `[{"kind":"nope"}]`, `{}`} {
		if _, broken := compileConditions(json.RawMessage(bad)); !broken {
			t.Errorf("%s understood", bad)
		}
	}
}

func TestFlattenEvent(t *testing.T) {
	sk := ""
	whole := Flatten([]byte(`{"event_id":"$e","room_id":"!r","sender":"@a:b","type":"m.room.topic","state_key":"","content":{"topic":"x","m.rel":{"a.b":1}}}`))
	parts := FlattenEvent("$e", "!r", "@a:b", "m.room.topic", &sk, []byte(`{"topic":"x","m.rel":{"a.b":1}}`))
	if len(whole) != len(parts) {
		t.Fatalf("Flatten %v, FlattenEvent %v", whole, parts)
	}
	for k, v := range whole {
		if parts[k] != v {
			t.Errorf("%s: %v vs %v", k, v, parts[k])
		}
	}
	if _, ok := parts[`content.m\.rel.a\.b`]; !ok {
		t.Errorf("escaped path missing: %v", parts)
	}
}

// BenchmarkEvaluate is one user's default rules against a group message of
// 256 bytes (the bench's message), flattened once as the read model does.
func BenchmarkEvaluate(b *testing.B) {
	c := Compile((&Stored{}).Effective(me))
	ev := Flatten(msg(strings.Repeat("x", 256), nil))
	ctx := group(Context{})
	for b.Loop() {
		if r := c.Evaluate(ev, ctx); !r.Notify {
			b.Fatal("no notify")
		}
	}
}
