package httpapi

import "strings"

// rule builds one push rule.
func rule(id string, enabled bool, conditions []map[string]any, actions ...any) map[string]any {
	r := map[string]any{"rule_id": id, "default": true, "enabled": enabled, "actions": actions}
	if conditions != nil {
		r["conditions"] = conditions
	}
	return r
}

func eventMatch(key, pattern string) map[string]any {
	return map[string]any{"kind": "event_match", "key": key, "pattern": pattern}
}

func propertyIs(key string, value any) map[string]any {
	return map[string]any{"kind": "event_property_is", "key": key, "value": value}
}

func propertyContains(key string, value any) map[string]any {
	return map[string]any{"kind": "event_property_contains", "key": key, "value": value}
}

var (
	notify    = "notify"
	soundDef  = map[string]any{"set_tweak": "sound", "value": "default"}
	soundRing = map[string]any{"set_tweak": "sound", "value": "ring"}
	highlight = map[string]any{"set_tweak": "highlight"}
)

// defaultPushRules returns the spec's predefined push rules for userID
// (client-server API, "Predefined Rules").
func defaultPushRules(userID string) map[string]any {
	local := strings.TrimPrefix(strings.SplitN(userID, ":", 2)[0], "@")
	override := []any{
		rule(".m.rule.master", false, []map[string]any{}),
		rule(".m.rule.suppress_notices", true, []map[string]any{eventMatch("content.msgtype", "m.notice")}),
		rule(".m.rule.invite_for_me", true, []map[string]any{eventMatch("type", "m.room.member"),
			eventMatch("content.membership", "invite"), eventMatch("state_key", userID)}, notify, soundDef),
		rule(".m.rule.member_event", true, []map[string]any{eventMatch("type", "m.room.member")}),
		rule(".m.rule.is_user_mention", true, []map[string]any{propertyContains(`content.m\.mentions.user_ids`, userID)}, notify, highlight, soundDef),
		rule(".m.rule.contains_display_name", true, []map[string]any{{"kind": "contains_display_name"}}, notify, highlight, soundDef),
		rule(".m.rule.is_room_mention", true, []map[string]any{propertyIs(`content.m\.mentions.room`, true),
			{"kind": "sender_notification_permission", "key": "room"}}, notify, highlight),
		rule(".m.rule.roomnotif", true, []map[string]any{{"kind": "sender_notification_permission", "key": "room"},
			eventMatch("content.body", "@room")}, notify, highlight),
		rule(".m.rule.tombstone", true, []map[string]any{eventMatch("type", "m.room.tombstone"), eventMatch("state_key", "")}, notify, highlight),
		rule(".m.rule.reaction", true, []map[string]any{eventMatch("type", "m.reaction")}),
		rule(".m.rule.room.server_acl", true, []map[string]any{eventMatch("type", "m.room.server_acl"), eventMatch("state_key", "")}),
		rule(".m.rule.suppress_edits", true, []map[string]any{propertyIs(`content.m\.relates_to.rel_type`, "m.replace")}),
	}
	content := []any{map[string]any{"rule_id": ".m.rule.contains_user_name", "default": true, "enabled": true,
		"pattern": local, "actions": []any{notify, soundDef, highlight}}}
	underride := []any{
		rule(".m.rule.call", true, []map[string]any{eventMatch("type", "m.call.invite")}, notify, soundRing),
		rule(".m.rule.encrypted_room_one_to_one", true, []map[string]any{{"kind": "room_member_count", "is": "2"},
			eventMatch("type", "m.room.encrypted")}, notify, soundDef),
		rule(".m.rule.room_one_to_one", true, []map[string]any{{"kind": "room_member_count", "is": "2"},
			eventMatch("type", "m.room.message")}, notify, soundDef),
		rule(".m.rule.message", true, []map[string]any{eventMatch("type", "m.room.message")}, notify),
		rule(".m.rule.encrypted", true, []map[string]any{eventMatch("type", "m.room.encrypted")}, notify),
	}
	return map[string]any{"override": override, "content": content, "room": []any{}, "sender": []any{}, "underride": underride}
}
