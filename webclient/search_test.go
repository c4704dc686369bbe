package webclient

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/planb-chat/planb/internal/testutil"
)

// TestBrowserSearch checks message search and the language switch on a
// real node with two users (alice in the browser, bob through the API):
// a search across rooms finds the messages of both rooms with the words
// marked (and message text is never parsed as HTML); a room's own search
// finds only that room's; more than a page of results pages on with "More
// results"; a search without a match says so; a result opens its room at
// the message, loading older history when it is not loaded yet. The switch
// in the top bar changes the language at once (no reload), the choice
// survives a reload, a second browser signed in as alice takes it from
// her account data, and a choice made there reaches the first page live.
// A search that fails says why. The log-in page has the switch too.
// With PLANB_SCREENSHOT=1 it saves docs/webclient-search-{en,ko}{,-390}.png.
func TestBrowserSearch(t *testing.T) {
	chrome := findChromium(t)
	if testing.Short() {
		t.Skip("starts planb and a browser; skipped with -short")
	}
	base := startNode(t, testutil.MustBuildPlanb(t))
	aliceID, aliceTok := registerUser(t, base, "alice", "correct horse battery")
	_, bobTok := registerUser(t, base, "bob", "staple battery horse")

	// Three rooms, made and filled by bob, alice invited and joined.
	team := apiRoom(t, base, bobTok, aliceTok, "Design team", aliceID)
	trip := apiRoom(t, base, bobTok, aliceTok, "제주 여행", aliceID)
	logs := apiRoom(t, base, bobTok, aliceTok, "Build logs", aliceID)
	apiSend(t, base, bobTok, team, "The zebra crossing mockup is ready for review")
	apiSend(t, base, bobTok, team, `<b>zebra</b> <img src=x onerror="document.title='pwned'"> stripes`)
	apiSend(t, base, aliceTok, team, "unrelated lunch talk")
	apiSend(t, base, bobTok, trip, "Zebras at the safari park, 서울에서 출발해요")
	apiSend(t, base, aliceTok, trip, "서울역에서 8시에 만나요")
	apiSend(t, base, bobTok, logs, strings.Repeat("long minutes of the weekly sync ", 20)+"and then the quokka arrived "+strings.Repeat("with more notes ", 20))
	needle := apiSend(t, base, bobTok, logs, "the needle deploy went out at dawn")
	for i := 1; i <= 25; i++ {
		apiSend(t, base, bobTok, logs, fmt.Sprintf("nightly pipeline run %d finished", i))
	}
	for i := 1; i <= 40; i++ { // the needle is older than what /sync loads (30)
		apiSend(t, base, bobTok, logs, fmt.Sprintf("filler %d", i))
	}
	waitSearch(t, base, aliceTok, "zebra", 3)
	waitSearch(t, base, aliceTok, "pipeline", 25)
	waitSearch(t, base, aliceTok, "needle", 1)
	waitSearch(t, base, aliceTok, "filler", 40)
	waitSearch(t, base, aliceTok, "quokka", 1)

	browser := newBrowser(t, chrome)
	alice := openPage(t, browser, "alice", base+"/", 1100, 720)
	logIn(alice, "alice", "correct horse battery")
	alice.waitJS("alice's rooms are listed", uiTimeout, `document.querySelectorAll('#chat-list .chat-item').length === 3 ? '' : document.querySelectorAll('#chat-list .chat-item').length + ' rooms'`)
	oneLineButtons(alice, "the chat list", "#search-go", "#lang-btn", "#logout", "#new-chat")

	// Across rooms: both rooms' messages, the words marked, no HTML.
	search(alice, "#search", "zebra")
	alice.waitJS("the results of every room", uiTimeout, results("#search", 3, "3 messages", "Design team", "제주 여행"))
	alice.waitJS("the words are marked", uiTimeout, `(() => {
		const marks = [...document.querySelectorAll('#search-list mark')].map((m) => m.textContent);
		return JSON.stringify(marks.sort()) === JSON.stringify(['Zebra', 'zebra', 'zebra']) ? '' : JSON.stringify(marks);
	})()`)
	alice.waitJS("a message's HTML stays text", uiTimeout, `(() => {
		const l = document.getElementById('search-list');
		const hostile = [...l.querySelectorAll('.sr-body')].find((b) => b.textContent.includes('<img'));
		return hostile && !l.querySelector('img, b, script') && document.title !== 'pwned' ? '' : 'parsed: ' + l.innerHTML.slice(0, 300);
	})()`)
	if s := alice.str(`[...document.querySelectorAll('#search-list .search-result')].map((r) => r.querySelector('.sr-sender').textContent).join(',')`); s != "bob,bob,bob" {
		t.Errorf("senders of the results: %q, want bob for each", s)
	}
	shot(t, alice, "webclient-search-en.png")

	// Opening a result from the list shows the message in its room.
	tripRow := alice.str(fmt.Sprintf(`document.querySelector('#search-list .search-result[data-room-id=%s]').dataset.eventId`, jsString(trip)))
	alice.click(fmt.Sprintf(`#search-list .search-result[data-room-id=%s]`, jsString(trip)))
	alice.waitJS("the result's room opens at the message", uiTimeout, shownAt(trip, tripRow))

	// A long message shows the part around the match.
	search(alice, "#search", "quokka")
	alice.waitJS("an excerpt around the match", uiTimeout, `(() => {
		const b = document.querySelector('#search-list .sr-body');
		const m = b && b.querySelector('mark');
		return m && m.textContent === 'quokka' && b.textContent.startsWith('…') && b.textContent.endsWith('…') && b.textContent.length < 300 ? '' : 'body: ' + (b ? b.textContent.length + ' ' + b.textContent.slice(0, 80) : 'none');
	})()`)

	// No match.
	search(alice, "#search", "xylophone")
	alice.waitJS("no match is said in words", uiTimeout, `(() => {
		const s = document.getElementById('search-state').textContent;
		return s === 'No messages match “xylophone”.' && !document.querySelector('#search-list li') ? '' : 'state: ' + s;
	})()`)

	// More than a page: 20, then the other 5.
	search(alice, "#search", "pipeline")
	alice.waitJS("the first page", uiTimeout, results("#search", 20, "25 messages", "Build logs"))
	alice.waitJS("more results are offered", uiTimeout, `(() => { const b = document.getElementById('search-more'); return b && !b.hidden && b.getClientRects().length ? '' : 'no more button'; })()`)
	oneLineButtons(alice, "the search results", "#search-more", "#search-go")
	alice.click("#search-more")
	alice.waitJS("the second page", uiTimeout, results("#search", 25, "25 messages", "Build logs"))
	alice.waitJS("no more pages", uiTimeout, `document.getElementById('search-more').hidden ? '' : 'still offered'`)
	if s := alice.str(`String(new Set([...document.querySelectorAll('#search-list .search-result')].map((r) => r.dataset.eventId)).size)`); s != "25" {
		t.Errorf("the two pages hold %s distinct messages, want 25", s)
	}

	// Exactly two full pages: no third is offered.
	search(alice, "#search", "filler")
	alice.waitJS("the first full page", uiTimeout, results("#search", 20, "40 messages", "Build logs"))
	alice.click("#search-more")
	alice.waitJS("the second full page, and no more", uiTimeout, results("#search", 40, "40 messages", "Build logs")+` || (document.getElementById('search-more').hidden ? '' : 'a third page is offered')`)

	// A result older than the loaded history: the room loads back to it.
	search(alice, "#search", "needle")
	alice.waitJS("the needle is found", uiTimeout, results("#search", 1, "1 message", "Build logs"))
	alice.click("#search-list .search-result")
	alice.waitJS("the room loads back to the needle", uiTimeout, shownAt(logs, needle))

	// A room's own search: only that room's messages.
	alice.click("#search-clear")
	alice.waitJS("the chat list is back", uiTimeout, `!document.getElementById('chat-list').hidden && document.getElementById('search-results').hidden && document.activeElement.id === 'search-input' ? '' : 'still searching'`)
	alice.click(fmt.Sprintf(`#chat-list .chat-item[data-room-id=%s]`, jsString(team)))
	alice.waitJS("the team room opens", uiTimeout, `document.getElementById('room-title').textContent === 'Design team' ? '' : 'title ' + document.getElementById('room-title').textContent`)
	alice.click("#room-search-btn")
	alice.waitJS("the room's search field has the focus", uiTimeout, `document.activeElement.id === 'room-search-input' ? '' : 'focus on ' + document.activeElement.id`)
	search(alice, "#room-search", "zebra")
	alice.waitJS("only the team room's results", uiTimeout, results("#room-search", 2, "2 messages", "Design team"))
	alice.waitJS("the timeline makes way for them", uiTimeout, `document.getElementById('timeline').hidden ? '' : 'timeline shown'`)
	oneLineButtons(alice, "the room's search", "#room-search-go", "#room-search-close", "#send-btn")
	first := alice.str(`document.querySelector('#room-search-list .search-result').dataset.eventId`)
	alice.click("#room-search-list .search-result")
	alice.waitJS("the room's result is shown in the timeline", uiTimeout, shownAt(team, first))
	alice.waitJS("the room's search has closed", uiTimeout, `document.getElementById('room-search-bar').hidden && document.getElementById('room-search-results').hidden ? '' : 'still open'`)

	// The language switch: at once, without a reload, searches included.
	alice.click("#room-search-btn")
	search(alice, "#room-search", "zebra")
	alice.waitJS("the room's results again", uiTimeout, results("#room-search", 2, "2 messages", "Design team"))
	search(alice, "#search", "zebra")
	alice.waitJS("the list's results again", uiTimeout, results("#search", 3, "3 messages", "Design team", "제주 여행"))
	alice.str(`(window.__sameDocument = 'yes', '')`)
	if s := alice.str(`document.getElementById('send-btn').textContent`); s != "Send" {
		t.Fatalf("send button before the switch: %q", s)
	}
	alice.click("#lang-btn")
	alice.waitJS("the page is in Korean at once", uiTimeout, `(() => {
		const s = document.getElementById('send-btn').textContent, st = document.getElementById('search-state').textContent;
		return s === '전송' && document.documentElement.lang === 'ko' && window.__sameDocument === 'yes' && st === '메시지 3개'
			&& document.getElementById('room-search-state').textContent === '메시지 2개' && document.getElementById('lang-btn').textContent === 'English'
			&& document.getElementById('chats-title').textContent === '채팅' ? '' : [s, st, document.documentElement.lang, window.__sameDocument].join(' | ');
	})()`)
	oneLineButtons(alice, "the Korean page", "#search-go", "#lang-btn", "#logout", "#send-btn", "#room-search-go")
	alice.click("#room-search-close")
	alice.waitJS("the room's search closes", uiTimeout, `document.getElementById('room-search-bar').hidden ? '' : 'open'`)
	shot(t, alice, "webclient-search-ko.png")
	waitLanguage(t, base, aliceTok, aliceID, "ko")
	search(alice, "#search", "xylophone")
	alice.waitJS("no match, in Korean", uiTimeout, `document.getElementById('search-state').textContent === '“xylophone” 검색 결과가 없습니다.' ? '' : document.getElementById('search-state').textContent`)

	alice.do("reload", chromedp.Reload())
	alice.waitJS("Korean after a reload", uiTimeout, `document.getElementById('send-btn')?.textContent === '전송' && document.getElementById('chats-title').textContent === '채팅' ? '' : 'not Korean'`)

	// Another browser, same user: the language comes from the account data.
	phone := openPage(t, browser, "alice-phone", base+"/", 390, 844)
	logIn(phone, "alice", "correct horse battery")
	phone.waitJS("the phone takes Korean from the account data", uiTimeout, `document.getElementById('chats-title')?.textContent === '채팅' && document.getElementById('search-input').placeholder === '메시지 검색' ? '' : 'not Korean'`)
	search(phone, "#search", "서울")
	phone.waitJS("Korean words are found and marked", uiTimeout, `(() => {
		const marks = [...document.querySelectorAll('#search-list mark')].map((m) => m.textContent);
		return document.getElementById('search-state').textContent === '메시지 2개' && JSON.stringify(marks.sort()) === JSON.stringify(['서울', '서울']) ? '' : JSON.stringify(marks);
	})()`)
	oneLineButtons(phone, "the phone's search", "#search-go", "#lang-btn", "#logout")
	phone.waitJS("nothing is wider than the phone", uiTimeout, `document.documentElement.scrollWidth <= 390 && document.getElementById('search-results').scrollWidth <= 390 ? '' : 'scroll width ' + document.getElementById('search-results').scrollWidth`)
	shot(t, phone, "webclient-search-ko-390.png")

	// A room's search on the phone: the header keeps its buttons on one line.
	phone.click("#search-clear")
	phone.click(fmt.Sprintf(`#chat-list .chat-item[data-room-id=%s]`, jsString(trip)))
	phone.waitJS("the trip room opens", uiTimeout, `document.getElementById('room-title').textContent === '제주 여행' ? '' : 'title ' + document.getElementById('room-title').textContent`)
	phone.click("#room-search-btn")
	search(phone, "#room-search", "서울")
	phone.waitJS("the room's results on the phone", uiTimeout, results("#room-search", 2, "메시지 2개", "제주 여행"))
	oneLineButtons(phone, "the phone's room search", "#room-search-btn", "#invite-btn", "#leave-btn", "#back", "#room-search-go", "#room-search-close")
	phone.click("#room-search-close")
	phone.click("#back")
	phone.waitJS("back on the list", uiTimeout, `!document.body.classList.contains('in-room') ? '' : 'still in the room'`)
	search(phone, "#search", "서울")
	phone.waitJS("the list's results again", uiTimeout, results("#search", 2, "메시지 2개", "제주 여행"))

	// The phone switches to English: the desktop follows live.
	phone.click("#lang-btn")
	phone.waitJS("the phone is in English", uiTimeout, `document.getElementById('search-state').textContent === '2 messages' && document.getElementById('chats-title').textContent === 'Chats' ? '' : document.getElementById('search-state').textContent`)
	oneLineButtons(phone, "the phone in English", "#search-go", "#lang-btn", "#logout")
	shot(t, phone, "webclient-search-en-390.png")
	alice.waitJS("the desktop follows the phone's choice", uiTimeout, `document.getElementById('send-btn')?.textContent === 'Send' && document.documentElement.lang === 'en' ? '' : 'still ' + document.documentElement.lang`)

	// A search that cannot reach the server says so (after the request's
	// 15 s of retries), and works again once the network is back.
	phone.do("cut the phone's network", enableNetwork(), setOffline(true))
	search(phone, "#search", "zebra")
	phone.waitJS("the failure is said in words", uiTimeout, `(() => {
		const s = document.getElementById('search-state');
		return s.dataset.error === 'true' && s.textContent === 'Search failed: Cannot reach the server: no data center answers. Check your connection and try again.' ? '' : 'state: ' + s.textContent;
	})()`)
	phone.do("restore the phone's network", setOffline(false))
	phone.click("#search-go")
	phone.waitJS("the search works again", uiTimeout, results("#search", 3, "3 messages", "Design team", "제주 여행"))

	// Before logging in: the log-in page has the switch too, keeps what
	// was typed, and the choice stays for the next visit.
	guest := openPage(t, browser, "guest", base+"/", 390, 844)
	guest.waitJS("the log-in page in English", uiTimeout, `document.getElementById('auth-submit')?.textContent === 'Log in' ? '' : 'no English form'`)
	guest.typeInto("#auth-user", "carol")
	guest.click("#auth-lang")
	guest.waitJS("the log-in page in Korean at once", uiTimeout, `(() => {
		const s = document.getElementById('auth-submit').textContent, u = document.getElementById('auth-user').value;
		return s === '로그인' && u === 'carol' && document.documentElement.lang === 'ko' && document.getElementById('auth-lang').textContent === 'English' ? '' : s + ' | ' + u;
	})()`)
	oneLineButtons(guest, "the Korean log-in page", "#auth-lang", "#auth-submit", "#auth-switch")
	guest.do("reload", chromedp.Reload())
	guest.waitJS("still Korean after a reload", uiTimeout, `document.getElementById('auth-submit')?.textContent === '로그인' ? '' : 'not Korean'`)
}

// shot saves a screenshot for the docs when PLANB_SCREENSHOT=1.
func shot(t *testing.T, p *page, name string) {
	t.Helper()
	if os.Getenv("PLANB_SCREENSHOT") == "1" {
		saveScreenshot(t, p, name)
	}
}

// search types term into the search field with the ID prefix p (#search
// or #room-search) and submits it.
func search(p *page, prefix, term string) {
	p.t.Helper()
	p.clear(prefix + "-input")
	p.typeInto(prefix+"-input", term)
	p.click(prefix + "-go")
}

// results yields "" when the search with the ID prefix shows n results,
// says state, and its results come from exactly the rooms named.
func results(prefix string, n int, state string, rooms ...string) string {
	return fmt.Sprintf(`(() => {
		const list = document.querySelector(%[1]s + '-list');
		const items = [...list.querySelectorAll('.search-result')];
		const st = document.querySelector(%[1]s + '-state').textContent;
		const titles = new Set(items.map((r) => planb.chat.model.rooms.get(r.dataset.roomId)?.title(planb.chat.me)));
		const want = %[2]s;
		const ok = items.length === %[3]d && st === %[4]s && titles.size === want.length && want.every((w) => titles.has(w))
			&& !document.querySelector(%[1]s + '-results').hidden;
		return ok ? '' : items.length + ' results, state ' + st + ', rooms ' + JSON.stringify([...titles]);
	})()`, jsString(prefix), mustJSON(rooms), n, jsString(state))
}

// shownAt yields "" when roomID is open and its timeline shows eventID.
func shownAt(roomID, eventID string) string {
	return fmt.Sprintf(`(() => {
		if (location.hash !== '#/room/' + encodeURIComponent(%[1]s)) return 'hash ' + location.hash;
		const tl = document.getElementById('timeline');
		const r = [...document.querySelectorAll('#timeline .row[data-event-id]')].find((x) => x.dataset.eventId === %[2]s);
		if (!r) return 'the message is not in the timeline';
		if (tl.hidden) return 'the timeline is hidden';
		const a = tl.getBoundingClientRect(), b = r.getBoundingClientRect();
		return b.bottom > a.top && b.top < a.bottom ? '' : 'the message is outside the view';
	})()`, jsString(roomID), jsString(eventID))
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// apiRoom has owner create a room named name, invite user and user (with
// userTok) join it; it returns the room ID.
func apiRoom(t *testing.T, base, ownerTok, userTok, name, user string) string {
	t.Helper()
	code, body := call(t, http.MethodPost, base+"/_matrix/client/v3/createRoom", ownerTok, map[string]any{"name": name, "invite": []string{user}, "preset": "private_chat"})
	var res struct {
		RoomID string `json:"room_id"`
	}
	if code != http.StatusOK || json.Unmarshal(body, &res) != nil || res.RoomID == "" {
		t.Fatalf("createRoom %s: %d %s", name, code, body)
	}
	if code, body := call(t, http.MethodPost, base+"/_matrix/client/v3/join/"+url.PathEscape(res.RoomID), userTok, map[string]any{}); code != http.StatusOK {
		t.Fatalf("join %s: %d %s", name, code, body)
	}
	return res.RoomID
}

var apiTxn atomic.Int64

// apiSend sends a text message and returns its event ID.
func apiSend(t *testing.T, base, token, roomID, text string) string {
	t.Helper()
	u := fmt.Sprintf("%s/_matrix/client/v3/rooms/%s/send/m.room.message/search-%d", base, url.PathEscape(roomID), apiTxn.Add(1))
	code, body := call(t, http.MethodPut, u, token, map[string]any{"msgtype": "m.text", "body": text})
	var res struct {
		EventID string `json:"event_id"`
	}
	if code != http.StatusOK || json.Unmarshal(body, &res) != nil || res.EventID == "" {
		t.Fatalf("send %q: %d %s", text, code, body)
	}
	return res.EventID
}

// waitSearch waits until the server's search for term across alice's
// rooms counts n results (the index follows the timeline).
func waitSearch(t *testing.T, base, token, term string, n int) {
	t.Helper()
	testutil.WaitFor(t, uiTimeout, fmt.Sprintf("the server finds %d × %q", n, term), func() error {
		code, body := call(t, http.MethodPost, base+"/_matrix/client/v3/search", token, map[string]any{
			"search_categories": map[string]any{"room_events": map[string]any{"search_term": term, "filter": map[string]any{"limit": 100}}},
		})
		if code != http.StatusOK {
			return fmt.Errorf("%d %s", code, body)
		}
		var res struct {
			Categories struct {
				RoomEvents struct {
					Results []json.RawMessage `json:"results"`
				} `json:"room_events"`
			} `json:"search_categories"`
		}
		if err := json.Unmarshal(body, &res); err != nil {
			return err
		}
		if got := len(res.Categories.RoomEvents.Results); got != n {
			return fmt.Errorf("%d results", got)
		}
		return nil
	})
}
