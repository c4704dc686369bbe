// Package pushrules holds a user's push rules (client-server API, "Push
// Rules"): the server-default rules, the user's own rules and their changes
// to the defaults, and the edits of the /pushrules API.
//
// What is stored (as the user's global account data of type m.push_rules)
// is a Stored: only the user's own rules and what they changed of the
// defaults. The ruleset clients see, in /pushrules and in /sync, is always
// computed from it with Effective, so a change of the server's defaults
// reaches every user and the user's choices stay.
//
// Every rejection is a *planb.Error: M_INVALID_PARAM, M_MISSING_PARAM or
// M_UNKNOWN (400), M_NOT_FOUND (404) or M_TOO_LARGE (413).
package pushrules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/planb-chat/planb"
)

// EventType is the account-data type that holds the push rules.
const EventType = "m.push_rules"

// The kinds of rule.
const (
	KindOverride  = "override"
	KindContent   = "content"
	KindRoom      = "room"
	KindSender    = "sender"
	KindUnderride = "underride"
	// KindPostContent is MSC4306's kind (checked after content rules),
	// which clients such as Complement ask about; it has no defaults here.
	KindPostContent = "postcontent"
)

// kinds are the kinds in the order they are checked. The rulesets clients
// see hold the first five always and postcontent only when not empty.
var kinds = []string{KindOverride, KindContent, KindPostContent, KindRoom, KindSender, KindUnderride}

// Limits of what a user may store.
const (
	maxRuleIDBytes = 1024
	// MaxStoredBytes bounds the user's stored rules, well below the
	// engine's message size.
	MaxStoredBytes = 512 << 10
)

// Rule is one push rule as clients see it.
type Rule struct {
	RuleID  string          `json:"rule_id"`
	Default bool            `json:"default"`
	Enabled bool            `json:"enabled"`
	Actions json.RawMessage `json:"actions"`
	// Conditions are those of override, underride and postcontent rules
	// (a JSON array, possibly empty); nil for the other kinds.
	Conditions json.RawMessage `json:"conditions,omitempty"`
	// Pattern is that of content rules.
	Pattern *string `json:"pattern,omitempty"`
}

// Ruleset is the rules of each kind, most important first.
type Ruleset map[string][]Rule

// Change is what a user changed of one server-default rule.
type Change struct {
	Enabled *bool           `json:"enabled,omitempty"`
	Actions json.RawMessage `json:"actions,omitempty"`
}

// Stored is what is kept of a user's push rules: their own rules by kind,
// most important first, and their changes to the server-default rules by
// "kind/rule_id".
type Stored struct {
	Rules    Ruleset           `json:"rules,omitempty"`
	Defaults map[string]Change `json:"defaults,omitempty"`
}

// Parse decodes stored rules; empty or absent content is no rules.
func Parse(b []byte) (*Stored, error) {
	s := &Stored{}
	if len(bytes.TrimSpace(b)) == 0 {
		return s, nil
	}
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("decode push rules: %w", err)
	}
	return s, nil
}

// Marshal encodes s for storing; M_TOO_LARGE when it has grown past
// MaxStoredBytes.
func (s *Stored) Marshal() ([]byte, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encode push rules: %w", err)
	}
	if len(b) > MaxStoredBytes {
		return nil, planb.Errorf(planb.CodeTooLarge, http.StatusRequestEntityTooLarge, "push rules would be larger than %d bytes", MaxStoredBytes)
	}
	return b, nil
}

// Effective returns the ruleset userID's clients see: .m.rule.master, the
// user's rules and the other server-default rules of each kind, with the
// user's changes to the defaults applied.
func (s *Stored) Effective(userID string) Ruleset {
	defs := defaults(userID)
	out := Ruleset{}
	for _, k := range kinds {
		var rules []Rule
		for _, d := range defs[k] {
			if d.RuleID == masterRuleID {
				rules = append(rules, s.applied(k, d))
			}
		}
		rules = append(rules, s.Rules[k]...)
		for _, d := range defs[k] {
			if d.RuleID != masterRuleID {
				rules = append(rules, s.applied(k, d))
			}
		}
		if rules == nil && k == KindPostContent {
			continue
		}
		if rules == nil {
			rules = []Rule{}
		}
		out[k] = rules
	}
	return out
}

// applied returns default rule d of kind with the user's change.
func (s *Stored) applied(kind string, d Rule) Rule {
	c, ok := s.Defaults[kind+"/"+d.RuleID]
	if !ok {
		return d
	}
	if c.Enabled != nil {
		d.Enabled = *c.Enabled
	}
	if c.Actions != nil {
		d.Actions = c.Actions
	}
	return d
}

// Content returns the m.push_rules account-data content for userID from
// the stored content b: {"global": the effective ruleset}. Content that
// cannot be read counts as no changes.
func Content(userID string, b []byte) json.RawMessage {
	s, err := Parse(b)
	if err != nil {
		s = &Stored{}
	}
	out, err := json.Marshal(map[string]Ruleset{"global": s.Effective(userID)})
	if err != nil {
		panic("push rules: " + err.Error()) // only marshalled values inside
	}
	return out
}

// CheckKind returns M_INVALID_PARAM unless kind is a kind of rule.
func CheckKind(kind string) error {
	if !slices.Contains(kinds, kind) {
		return planb.InvalidParam("unknown push rule kind %q", kind)
	}
	return nil
}

// Find returns the rule of kind with ruleID as userID's clients see it;
// M_NOT_FOUND when there is none.
func (s *Stored) Find(userID, kind, ruleID string) (Rule, error) {
	if err := CheckKind(kind); err != nil {
		return Rule{}, err
	}
	for _, r := range s.Effective(userID)[kind] {
		if r.RuleID == ruleID {
			return r, nil
		}
	}
	return Rule{}, planb.NotFound("no %s push rule %q", kind, ruleID)
}

// isDefault reports whether ruleID names a server-default rule.
func isDefault(ruleID string) bool { return strings.HasPrefix(ruleID, ".") }

// Put creates or replaces the user's rule of kind with ruleID from body, the
// PUT /pushrules/global/{kind}/{ruleId} request (actions; conditions for
// override, underride and postcontent rules; pattern for content rules).
// A new rule is enabled; a replaced one keeps whether it is enabled. The
// rule goes right before the user's rule before, else right after after,
// else a new rule goes first among the user's rules and a replaced one
// stays where it was.
func (s *Stored) Put(kind, ruleID string, body json.RawMessage, before, after string) error {
	if err := CheckKind(kind); err != nil {
		return err
	}
	switch {
	case ruleID == "":
		return planb.InvalidParam("the rule ID is empty")
	case isDefault(ruleID):
		return planb.InvalidParam("rule IDs starting with '.' are reserved for server-default rules")
	case strings.ContainsAny(ruleID, `/\`):
		return planb.InvalidParam("rule IDs may not contain '/' or '\\'")
	case len(ruleID) > maxRuleIDBytes:
		return planb.InvalidParam("the rule ID is longer than %d bytes", maxRuleIDBytes)
	}
	r, err := parseRule(kind, ruleID, body)
	if err != nil {
		return err
	}
	list := s.Rules[kind]
	at := slices.IndexFunc(list, func(o Rule) bool { return o.RuleID == ruleID })
	if at >= 0 {
		r.Enabled = list[at].Enabled
		if before == "" && after == "" {
			list[at] = r
			return nil
		}
		list = slices.Delete(slices.Clone(list), at, at+1)
	}
	pos := 0
	if anchor := anchorOf(before, after); anchor != "" {
		if isDefault(anchor) {
			return planb.InvalidParam("a rule cannot be placed relative to the server-default rule %q", anchor)
		}
		i := slices.IndexFunc(list, func(o Rule) bool { return o.RuleID == anchor })
		if i < 0 {
			return planb.Errorf(planb.CodeUnknown, http.StatusBadRequest, "before/after rule not found: %s", anchor)
		}
		pos = i
		if before == "" {
			pos = i + 1
		}
	}
	if s.Rules == nil {
		s.Rules = Ruleset{}
	}
	s.Rules[kind] = slices.Insert(list, pos, r)
	return nil
}

// anchorOf returns before if set, else after.
func anchorOf(before, after string) string {
	if before != "" {
		return before
	}
	return after
}

// parseRule checks a PUT body and builds the rule from it.
func parseRule(kind, ruleID string, body json.RawMessage) (Rule, error) {
	var req map[string]json.RawMessage
	if err := json.Unmarshal(body, &req); err != nil {
		return Rule{}, planb.BadJSON("the push rule must be a JSON object")
	}
	actions, ok := req["actions"]
	if !ok {
		return Rule{}, planb.MissingParam("actions is required")
	}
	actions, err := CheckActions(actions)
	if err != nil {
		return Rule{}, err
	}
	r := Rule{RuleID: ruleID, Enabled: true, Actions: actions}
	switch kind {
	case KindOverride, KindUnderride, KindPostContent:
		r.Conditions, err = checkConditions(req["conditions"])
	case KindContent:
		p, ok := req["pattern"]
		if !ok {
			return Rule{}, planb.MissingParam("content rules need a pattern")
		}
		var pattern string
		if json.Unmarshal(p, &pattern) != nil || pattern == "" {
			return Rule{}, planb.InvalidParam("pattern must be a non-empty string")
		}
		r.Pattern = &pattern
	}
	return r, err
}

// CheckActions checks a rule's actions (an array of "notify", the
// historical "dont_notify" and "coalesce", and {"set_tweak": ...} objects)
// and returns them compacted.
func CheckActions(b json.RawMessage) (json.RawMessage, error) {
	var actions []json.RawMessage
	if err := json.Unmarshal(b, &actions); err != nil || actions == nil {
		return nil, planb.InvalidParam("actions must be an array")
	}
	for _, a := range actions {
		var name string
		if json.Unmarshal(a, &name) == nil {
			if name != "notify" && name != "dont_notify" && name != "coalesce" {
				return nil, planb.InvalidParam("unknown action %q", name)
			}
			continue
		}
		var tweak struct {
			SetTweak *string `json:"set_tweak"`
		}
		if json.Unmarshal(a, &tweak) != nil || tweak.SetTweak == nil {
			return nil, planb.InvalidParam("an action must be a string or an object with a set_tweak")
		}
	}
	return compact(b), nil
}

// checkConditions checks a rule's conditions (absent: none, a rule that
// always matches) and returns them compacted.
func checkConditions(b json.RawMessage) (json.RawMessage, error) {
	if b == nil {
		return json.RawMessage(`[]`), nil
	}
	var conds []map[string]json.RawMessage
	if err := json.Unmarshal(b, &conds); err != nil || conds == nil {
		return nil, planb.InvalidParam("conditions must be an array of objects")
	}
	for _, c := range conds {
		var kind string
		if json.Unmarshal(c["kind"], &kind) != nil || kind == "" {
			return nil, planb.InvalidParam("every condition needs a kind")
		}
	}
	return compact(b), nil
}

func compact(b json.RawMessage) json.RawMessage {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return b // checked JSON above; cannot happen
	}
	return buf.Bytes()
}

// Delete removes the user's rule of kind with ruleID; M_INVALID_PARAM for
// a server-default rule, M_NOT_FOUND when there is no such rule.
func (s *Stored) Delete(kind, ruleID string) error {
	if err := CheckKind(kind); err != nil {
		return err
	}
	if isDefault(ruleID) {
		return planb.InvalidParam("server-default rules cannot be deleted; disable them instead")
	}
	list := s.Rules[kind]
	i := slices.IndexFunc(list, func(o Rule) bool { return o.RuleID == ruleID })
	if i < 0 {
		return planb.NotFound("no %s push rule %q", kind, ruleID)
	}
	s.Rules[kind] = slices.Delete(slices.Clone(list), i, i+1)
	if len(s.Rules[kind]) == 0 {
		delete(s.Rules, kind)
	}
	return nil
}

// SetEnabled enables or disables the rule of kind with ruleID, a user's or
// a server-default one; M_NOT_FOUND when there is no such rule.
func (s *Stored) SetEnabled(userID, kind, ruleID string, enabled bool) error {
	return s.change(userID, kind, ruleID, func(r *Rule) { r.Enabled = enabled },
		func(c *Change) { c.Enabled = &enabled })
}

// SetActions sets the actions of the rule of kind with ruleID, a user's or
// a server-default one; M_NOT_FOUND when there is no such rule.
func (s *Stored) SetActions(userID, kind, ruleID string, actions json.RawMessage) error {
	actions, err := CheckActions(actions)
	if err != nil {
		return err
	}
	return s.change(userID, kind, ruleID, func(r *Rule) { r.Actions = actions },
		func(c *Change) { c.Actions = actions })
}

// change applies own to the user's rule or def to the change of the
// server-default rule of kind with ruleID.
func (s *Stored) change(userID, kind, ruleID string, own func(*Rule), def func(*Change)) error {
	if err := CheckKind(kind); err != nil {
		return err
	}
	if isDefault(ruleID) {
		if !slices.ContainsFunc(defaults(userID)[kind], func(d Rule) bool { return d.RuleID == ruleID }) {
			return planb.NotFound("no %s push rule %q", kind, ruleID)
		}
		if s.Defaults == nil {
			s.Defaults = map[string]Change{}
		}
		c := s.Defaults[kind+"/"+ruleID]
		def(&c)
		s.Defaults[kind+"/"+ruleID] = c
		return nil
	}
	list := s.Rules[kind]
	i := slices.IndexFunc(list, func(o Rule) bool { return o.RuleID == ruleID })
	if i < 0 {
		return planb.NotFound("no %s push rule %q", kind, ruleID)
	}
	own(&list[i])
	return nil
}
