package webclient

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/planb-chat/planb/internal/testutil"
)

// TestBrowserMessenger checks what people expect of a messenger, with
// alice on a 390×844 phone in Korean and bob on a desktop in English: the
// password rule is said before sign-up and enforced before anything is
// sent; Korean notices say "내가 …" for the user's own actions; buttons keep
// their labels on one line; a message over the server's limit is refused
// before it is queued, and one the server refuses fails for good and can be
// deleted; web addresses are links and nothing else is; a deleted message
// shows as deleted for everyone, live and after a reload; a reply quotes
// the message it answers; reactions are counted under the message and can
// be taken back; an edit replaces the text for everyone.
func TestBrowserMessenger(t *testing.T) {
	chrome := findChromium(t)
	if testing.Short() {
		t.Skip("starts planb and a browser; skipped with -short")
	}
	base := startNode(t, testutil.MustBuildPlanb(t))
	browser := newBrowser(t, chrome)
	alice := openPage(t, browser, "alice", base+"/?lang=ko", 390, 844)
	bob := openPage(t, browser, "bob", base+"/", 1100, 720)

	alice.waitJS("the log-in page", uiTimeout, `document.getElementById('auth-form') ? '' : 'no form'`)
	oneLineButtons(alice, "the log-in page", "#auth-submit", "#auth-switch")
	passwordRule(t, alice, base, "alice", "8자 이상 입력하세요.", "비밀번호가 너무 짧습니다. 8자 이상으로 정해 주세요.")
	signUp(alice, "alice", "correct horse battery")
	signUp(bob, "bob", "staple battery horse")
	oneLineButtons(alice, "the chat list", "#new-chat", "#new-group", "#logout")

	roomID := koreanNotices(t, alice, bob)
	oneLineButtons(alice, "the conversation", "#send-btn", "#attach-btn", "#invite-btn", "#leave-btn", "#back")

	links(alice, bob)
	tooLong(t, alice, bob, roomID)
	deleteMessage(alice, bob)
	reply(alice, bob)
	reactions(alice, bob)
	edit(alice, bob, roomID)
	if os.Getenv("PLANB_SCREENSHOT") == "1" { // for a look: /tmp/planb-webclient-{alice,bob}.png
		saveScreenshot(t, alice, "")
		saveScreenshot(t, bob, "")
	}
}

// oneLineButtons checks that every visible button of p keeps its label on
// one line and lies inside the screen; the buttons named in must have to be
// among them, so that the check sees what it is meant to.
func oneLineButtons(p *page, where string, must ...string) {
	p.t.Helper()
	for _, sel := range must {
		p.waitJS(where+": "+sel+" is shown", uiTimeout, fmt.Sprintf(`(() => { const b = document.querySelector(%s); return b && b.getClientRects().length ? '' : 'not shown'; })()`, jsString(sel)))
	}
	p.waitJS(where+": every button's label is on one line", uiTimeout, `(() => {
		const bad = [];
		let seen = 0;
		for (const b of document.querySelectorAll('button')) {
			if (!b.getClientRects().length || getComputedStyle(b).visibility === 'hidden') continue;
			seen++;
			const name = (b.id ? '#' + b.id : 'button.' + [...b.classList].join('.')) + ' "' + b.textContent.trim().slice(0, 24) + '"';
			const r = b.getBoundingClientRect();
			if (r.left < -0.5 || r.right > innerWidth + 0.5) bad.push(name + ' reaches outside the screen (' + Math.round(r.left) + '..' + Math.round(r.right) + ')');
			const walk = document.createTreeWalker(b, NodeFilter.SHOW_TEXT);
			for (let n; (n = walk.nextNode());) {
				if (!n.textContent.trim()) continue;
				const range = document.createRange();
				range.selectNodeContents(n);
				const lines = new Set([...range.getClientRects()].filter((x) => x.width > 0).map((x) => Math.round(x.top)));
				if (lines.size > 1) bad.push(name + ' is on ' + lines.size + ' lines');
			}
		}
		return seen === 0 ? 'no button seen' : bad.join('; ');
	})()`)
}

// passwordRule checks, in sign-up mode, that the rule is shown under the
// password field before anything is sent and that a short password is
// refused with it without asking the server (user gets no account). It
// leaves the form empty in log-in mode.
func passwordRule(t *testing.T, p *page, base, user, rule, refusal string) {
	t.Helper()
	p.switchAuthMode("signup")
	p.waitJS("the rule is shown under the password", uiTimeout, fmt.Sprintf(`(() => {
		const h = document.getElementById('auth-pass-hint');
		const pass = document.getElementById('auth-pass');
		return h && !h.hidden && h.getClientRects().length && h.textContent === %s && pass.getAttribute('aria-describedby') === 'auth-pass-hint' ? '' : 'hint: ' + (h && h.textContent);
	})()`, jsString(rule)))
	oneLineButtons(p, "the sign-up page", "#auth-submit", "#auth-switch")
	p.typeInto("#auth-user", user)
	p.typeInto("#auth-pass", "seven77")
	p.typeInto("#auth-pass2", "seven77")
	p.click("#auth-submit")
	p.waitJS("a short password is refused", uiTimeout, fmt.Sprintf(`(() => {
		const e = document.getElementById('auth-error').textContent;
		return e === %s && document.getElementById('auth-pass').getAttribute('aria-invalid') === 'true' && !document.getElementById('chat-app') ? '' : 'error line: ' + e;
	})()`, jsString(refusal)))
	resp, err := (&http.Client{Timeout: httpTimeout}).Get(base + "/_matrix/client/v3/profile/@" + user + ":localhost")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("after a refused sign-up, the profile of %s answers %d, want 404: the page must not have asked the server", user, resp.StatusCode)
	}
	p.typeInto("#auth-pass", "8")
	p.waitJS("eight characters meet the rule", uiTimeout, `document.getElementById('auth-pass-hint').dataset.ok === 'true' ? '' : 'not met'`)
	p.clear("#auth-user", "#auth-pass", "#auth-pass2")
	p.switchAuthMode("login")
}

// koreanNotices: alice creates a group with bob; her notices are written
// for her ("내가 …", never "나님이"), bob's in English for him ("alice
// invited you"). It returns the group's room ID, open on both pages.
func koreanNotices(t *testing.T, alice, bob *page) string {
	t.Helper()
	alice.click("#new-group")
	oneLineButtons(alice, "the new group dialog", "#dlg-new-group-submit", "#dlg-new-group-cancel")
	alice.typeInto("#new-group-name", "우리 팀")
	alice.typeInto("#new-group-members", "bob")
	alice.click("#dlg-new-group-submit")
	alice.waitJS("the group opens", uiTimeout, `document.getElementById('room-title').textContent === '우리 팀' ? '' : 'title ' + document.getElementById('room-title').textContent`)
	roomID := alice.str(`decodeURIComponent(location.hash.slice('#/room/'.length))`)
	invite := fmt.Sprintf(`.invite-item[data-room-id=%s]`, jsString(roomID))
	bob.waitJS("bob is invited", uiTimeout, fmt.Sprintf(`document.querySelector(%s + ' .accept') ? '' : 'no invite'`, jsString(invite)))
	bob.click(invite + " .accept")
	bob.waitJS("bob joins", uiTimeout, `document.getElementById('room-title').textContent === '우리 팀' ? '' : 'title ' + document.getElementById('room-title').textContent`)
	const notices = `JSON.stringify([...document.querySelectorAll('.notice-row')].map((n) => n.textContent))`
	alice.waitJS("alice's notices say 내가", uiTimeout, `(() => {
		const n = [...document.querySelectorAll('.notice-row')].map((r) => r.textContent);
		const want = ['내가 채팅방 이름을 바꿨습니다: “우리 팀”', '내가 bob님을 초대했습니다', 'bob님이 들어왔습니다'];
		return want.every((w) => n.includes(w)) ? '' : JSON.stringify(n);
	})()`)
	if s := alice.str(`document.body.textContent`); strings.Contains(s, "나님") {
		t.Errorf("alice's page says 나님: %s", alice.str(notices))
	}
	bob.waitJS("bob's notices speak to him", uiTimeout, `(() => {
		const n = [...document.querySelectorAll('.notice-row')].map((r) => r.textContent);
		return n.includes('alice invited you') && n.includes('You joined') && !n.some((s) => s.includes('You') && !s.startsWith('You')) ? '' : JSON.stringify(n);
	})()`)
	return roomID
}

// links: web addresses in a message are links (new tab, no opener, no
// referrer), only http and https, without the sentence's punctuation;
// everything else stays text, and no HTML in a body is ever parsed.
func links(alice, bob *page) {
	alice.t.Helper()
	const hostile = `javascript:alert(1) https://example.org/a?b=1). <img src=x onerror=alert(1)>`
	const more = `(see https://example.org/wiki/A_(b)) or HTTPS://EXAMPLE.NET/Y, data:text/html,hi https://example.com/여기에서`
	alice.send(hostile)
	alice.send(more)
	check := fmt.Sprintf(`(() => {
		const rows = [...document.querySelectorAll('.row[data-event-id]')];
		const body = (text) => rows.map((r) => r.querySelector('.body')).find((b) => b && b.textContent === text);
		const a = body(%s), b = body(%s);
		if (!a || !b) return 'not there yet';
		if (a.querySelector('img, script') || document.querySelector('.bubble img:not(.thumb)')) return 'HTML was parsed';
		const desc = (el) => [...el.querySelectorAll('a')].map((l) => [l.getAttribute('href'), l.textContent, l.target, l.rel].join(' | '));
		const got = JSON.stringify([desc(a), desc(b)]);
		const want = JSON.stringify([
			['https://example.org/a?b=1 | https://example.org/a?b=1 | _blank | noopener noreferrer'],
			['https://example.org/wiki/A_(b) | https://example.org/wiki/A_(b) | _blank | noopener noreferrer',
			 'https://example.net/Y | HTTPS://EXAMPLE.NET/Y | _blank | noopener noreferrer',
			 'https://example.com/ | https://example.com/ | _blank | noopener noreferrer'],
		]);
		return got === want ? '' : got;
	})()`, jsString(hostile), jsString(more))
	alice.waitJS("alice's own messages have the links", uiTimeout, check)
	bob.waitJS("bob's page has the same links and nothing else", uiTimeout, check)
}

// tooLong: a message the server could not take is refused in the composer,
// which keeps it; the largest that fits is sent; and one that reaches the
// server anyway (queued without the check) fails for good — no retry — and
// can be deleted.
func tooLong(t *testing.T, alice, bob *page, roomID string) {
	t.Helper()
	const refusal = "메시지가 너무 깁니다 (최대 약 6만 바이트)"
	// 25,000 Hangul syllables are 75,000 bytes of UTF-8.
	alice.str(`(() => { const c = document.getElementById('composer'); c.value = '가'.repeat(25000); c.dispatchEvent(new Event('input')); return ''; })()`)
	alice.send("")
	alice.waitJS("a message over the limit is refused before it is queued", uiTimeout, fmt.Sprintf(`(() => {
		const e = document.getElementById('composer-error').textContent;
		const c = document.getElementById('composer');
		return e === %s && c.value.length === 25000 && c.getAttribute('aria-invalid') === 'true' && planb.chat.outbox.items.length === 0 && !document.querySelector('.row.pending') ? '' : 'error line: ' + e + '; composer holds ' + c.value.length;
	})()`, jsString(refusal)))
	oneLineButtons(alice, "the refused message", "#send-btn")

	// {"msgtype":"m.text","body":"…"} is 30 bytes: a body of 59,970 makes
	// exactly the limit, which the server must accept.
	alice.str(`(() => { const c = document.getElementById('composer'); c.value = 'a'.repeat(59970); c.dispatchEvent(new Event('input')); return ''; })()`)
	alice.waitJS("the error goes once the message fits", uiTimeout, `document.getElementById('composer-error').textContent === '' ? '' : 'still: ' + document.getElementById('composer-error').textContent`)
	alice.send("")
	bob.waitJS("the largest message that fits arrives", uiTimeout, hasMessage(strings.Repeat("a", 59970), "theirs", 1))

	alice.str(fmt.Sprintf(`(planb.chat.outbox.addText(%s, 'x'.repeat(70000)), '')`, jsString(roomID)))
	alice.waitJS("the server's refusal is final", uiTimeout, fmt.Sprintf(`(() => {
		const r = document.querySelector('.row.pending.failed');
		const it = JSON.parse(localStorage.getItem('planb.outbox.@alice:localhost') || '[]')[0];
		if (!r || !it) return 'not failed yet';
		const state = r.querySelector('.state').textContent;
		return it.state === 'failed' && it.permanent && state.includes(%s) && r.querySelector('.retry').hidden && !r.querySelector('.discard').hidden ? '' : state + ' ' + JSON.stringify({ state: it.state, permanent: it.permanent });
	})()`, jsString(refusal)))
	oneLineButtons(alice, "the failed message", ".row.failed .discard")
	alice.str(`(planb.chat.outbox.retry(planb.chat.outbox.items[0].txnId), '')`)
	if s := alice.str(`planb.chat.outbox.items[0].state`); s != "failed" {
		t.Fatalf("retrying a message the server refused as too large: state %q, want it to stay failed", s)
	}
	alice.click(".row.failed .discard")
	alice.waitJS("deleted from the outbox", uiTimeout, `!document.querySelector('.row.pending') && localStorage.getItem('planb.outbox.@alice:localhost') === null ? '' : 'still there'`)
}

// rowOf is the JavaScript for the newest message row whose body is text.
func rowOf(text string) string {
	return fmt.Sprintf(`[...document.querySelectorAll('.row[data-event-id]')].filter((r) => r.querySelector('.body')?.textContent === %s).pop()`, jsString(text))
}

// openActions clicks the "⋯" of the newest message with text.
func openActions(p *page, text string) {
	p.t.Helper()
	p.waitJS("the message "+text+" has actions", uiTimeout, fmt.Sprintf(`(() => { const r = %s; if (!r) return 'no row'; r.querySelector('.msg-more').click(); return r.querySelector('.msg-actions button') ? '' : 'no actions'; })()`, rowOf(text)))
}

// deleteMessage: alice deletes one of her messages (after confirming);
// both pages show it deleted, bob's also after a reload, and bob is not
// offered to delete alice's messages.
func deleteMessage(alice, bob *page) {
	alice.t.Helper()
	const text = "이건 지울 메시지"
	alice.send(text)
	bob.waitJS("bob gets it", uiTimeout, hasMessage(text, "theirs", 1))
	eventID := alice.str(rowOf(text) + `.dataset.eventId`)
	openActions(bob, text)
	if s := bob.str(`[...` + rowOf(text) + `.querySelectorAll('.msg-actions > button')].map((b) => b.textContent).join(',')`); s != "Reply" {
		bob.fail("bob is offered %q on alice's message, want only Reply", s)
	}
	openActions(alice, text)
	oneLineButtons(alice, "a message's actions", ".msg-actions .msg-delete", ".msg-actions .msg-reply")
	alice.do("delete", chromedp.Click(chromedp.CSS(".row[data-event-id=\""+eventID+"\"] .msg-delete")))
	oneLineButtons(alice, "the delete dialog", "#dlg-delete-ok", "#dlg-delete-cancel")
	alice.click("#dlg-delete-ok")
	deleted := func(want string) string {
		return fmt.Sprintf(`(() => {
			const r = [...document.querySelectorAll('.row[data-event-id]')].find((r) => r.dataset.eventId === %s);
			const b = r && r.querySelector('.body');
			return b && b.classList.contains('deleted') && b.textContent === %s && r.querySelector('.msg-more').hidden ? '' : 'row: ' + (r ? r.textContent : 'none');
		})()`, jsString(eventID), jsString(want))
	}
	alice.waitJS("alice's page shows it deleted", uiTimeout, deleted("삭제된 메시지입니다"))
	bob.waitJS("bob's page shows it deleted, live", uiTimeout, deleted("Message deleted"))
	bob.do("reload", chromedp.Reload())
	bob.waitJS("and after a reload", uiTimeout, deleted("Message deleted"))
}

// reply: bob replies to alice's message; both pages show the quote above
// the reply, and a click on it shows the original.
func reply(alice, bob *page) {
	alice.t.Helper()
	const question = "점심 뭐 먹을까?"
	alice.send(question)
	bob.waitJS("bob gets the question", uiTimeout, hasMessage(question, "theirs", 1))
	origID := bob.str(rowOf(question) + `.dataset.eventId`)
	openActions(bob, question)
	bob.do("reply", chromedp.Click(chromedp.CSS(".row[data-event-id=\""+origID+"\"] .msg-reply")))
	bob.waitJS("the composer says what bob replies to", uiTimeout, fmt.Sprintf(`(() => {
		const b = document.getElementById('reply-bar');
		return !b.hidden && b.textContent.includes('Replying to alice') && b.textContent.includes(%s) && document.activeElement.id === 'composer' ? '' : 'bar: ' + b.textContent;
	})()`, jsString(question)))
	bob.send("pizza!")
	bob.waitJS("the reply bar closes", uiTimeout, `document.getElementById('reply-bar').hidden ? '' : 'still open'`)
	quoted := func(label string) string {
		return fmt.Sprintf(`(() => {
			const r = %s;
			const q = r && r.querySelector('.bubble > .reply-quote');
			return q && q.dataset.target === %s && q.textContent === %s && r.querySelector('.body').textContent === 'pizza!' ? '' : 'quote: ' + (q ? q.textContent : 'none');
		})()`, rowOf("pizza!"), jsString(origID), jsString(label+question))
	}
	bob.waitJS("bob's reply quotes the question", uiTimeout, quoted("In reply to alice"))
	alice.waitJS("alice sees the quote", uiTimeout, quoted("나에게 보낸 답장"))
	alice.do("click the quote", chromedp.Click(chromedp.CSS(".bubble > .reply-quote")))
	alice.waitJS("the original is shown", uiTimeout, fmt.Sprintf(`(() => { const r = %s; return r.classList.contains('flash') ? '' : 'not highlighted'; })()`, rowOf(question)))
}
