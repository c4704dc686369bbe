package webclient

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"testing"

	"github.com/planb-chat/planb/internal/testutil"
)

// TestBrowserEncryptedChat: alice, on Element or another client that
// encrypts (here: the API at dc1), makes an encrypted chat with bob, whose
// web page is served by dc2. The web client cannot decrypt or encrypt
// (that is not required of it), so it must say so plainly: a lock in the
// chat's header and in the chat list, each encrypted message shown as
// such (not dropped, not shown as text), and no composer in that chat —
// typing there would send plain text into a chat its members believe is
// private — with the reason, in Korean and in English.
func TestBrowserEncryptedChat(t *testing.T) {
	chrome := findChromium(t)
	if testing.Short() {
		t.Skip("starts three planb processes and a browser; skipped with -short")
	}
	cluster := startCluster(t, testutil.MustBuildPlanb(t))
	dc1, dc2 := cluster.DataCenters[0], cluster.DataCenters[1]
	browser := newBrowser(t, chrome)
	bob := openPage(t, browser, "bob", dc2.URL+"/?lang=ko", 1100, 720)
	signUp(bob, "bob", "staple battery horse")
	onDC(bob, dc2.Name)
	_, aliceToken := registerUser(t, dc1.URL, "alice", "correct horse battery")

	code, body := call(t, http.MethodPost, dc1.URL+"/_matrix/client/v3/createRoom", aliceToken, map[string]any{
		"preset": "private_chat", "is_direct": true, "invite": []string{"@bob:localhost"},
		"initial_state": []any{map[string]any{"type": "m.room.encryption", "state_key": "",
			"content": map[string]any{"algorithm": "m.megolm.v1.aes-sha2"}}},
	})
	var created struct {
		RoomID string `json:"room_id"`
	}
	if code != http.StatusOK || json.Unmarshal(body, &created) != nil {
		t.Fatalf("create the encrypted chat: %d %s", code, body)
	}
	// A direct chat is joined without asking (chat.js); open it.
	row := fmt.Sprintf(`#chat-list .chat-item[data-room-id=%s]`, jsString(created.RoomID))
	bob.waitJS("bob has the chat in his list", uiTimeout, fmt.Sprintf(`document.querySelector(%s) ? '' : 'no row'`, jsString(row)))
	bob.click(row)
	bob.waitJS("bob is in the chat", uiTimeout, `location.hash.startsWith('#/room/') ? '' : location.hash`)

	// What Element sends: a Megolm ciphertext.
	code, body = call(t, http.MethodPut, dc1.URL+"/_matrix/client/v3/rooms/"+url.PathEscape(created.RoomID)+"/send/m.room.encrypted/enc1", aliceToken,
		map[string]any{"algorithm": "m.megolm.v1.aes-sha2", "sender_key": "c2VuZGVyIGtleQ", "device_id": "ALICEDEVICE",
			"session_id": "c2Vzc2lvbg", "ciphertext": "AwgAEnACgAkLmt6qF84IK++J7UDH2Za1YVchHyprqTqsg2yyOwAtHaZTwyNg37afzg8f3r9IsN9r4RNFg7MaZencUJe4qvELiDiopUjy5wYVDAtqdBzer5bWRD9ldxp1FLgbQvBcjkkywYjCsmsq6+hArLd9oAQZnGKn/qLsK+5uNX3PaWzDRC9wZPQvWYYPCTov3jCwXKTPsLKIiTrcCXDqMvnn8m+T3zF/I2zqxg158tnUwWWIw51UO"})
	if code != http.StatusOK {
		t.Fatalf("send an encrypted message: %d %s", code, body)
	}

	bob.waitJS("the header says the chat is encrypted", uiTimeout,
		`(() => { const e = document.getElementById('room-encrypted'); return e && !e.hidden ? '' : 'no lock in the header'; })()`)
	bob.waitJS("the encrypted message is shown as such", uiTimeout,
		`(() => { const b = document.querySelectorAll('#timeline .body.encrypted'); return b.length === 1 && b[0].textContent.includes('암호화') ? '' : b.length + ' encrypted bodies: ' + [...b].map((x) => x.textContent); })()`)
	bob.waitJS("no composer in the encrypted chat, and why", uiTimeout,
		`(() => { const f = document.getElementById('composer-form'); const r = document.getElementById('read-only');
		  if (f && !f.hidden) return 'the composer is shown';
		  return r && !r.hidden && document.getElementById('read-only-text').textContent.includes('암호화') ? '' : 'no explanation: ' + (r ? r.textContent : 'none'); })()`)
	bob.waitJS("the chat list shows the lock and the preview", uiTimeout,
		fmt.Sprintf(`(() => { const row = document.querySelector('#chat-list .chat-item[data-room-id=%s]'); if (!row) return 'no row';
		  return row.querySelector('.lock:not([hidden])') && row.textContent.includes('암호화된 메시지') ? '' : row.textContent; })()`, jsString(created.RoomID)))
	if os.Getenv("PLANB_SCREENSHOT") == "1" {
		saveScreenshot(t, bob, "webclient-encrypted-ko.png")
	}

	// The same in English.
	bob.click("#lang-btn")
	bob.waitJS("the explanation in English", uiTimeout,
		`(() => { const b = document.querySelector('#timeline .body.encrypted'); const r = document.getElementById('read-only-text');
		  return b && /encrypted/i.test(b.textContent) && r && /encrypt/i.test(r.textContent) ? '' : (b ? b.textContent : 'no body') + ' / ' + (r ? r.textContent : ''); })()`)
	if os.Getenv("PLANB_SCREENSHOT") == "1" {
		saveScreenshot(t, bob, "webclient-encrypted-en.png")
	}
}
