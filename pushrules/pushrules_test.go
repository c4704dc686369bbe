package pushrules

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/planb-chat/planb"
)

const alice = "@alice:hs"

func ids(rules []Rule) []string {
	var out []string
	for _, r := range rules {
		out = append(out, r.RuleID)
	}
	return out
}

// roundTrip stores s and reads it back, as every write does.
func roundTrip(t *testing.T, s *Stored) *Stored {
	t.Helper()
	b, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func wantCode(t *testing.T, what string, err error, code planb.ErrCode, status int) {
	t.Helper()
	e, ok := planb.AsError(err)
	if !ok || e.Code != code || e.Status != status {
		t.Errorf("%s: %v, want %d %s", what, err, status, code)
	}
}

func TestDefaultsShape(t *testing.T) {
	rs := (&Stored{}).Effective(alice)
	for _, k := range []string{KindOverride, KindContent, KindRoom, KindSender, KindUnderride} {
		if rs[k] == nil {
			t.Errorf("kind %s missing", k)
		}
	}
	if _, ok := rs[KindPostContent]; ok {
		t.Error("empty postcontent listed")
	}
	if rs[KindOverride][0].RuleID != masterRuleID || rs[KindOverride][0].Enabled {
		t.Errorf("first override rule %+v, want the disabled master rule", rs[KindOverride][0])
	}
	b, _ := json.Marshal(rs)
	for _, want := range []string{`"rule_id":".m.rule.master","default":true,"enabled":false,"actions":[],"conditions":[]`,
		`"pattern":"alice"`, `{"key":"state_key","kind":"event_match","pattern":"@alice:hs"}`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("defaults lack %s: %s", want, b)
		}
	}
	if strings.Contains(string(b), "null") {
		t.Errorf("defaults hold a null: %s", b)
	}
}

func TestPutOrdering(t *testing.T) {
	s := &Stored{}
	put := func(id, before, after string) {
		t.Helper()
		if err := s.Put(KindRoom, id, json.RawMessage(`{"actions":["notify"]}`), before, after); err != nil {
			t.Fatalf("put %s: %v", id, err)
		}
		s = roundTrip(t, s)
	}
	put("!a:hs", "", "")
	put("!b:hs", "", "") // new rules go first
	put("!c:hs", "", "!b:hs")
	put("!d:hs", "!a:hs", "")
	put("!e:hs", "!b:hs", "!a:hs") // before wins
	if got, want := ids(s.Effective(alice)[KindRoom]), []string{"!e:hs", "!b:hs", "!c:hs", "!d:hs", "!a:hs"}; !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
	// Replacing keeps the place and whether it is enabled; moving moves it.
	if err := s.SetEnabled(alice, KindRoom, "!c:hs", false); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(KindRoom, "!c:hs", json.RawMessage(`{"actions":["dont_notify"]}`), "", ""); err != nil {
		t.Fatal(err)
	}
	r, err := s.Find(alice, KindRoom, "!c:hs")
	if err != nil || r.Enabled || string(r.Actions) != `["dont_notify"]` || r.Conditions != nil {
		t.Errorf("replaced rule %+v %v", r, err)
	}
	if err := s.Put(KindRoom, "!c:hs", json.RawMessage(`{"actions":[]}`), "", "!a:hs"); err != nil {
		t.Fatal(err)
	}
	if got, want := ids(s.Effective(alice)[KindRoom]), []string{"!e:hs", "!b:hs", "!d:hs", "!a:hs", "!c:hs"}; !slices.Equal(got, want) {
		t.Fatalf("order after move %v, want %v", got, want)
	}
	wantCode(t, "unknown anchor", s.Put(KindRoom, "!x:hs", json.RawMessage(`{"actions":[]}`), "!nope:hs", ""), planb.CodeUnknown, 400)
	wantCode(t, "default anchor", s.Put(KindOverride, "x", json.RawMessage(`{"actions":[]}`), ".m.rule.master", ""), planb.CodeInvalidParam, 400)
}

func TestUserRulesBetweenMasterAndDefaults(t *testing.T) {
	s := &Stored{}
	if err := s.Put(KindOverride, "mine", json.RawMessage(`{"actions":["notify"],"conditions":[{"kind":"event_match","key":"type","pattern":"x"}]}`), "", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(KindUnderride, "low", json.RawMessage(`{"actions":["notify"]}`), "", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(KindContent, "cake", json.RawMessage(`{"actions":["notify"],"pattern":"cake*lie"}`), "", ""); err != nil {
		t.Fatal(err)
	}
	rs := roundTrip(t, s).Effective(alice)
	if got := ids(rs[KindOverride])[:3]; !slices.Equal(got, []string{masterRuleID, "mine", ".m.rule.suppress_notices"}) {
		t.Errorf("override order %v", got)
	}
	if rs[KindUnderride][0].RuleID != "low" || string(rs[KindUnderride][0].Conditions) != `[]` {
		t.Errorf("underride %+v, want the user's rule with no conditions first", rs[KindUnderride][0])
	}
	if c := rs[KindContent][0]; c.RuleID != "cake" || c.Pattern == nil || *c.Pattern != "cake*lie" || c.Default {
		t.Errorf("content %+v", c)
	}
}

func TestDefaultChanges(t *testing.T) {
	s := &Stored{}
	if err := s.SetEnabled(alice, KindOverride, masterRuleID, true); err != nil {
		t.Fatal(err)
	}
	if err := s.SetActions(alice, KindUnderride, ".m.rule.message", json.RawMessage(`[ "dont_notify" ]`)); err != nil {
		t.Fatal(err)
	}
	s = roundTrip(t, s)
	r, _ := s.Find(alice, KindOverride, masterRuleID)
	if !r.Enabled || !r.Default {
		t.Errorf("master %+v, want enabled", r)
	}
	r, _ = s.Find(alice, KindUnderride, ".m.rule.message")
	if string(r.Actions) != `["dont_notify"]` || !r.Enabled {
		t.Errorf("message rule %+v", r)
	}
	wantCode(t, "unknown default", s.SetEnabled(alice, KindOverride, ".m.rule.nope", true), planb.CodeNotFound, 404)
	wantCode(t, "default in another kind", s.SetEnabled(alice, KindContent, masterRuleID, true), planb.CodeNotFound, 404)
	wantCode(t, "postcontent default", s.SetEnabled(alice, KindPostContent, ".io.element.msc4306.rule.subscribed_thread", false), planb.CodeNotFound, 404)
	wantCode(t, "delete default", s.Delete(KindOverride, masterRuleID), planb.CodeInvalidParam, 400)
	wantCode(t, "put default", s.Put(KindOverride, masterRuleID, json.RawMessage(`{"actions":[]}`), "", ""), planb.CodeInvalidParam, 400)
}

func TestRejections(t *testing.T) {
	s := &Stored{}
	for _, c := range []struct {
		what, kind, id, body string
		code                 planb.ErrCode
	}{
		{"unknown kind", "nope", "x", `{"actions":[]}`, planb.CodeInvalidParam},
		{"dot", KindRoom, ".x", `{"actions":[]}`, planb.CodeInvalidParam},
		{"slash", KindRoom, "a/b", `{"actions":[]}`, planb.CodeInvalidParam},
		{"backslash", KindRoom, `a\b`, `{"actions":[]}`, planb.CodeInvalidParam},
		{"no actions", KindRoom, "x", `{}`, planb.CodeMissingParam},
		{"actions not array", KindRoom, "x", `{"actions":"notify"}`, planb.CodeInvalidParam},
		{"unknown action", KindRoom, "x", `{"actions":["shout"]}`, planb.CodeInvalidParam},
		{"bad tweak", KindRoom, "x", `{"actions":[{"value":1}]}`, planb.CodeInvalidParam},
		{"no pattern", KindContent, "x", `{"actions":[]}`, planb.CodeMissingParam},
		{"pattern not string", KindContent, "x", `{"actions":[],"pattern":3}`, planb.CodeInvalidParam},
		{"condition without kind", KindOverride, "x", `{"actions":[],"conditions":[{"key":"type"}]}`, planb.CodeInvalidParam},
		{"conditions not array", KindOverride, "x", `{"actions":[],"conditions":{}}`, planb.CodeInvalidParam},
	} {
		wantCode(t, c.what, s.Put(c.kind, c.id, json.RawMessage(c.body), "", ""), c.code, 400)
	}
	wantCode(t, "delete missing", s.Delete(KindRoom, "!x:hs"), planb.CodeNotFound, 404)
	wantCode(t, "find missing", func() error { _, err := s.Find(alice, KindRoom, "!x:hs"); return err }(), planb.CodeNotFound, 404)
	wantCode(t, "find bad kind", func() error { _, err := s.Find(alice, "nope", "!x:hs"); return err }(), planb.CodeInvalidParam, 400)
	if len(s.Rules) != 0 {
		t.Errorf("rejected puts stored rules: %+v", s.Rules)
	}
}

func TestDeleteAndSize(t *testing.T) {
	s := &Stored{}
	_ = s.Put(KindSender, "@bob:hs", json.RawMessage(`{"actions":[]}`), "", "")
	if err := s.Delete(KindSender, "@bob:hs"); err != nil {
		t.Fatal(err)
	}
	if got := s.Effective(alice)[KindSender]; got == nil || len(got) != 0 {
		t.Errorf("sender after delete %v, want []", got)
	}
	big := strings.Repeat("x", maxRuleIDBytes)
	for i := 0; ; i++ {
		if err := s.Put(KindRoom, fmt.Sprintf("%s%08d", big[:maxRuleIDBytes-8], i), json.RawMessage(`{"actions":[]}`), "", ""); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Marshal(); err != nil {
			wantCode(t, "too many rules", err, planb.CodeTooLarge, 413)
			return
		}
	}
}

func TestContentOfGarbage(t *testing.T) {
	var c struct {
		Global Ruleset `json:"global"`
	}
	if err := json.Unmarshal(Content(alice, []byte(`{"rules":`)), &c); err != nil || len(c.Global[KindOverride]) == 0 {
		t.Errorf("content of unreadable rules %v %v, want the defaults", c, err)
	}
}
