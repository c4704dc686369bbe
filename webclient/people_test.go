package webclient

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/planb-chat/planb/internal/testutil"
)

// TestBrowserPeople runs a group of three people on a real three-data-
// center cluster: alice (Korean, desktop) on dc1, bob (English, desktop) on
// dc2, carol (Korean, 390 px phone) on dc3. Alice sets her name and photo
// and bob sees them on her messages and in his chat list; alice renames the
// group and sets its topic, which everyone sees in the header; bob, not an
// admin, is offered neither removing members nor deleting others'
// messages, and the server's refusal when he tries anyway is said in the
// dialog; alice deletes bob's message and bob and carol see it deleted;
// alice removes carol with a reason: carol's page says she was removed and
// everyone gets the notice, in Korean ("내가 …", "…님이 나를 …") and in
// English.
func TestBrowserPeople(t *testing.T) {
	chrome := findChromium(t)
	if testing.Short() {
		t.Skip("starts three planb processes and a browser; skipped with -short")
	}
	cluster := startCluster(t, testutil.MustBuildPlanb(t))
	dc1, dc2, dc3 := cluster.DataCenters[0], cluster.DataCenters[1], cluster.DataCenters[2]
	browser := newBrowser(t, chrome)
	alice := openPage(t, browser, "alice", dc1.URL+"/?lang=ko", 1100, 720)
	bob := openPage(t, browser, "bob", dc2.URL+"/", 1100, 720)
	carol := openPage(t, browser, "carol", dc3.URL+"/?lang=ko", 390, 844)
	signUp(alice, "alice", "correct horse battery")
	signUp(bob, "bob", "staple battery horse")
	signUp(carol, "carol", "battery horse staple")
	onDC(alice, dc1.Name)
	onDC(bob, dc2.Name)
	onDC(carol, dc3.Name)

	// Alice makes a group with bob and carol, who accept.
	alice.click("#new-group")
	alice.typeInto("#new-group-name", "우리 팀")
	alice.typeInto("#new-group-members", "bob carol")
	alice.click("#dlg-new-group-submit")
	alice.waitJS("the group opens", uiTimeout, `document.getElementById('room-title').textContent === '우리 팀' ? '' : 'title ' + document.getElementById('room-title').textContent`)
	roomID := alice.str(`decodeURIComponent(location.hash.slice('#/room/'.length))`)
	for _, p := range []*page{bob, carol} {
		invite := fmt.Sprintf(`.invite-item[data-room-id=%s]`, jsString(roomID))
		p.waitJS(p.name+" is invited", uiTimeout, fmt.Sprintf(`document.querySelector(%s + ' .accept') ? '' : 'no invite'`, jsString(invite)))
		p.click(invite + " .accept")
		p.waitJS(p.name+" joins", uiTimeout, `document.getElementById('room-title').textContent === '우리 팀' ? '' : 'title ' + document.getElementById('room-title').textContent`)
	}
	alice.waitJS("alice sees three members", uiTimeout, `document.getElementById('room-members').textContent === '3명' ? '' : document.getElementById('room-members').textContent`)

	const hello = "안녕하세요 여러분"
	alice.send(hello)
	bob.waitJS("bob gets alice's message under her user name", uiTimeout, senderOf(hello, "alice", false))

	profile(alice, bob, hello)
	groupSettings(alice, bob, carol)
	notAdmin(alice, bob, carol, hello)
	adminDelete(alice, bob, carol)
	switchLanguage(t, bob, dc2.URL)
	if os.Getenv("PLANB_SCREENSHOT") == "1" {
		memberScreenshots(t, alice, bob)
		saveScreenshot(t, bob, "") // the conversation, for a look
	}
	kick(alice, bob, carol)
	directChat(bob)
	ban(t, alice, bob, dc1.URL, roomID)
}

// ban: alice bans bob (through the API: the page offers removing only),
// then lifts the ban; the notices say so, and bob's page says he was
// banned.
func ban(t *testing.T, alice, bob *page, base, roomID string) {
	t.Helper()
	token := alice.str(`JSON.parse(localStorage.getItem('planb.session')).accessToken`)
	u := base + "/_matrix/client/v3/rooms/" + url.PathEscape(roomID)
	if code, body := call(t, http.MethodPost, u+"/ban", token, map[string]string{"user_id": "@bob:localhost", "reason": "광고"}); code != http.StatusOK {
		t.Fatalf("ban: %d %s", code, body)
	}
	notice := func(want string) string {
		return fmt.Sprintf(`[...document.querySelectorAll('.notice-row')].some((r) => r.textContent === %s) ? '' : JSON.stringify([...document.querySelectorAll('.notice-row')].map((r) => r.textContent).slice(-3))`, jsString(want))
	}
	alice.waitJS("alice's notice of the ban", uiTimeout, notice("내가 bob님을 차단했습니다 (사유: 광고)"))
	bob.click(fmt.Sprintf(`.chat-item[data-room-id=%s]`, jsString(roomID)))
	bob.waitJS("bob's page says he was banned", uiTimeout, `(() => {
		const t = document.getElementById('read-only-text').textContent;
		return !document.getElementById('read-only').hidden && t === '김앨리스 banned you from this chat. (reason: 광고)' && document.getElementById('composer-form').hidden ? '' : 'read-only: ' + t;
	})()`)
	bob.waitJS("bob's notice of the ban", uiTimeout, notice("김앨리스 banned you (reason: 광고)"))
	if code, body := call(t, http.MethodPost, u+"/unban", token, map[string]string{"user_id": "@bob:localhost"}); code != http.StatusOK {
		t.Fatalf("unban: %d %s", code, body)
	}
	alice.waitJS("alice's notice of the unban", uiTimeout, notice("내가 bob님을 차단 해제했습니다"))
}

// senderOf yields "" when the newest message with text shows name as its
// sender and, when photo is set, the sender's photo loaded next to it
// (the initial otherwise).
func senderOf(text, name string, photo bool) string {
	return fmt.Sprintf(`(() => {
		const r = %s;
		if (!r) return 'no row';
		const s = r.querySelector('.sender');
		const img = r.querySelector('.msg-avatar .avatar-img');
		const initial = r.querySelector('.msg-avatar .initial');
		const seen = 'sender ' + (s.hidden ? '(hidden)' : s.textContent) + ', photo ' + (img ? img.naturalWidth + 'px' : 'none') + ', initial ' + (initial ? initial.textContent : 'none');
		if (s.hidden || s.textContent !== %s || r.querySelector('.msg-avatar').hidden) return seen;
		if (%t) return img && img.complete && img.naturalWidth > 0 && !initial ? '' : seen;
		return initial && initial.textContent === %s.slice(0, 1).toUpperCase() && !img ? '' : seen;
	})()`, rowOf(text), jsString(name), photo, jsString(name))
}

// profile: alice sets her name and photo in the dialog of her name in the
// top bar; bob's page, on another data center, shows the name and the
// photo on her message and the name in his chat list and member list.
func profile(alice, bob *page, hello string) {
	alice.t.Helper()
	alice.click("#me")
	alice.waitJS("the profile dialog opens", uiTimeout, `document.getElementById('dlg-profile')?.open && document.activeElement.id === 'profile-name' ? '' : 'not open'`)
	oneLineButtons(alice, "the profile dialog", "#profile-photo", "#dlg-profile-submit", "#dlg-profile-cancel")
	alice.do("choose a photo", chromedp.SetUploadFiles(chromedp.CSS("#profile-file"), []string{writeTestImage(alice.t)}))
	alice.waitJS("the photo is previewed", uiTimeout, `(() => { const i = document.querySelector('.profile-preview img'); return i && i.complete && i.naturalWidth === 320 ? '' : 'no preview'; })()`)
	alice.typeInto("#profile-name", "김앨리스")
	alice.click("#dlg-profile-submit")
	alice.waitJS("the dialog closes and the top bar shows the new name and photo", uiTimeout, `(() => {
		const d = document.getElementById('dlg-profile');
		const name = document.querySelector('#me .me-name').textContent;
		const img = document.querySelector('#me .avatar-img');
		return !d && name === '김앨리스' && img && img.naturalWidth > 0 ? '' : 'dialog ' + (d ? 'open: ' + d.querySelector('.error').textContent : 'closed') + ', name ' + name;
	})()`)
	bob.waitJS("bob sees alice's new name and photo on her message", uiTimeout, senderOf(hello, "김앨리스", true))
	bob.waitJS("and the shrunk photo (256 px) came as authenticated media, small and round", uiTimeout, `(() => {
		const i = document.querySelector('.row.theirs .msg-avatar .avatar-img');
		const a = i && i.closest('.avatar');
		const r = a && a.getBoundingClientRect();
		return i && i.naturalWidth === 256 && i.src.startsWith('blob:') && getComputedStyle(a).borderRadius === '50%' && r.width <= 40 && r.width === r.height ? '' :
			'photo ' + (i ? i.naturalWidth + ' ' + i.src + ' ' + getComputedStyle(a).borderRadius + ' ' + r.width + '×' + r.height : 'none');
	})()`)
	bob.waitJS("bob's earlier notices name her too", uiTimeout, `(() => {
		const n = [...document.querySelectorAll('.notice-row')].map((r) => r.textContent);
		return n.includes('김앨리스 invited you') && !n.some((s) => s.startsWith('alice ')) ? '' : JSON.stringify(n);
	})()`)
	bob.waitJS("bob's chat list names her", uiTimeout, fmt.Sprintf(`(() => {
		const p = document.querySelector('.chat-item .chat-preview');
		return p && p.textContent === '김앨리스: ' + %s ? '' : 'preview ' + (p && p.textContent);
	})()`, jsString(hello)))
	alice.do("reload", chromedp.Reload())
	alice.waitJS("after a reload alice's top bar still shows her name and photo", uiTimeout, `(() => {
		const n = document.querySelector('#me .me-name');
		const img = document.querySelector('#me .avatar-img');
		return n && n.textContent === '김앨리스' && img && img.naturalWidth > 0 && document.body.classList.contains('in-room') ? '' : 'name ' + (n && n.textContent);
	})()`)
}

// switchLanguage: bob turns his page to Korean with the switch; the top
// bar keeps his profile button and the header its search, settings, invite,
// leave and the topic. With the settings and a removal dialog open, he
// picks English on another device (the account data): both dialogs come
// back in English with the reason he was typing, and nothing else of them
// stays behind.
func switchLanguage(t *testing.T, bob *page, base string) {
	t.Helper()
	bob.click("#lang-btn")
	bob.waitJS("bob's page is in Korean with his profile button and the room's header", uiTimeout, `(() => {
		const me = document.getElementById('me'), q = (id) => document.getElementById(id);
		const shown = ['me', 'lang-btn', 'logout', 'room-search-btn', 'settings-btn', 'invite-btn', 'leave-btn', 'room-topic'].filter((id) => q(id)?.getClientRects().length);
		const seen = [document.documentElement.lang, me && me.getAttribute('aria-label'), me && me.querySelector('.me-name')?.textContent, me && me.querySelector('.avatar .initial')?.textContent,
			q('room-search-btn')?.getAttribute('aria-label'), q('settings-btn')?.getAttribute('aria-label'), q('invite-btn')?.textContent, q('leave-btn')?.textContent,
			q('room-members')?.textContent, q('room-topic')?.textContent, shown.length].join(' | ');
		return seen === 'ko | 내 프로필: bob | bob | B | 이 채팅방에서 검색 | 채팅방 설정과 대화 상대 | 초대 | 나가기 | 3명 | 토요일 9시 북한산 입구 | 8' ? '' : seen;
	})()`)
	oneLineButtons(bob, "bob's Korean page", "#me", "#lang-btn", "#logout", "#room-search-btn", "#settings-btn", "#invite-btn", "#leave-btn")
	token := bob.str(`JSON.parse(localStorage.getItem('planb.session')).accessToken`)
	waitLanguage(t, base, token, "@bob:localhost", "ko")

	openSettings(bob)
	bob.waitJS("bob's member list, in Korean", uiTimeout, `(() => {
		const m = `+members+`;
		return m === JSON.stringify(['김앨리스|관리자|', 'bob (나)||', 'carol||']) ? '' : m;
	})()`)
	bob.str(`(planb.chat.roomPane.settings.kickDialog('@carol:localhost'), '')`)
	bob.typeInto("#kick-reason", "잠깐")
	u := base + "/_matrix/client/v3/user/" + url.PathEscape("@bob:localhost") + "/account_data/org.planb.language"
	if code, body := call(t, http.MethodPut, u, token, map[string]any{"language": "en", "chosen_at": time.Now().UnixMilli() + 1}); code != http.StatusOK {
		t.Fatalf("account data: %d %s", code, body)
	}
	bob.waitJS("the settings and the removal come back in English, once each", uiTimeout, `(() => {
		const m = `+members+`;
		const k = document.getElementById('dlg-kick'), s = document.getElementById('dlg-settings');
		const seen = [document.documentElement.lang, document.querySelectorAll('dialog').length, s && s.open, document.getElementById('dlg-settings-title')?.textContent, m,
			k && k.open, document.getElementById('dlg-kick-title')?.textContent, document.getElementById('kick-reason')?.value,
			document.getElementById('me').getAttribute('aria-label'), document.getElementById('settings-btn').getAttribute('aria-label')].join(' | ');
		return seen === 'en | 2 | true | Chat settings | ' + JSON.stringify(['김앨리스|Admin|', 'bob (you)||', 'carol||']) +
			' | true | Remove carol from this chat? | 잠깐 | My profile: bob | Chat settings and members' ? '' : seen;
	})()`)
	bob.click("#dlg-kick-cancel")
	closeSettings(bob)
	bob.waitJS("the focus is back on the settings button", uiTimeout, `document.activeElement.id === 'settings-btn' && document.querySelectorAll('dialog').length === 0 ? '' : 'focus on ' + document.activeElement.id`)
}

// directChat: bob starts a 1:1 chat with alice; his chat list shows it
// under her name with her photo.
func directChat(bob *page) {
	bob.t.Helper()
	bob.click("#new-chat")
	bob.typeInto("#new-chat-user", "alice")
	bob.click("#dlg-new-chat-submit")
	bob.waitJS("the 1:1 chat is listed under alice's name with her photo", uiTimeout, `(() => {
		const items = [...document.querySelectorAll('.chat-item')].map((b) => b.querySelector('.chat-name').textContent + '|' + (b.querySelector('.avatar-slot .avatar-img')?.naturalWidth > 0 ? 'photo' : b.querySelector('.avatar-slot').textContent));
		return items.includes('김앨리스|photo') && items.includes('주말 등산|주') ? '' : JSON.stringify(items);
	})()`)
}

// openSettings opens the chat's settings and members on p.
func openSettings(p *page) {
	p.t.Helper()
	p.click("#settings-btn")
	p.waitJS("the settings open", uiTimeout, `document.getElementById('dlg-settings')?.open && document.querySelectorAll('#member-list .member').length > 0 ? '' : 'not open'`)
}

// closeSettings closes it.
func closeSettings(p *page) {
	p.t.Helper()
	p.click("#dlg-settings-close")
	p.waitJS("the settings close", uiTimeout, `document.getElementById('dlg-settings') ? 'still open' : ''`)
}

// members yields the member list as "name|role|kick" rows.
const members = `JSON.stringify([...document.querySelectorAll('#member-list .member')].map((m) => m.querySelector('.member-name').textContent + '|' + m.querySelector('.member-role').textContent + '|' + (m.querySelector('.member-kick').hidden ? '' : 'kick')))`

// groupSettings: alice renames the group and sets its topic; all three see
// both in the header and the notices, alice's written for her.
func groupSettings(alice, bob, carol *page) {
	alice.t.Helper()
	const name, topic = "주말 등산", "토요일 9시 북한산 입구"
	openSettings(alice)
	oneLineButtons(alice, "the settings", "#settings-save", "#dlg-settings-close", ".member-kick:not([hidden])")
	alice.clear("#settings-name")
	alice.typeInto("#settings-name", name)
	alice.typeInto("#settings-topic", topic)
	alice.click("#settings-save")
	alice.waitJS("saved", uiTimeout, `document.getElementById('settings-saved').textContent === '저장했습니다.' ? '' : 'error: ' + document.getElementById('settings-error').textContent`)
	closeSettings(alice)
	header := fmt.Sprintf(`(() => {
		const ti = document.getElementById('room-title').textContent, to = document.getElementById('room-topic');
		return ti === %s && to.textContent === %s && !to.hidden && to.getClientRects().length ? '' : 'header ' + ti + ' / ' + to.textContent;
	})()`, jsString(name), jsString(topic))
	for _, p := range []*page{alice, bob, carol} {
		p.waitJS(p.name+" sees the new name and topic in the header", uiTimeout, header)
	}
	hasNotices := func(want ...string) string {
		return fmt.Sprintf(`(() => {
			const n = [...document.querySelectorAll('.notice-row')].map((r) => r.textContent);
			return %s.every((w) => n.includes(w)) ? '' : JSON.stringify(n);
		})()`, mustJSON(want))
	}
	alice.waitJS("alice's notices say 내가", uiTimeout, hasNotices("내가 채팅방 이름을 바꿨습니다: “"+name+"”", "내가 채팅방 설명을 바꿨습니다: “"+topic+"”"))
	bob.waitJS("bob's notices name alice", uiTimeout, hasNotices("김앨리스 named the chat “"+name+"”", "김앨리스 set the topic: “"+topic+"”"))
	carol.waitJS("carol's notices, in Korean", uiTimeout, hasNotices("김앨리스님이 채팅방 설명을 바꿨습니다: “"+topic+"”"))
}

// notAdmin: bob may change nothing and remove no one: the controls are
// absent, he cannot delete alice's or carol's messages; calling the
// removal anyway gets the server's 403, said in the dialog.
func notAdmin(alice, bob, carol *page, hello string) {
	bob.t.Helper()
	openSettings(bob)
	bob.waitJS("bob sees the members with names and marks, and no control", uiTimeout, `(() => {
		const m = `+members+`;
		const inputs = ['settings-name', 'settings-topic', 'settings-save'].filter((id) => !document.getElementById(id).hidden);
		return m === JSON.stringify(['김앨리스|Admin|', 'bob (you)||', 'carol||']) && inputs.length === 0 &&
			document.getElementById('settings-topic-text').textContent === '토요일 9시 북한산 입구' &&
			!document.querySelector('#member-list .member-kick:not([hidden])') ? '' : m + ' inputs ' + inputs;
	})()`)
	bob.waitJS("alice's photo in bob's member list", uiTimeout, `(() => { const i = document.querySelector('#member-list .member .avatar-img'); return i && i.naturalWidth > 0 ? '' : 'none'; })()`)
	// The page would not offer it: call it as a stale page would.
	bob.str(`(planb.chat.roomPane.settings.kickDialog('@carol:localhost'), '')`)
	bob.typeInto("#kick-reason", "no")
	bob.click("#dlg-kick-ok")
	bob.waitJS("the server's refusal is said", uiTimeout, `(() => {
		const e = document.getElementById('dlg-kick-error');
		return e && e.textContent.startsWith('You are not allowed to remove carol from this chat.') && document.getElementById('dlg-kick').open ? '' : 'error: ' + (e && e.textContent);
	})()`)
	bob.click("#dlg-kick-cancel")
	closeSettings(bob)

	const fromCarol = "carol이에요"
	carol.send(fromCarol)
	bob.waitJS("bob gets carol's message", uiTimeout, hasMessage(fromCarol, "theirs", 1))
	for _, text := range []string{hello, fromCarol} {
		openActions(bob, text)
		if s := bob.str(`[...` + rowOf(text) + `.querySelectorAll('.msg-actions > button')].map((b) => b.textContent).join(',')`); s != "Reply" {
			bob.fail("bob is offered %q on %q, want only Reply", s, text)
		}
	}
	// Carol (not an admin either, on her phone) is not offered to delete
	// alice's message, and sees the members in Korean.
	openActions(carol, hello)
	if s := carol.str(`String(!!` + rowOf(hello) + `.querySelector('.msg-delete'))`); s != "false" {
		carol.fail("carol is offered to delete alice's message")
	}
	openSettings(carol)
	carol.waitJS("carol's member list, in Korean", uiTimeout, `(() => {
		const m = `+members+`;
		return m === JSON.stringify(['김앨리스|관리자|', 'carol (나)||', 'bob||']) && document.getElementById('members-title').textContent === '대화 상대 3명' &&
			document.getElementById('settings-hint').textContent === '이름과 설명은 관리자만 바꿀 수 있습니다.' ? '' : m;
	})()`)
	oneLineButtons(carol, "the settings on a phone", "#dlg-settings-close")
	closeSettings(carol)
}

// adminDelete: alice, the group's admin, deletes bob's message from its
// menu; bob's and carol's pages show it deleted.
func adminDelete(alice, bob, carol *page) {
	alice.t.Helper()
	const text = "광고 메시지"
	bob.send(text)
	alice.waitJS("alice gets bob's message", uiTimeout, hasMessage(text, "theirs", 1))
	carol.waitJS("carol gets it", uiTimeout, hasMessage(text, "theirs", 1))
	eventID := alice.str(rowOf(text) + `.dataset.eventId`)
	openActions(alice, text)
	oneLineButtons(alice, "the admin's menu on bob's message", ".msg-actions .msg-delete")
	if s := alice.str(rowOf(text) + `.querySelector('.msg-delete').textContent`); s != "삭제(관리자)" {
		alice.fail("the delete button on bob's message says %q", s)
	}
	alice.click(".row[data-event-id=\"" + eventID + "\"] .msg-delete")
	alice.waitJS("the question names bob", uiTimeout, `document.getElementById('dlg-delete-text')?.textContent === 'bob님의 이 메시지를 삭제할까요? 대화방의 모든 사람에게서 삭제됩니다.' ? '' : document.getElementById('dlg-delete-text')?.textContent`)
	alice.click("#dlg-delete-ok")
	deleted := func(want string) string {
		return fmt.Sprintf(`(() => {
			const r = [...document.querySelectorAll('.row[data-event-id]')].find((r) => r.dataset.eventId === %s);
			const b = r && r.querySelector('.body');
			return b && b.classList.contains('deleted') && b.textContent === %s ? '' : 'row: ' + (r ? r.textContent : 'none');
		})()`, jsString(eventID), jsString(want))
	}
	alice.waitJS("alice's page shows it deleted", uiTimeout, deleted("삭제된 메시지입니다"))
	bob.waitJS("bob's page shows it deleted", uiTimeout, deleted("Message deleted"))
	carol.waitJS("carol's page shows it deleted", uiTimeout, deleted("삭제된 메시지입니다"))
}

// kick: alice removes carol with a reason. Carol's page says she was
// removed, offers no composer, and keeps the chat until she deletes it
// from her list; bob and alice get the notice; carol leaves alice's
// member list.
func kick(alice, bob, carol *page) {
	alice.t.Helper()
	openSettings(alice)
	alice.waitJS("alice, the admin, may remove bob and carol", uiTimeout, `(() => {
		const m = `+members+`;
		return m === JSON.stringify(['김앨리스 (나)|관리자|', 'bob||kick', 'carol||kick']) ? '' : m;
	})()`)
	alice.click(`#member-list .member[data-user-id="@carol:localhost"] .member-kick`)
	alice.waitJS("the removal asks for a reason", uiTimeout, `document.getElementById('dlg-kick-title')?.textContent === 'carol님을 이 채팅방에서 내보낼까요?' && document.activeElement.id === 'kick-reason' ? '' : 'no dialog'`)
	oneLineButtons(alice, "the removal dialog", "#dlg-kick-ok", "#dlg-kick-cancel")
	alice.typeInto("#kick-reason", "도배")
	alice.click("#dlg-kick-ok")
	alice.waitJS("carol leaves alice's member list", uiTimeout, `(() => {
		const m = `+members+`;
		return !document.getElementById('dlg-kick') && m === JSON.stringify(['김앨리스 (나)|관리자|', 'bob||kick']) ? '' : m;
	})()`)
	closeSettings(alice)
	notice := func(want string) string {
		return fmt.Sprintf(`[...document.querySelectorAll('.notice-row')].some((r) => r.textContent === %s) ? '' : JSON.stringify([...document.querySelectorAll('.notice-row')].map((r) => r.textContent).slice(-3))`, jsString(want))
	}
	alice.waitJS("alice's notice says 내가", uiTimeout, notice("내가 carol님을 내보냈습니다 (사유: 도배)"))
	bob.waitJS("bob's notice", uiTimeout, notice("김앨리스 removed carol (reason: 도배)"))
	bob.waitJS("bob's header counts two", uiTimeout, `document.getElementById('room-members').textContent === '2 members' ? '' : document.getElementById('room-members').textContent`)
	carol.waitJS("carol's page says she was removed", uiTimeout, `(() => {
		const ro = document.getElementById('read-only');
		const t = document.getElementById('read-only-text').textContent;
		return !ro.hidden && t === '김앨리스님이 나를 이 채팅방에서 내보냈습니다. (사유: 도배)' && document.getElementById('composer-form').hidden &&
			document.getElementById('settings-btn').hidden && !document.getElementById('forget-btn').hidden ? '' : 'read-only ' + (ro.hidden ? 'hidden' : t);
	})()`)
	carol.waitJS("carol's timeline has the notice", uiTimeout, notice("김앨리스님이 나를 내보냈습니다 (사유: 도배)"))
	oneLineButtons(carol, "the removed chat", "#forget-btn", "#back")
	carol.click("#back")
	carol.waitJS("carol's chat list keeps the chat with the notice", uiTimeout, `(() => {
		const p = document.querySelector('.chat-item .chat-preview');
		return p && p.textContent === '김앨리스님이 나를 내보냈습니다 (사유: 도배)' ? '' : 'preview ' + (p && p.textContent);
	})()`)
	carol.click(".chat-item")
	carol.click("#forget-btn")
	carol.waitJS("deleted from carol's list", uiTimeout, `document.querySelectorAll('.chat-item').length === 0 && !document.body.classList.contains('in-room') ? '' : document.querySelectorAll('.chat-item').length + ' chats'`)
}

// memberScreenshots saves the settings and members in Korean (alice, the
// admin) and English (bob, a member) on a desktop and on a 390 px phone.
func memberScreenshots(t *testing.T, alice, bob *page) {
	t.Helper()
	for _, s := range []struct {
		p    *page
		lang string
	}{{alice, "ko"}, {bob, "en"}} {
		openSettings(s.p)
		saveScreenshot(t, s.p, "webclient-members-"+s.lang+".png")
		closeSettings(s.p)
		s.p.do("phone size", chromedp.EmulateViewport(390, 844))
		s.p.click("#settings-btn")
		s.p.waitJS("the settings open", uiTimeout, `document.getElementById('dlg-settings')?.open ? '' : 'not open'`)
		saveScreenshot(t, s.p, "webclient-members-"+s.lang+"-390.png")
		closeSettings(s.p)
		s.p.do("desktop size", chromedp.EmulateViewport(1100, 720))
	}
}
