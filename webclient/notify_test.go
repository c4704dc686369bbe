package webclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/planb-chat/planb/devcluster"
)

// quietWait is how long a test waits to see that nothing more happens
// (a second notification, a chime) after the one expected.
const quietWait = 3 * time.Second

// notifications turns bob's notifications on with the bell (the browser
// grants the permission through CDP), hides his page, and counts the
// Notification objects and oscillator starts it makes.
func notifications(t *testing.T, alice, bob *page, bobBase, roomID string) {
	t.Helper()
	bob.do("grant notifications", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.CallBrowser(ctx, browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: "notifications"}, Setting: browser.PermissionSettingGranted,
			Origin: bobBase, BrowserContextID: chromedp.FromContext(ctx).BrowserContextID,
		})
		return err
	}))
	bob.str(`(() => {
		window.__notes = [];
		window.__chimes = 0;
		const N = window.Notification;
		window.Notification = class extends N {
			constructor(title, o) { super(title, o); window.__notes.push(title + ' | ' + (o && o.body)); }
		};
		const start = OscillatorNode.prototype.start;
		OscillatorNode.prototype.start = function (...a) { window.__chimes++; return start.apply(this, a); };
		return '';
	})()`)
	bob.click("#notify-btn")
	bob.waitJS("the bell says notifications are on", uiTimeout, `document.getElementById('notify-btn').getAttribute('aria-pressed') === 'true' && localStorage.getItem('planb.notify') === 'on' ? '' : 'pressed ' + document.getElementById('notify-btn').getAttribute('aria-pressed')`)
	setHidden(bob, true)
	token := bob.str(`JSON.parse(localStorage.getItem('planb.session')).accessToken`)
	counts := func(notes, chimes int) string {
		return fmt.Sprintf(`window.__notes.length === %d && window.__chimes === %d ? '' : 'notifications ' + JSON.stringify(window.__notes) + ', chimes ' + window.__chimes`, notes, chimes)
	}

	alice.send("ping while hidden")
	bob.waitJS("bob's hidden page gets the message", uiTimeout, hasMessage("ping while hidden", "theirs", 1))
	bob.waitJS("one notification and one chime", uiTimeout, counts(1, 1))
	time.Sleep(quietWait)
	bob.waitJS("still one notification and one chime", time.Second, counts(1, 1))
	if s := bob.str(`window.__notes[0]`); !bytes.Contains([]byte(s), []byte("ping while hidden")) {
		t.Fatalf("the notification says %q", s)
	}
	badgeIs(t, bob, bobBase, token, roomID, 1)
	bob.waitJS("the hidden tab's title counts it", uiTimeout, `document.title.startsWith('(1) ') ? '' : 'title ' + document.title`)

	// Muted with the room's bell: a room rule without "notify" (actions
	// []). The server does not count the message; the page shows no
	// notification. (planb counts again with the new rules, so the count
	// may fall when the rule comes; the badge follows it.)
	bob.click("#mute-btn")
	bob.waitJS("the room's bell says muted", uiTimeout, `document.getElementById('mute-btn').getAttribute('aria-pressed') === 'true' ? '' : 'not pressed'`)
	if got := roomRule(t, bobBase, token, roomID); got != `[]` {
		t.Fatalf("after muting, the room rule's actions are %s, want []", got)
	}
	muted := badgeIs(t, bob, bobBase, token, roomID, -1)
	alice.send("muted ping")
	bob.waitJS("bob gets the muted message", uiTimeout, hasMessage("muted ping", "theirs", 1))
	time.Sleep(quietWait)
	bob.waitJS("no notification for the muted room", time.Second, counts(1, 1))
	badgeIs(t, bob, bobBase, token, roomID, muted)
	bob.click("#mute-btn")
	bob.waitJS("the room's bell says unmuted", uiTimeout, `document.getElementById('mute-btn').getAttribute('aria-pressed') === 'false' ? '' : 'still pressed'`)
	if got := roomRule(t, bobBase, token, roomID); got != "" {
		t.Fatalf("after unmuting, the room rule is still there: %s", got)
	}

	// Visible again with the room open: read, and no notification for it.
	setHidden(bob, false)
	badgeIs(t, bob, bobBase, token, roomID, 0)
	alice.send("ping while visible")
	bob.waitJS("bob gets the message in the open room", uiTimeout, hasMessage("ping while visible", "theirs", 1))
	time.Sleep(quietWait)
	bob.waitJS("no notification for the room open in a visible tab", time.Second, counts(1, 1))
}

// bellsRelabelled mutes the room, then switches bob's page to Korean with
// the top bar's language button: the notification bell and the room's
// mute bell are drawn again (once each, shown) in Korean, still pressed;
// the new mute bell unmutes (the server's rule goes), and back in English
// both say so in English.
func bellsRelabelled(t *testing.T, bob *page, bobBase, roomID string) {
	t.Helper()
	token := bob.str(`JSON.parse(localStorage.getItem('planb.session')).accessToken`)
	bob.click("#mute-btn")
	bob.waitJS("the room is muted", uiTimeout, `document.getElementById('mute-btn').getAttribute('aria-pressed') === 'true' ? '' : 'not pressed'`)
	bells := func(lang string) string {
		return fmt.Sprintf(`(() => {
			if (document.documentElement.lang !== %s) return 'lang ' + document.documentElement.lang;
			const one = (id) => document.querySelectorAll('#' + id).length === 1 && document.getElementById(id).getClientRects().length ? '' : id + ' not shown once';
			const bad = one('notify-btn') || one('mute-btn');
			if (bad) return bad;
			const b = (id) => { const e = document.getElementById(id); return [e.getAttribute('aria-label'), e.getAttribute('aria-pressed'), e.title].join(' / '); };
			return JSON.stringify([b('notify-btn'), b('mute-btn')]);
		})()`, jsString(lang))
	}
	want := func(lang, notify, mute string) string {
		return fmt.Sprintf(`(() => { const s = %s; return s === %s ? '' : s; })()`, bells(lang), jsString(mustJSON([]string{notify, mute})))
	}
	bob.click("#lang-btn")
	bob.waitJS("both bells in Korean, still pressed", uiTimeout, want("ko",
		"알림 / true / 알림이 켜져 있습니다. 누르면 끕니다.",
		"이 채팅방 알림 끄기 / true / 알림 꺼짐: 이 채팅방의 알림을 받지 않습니다. 누르면 다시 켭니다."))
	bob.click("#mute-btn")
	bob.waitJS("the Korean mute bell unmutes", uiTimeout, want("ko",
		"알림 / true / 알림이 켜져 있습니다. 누르면 끕니다.",
		"이 채팅방 알림 끄기 / false / 누르면 이 채팅방의 알림을 끕니다."))
	if got := roomRule(t, bobBase, token, roomID); got != "" {
		t.Fatalf("after unmuting with the Korean bell, the room rule is still there: %s", got)
	}
	bob.click("#lang-btn")
	bob.waitJS("both bells back in English", uiTimeout, want("en",
		"Notifications / true / Notifications are on. Click to turn them off.",
		"Mute this chat / false / Click to mute this chat."))
}

// setHidden makes p's page report itself hidden (or visible again) and
// fires visibilitychange, as switching tabs does.
func setHidden(p *page, hidden bool) {
	p.t.Helper()
	if hidden {
		p.str(`(() => {
			Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
			Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
			document.dispatchEvent(new Event('visibilitychange'));
			return '';
		})()`)
		return
	}
	p.str(`(() => {
		delete document.visibilityState;
		delete document.hidden;
		document.dispatchEvent(new Event('visibilitychange'));
		return document.visibilityState === 'visible' ? '' : 'still ' + document.visibilityState;
	})()`)
}

// badgeIs waits until p's chat-list badge for roomID and the server's
// notification_count (a fresh /sync at base) are both want (want < 0: the
// same, whatever it is), and returns the count.
func badgeIs(t *testing.T, p *page, base, token, roomID string, want int) int {
	t.Helper()
	deadline := time.Now().Add(uiTimeout)
	for {
		n, err := serverNotificationCount(base, token, roomID)
		badge := p.str(`document.querySelector('#chat-list .chat-item .badge')?.dataset.unread || ''`)
		if err == nil && (n == want || want < 0) && badge == fmt.Sprint(n) {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: badge %q, server notification_count %d (%v); want both %d; the page's receipts: %s", p.name, badge, n, err, want,
				p.str(`window.planb.chat.api.trace.filter((l) => l.includes('receipt')).join('; ')`))
		}
		time.Sleep(300 * time.Millisecond) // the poll interval
	}
}

// serverNotificationCount reads roomID's unread_notifications.notification_count from a fresh /sync.
func serverNotificationCount(base, token, roomID string) (int, error) {
	req, err := http.NewRequest(http.MethodGet, base+"/_matrix/client/v3/sync?timeout=0&filter="+url.QueryEscape(`{"room":{"timeline":{"limit":1}}}`), nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: httpTimeout}).Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return 0, fmt.Errorf("GET /sync: %d %s", resp.StatusCode, b)
	}
	var out struct {
		Rooms struct {
			Join map[string]struct {
				Unread struct {
					N int `json:"notification_count"`
				} `json:"unread_notifications"`
			} `json:"join"`
		} `json:"rooms"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return 0, err
	}
	r, ok := out.Rooms.Join[roomID]
	if !ok {
		return 0, fmt.Errorf("room %s not in /sync", roomID)
	}
	return r.Unread.N, nil
}

// roomRule returns the actions (JSON) of roomID's room push rule, or ""
// when there is none.
func roomRule(t *testing.T, base, token, roomID string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/_matrix/client/v3/pushrules/global/room/"+url.PathEscape(roomID), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: httpTimeout}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	switch resp.StatusCode {
	case http.StatusNotFound:
		return ""
	case http.StatusOK:
		var rule struct {
			Actions json.RawMessage `json:"actions"`
		}
		if err := json.Unmarshal(b, &rule); err != nil {
			t.Fatalf("room push rule: %v in %s", err, b)
		}
		return string(rule.Actions)
	}
	t.Fatalf("GET room push rule: %d %s", resp.StatusCode, b)
	return ""
}

// photoWithoutDC: alice sends a photo at dc1, dc1 is SIGKILLed, and bob's
// page is reloaded (served by dc2) with dc1 as the data center to start
// on. His page moves on and every photo of the room loads.
func photoWithoutDC(t *testing.T, alice, bob *page, dc1 devcluster.DataCenter, roomID string) {
	t.Helper()
	bob.str(`(() => { window.planb.chat.openRoom(null); return ''; })()`) // the photo is not drawn (nor fetched) yet
	alice.do("attach a second photo", chromedp.SetUploadFiles(chromedp.CSS("#file-input"), []string{writeTestImage(t)}))
	alice.waitJS("alice's second photo is sent", uiTimeout, `[...document.querySelectorAll('.row.mine[data-event-id] img.thumb')].filter((i) => i.complete && i.naturalWidth === 320).length === 2 && window.planb.chat.outbox.items.length === 0 ? '' : 'not yet'`)
	if err := syscall.Kill(dc1.PID, syscall.SIGKILL); err != nil {
		t.Fatalf("kill %s (pid %d): %v", dc1.Name, dc1.PID, err)
	}
	t.Logf("SIGKILLed %s (pid %d), where the photo was sent", dc1.Name, dc1.PID)
	editSession(bob, fmt.Sprintf(`s.current = %s; s.failed = {}`, jsString(dc1.URL)))
	// The reload opens the room (the address says so) without showing it
	// before: replaceState changes the address but not the page.
	bob.str(fmt.Sprintf(`(() => { history.replaceState(null, '', '#/room/' + encodeURIComponent(%s)); return ''; })()`, jsString(roomID)))
	start := time.Now()
	bob.do("reload bob's page, first data center dc1", chromedp.Reload())
	bob.waitJS("both photos load in bob's page without dc1", 2*uiTimeout, `(() => {
		const imgs = [...document.querySelectorAll('.row.theirs[data-event-id] img.thumb')];
		const ok = imgs.filter((i) => i.complete && i.naturalWidth === 320).length;
		return imgs.length === 2 && ok === 2 ? '' : ok + ' of ' + imgs.length + ' photos loaded';
	})()`)
	took := time.Since(start)
	var trace []string
	if err := bob.eval(`window.planb.chat.api.trace`, &trace); err != nil {
		t.Fatal(err)
	}
	triedDead, downloads := 0, []string{}
	for _, l := range trace {
		if bytes.Contains([]byte(l), []byte(" "+dc1.Name+" ")) {
			triedDead++
		}
		if bytes.Contains([]byte(l), []byte("media/download")) {
			downloads = append(downloads, l)
		}
	}
	if triedDead == 0 {
		t.Fatalf("bob's page never tried %s, so this did not start on the dead data center; trace:\n%v", dc1.Name, trace)
	}
	t.Logf("MEASURED: with %s SIGKILLed, bob's page (first data center %s) showed both photos %s after the reload; %d attempts at %s; downloads: %v",
		dc1.Name, dc1.Name, took.Round(10*time.Millisecond), triedDead, dc1.Name, downloads)
}
