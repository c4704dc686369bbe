package webclient

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/planb-chat/planb/internal/testutil"
)

// TestBrowserChat drives the web client in headless chromium against a
// real planb node: two people in separate browser contexts sign up, start a
// chat, exchange messages and an image, see typing and read receipts, get
// clear errors, and a message written without any network waits in the
// outbox and arrives exactly once. (TestBrowserFailover does the same across
// data centers and kills one.)
func TestBrowserChat(t *testing.T) {
	chrome := findChromium(t)
	if testing.Short() {
		t.Skip("starts planb and a browser; skipped with -short")
	}
	base := startNode(t, testutil.MustBuildPlanb(t))
	checkServedByNode(t, base)
	browser := newBrowser(t, chrome)
	alice := openPage(t, browser, "alice", base+"/", 1100, 720)
	bob := openPage(t, browser, "bob", base+"/", 360, 740) // a phone-sized screen

	signUp(alice, "alice", "correct horse battery")
	checkAuthErrors(bob, "alice")
	signUp(bob, "bob", "staple battery horse")
	roomID := startChat(t, alice, bob, "안녕 bob! hello there")

	// Typing: bob types, alice sees it; Shift+Enter is a newline, Enter sends.
	bob.typeInto("#composer", "hi alice")
	alice.waitJS("alice sees bob typing", uiTimeout, `(document.getElementById('typing').dataset.users || '').includes('bob') ? '' : 'typing: ' + document.getElementById('typing').textContent`)
	bob.do("Shift+Enter", chromedp.KeyEvent("\r", chromedp.KeyModifiers(chromedp.ModifierShift)))
	bob.send("second line")
	alice.waitJS("alice gets bob's two-line message", uiTimeout, hasMessage("hi alice\nsecond line", "theirs", 1))
	alice.waitJS("typing ends after sending", uiTimeout, `document.getElementById('typing').textContent === '' ? '' : document.getElementById('typing').textContent`)
	bob.waitJS("alice read bob's message", uiTimeout, unreadOf("hi alice\nsecond line", 0))

	// An image: thumbnail on both sides, full size on click.
	imgPath := writeTestImage(t)
	alice.do("attach an image", chromedp.SetUploadFiles(chromedp.CSS("#file-input"), []string{imgPath}))
	alice.waitJS("alice's image is sent", uiTimeout, imageLoaded("mine"))
	bob.waitJS("bob sees the image thumbnail", uiTimeout, imageLoaded("theirs"))
	bob.click(".row.theirs .image-button")
	bob.waitJS("the full image opens", uiTimeout, `(() => { const i = document.querySelector('#lightbox img'); return i && i.complete && i.naturalWidth === 320 ? '' : 'no full image'; })()`)
	bob.click("#lightbox .lightbox-close")
	alice.waitJS("bob read the image", uiTimeout, `(() => { const u = [...document.querySelectorAll('.row.mine')].filter(r => r.querySelector('img')).pop()?.querySelector('.unread'); return u && u.dataset.unread === '0' ? '' : 'unread ' + (u && u.dataset.unread); })()`)

	// Bob replies, then goes back to his chat list (phone layout): alice's
	// next message stays unread (1) and shows on bob's badge until he opens
	// the chat again.
	bob.send("사진 멋지다!")
	alice.waitJS("alice gets bob's reply", uiTimeout, hasMessage("사진 멋지다!", "theirs", 1))
	bob.waitJS("bob's outbox is empty", uiTimeout, outboxEmpty)
	bob.click("#back")
	bob.waitJS("bob sees his chat list", uiTimeout, `!document.body.classList.contains('in-room') && document.querySelector('#chat-list .chat-item').offsetParent !== null ? '' : 'room still shown'`)
	alice.send("저녁 먹었어? dinner?")
	alice.waitJS("not read yet: 1", uiTimeout, unreadOf("저녁 먹었어? dinner?", 1))
	bob.waitJS("bob's badge counts it", uiTimeout, `document.querySelector('#chat-list .badge')?.dataset.unread === '1' ? '' : 'badge ' + document.querySelector('#chat-list .badge')?.dataset.unread`)
	if os.Getenv("PLANB_SCREENSHOT") == "1" {
		saveScreenshot(t, alice, "webclient.png")
	}
	bob.click("#chat-list .chat-item")
	if os.Getenv("PLANB_SCREENSHOT") == "1" {
		bob.waitJS("bob's chat shows", uiTimeout, hasMessage("저녁 먹었어? dinner?", "theirs", 1))
		saveScreenshot(t, bob, "")
	}
	alice.waitJS("read: 0", uiTimeout, unreadOf("저녁 먹었어? dinner?", 0))

	// Outbox: with no network at all, a message waits as pending (persisted
	// with its txnId) and is sent once the network is back.
	bob.do("go offline", enableNetwork(), setOffline(true))
	bob.send("written while offline")
	bob.waitJS("the message waits in the outbox", uiTimeout, `(() => {
		const r = document.querySelector('.row.pending');
		const box = JSON.parse(localStorage.getItem('planb.outbox.@bob:localhost') || '[]');
		const it = box.find(i => i.content.body === 'written while offline');
		return r && it && it.txnId && it.state !== 'sent' ? '' : 'outbox ' + JSON.stringify(box);
	})()`)
	bob.waitJS("the page says no data center answers", uiTimeout, `document.getElementById('status').dataset.state === 'offline' ? '' : 'status ' + document.getElementById('status').dataset.state`)
	bob.do("go online", setOffline(false))
	arrivesOnce(t, alice, bob, base, roomID, "written while offline")

	olderHistory(t, alice, bob, base, roomID)
	groupChat(t, alice, bob)

	// The session is remembered across a reload; log out and in again.
	alice.do("reload", chromedp.Reload())
	alice.waitJS("still logged in after a reload", uiTimeout, `document.getElementById('chat-app') && document.querySelectorAll('#chat-list .chat-item').length === 1 ? '' : 'not yet'`)
	alice.click("#logout")
	alice.waitJS("logged out", uiTimeout, `document.getElementById('auth-form') && localStorage.getItem('planb.session') === null ? '' : 'still in'`)
	alice.typeInto("#auth-user", "alice")
	alice.typeInto("#auth-pass", "correct horse battery")
	alice.click("#auth-submit")
	alice.waitJS("logged in again, chats back", uiTimeout, `document.querySelectorAll('#chat-list .chat-item').length === 1 ? '' : 'chats: ' + document.querySelectorAll('#chat-list .chat-item').length`)
}

// olderHistory: after 45 more messages, a reloaded page holds only the
// newest; scrolling up loads the rest with /messages, back to the start.
func olderHistory(t *testing.T, alice, bob *page, base, roomID string) {
	t.Helper()
	token := alice.str(`JSON.parse(localStorage.getItem('planb.session')).accessToken`)
	for i := 1; i <= 45; i++ {
		if err := sendText(base, token, roomID, fmt.Sprintf("bulk%d", i), fmt.Sprintf("older %02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	bob.waitJS("bob gets them live", uiTimeout, hasMessage("older 45", "theirs", 1))
	bob.do("reload", chromedp.Reload())
	bob.waitJS("after a reload only the newest are loaded", uiTimeout, `(() => {
		const bodies = [...document.querySelectorAll('.row[data-event-id] .body')].map(b => b.textContent);
		return bodies.includes('older 45') && !bodies.includes('older 01') ? '' : 'loaded ' + bodies.length + ', first ' + bodies[0];
	})()`)
	bob.waitJS("scrolling up loads older messages back to the start", uiTimeout, `(() => {
		const tl = document.getElementById('timeline');
		tl.scrollTop = 0;
		const bodies = [...document.querySelectorAll('.row[data-event-id] .body')].map(b => b.textContent);
		const top = document.querySelector('.timeline-top').textContent;
		return bodies.includes('older 01') && bodies.includes('안녕 bob! hello there') && /beginning/.test(top) ? '' : 'oldest loaded: ' + bodies[0] + '; top: ' + top;
	})()`)
	bob.waitJS("in order, each once", uiTimeout, `(() => {
		const bodies = [...document.querySelectorAll('.row[data-event-id] .body')].map(b => b.textContent).filter(b => b.startsWith('older '));
		const want = Array.from({ length: 45 }, (_, i) => 'older ' + String(i + 1).padStart(2, '0'));
		return JSON.stringify(bodies) === JSON.stringify(want) ? '' : JSON.stringify(bodies);
	})()`)
}

// groupChat: alice creates a group with bob, who accepts the invite (group
// invites are not joined automatically); inviting an unknown user is
// explained; bob leaves and alice sees it.
func groupChat(t *testing.T, alice, bob *page) {
	t.Helper()
	alice.click("#new-group")
	alice.typeInto("#new-group-name", "Team planb")
	alice.typeInto("#new-group-members", "bob")
	alice.click("#dlg-new-group-submit")
	alice.waitJS("the group opens", uiTimeout, `document.getElementById('room-title').textContent === 'Team planb' ? '' : 'title ' + document.getElementById('room-title').textContent`)
	groupID := alice.str(`decodeURIComponent(location.hash.slice('#/room/'.length))`)
	bob.click("#back")
	invite := fmt.Sprintf(`.invite-item[data-room-id=%s]`, jsString(groupID))
	bob.waitJS("bob is invited", uiTimeout, fmt.Sprintf(`document.querySelector(%s + ' .accept') ? '' : 'no invite'`, jsString(invite)))
	bob.click(invite + " .accept")
	bob.waitJS("bob joins and the group opens", uiTimeout, `document.body.classList.contains('in-room') && document.getElementById('room-title').textContent === 'Team planb' ? '' : 'title ' + document.getElementById('room-title').textContent`)
	alice.waitJS("alice sees bob join", uiTimeout, `[...document.querySelectorAll('.notice-row')].some(n => n.textContent === 'bob joined') ? '' : 'no notice'`)
	alice.send("welcome to the group")
	bob.waitJS("bob gets it", uiTimeout, hasMessage("welcome to the group", "theirs", 1))
	alice.waitJS("bob read it", uiTimeout, unreadOf("welcome to the group", 0))

	alice.click("#invite-btn")
	alice.typeInto("#invite-user", "carol")
	alice.click("#dlg-invite-submit")
	alice.waitJS("an unknown user is explained", uiTimeout, `/no user @carol:localhost/.test(document.getElementById('dlg-invite-error').textContent) ? '' : 'error line: ' + document.getElementById('dlg-invite-error').textContent`)
	alice.click("#dlg-invite-cancel")

	bob.click("#leave-btn")
	bob.click("#dlg-leave-ok")
	bob.waitJS("the group is gone from bob's list", uiTimeout, fmt.Sprintf(`!document.body.classList.contains('in-room') && !document.querySelector('#chat-list [data-room-id=%s]') ? '' : 'still there'`, jsString(groupID)))
	alice.waitJS("alice sees bob leave", uiTimeout, `[...document.querySelectorAll('.notice-row')].some(n => n.textContent === 'bob left') ? '' : 'no notice'`)
	alice.do("back to the 1:1 chat", chromedp.Click(chromedp.CSS(`#chat-list .chat-item:not([data-room-id="`+groupID+`"])`)))
	alice.click("#leave-btn")
	alice.click("#dlg-leave-ok")
	alice.waitJS("alice left the 1:1 chat too", uiTimeout, `document.querySelectorAll('#chat-list .chat-item').length === 1 ? '' : 'chats: ' + document.querySelectorAll('#chat-list .chat-item').length`)
}

// TestBrowserErrors checks the password rule of sign-up, the feedback for
// an unreachable server and for rate limiting, and the Korean UI.
func TestBrowserErrors(t *testing.T) {
	chrome := findChromium(t)
	if testing.Short() {
		t.Skip("starts planb and a browser; skipped with -short")
	}
	base := startNode(t, testutil.MustBuildPlanb(t), "--rate-limit-login", "1", "--rate-limit-burst", "2")
	browser := newBrowser(t, chrome)
	p := openPage(t, browser, "visitor", base+"/", 800, 700)

	passwordRule(t, p, base, "shorty", "At least 8 characters.", "The password is too short: use at least 8 characters.")
	p.click(".advanced summary")
	p.clear("#auth-server")
	p.typeInto("#auth-server", "http://127.0.0.1:1")
	p.typeInto("#auth-user", "nobody")
	p.typeInto("#auth-pass", "whatever")
	p.click("#auth-submit")
	p.waitJS("an unreachable server is explained", uiTimeout, `/cannot reach the server/i.test(document.getElementById('auth-error').textContent) ? '' : 'error line: ' + document.getElementById('auth-error').textContent`)

	p.clear("#auth-server")
	p.typeInto("#auth-server", base)
	for i := range 2 {
		p.click("#auth-submit")
		p.waitJS(fmt.Sprintf("attempt %d is refused", i+1), uiTimeout, `/wrong user name or password/i.test(document.getElementById('auth-error').textContent) && !document.getElementById('auth-submit').disabled ? '' : 'error line: ' + document.getElementById('auth-error').textContent`)
		p.clear("#auth-pass") // an edit, so the next answer is a new one
		p.str(`(document.getElementById('auth-error').textContent = '')`)
		p.typeInto("#auth-pass", "whatever")
	}
	p.click("#auth-submit")
	p.waitJS("rate limiting says how long to wait", uiTimeout, `/too many attempts\. try again in \d+ seconds/i.test(document.getElementById('auth-error').textContent) && document.getElementById('auth-submit').disabled ? '' : 'error line: ' + document.getElementById('auth-error').textContent`)

	ko := openPage(t, browser, "korean", base+"/?lang=ko", 360, 700)
	ko.waitJS("the page speaks Korean", uiTimeout, `document.documentElement.lang === 'ko' && document.getElementById('auth-title').textContent === '로그인' ? '' : document.getElementById('auth-title')?.textContent`)
}

// checkAuthErrors checks the feedback for a wrong password and a taken
// user name (taken must already exist), leaving the form in log-in mode.
func checkAuthErrors(p *page, taken string) {
	p.t.Helper()
	p.typeInto("#auth-user", taken)
	p.typeInto("#auth-pass", "not the password")
	p.click("#auth-submit")
	p.waitJS("a wrong password is explained", uiTimeout, `/wrong user name or password/i.test(document.getElementById('auth-error').textContent) ? '' : 'error line: ' + document.getElementById('auth-error').textContent`)
	p.clear("#auth-user", "#auth-pass")
	p.switchAuthMode("signup")
	p.typeInto("#auth-user", taken)
	p.typeInto("#auth-pass", "another password")
	p.typeInto("#auth-pass2", "another password")
	p.click("#auth-submit")
	p.waitJS("a taken user name is explained", uiTimeout, `/already taken/i.test(document.getElementById('auth-error').textContent) ? '' : 'error line: ' + document.getElementById('auth-error').textContent`)
	p.clear("#auth-user", "#auth-pass", "#auth-pass2")
	p.switchAuthMode("login")
}

// startChat has alice start a 1:1 chat with bob and write first; bob, on a
// phone-sized screen, sees it in his list with a badge, opens it, and
// alice's unread count falls to 0. It returns the room ID.
func startChat(t *testing.T, alice, bob *page, first string) string {
	t.Helper()
	alice.click("#new-chat")
	alice.typeInto("#new-chat-user", "bob")
	alice.click("#dlg-new-chat-submit")
	alice.waitJS("the chat opens", uiTimeout, `location.hash.startsWith('#/room/') && !document.querySelector('.room-body').hidden ? '' : 'hash ' + location.hash`)
	roomID := alice.str(`decodeURIComponent(location.hash.slice('#/room/'.length))`)
	alice.send(first)
	alice.waitJS("alice's message is sent", uiTimeout, hasMessage(first, "mine", 1))
	alice.waitJS("bob has not read it: 1", uiTimeout, unreadOf(first, 1))

	// Bob was invited to a direct chat: joined automatically, listed with an
	// unread badge and the preview.
	bob.waitJS("bob's chat list shows the chat with a badge", uiTimeout, fmt.Sprintf(`(() => {
		const b = document.querySelector('#chat-list .chat-item');
		if (!b) return 'no chat yet';
		const badge = b.querySelector('.badge');
		const prev = b.querySelector('.chat-preview').textContent;
		return badge.dataset.unread === '1' && !badge.hidden && prev.includes(%s) ? '' : 'badge ' + badge.dataset.unread + ', preview ' + prev;
	})()`, jsString(first)))
	bob.click("#chat-list .chat-item")
	bob.waitJS("bob sees alice's message", uiTimeout, hasMessage(first, "theirs", 1))
	alice.waitJS("the unread count falls to 0 once bob has read it", uiTimeout, unreadOf(first, 0))
	bob.waitJS("bob's badge is gone", uiTimeout, `document.querySelector('#chat-list .badge')?.dataset.unread === '0' ? '' : 'badge ' + document.querySelector('#chat-list .badge')?.dataset.unread`)
	return roomID
}

// arrivesOnce waits until alice has text from bob and bob's outbox is
// empty, then checks that the server and alice's page hold it exactly once.
func arrivesOnce(t *testing.T, alice, bob *page, base, roomID, text string) {
	t.Helper()
	token := alice.str(`JSON.parse(localStorage.getItem('planb.session')).accessToken`)
	alice.waitJS("alice gets "+text, uiTimeout, hasMessage(text, "", 1))
	bob.waitJS("bob's outbox is empty", uiTimeout, outboxEmpty)
	testutil.WaitFor(t, uiTimeout, "the server holds "+text+" once", func() error {
		n, err := countMessages(base, token, url.PathEscape(roomID), text)
		if err == nil && n != 1 {
			err = fmt.Errorf("%d copies", n)
		}
		return err
	})
	alice.waitJS("alice shows "+text+" once", uiTimeout, hasMessage(text, "", 1))
}

// switchAuthMode flips the form between log-in and sign-up and waits until
// it has (the page moves the focus to the user name, so typing must wait).
func (p *page) switchAuthMode(mode string) {
	p.t.Helper()
	p.click("#auth-switch")
	p.waitJS("the form is in "+mode+" mode", uiTimeout, fmt.Sprintf(`document.getElementById('auth-form').dataset.mode === %s && document.activeElement.id === 'auth-user' ? '' : 'mode ' + document.getElementById('auth-form').dataset.mode`, jsString(mode)))
}

// outboxEmpty yields "" when bob's page shows and keeps no unsent message.
const outboxEmpty = `document.querySelectorAll('.row.pending').length === 0 && JSON.parse(localStorage.getItem('planb.outbox.@bob:localhost') || '[]').length === 0 ? '' : 'still pending'`

// signUp creates an account through the sign-up form.
func signUp(p *page, user, pass string) {
	p.t.Helper()
	p.switchAuthMode("signup")
	p.typeInto("#auth-user", user)
	p.typeInto("#auth-pass", pass)
	p.typeInto("#auth-pass2", pass)
	p.click("#auth-submit")
	p.waitJS("signed up as "+user, uiTimeout, `document.getElementById('chat-app') ? '' : (document.getElementById('auth-error')?.textContent || 'still on the form')`)
}

// hasMessage yields "" when exactly want rows (of side "mine", "theirs" or
// either) have the body text.
func hasMessage(text, side string, want int) string {
	sel := ".row[data-event-id]"
	if side != "" {
		sel = ".row." + side + "[data-event-id]"
	}
	return fmt.Sprintf(`(() => {
		const n = [...document.querySelectorAll(%s)].filter(r => r.querySelector('.body')?.textContent === %s).length;
		return n === %d ? '' : n + ' rows';
	})()`, jsString(sel), jsString(text), want)
}

// unreadOf yields "" when the message with text shows n unread members.
func unreadOf(text string, n int) string {
	return fmt.Sprintf(`(() => {
		const r = [...document.querySelectorAll('.row[data-event-id]')].filter(r => r.querySelector('.body')?.textContent === %s).pop();
		const u = r && r.querySelector('.unread');
		return u && u.dataset.unread === '%d' ? '' : 'unread ' + (u ? u.dataset.unread : 'no row');
	})()`, jsString(text), n)
}

func imageLoaded(side string) string {
	return fmt.Sprintf(`(() => {
		const i = document.querySelector('.row.%s[data-event-id] img.thumb');
		return i && i.complete && i.naturalWidth === 320 ? '' : 'no loaded image';
	})()`, side)
}

// enableNetwork turns on the network domain (needed for its emulation).
func enableNetwork() chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{})
		return err
	})
}

// setOffline cuts (or restores) every request of the page.
func setOffline(off bool) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		conds := []*network.Conditions{}
		if off {
			conds = append(conds, &network.Conditions{Offline: true, DownloadThroughput: -1, UploadThroughput: -1})
		}
		_, err := cdp.Call(ctx, tg, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{MatchedNetworkConditions: conds})
		return err
	})
}

// checkServedByNode checks the real node: the app at /, Matrix 404 elsewhere.
func checkServedByNode(t *testing.T, base string) {
	t.Helper()
	c := &http.Client{Timeout: httpTimeout}
	resp, err := c.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "/_planb/web/app.js") || resp.Header.Get("Content-Security-Policy") == "" {
		t.Fatalf("GET %s/ = %d %q", base, resp.StatusCode, body)
	}
	resp, err = c.Get(base + "/_matrix/client/v3/no-such-endpoint")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 404 || !strings.Contains(string(body), "M_UNRECOGNIZED") {
		t.Fatalf("unknown endpoint = %d %s, want the Matrix 404", resp.StatusCode, body)
	}
}

// saveScreenshot writes what p shows to docs/name.
func saveScreenshot(t *testing.T, p *page, name string) {
	t.Helper()
	shot, err := chromedp.Run(p.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	root, err := testutil.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "docs", name)
	if name == "" { // for a look, not for the docs
		path = filepath.Join(os.TempDir(), "planb-webclient-"+p.name+".png")
	}
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("saved %s (%d bytes)", path, len(shot))
}
