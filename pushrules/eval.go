package pushrules

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
)

// Evaluation of a ruleset against an event (client-server API, "Push
// Rules", conditions and actions). A ruleset is compiled once (Compile) and
// then evaluated per event; an event is flattened once (Flatten) and then
// evaluated for every user it may notify.

// Flat is an event flattened to its dot-separated property paths (the
// appendix's escaping: a literal dot or backslash in a name is preceded by a
// backslash): each path leads to a string, number, boolean, null or array.
// Objects are not kept themselves, only their leaves (an empty object is a
// leaf).
type Flat map[string]any

// Flatten decodes an event's JSON into a Flat; content that is not a JSON
// object flattens to nothing.
func Flatten(event []byte) Flat {
	out := Flat{}
	if v := decodeObject(event); v != nil {
		flattenInto(out, "", v)
	}
	out.keepLowerBody()
	return out
}

// keepLowerBody stores content.body lower-cased, for the word searches of
// every user's rules.
func (f Flat) keepLowerBody() {
	if b, ok := f["content.body"].(string); ok {
		f[lowerBodyKey] = strings.ToLower(b)
	}
}

// FlattenEvent is Flatten of an event given by its parts (stateKey nil for
// a message event), without encoding it first.
func FlattenEvent(eventID, roomID, sender, eventType string, stateKey *string, content []byte) Flat {
	out := Flat{"event_id": eventID, "room_id": roomID, "sender": sender, "type": eventType}
	if stateKey != nil {
		out["state_key"] = *stateKey
	}
	if c := decodeObject(content); len(c) > 0 {
		flattenInto(out, "content", c)
	} else if c != nil {
		out["content"] = c
	}
	out.keepLowerBody()
	return out
}

// decodeObject decodes a JSON object keeping numbers exact; nil when b is
// not one.
func decodeObject(b []byte) map[string]any {
	var v map[string]any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if d.Decode(&v) != nil {
		return nil
	}
	return v
}

func flattenInto(out Flat, prefix string, obj map[string]any) {
	for k, v := range obj {
		path := escapePath(k)
		if prefix != "" {
			path = prefix + "." + path
		}
		if o, ok := v.(map[string]any); ok && len(o) > 0 {
			flattenInto(out, path, o)
			continue
		}
		out[path] = v
	}
}

// escapePath escapes one property name for a dot-separated path.
func escapePath(name string) string {
	if !strings.ContainsAny(name, `.\`) {
		return name
	}
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		if name[i] == '.' || name[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(name[i])
	}
	return b.String()
}

// Context is what conditions need besides the event: who the rules belong
// to and the room as it is when the event is evaluated.
type Context struct {
	// UserID owns the rules; DisplayName is their display name in the room.
	UserID, DisplayName string
	// MemberCount is the number of joined members.
	MemberCount int
	// SenderPower is the sender's power level; NotificationPower returns
	// the level needed to notify with key (m.room.power_levels
	// notifications, default 50 for "room").
	SenderPower       int64
	NotificationPower func(key string) int64
}

// Result is what a matching rule says to do with an event.
type Result struct {
	// RuleID is the rule that matched ("" when none did).
	RuleID string
	// Notify is the "notify" action; Highlight the highlight tweak; Sound
	// the sound tweak's value ("" when none).
	Notify, Highlight bool
	Sound             string
	// Actions are the matching rule's actions as stored.
	Actions json.RawMessage
}

// Compiled is a ruleset ready to evaluate.
type Compiled struct {
	rules []compiledRule
}

type compiledRule struct {
	kind, id   string
	conditions []condition // nil: none (matches); for content rules, the pattern
	broken     bool        // an unrecognised condition: never matches
	result     Result
}

type condition struct {
	kind    string
	key     string
	pattern *regexp.Regexp // event_match with wildcards
	literal string         // event_match of a whole value without wildcards
	word    string         // event_match on content.body without wildcards, lower-cased
	value   any            // event_property_is / _contains (json.Number for numbers)
	cmp     string         // room_member_count: ==, <, >, <=, >=
	count   int
}

// legacyMentionRules are the rules that look for a user's name in the body;
// like Synapse (MSC3952), they are skipped for events that carry
// m.mentions, whose intentional mentions replace them.
var legacyMentionRules = map[string]bool{
	".m.rule.contains_display_name": true,
	".m.rule.contains_user_name":    true,
	".m.rule.roomnotif":             true,
}

// Compile prepares the enabled rules of rs, in the order they are checked.
func Compile(rs Ruleset) *Compiled {
	c := &Compiled{}
	for _, kind := range kinds {
		for _, r := range rs[kind] {
			if !r.Enabled {
				continue
			}
			cr := compiledRule{kind: kind, id: r.RuleID, result: actionsOf(r.RuleID, r.Actions)}
			switch kind {
			case KindContent:
				if r.Pattern == nil {
					cr.broken = true
					break
				}
				c := condition{kind: "event_match", key: "content.body"}
				c.compilePattern(*r.Pattern)
				cr.conditions = []condition{c}
			case KindOverride, KindUnderride, KindPostContent:
				cr.conditions, cr.broken = compileConditions(r.Conditions)
			}
			c.rules = append(c.rules, cr)
		}
	}
	return c
}

// compileConditions parses a rule's conditions; broken when one is not
// understood.
func compileConditions(raw json.RawMessage) (conds []condition, broken bool) {
	var list []map[string]json.RawMessage
	if len(raw) > 0 && json.Unmarshal(raw, &list) != nil {
		return nil, true
	}
	for _, m := range list {
		var kind, key string
		_ = json.Unmarshal(m["kind"], &kind)
		_ = json.Unmarshal(m["key"], &key)
		c := condition{kind: kind, key: key}
		switch kind {
		case "event_match":
			var p string
			if json.Unmarshal(m["pattern"], &p) != nil || key == "" {
				return nil, true
			}
			c.compilePattern(p)
		case "event_property_is", "event_property_contains":
			d := json.NewDecoder(bytes.NewReader(m["value"]))
			d.UseNumber()
			if key == "" || m["value"] == nil || d.Decode(&c.value) != nil || !scalar(c.value) {
				return nil, true
			}
		case "contains_display_name":
		case "room_member_count":
			var is string
			if json.Unmarshal(m["is"], &is) != nil {
				return nil, true
			}
			c.cmp, c.count, broken = parseCount(is)
			if broken {
				return nil, true
			}
		case "sender_notification_permission":
			if key == "" {
				return nil, true
			}
		default:
			return nil, true // unrecognised: the rule matches nothing
		}
		conds = append(conds, c)
	}
	return conds, false
}

// parseCount parses room_member_count's "is": a decimal number with an
// optional ==, <, >, <= or >= before it.
func parseCount(is string) (cmp string, n int, bad bool) {
	cmp = "=="
	for _, p := range []string{"==", "<=", ">=", "<", ">"} {
		if strings.HasPrefix(is, p) {
			cmp, is = p, is[len(p):]
			break
		}
	}
	n, err := strconv.Atoi(is)
	return cmp, n, err != nil || n < 0
}

// scalar reports whether v is a value event_property_is can compare: a
// string, an integer within ±(2^53-1), a boolean or null.
func scalar(v any) bool {
	switch x := v.(type) {
	case nil, string, bool:
		return true
	case json.Number:
		i, err := x.Int64()
		return err == nil && i > -(1<<53) && i < 1<<53
	}
	return false
}

// equalScalar compares two scalars exactly (no casts between types).
func equalScalar(a, b any) bool {
	an, aok := a.(json.Number)
	bn, bok := b.(json.Number)
	if aok || bok {
		if !aok || !bok {
			return false
		}
		ai, aerr := an.Int64()
		bi, berr := bn.Int64()
		return aerr == nil && berr == nil && ai == bi
	}
	return a == b
}

// glob compiles a glob pattern (* any run, ? one character) to match a
// whole value case-insensitively, or for content.body any part of it that
// starts and ends at a word boundary (anything but [A-Za-z0-9_]).
func glob(pattern string, words bool) *regexp.Regexp {
	var b strings.Builder
	b.WriteString(`(?is)`)
	if words {
		b.WriteString(`(?:^|[^A-Za-z0-9_])`)
	} else {
		b.WriteString(`^`)
	}
	for _, r := range pattern {
		switch r {
		case '*':
			b.WriteString(`.*`)
		case '?':
			b.WriteString(`.`)
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	if words {
		b.WriteString(`(?:[^A-Za-z0-9_]|$)`)
	} else {
		b.WriteString(`$`)
	}
	return regexp.MustCompile(b.String()) // only quoted literals and .*
}

// actionsOf reads a rule's actions: "notify", the highlight tweak (true
// when its value is absent) and the sound tweak. The legacy dont_notify and
// coalesce do nothing, as the spec says.
func actionsOf(ruleID string, raw json.RawMessage) Result {
	res := Result{RuleID: ruleID, Actions: raw}
	var actions []json.RawMessage
	_ = json.Unmarshal(raw, &actions)
	for _, a := range actions {
		var s string
		if json.Unmarshal(a, &s) == nil {
			res.Notify = res.Notify || s == "notify"
			continue
		}
		var tweak struct {
			SetTweak string          `json:"set_tweak"`
			Value    json.RawMessage `json:"value"`
		}
		if json.Unmarshal(a, &tweak) != nil {
			continue
		}
		switch tweak.SetTweak {
		case "highlight":
			var on bool
			res.Highlight = tweak.Value == nil || (json.Unmarshal(tweak.Value, &on) == nil && on)
		case "sound":
			_ = json.Unmarshal(tweak.Value, &res.Sound)
		}
	}
	return res
}

// Evaluate returns what the first matching rule says of ev, an event as
// Flatten made it, for the context's user; a zero Result when no rule
// matches (no notification).
func (c *Compiled) Evaluate(ev Flat, ctx Context) Result {
	hasMentions := hasMentions(ev)
	for i := range c.rules {
		r := &c.rules[i]
		if r.broken || (hasMentions && legacyMentionRules[r.id]) {
			continue
		}
		if r.matches(ev, ctx) {
			return r.result
		}
	}
	return Result{}
}

// hasMentions reports whether the event's content has an m.mentions
// object (flattened to its leaves, or kept as an empty object).
func hasMentions(ev Flat) bool {
	if _, ok := ev[`content.m\.mentions`].(map[string]any); ok {
		return true
	}
	for k := range ev {
		if strings.HasPrefix(k, `content.m\.mentions.`) {
			return true
		}
	}
	return false
}

func (r *compiledRule) matches(ev Flat, ctx Context) bool {
	switch r.kind {
	case KindRoom:
		return ev["room_id"] == r.id
	case KindSender:
		return ev["sender"] == r.id
	}
	for i := range r.conditions {
		if !r.conditions[i].holds(ev, ctx) {
			return false
		}
	}
	return true
}

func (c *condition) holds(ev Flat, ctx Context) bool {
	switch c.kind {
	case "event_match":
		s, ok := ev[c.key].(string)
		switch {
		case !ok:
			return false
		case c.pattern != nil:
			return c.pattern.MatchString(s)
		case c.key == "content.body":
			return containsWord(ev.lowerBody(s), c.word)
		}
		return strings.EqualFold(s, c.literal)
	case "event_property_is":
		v, ok := ev[c.key]
		return ok && scalar(v) && equalScalar(v, c.value)
	case "event_property_contains":
		arr, ok := ev[c.key].([]any)
		if !ok {
			return false
		}
		for _, v := range arr {
			if scalar(v) && equalScalar(v, c.value) {
				return true
			}
		}
		return false
	case "contains_display_name":
		body, ok := ev["content.body"].(string)
		if !ok || ctx.DisplayName == "" {
			return false
		}
		return containsWord(ev.lowerBody(body), strings.ToLower(ctx.DisplayName))
	case "room_member_count":
		n := ctx.MemberCount
		switch c.cmp {
		case "<":
			return n < c.count
		case ">":
			return n > c.count
		case "<=":
			return n <= c.count
		case ">=":
			return n >= c.count
		}
		return n == c.count
	case "sender_notification_permission":
		need := int64(50)
		if ctx.NotificationPower != nil {
			need = ctx.NotificationPower(c.key)
		}
		return ctx.SenderPower >= need
	}
	return false
}

// compilePattern prepares event_match's pattern p for c.key: a literal
// comparison or word search when p has no wildcards, else a glob.
func (c *condition) compilePattern(p string) {
	switch {
	case strings.ContainsAny(p, "*?"):
		c.pattern = glob(p, c.key == "content.body")
	case c.key == "content.body":
		c.word = strings.ToLower(p)
	default:
		c.literal = p
	}
}

// lowerBodyKey holds, in a Flat, content.body lower-cased (a key no event
// property path can be).
const lowerBodyKey = "\x00body"

// lowerBody returns body lower-cased, from the Flat when Flatten put it
// there.
func (f Flat) lowerBody(body string) string {
	if s, ok := f[lowerBodyKey].(string); ok {
		return s
	}
	return strings.ToLower(body)
}

// containsWord reports whether word occurs in s starting and ending at word
// boundaries (the ends of s, or anything but [A-Za-z0-9_]). An empty word
// matches nothing.
func containsWord(s, word string) bool {
	if word == "" {
		return false
	}
	for i := 0; i+len(word) <= len(s); {
		j := strings.Index(s[i:], word)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(word)
		if (start == 0 || !isWordByte(s[start-1])) && (end == len(s) || !isWordByte(s[end])) {
			return true
		}
		i = start + 1
	}
	return false
}

func isWordByte(b byte) bool {
	return b == '_' || ('0' <= b && b <= '9') || ('a' <= b && b <= 'z') || ('A' <= b && b <= 'Z')
}
