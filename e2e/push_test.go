package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/pushrules"
)

// pushRulesPath is the path of one push rule (and attribute, if any).
func pushRulesPath(kind, ruleID string, attr ...string) string {
	p := "/_matrix/client/v3/pushrules/global/" + kind + "/" + url.PathEscape(ruleID)
	for _, a := range attr {
		p += "/" + a
	}
	return p
}

// ruleIDs returns the rule IDs of one kind of a ruleset decoded from JSON.
func ruleIDs(t *testing.T, global any, kind string) []string {
	t.Helper()
	g, ok := global.(map[string]any)
	if !ok {
		t.Fatalf("ruleset %v is not an object", global)
	}
	list, ok := g[kind].([]any)
	if !ok {
		t.Fatalf("ruleset has no %s array: %v", kind, g)
	}
	var out []string
	for _, r := range list {
		id, _ := r.(map[string]any)["rule_id"].(string)
		out = append(out, id)
	}
	return out
}

// syncPushRules returns the global ruleset of the m.push_rules event in a
// raw /sync answer, or nil when there is none, and the next batch.
func syncPushRules(t *testing.T, r rawResponse) (any, string) {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("sync: %s", r)
	}
	next, _ := r.json["next_batch"].(string)
	ad, _ := r.json["account_data"].(map[string]any)
	evs, _ := ad["events"].([]any)
	for _, e := range evs {
		ev, _ := e.(map[string]any)
		if ev["type"] == "m.push_rules" {
			c, _ := ev["content"].(map[string]any)
			if c["global"] == nil {
				t.Fatalf("m.push_rules without global: %v", ev)
			}
			return c["global"], next
		}
	}
	return nil, next
}

// TestPushRules edits push rules through the spec's endpoints (raw HTTP and
// mautrix): ordering with before and after, the rule kinds' bodies,
// enabled and actions of default and user rules, deletion, the error
// codes, and what a restart keeps.
func TestPushRules(t *testing.T) {
	srv := startServer(t)
	ctx := t.Context()
	alice := newUser(t, srv, "alice")
	tok := alice.AccessToken
	put := func(what, path, body string) {
		t.Helper()
		if r := srv.raw(t, "PUT", path, tok, []byte(body)); r.status != 200 {
			t.Fatalf("%s: %s", what, r)
		}
	}
	get := func(what, path string) map[string]any {
		t.Helper()
		r := srv.raw(t, "GET", path, tok, nil)
		if r.status != 200 || r.json == nil {
			t.Fatalf("%s: %s", what, r)
		}
		return r.json
	}

	// The defaults, before anything was changed.
	all := get("all rules", "/_matrix/client/v3/pushrules/")
	if got := ruleIDs(t, all["global"], "override"); len(got) < 2 || got[0] != ".m.rule.master" {
		t.Fatalf("default override rules %v", got)
	}
	master := get("the master rule", pushRulesPath("override", ".m.rule.master"))
	if master["default"] != true || master["enabled"] != false || master["rule_id"] != ".m.rule.master" {
		t.Fatalf("master rule %v", master)
	}
	if got := ruleIDs(t, get("global rules", "/_matrix/client/v3/pushrules/global/"), "room"); len(got) != 0 {
		t.Fatalf("room rules before any %v", got)
	}

	// Room rules: a new rule goes first; before and after place it.
	for _, c := range []struct{ id, query string }{
		{"!a:example.com", ""}, {"!b:example.com", ""}, {"!c:example.com", "?after=" + url.QueryEscape("!b:example.com")},
		{"!d:example.com", "?before=" + url.QueryEscape("!a:example.com")},
	} {
		put("room rule "+c.id, pushRulesPath("room", c.id)+c.query, `{"actions":["notify"]}`)
	}
	wantOrder := []string{"!b:example.com", "!c:example.com", "!d:example.com", "!a:example.com"}
	if got := ruleIDs(t, get("global rules", "/_matrix/client/v3/pushrules/global/"), "room"); !slices.Equal(got, wantOrder) {
		t.Fatalf("room rules %v, want %v", got, wantOrder)
	}
	rule := get("one room rule", pushRulesPath("room", "!c:example.com"))
	if rule["default"] != false || rule["enabled"] != true || rule["conditions"] != nil {
		t.Errorf("room rule %v, want an enabled user rule without conditions", rule)
	}

	// Content and override rules through mautrix, which parses what it reads.
	must(t, "content rule", alice.PutPushRule(ctx, "global", pushrules.ContentRule, "cake", &mautrix.ReqPutPushRule{
		Actions: []*pushrules.PushAction{{Action: pushrules.ActionNotify}}, Pattern: "cake*lie"}))
	must(t, "override rule", alice.PutPushRule(ctx, "global", pushrules.OverrideRule, "beer", &mautrix.ReqPutPushRule{
		Actions:    []*pushrules.PushAction{{Action: pushrules.ActionNotify}},
		Conditions: []*pushrules.PushCondition{{Kind: pushrules.KindEventMatch, Key: "content.body", Pattern: "beer"}}}))
	rs, err := alice.GetPushRules(ctx)
	must(t, "get rules with mautrix", err)
	if len(rs.Content) != 2 || rs.Content[0].RuleID != "cake" || rs.Content[0].Pattern != "cake*lie" || rs.Content[1].RuleID != ".m.rule.contains_user_name" {
		t.Errorf("content rules %+v", rs.Content)
	}
	if len(rs.Override) < 3 || rs.Override[0].RuleID != ".m.rule.master" || rs.Override[1].RuleID != "beer" ||
		len(rs.Override[1].Conditions) != 1 || rs.Override[1].Conditions[0].Pattern != "beer" {
		t.Errorf("override rules: master, then the user's, then the other defaults; got %+v", rs.Override)
	}
	if len(rs.Room.Map) != 4 {
		t.Errorf("mautrix sees %d room rules, want 4", len(rs.Room.Map))
	}
	got, err := alice.GetPushRule(ctx, "global", pushrules.ContentRule, "cake")
	if err != nil || got.Pattern != "cake*lie" || !got.Enabled || got.Default {
		t.Errorf("content rule with mautrix: %+v %v", got, err)
	}

	// enabled and actions, of a user rule and of default rules.
	put("disable a room rule", pushRulesPath("room", "!c:example.com", "enabled"), `{"enabled":false}`)
	put("enable the master rule", pushRulesPath("override", ".m.rule.master", "enabled"), `{"enabled":true}`)
	must(t, "disable a default underride rule", alice.SetPushRuleEnabled(ctx, "global", pushrules.UnderrideRule, ".m.rule.message", false))
	put("actions of a room rule", pushRulesPath("room", "!c:example.com", "actions"), `{"actions":["dont_notify"]}`)
	must(t, "actions of a default rule", alice.PutPushRuleActions(ctx, "global", pushrules.UnderrideRule, ".m.rule.call",
		[]*pushrules.PushAction{{Action: pushrules.ActionNotify}, {Action: pushrules.ActionSetTweak, Tweak: pushrules.TweakSound, Value: "bell"}}))
	if e := get("enabled of the room rule", pushRulesPath("room", "!c:example.com", "enabled")); e["enabled"] != false {
		t.Errorf("room rule enabled %v", e)
	}
	if e := get("enabled of the master rule", pushRulesPath("override", ".m.rule.master", "enabled")); e["enabled"] != true {
		t.Errorf("master rule enabled %v", e)
	}
	if a := get("actions of the room rule", pushRulesPath("room", "!c:example.com", "actions")); !jsonEqual(a["actions"], []any{"dont_notify"}) {
		t.Errorf("room rule actions %v", a)
	}
	call := get("the call rule", pushRulesPath("underride", ".m.rule.call"))
	if !jsonEqual(call["actions"], []any{"notify", map[string]any{"set_tweak": "sound", "value": "bell"}}) || call["default"] != true {
		t.Errorf("call rule %v", call)
	}
	// Replacing a rule keeps its place and whether it is enabled.
	put("replace a room rule", pushRulesPath("room", "!c:example.com"), `{"actions":["notify"]}`)
	if r := get("replaced rule", pushRulesPath("room", "!c:example.com")); r["enabled"] != false || !jsonEqual(r["actions"], []any{"notify"}) {
		t.Errorf("replaced rule %v", r)
	}
	if got := ruleIDs(t, get("global rules", "/_matrix/client/v3/pushrules/global/"), "room"); !slices.Equal(got, wantOrder) {
		t.Errorf("room rules after replace %v, want %v", got, wantOrder)
	}

	// Deleting.
	must(t, "delete a room rule", alice.DeletePushRule(ctx, "global", pushrules.RoomRule, "!a:example.com"))
	checkRaw(t, "the deleted rule", srv.raw(t, "GET", pushRulesPath("room", "!a:example.com"), tok, nil), notFound)
	checkRaw(t, "delete it again", srv.raw(t, "DELETE", pushRulesPath("room", "!a:example.com"), tok, nil), notFound)

	// Errors.
	invalid := want{400, "M_INVALID_PARAM"}
	for _, c := range []struct {
		what, method, path, body string
		want                     want
	}{
		{"unknown kind", "GET", pushRulesPath("sideways", "x"), "", invalid},
		{"put of an unknown kind", "PUT", pushRulesPath("sideways", "x"), `{"actions":[]}`, invalid},
		{"unknown rule", "GET", pushRulesPath("override", "nope"), "", notFound},
		{"unknown default rule", "GET", pushRulesPath("override", ".m.rule.nope"), "", notFound},
		{"MSC4306 rule Synapse may have", "GET", pushRulesPath("postcontent", ".io.element.msc4306.rule.subscribed_thread"), "", notFound},
		{"enable an unknown rule", "PUT", pushRulesPath("room", "!nope:example.com", "enabled"), `{"enabled":true}`, notFound},
		{"enable an unknown default", "PUT", pushRulesPath("override", ".m.rule.nope", "enabled"), `{"enabled":true}`, notFound},
		{"actions of an unknown rule", "GET", pushRulesPath("room", "!nope:example.com", "actions"), "", notFound},
		{"create a dotted rule", "PUT", pushRulesPath("override", ".mine"), `{"actions":[]}`, invalid},
		{"replace a default rule", "PUT", pushRulesPath("override", ".m.rule.master"), `{"actions":[]}`, invalid},
		{"delete a default rule", "DELETE", pushRulesPath("override", ".m.rule.master"), "", invalid},
		{"content rule without pattern", "PUT", pushRulesPath("content", "nopattern"), `{"actions":[]}`, want{400, "M_MISSING_PARAM"}},
		{"rule without actions", "PUT", pushRulesPath("room", "!x:example.com"), `{}`, want{400, "M_MISSING_PARAM"}},
		{"unknown action", "PUT", pushRulesPath("room", "!x:example.com"), `{"actions":["shout"]}`, invalid},
		{"condition without kind", "PUT", pushRulesPath("override", "x"), `{"actions":[],"conditions":[{"key":"a"}]}`, invalid},
		{"before an unknown rule", "PUT", pushRulesPath("room", "!x:example.com") + "?before=nope", `{"actions":[]}`, want{400, "M_UNKNOWN"}},
		{"after a default rule", "PUT", pushRulesPath("override", "x") + "?after=.m.rule.master", `{"actions":[]}`, invalid},
		{"enabled not a boolean", "PUT", pushRulesPath("room", "!c:example.com", "enabled"), `{"enabled":"yes"}`, invalid},
		{"enabled missing", "PUT", pushRulesPath("room", "!c:example.com", "enabled"), `{}`, want{400, "M_MISSING_PARAM"}},
		{"actions not an array", "PUT", pushRulesPath("room", "!c:example.com", "actions"), `{"actions":"notify"}`, invalid},
	} {
		var body []byte
		if c.body != "" {
			body = []byte(c.body)
		}
		checkRaw(t, c.what, srv.raw(t, c.method, c.path, tok, body), c.want)
	}
	// None of the failed writes changed anything.
	if got := ruleIDs(t, get("global rules", "/_matrix/client/v3/pushrules/global/"), "room"); !slices.Equal(got, []string{"!b:example.com", "!c:example.com", "!d:example.com"}) {
		t.Errorf("room rules after the errors %v", got)
	}
	// Another user sees only the defaults.
	bob := newUser(t, srv, "bob")
	if got := ruleIDs(t, srv.raw(t, "GET", "/_matrix/client/v3/pushrules/global/", bob.AccessToken, nil).json, "room"); len(got) != 0 {
		t.Errorf("bob sees room rules %v", got)
	}

	// The rules are in the replicated bucket, not in the node's memory.
	before := get("global rules", "/_matrix/client/v3/pushrules/global/")
	srv.restart(t)
	if after := get("global rules after restart", "/_matrix/client/v3/pushrules/global/"); !jsonEqual(before, after) {
		t.Errorf("rules changed across a restart:\nbefore %v\nafter  %v", before, after)
	}
}

// TestPushRuleCacheHealth is Complement's: a sender rule reads back the same
// twice.
func TestPushRuleCacheHealth(t *testing.T) {
	srv := startServer(t)
	alice := newUser(t, srv, "alice")
	must(t, "sender rule", alice.PutPushRule(t.Context(), "global", pushrules.SenderRule, string(alice.UserID),
		&mautrix.ReqPutPushRule{Actions: []*pushrules.PushAction{{Action: pushrules.ActionDontNotify}}}))
	for i := range 2 {
		r := srv.raw(t, "GET", "/_matrix/client/v3/pushrules/", alice.AccessToken, nil)
		g, _ := r.json["global"].(map[string]any)
		senders, _ := g["sender"].([]any)
		if len(senders) != 1 || !jsonEqual(senders[0].(map[string]any)["actions"], []any{"dont_notify"}) {
			t.Fatalf("read %d: sender rules %v", i, senders)
		}
	}
}

// TestPushRulesInSync checks m.push_rules in /sync: the full ruleset in an
// initial sync of a user who never changed a rule, and each change waking
// a waiting incremental sync with the new rules (Complement's TestPushSync).
func TestPushRulesInSync(t *testing.T) {
	srv := startServer(t)
	alice := newUser(t, srv, "alice")
	tok := alice.AccessToken
	global, next := syncPushRules(t, srv.raw(t, "GET", "/_matrix/client/v3/sync", tok, nil))
	if global == nil {
		t.Fatal("no m.push_rules in the initial sync")
	}
	if got := ruleIDs(t, global, "override"); len(got) < 2 || got[0] != ".m.rule.master" {
		t.Fatalf("initial sync's override rules %v", got)
	}
	if got := ruleIDs(t, global, "underride"); !slices.Contains(got, ".m.rule.message") {
		t.Fatalf("initial sync's underride rules %v", got)
	}
	// A filter that leaves out account data leaves out the rules.
	filtered := srv.raw(t, "GET", "/_matrix/client/v3/sync?filter="+url.QueryEscape(`{"account_data":{"not_types":["*"]}}`), tok, nil)
	if g, _ := syncPushRules(t, filtered); g != nil {
		t.Errorf("m.push_rules despite a filter without account data")
	}

	room := "!foo:example.com"
	steps := []struct {
		what, path, body string
		check            func(rule map[string]any) bool
	}{
		{"add a rule", pushRulesPath("room", room), `{"actions":["notify"]}`,
			func(r map[string]any) bool { return r["enabled"] == true }},
		{"disable it", pushRulesPath("room", room, "enabled"), `{"enabled":false}`,
			func(r map[string]any) bool { return r["enabled"] == false }},
		{"enable it", pushRulesPath("room", room, "enabled"), `{"enabled":true}`,
			func(r map[string]any) bool { return r["enabled"] == true }},
		{"set its actions", pushRulesPath("room", room, "actions"), `{"actions":["dont_notify"]}`,
			func(r map[string]any) bool { return jsonEqual(r["actions"], []any{"dont_notify"}) }},
	}
	for _, st := range steps {
		type answer struct {
			r    rawResponse
			took time.Duration
			err  error
		}
		done := make(chan answer, 1)
		go func() {
			start := time.Now()
			r, err := getRequest(t.Context(), srv.URL+"/_matrix/client/v3/sync?timeout=10000&since="+url.QueryEscape(next), tok)
			done <- answer{r, time.Since(start), err}
		}()
		if r := srv.raw(t, "PUT", st.path, tok, []byte(st.body)); r.status != 200 {
			t.Fatalf("%s: %s", st.what, r)
		}
		var a answer
		select {
		case a = <-done:
		case <-time.After(httpTimeout):
			t.Fatalf("%s: the sync did not return", st.what)
		}
		if a.err != nil {
			t.Fatalf("%s: sync: %v", st.what, a.err)
		}
		global, next = syncPushRules(t, a.r)
		if global == nil {
			t.Fatalf("%s: the sync woke without m.push_rules: %s", st.what, a.r)
		}
		if a.took >= 9*time.Second {
			t.Errorf("%s: the sync took %s, as if it had waited out its timeout", st.what, a.took)
		}
		rooms, _ := global.(map[string]any)["room"].([]any)
		if len(rooms) != 1 || !st.check(rooms[0].(map[string]any)) {
			t.Errorf("%s: room rules in the sync %v", st.what, rooms)
		}
	}
	// Nothing changed: an incremental sync brings no m.push_rules.
	if g, _ := syncPushRules(t, srv.raw(t, "GET", "/_matrix/client/v3/sync?timeout=0&since="+url.QueryEscape(next), tok, nil)); g != nil {
		t.Errorf("an incremental sync with no change brought m.push_rules")
	}
	// The account-data endpoint shows the same ruleset.
	var c map[string]any
	must(t, "get m.push_rules account data", alice.GetAccountData(t.Context(), "m.push_rules", &c))
	if !jsonEqual(c["global"], global) {
		t.Errorf("account data m.push_rules %v, want the sync's %v", c["global"], global)
	}
}

// getRequest GETs a URL off the test goroutine (which alone may
// fail the test) and returns the answer or the transport's error.
func getRequest(ctx context.Context, u, tok string) (rawResponse, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return rawResponse{}, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	return send(&http.Client{Timeout: httpTimeout, Transport: sharedTransport}, req)
}

// jsonEqual compares two decoded JSON values.
func jsonEqual(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}
