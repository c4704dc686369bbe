package webclient

import (
	"fmt"

	"github.com/chromedp/chromedp"
)

// chipOf is the JavaScript for the reaction chip key under the newest
// message with text.
func chipOf(text, key string) string {
	return fmt.Sprintf(`(%s)?.querySelector('.reactions .reaction[data-key=' + CSS.escape(%s) + ']')`, rowOf(text), jsString(key))
}

// chipIs yields "" when the chip key under text shows n (no chip when n is
// 0) and is highlighted exactly when mine.
func chipIs(text, key string, n int, mine bool) string {
	return fmt.Sprintf(`(() => {
		const r = %s;
		if (!r) return 'no row';
		const c = %s;
		const chips = [...r.querySelectorAll('.reactions .reaction')].map((b) => b.textContent + (b.classList.contains('mine') ? '*' : '')).join(',');
		if (%d === 0) return c ? 'chips: ' + chips : '';
		if (!c) return 'no chip; chips: ' + chips;
		const ok = c.querySelector('.reaction-count').textContent === '%d' && c.dataset.count === '%d' &&
			c.classList.contains('mine') === %t && c.getAttribute('aria-pressed') === '%t';
		return ok ? '' : 'chips: ' + chips;
	})()`, rowOf(text), chipOf(text, key), n, n, n, mine, mine)
}

// reactions: alice reacts 👍 to bob's message from its menu; bob sees 👍 1,
// not his; bob's click on the chip adds his (👍 2, highlighted for him);
// alice's click on it removes hers (👍 1), also after bob reloads. Only
// one's own messages may be edited.
func reactions(alice, bob *page) {
	alice.t.Helper()
	const text = "meeting at 3?"
	bob.send(text)
	alice.waitJS("alice gets bob's message", uiTimeout, hasMessage(text, "theirs", 1))
	openActions(alice, text)
	// Alice made the group, so she is its admin and may delete bob's
	// message; she may not edit it.
	if s := alice.str(`[...` + rowOf(text) + `.querySelectorAll('.msg-actions > button')].map((b) => b.textContent).join(',')`); s != "답장,삭제(관리자)" {
		alice.fail("alice is offered %q on bob's message, want 답장 and the admin's 삭제 (and reactions)", s)
	}
	if s := alice.str(`[...` + rowOf(text) + `.querySelectorAll('.msg-actions .msg-react')].map((b) => b.textContent).join('')`); s != "👍❤️😂😮😢🙏" {
		alice.fail("quick reactions %q", s)
	}
	oneLineButtons(alice, "the message menu with reactions", ".msg-actions .msg-react", ".msg-actions .msg-reply")
	alice.do("react 👍", chromedp.Click(chromedp.CSS(`.msg-actions .msg-react[data-key="👍"]`)))
	alice.waitJS("alice sees 👍 1, hers", uiTimeout, chipIs(text, "👍", 1, true))
	bob.waitJS("bob sees 👍 1, not his", uiTimeout, chipIs(text, "👍", 1, false))
	bob.waitJS("bob clicks the chip", uiTimeout, `(`+chipOf(text, "👍")+`).click() || ''`)
	bob.waitJS("bob sees 👍 2, his", uiTimeout, chipIs(text, "👍", 2, true))
	alice.waitJS("alice sees 👍 2", uiTimeout, chipIs(text, "👍", 2, true))
	alice.waitJS("alice clicks her chip", uiTimeout, `(`+chipOf(text, "👍")+`).click() || ''`)
	alice.waitJS("alice's reaction is gone on her page", uiTimeout, chipIs(text, "👍", 1, false))
	bob.waitJS("and on bob's", uiTimeout, chipIs(text, "👍", 1, true))
	bob.do("reload", chromedp.Reload())
	bob.waitJS("bob sees 👍 1, his, after a reload", uiTimeout, chipIs(text, "👍", 1, true))
	if n := bob.str(`String(document.querySelectorAll('.row[data-event-id]').length - document.querySelectorAll('.row[data-event-id] .body').length)`); n != "0" {
		bob.fail("%s message rows without a body: reactions must not show as messages", n)
	}
}

// edit: alice edits her message from its menu; both pages show the new
// text, once, marked edited, and not the old one, bob's also after a
// reload; bob cannot edit it, and a replacement bob sends anyway is
// ignored.
func edit(alice, bob *page, roomID string) {
	alice.t.Helper()
	const before, after = "3시에 봐요", "4시에 봐요"
	alice.send(before)
	bob.waitJS("bob gets the message", uiTimeout, hasMessage(before, "theirs", 1))
	origID := bob.str(rowOf(before) + `.dataset.eventId`)
	openActions(bob, before)
	if s := bob.str(`String(!!` + rowOf(before) + `.querySelector('.msg-edit'))`); s != "false" {
		bob.fail("bob is offered to edit alice's message")
	}
	openActions(alice, before)
	alice.do("edit", chromedp.Click(chromedp.CSS(".row[data-event-id=\""+origID+"\"] .msg-edit")))
	alice.waitJS("the composer holds the text to edit", uiTimeout, fmt.Sprintf(`(() => {
		const b = document.getElementById('reply-bar');
		return !b.hidden && b.textContent.includes('메시지 수정 중') && document.getElementById('composer').value === %s && document.activeElement.id === 'composer' ? '' : 'bar: ' + b.textContent;
	})()`, jsString(before)))
	alice.clear("#composer")
	alice.send(after)
	alice.waitJS("the bar closes", uiTimeout, `document.getElementById('reply-bar').hidden && document.getElementById('composer').value === '' ? '' : 'still open'`)
	edited := func(mark string) string {
		return fmt.Sprintf(`(() => {
			const rows = [...document.querySelectorAll('.row[data-event-id]')];
			const r = rows.find((r) => r.dataset.eventId === %s);
			const bodies = rows.map((r) => r.querySelector('.body')?.textContent);
			if (!r) return 'no row';
			const ok = r.querySelector('.body').textContent === %s && r.querySelector('.edited')?.textContent === %s &&
				!bodies.includes(%s) && !bodies.some((b) => b && b.startsWith('* ')) && bodies.filter((b) => b === %s).length === 1 &&
				!document.querySelector('.row.pending');
			return ok ? '' : 'row: ' + r.textContent + '; bodies: ' + JSON.stringify(bodies.slice(-4));
		})()`, jsString(origID), jsString(after), jsString(mark), jsString(before), jsString(after))
	}
	alice.waitJS("alice sees her edit", uiTimeout, edited("(수정됨)"))
	bob.waitJS("bob's chat list shows the new text", uiTimeout, fmt.Sprintf(`(() => {
		const p = document.querySelector('.chat-item[data-room-id=' + CSS.escape(%s) + '] .chat-preview');
		return p && p.textContent === 'alice: ' + %s ? '' : 'preview: ' + (p && p.textContent);
	})()`, jsString(roomID), jsString(after)))
	bob.waitJS("bob sees the edit, live", uiTimeout, edited("(edited)"))
	bob.do("reload", chromedp.Reload())
	bob.waitJS("and after a reload", uiTimeout, edited("(edited)"))

	// A replacement by someone else than the sender does not count.
	bob.str(fmt.Sprintf(`(planb.chat.outbox.addEdit(%s, %s, 'hacked'), '')`, jsString(roomID), jsString(origID)))
	alice.waitJS("bob's replacement reaches alice", uiTimeout, fmt.Sprintf(`planb.chat.model.rooms.get(%s).timeline.some((e) => e.sender === '@bob:localhost' && e.content?.body === '* hacked') ? '' : 'not yet'`, jsString(roomID)))
	alice.waitJS("alice still sees her own edit", uiTimeout, edited("(수정됨)"))
}
