package pushrules

import (
	"encoding/json"
	"strings"
)

// The server-default rules (client-server API, "Predefined Rules"), the
// same set Synapse serves. The .m.rule.master override comes before the
// user's override rules; every other default comes after the user's rules
// of its kind.

// defaultRule builds one server-default rule with conditions.
func defaultRule(id string, enabled bool, conditions []any, actions ...any) Rule {
	return Rule{RuleID: id, Default: true, Enabled: enabled, Actions: raw(actions), Conditions: raw(conditions)}
}

// raw marshals a value built in this file (it cannot fail).
func raw(v any) json.RawMessage {
	if a, ok := v.([]any); ok && a == nil {
		v = []any{}
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic("push rules: " + err.Error())
	}
	return b
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

func roomPermission() map[string]any {
	return map[string]any{"kind": "sender_notification_permission", "key": "room"}
}

func memberCount(is string) map[string]any {
	return map[string]any{"kind": "room_member_count", "is": is}
}

var (
	notify    = "notify"
	soundDef  = map[string]any{"set_tweak": "sound", "value": "default"}
	soundRing = map[string]any{"set_tweak": "sound", "value": "ring"}
	highlight = map[string]any{"set_tweak": "highlight"}
)

// masterRuleID is the one default that outranks the user's override rules.
const masterRuleID = ".m.rule.master"

// defaults returns the server-default rules of userID by kind, in order.
func defaults(userID string) map[string][]Rule {
	local := strings.TrimPrefix(strings.SplitN(userID, ":", 2)[0], "@")
	override := []Rule{
		defaultRule(masterRuleID, false, []any{}),
		defaultRule(".m.rule.suppress_notices", true, []any{eventMatch("content.msgtype", "m.notice")}),
		defaultRule(".m.rule.invite_for_me", true, []any{eventMatch("type", "m.room.member"),
			eventMatch("content.membership", "invite"), eventMatch("state_key", userID)}, notify, soundDef),
		defaultRule(".m.rule.member_event", true, []any{eventMatch("type", "m.room.member")}),
		defaultRule(".m.rule.is_user_mention", true, []any{propertyContains(`content.m\.mentions.user_ids`, userID)}, notify, highlight, soundDef),
		defaultRule(".m.rule.contains_display_name", true, []any{map[string]any{"kind": "contains_display_name"}}, notify, highlight, soundDef),
		defaultRule(".m.rule.is_room_mention", true, []any{propertyIs(`content.m\.mentions.room`, true), roomPermission()}, notify, highlight),
		defaultRule(".m.rule.roomnotif", true, []any{roomPermission(), eventMatch("content.body", "@room")}, notify, highlight),
		defaultRule(".m.rule.tombstone", true, []any{eventMatch("type", "m.room.tombstone"), eventMatch("state_key", "")}, notify, highlight),
		defaultRule(".m.rule.reaction", true, []any{eventMatch("type", "m.reaction")}),
		defaultRule(".m.rule.room.server_acl", true, []any{eventMatch("type", "m.room.server_acl"), eventMatch("state_key", "")}),
		defaultRule(".m.rule.suppress_edits", true, []any{propertyIs(`content.m\.relates_to.rel_type`, "m.replace")}),
	}
	pattern := local
	content := []Rule{{RuleID: ".m.rule.contains_user_name", Default: true, Enabled: true,
		Pattern: &pattern, Actions: raw([]any{notify, soundDef, highlight})}}
	underride := []Rule{
		defaultRule(".m.rule.call", true, []any{eventMatch("type", "m.call.invite")}, notify, soundRing),
		defaultRule(".m.rule.encrypted_room_one_to_one", true, []any{memberCount("2"), eventMatch("type", "m.room.encrypted")}, notify, soundDef),
		defaultRule(".m.rule.room_one_to_one", true, []any{memberCount("2"), eventMatch("type", "m.room.message")}, notify, soundDef),
		defaultRule(".m.rule.message", true, []any{eventMatch("type", "m.room.message")}, notify),
		defaultRule(".m.rule.encrypted", true, []any{eventMatch("type", "m.room.encrypted")}, notify),
	}
	return map[string][]Rule{KindOverride: override, KindContent: content, KindUnderride: underride}
}
