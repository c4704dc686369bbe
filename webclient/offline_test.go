package webclient

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/planb-chat/planb/devcluster"
)

// freeze stops (SIGSTOP) the processes of dcs, as if their machines hung:
// connections are accepted but nothing answers. thaw (SIGCONT) undoes it;
// it also runs when the test ends, so that the cluster can stop.
func freeze(t *testing.T, dcs ...devcluster.DataCenter) (thaw func()) {
	t.Helper()
	for _, dc := range dcs {
		if dc.PID <= 0 {
			t.Fatalf("%s has no pid in the cluster file", dc.Name)
		}
		if err := syscall.Kill(dc.PID, syscall.SIGSTOP); err != nil {
			t.Fatalf("SIGSTOP %s (pid %d): %v", dc.Name, dc.PID, err)
		}
		t.Logf("SIGSTOPped %s (pid %d)", dc.Name, dc.PID)
	}
	thawed := false
	thaw = func() {
		if thawed {
			return
		}
		thawed = true
		for _, dc := range dcs {
			if err := syscall.Kill(dc.PID, syscall.SIGCONT); err != nil {
				t.Errorf("SIGCONT %s (pid %d): %v", dc.Name, dc.PID, err)
			}
		}
	}
	t.Cleanup(thaw)
	return thaw
}

// watchStatusTruth makes p record, every 25 ms, whether a message is
// waiting for its acknowledgement (window.__pending) and every moment the
// status line then claimed all is well (window.__lies: "ok" or "switched").
const watchStatusTruth = `(() => {
	window.__pending = 0; window.__lies = [];
	clearInterval(window.__truth);
	window.__truth = setInterval(() => {
		const c = window.planb && window.planb.chat;
		if (!c) return;
		const waiting = c.outbox.items.some((it) => it.state === 'pending' || it.state === 'sending');
		const st = document.getElementById('status').dataset.state;
		if (!waiting) return;
		window.__pending++;
		if (st === 'ok' || st === 'switched') window.__lies.push(st);
	}, 25);
	return '';
})()`

// checkStatusTruth fails unless p saw its message pending and the status
// line never claimed all was well meanwhile.
func checkStatusTruth(t *testing.T, p *page) {
	t.Helper()
	var got struct {
		Pending int      `json:"pending"`
		Lies    []string `json:"lies"`
	}
	if err := p.eval(`({ pending: window.__pending, lies: window.__lies })`, &got); err != nil {
		t.Fatal(err)
	}
	if got.Pending == 0 {
		t.Errorf("%s: the message was never seen pending (the watch is broken)", p.name)
	}
	if len(got.Lies) > 0 {
		t.Errorf("%s: while a message was not acknowledged, the status line said %v (%d of %d samples)", p.name, got.Lies[0], len(got.Lies), got.Pending)
	}
}

// hungDataCenter freezes the data center of bob's page (dc, not alice's):
// a message bob types then goes out through another data center within
// seconds, and his status line says it is sending until it is
// acknowledged.
func hungDataCenter(t *testing.T, alice, bob *page, dc devcluster.DataCenter, aliceBase, roomID string) {
	t.Helper()
	onDC(bob, dc.Name)
	bob.str(watchStatusTruth)
	thaw := freeze(t, dc)
	frozen := time.Now()
	const text = "sent while the data center hangs"
	// The page records when its badge leaves the frozen data center.
	bob.str(fmt.Sprintf(`(() => {
		window.__left = 0;
		const b = document.getElementById('dc-badge');
		const o = new MutationObserver(() => { if (b.textContent !== %s && !window.__left) window.__left = Date.now(); });
		o.observe(b, { childList: true, characterData: true, subtree: true });
		return '';
	})()`, jsString(dc.Name)))
	var frozenAt float64
	if err := bob.eval(`Date.now()`, &frozenAt); err != nil {
		t.Fatal(err)
	}
	bob.send(text)
	sent := time.Now()
	alice.waitJS("alice gets the message bob sent while his data center hangs", 20*time.Second, hasMessage(text, "theirs", 1))
	took := time.Since(sent)
	if took > 12*time.Second {
		t.Errorf("the message took %s to arrive through another data center (want within ~10 s)", took.Round(100*time.Millisecond))
	}
	bob.waitJS("bob's page left the hung data center", uiTimeout, `window.__left ? '' : 'still on it'`)
	var leftAt float64
	if err := bob.eval(`window.__left`, &leftAt); err != nil {
		t.Fatal(err)
	}
	switchAfter := time.Duration(leftAt-frozenAt) * time.Millisecond
	if switchAfter > 8*time.Second {
		t.Errorf("bob's page left the hung data center %s after the freeze (want a few seconds)", switchAfter)
	}
	arrivesOnce(t, alice, bob, aliceBase, roomID, text)
	checkStatusTruth(t, bob)
	t.Logf("MEASURED: with %s frozen, bob's page switched %s after the freeze, and his message reached alice %s after he sent it (%s after the freeze); bob is now on %s; his page's requests to it: %s",
		dc.Name, switchAfter, took.Round(100*time.Millisecond), time.Since(frozen).Round(100*time.Millisecond), bob.str(`document.getElementById('dc-badge').textContent`),
		bob.str(fmt.Sprintf(`JSON.stringify(window.planb.chat.api.trace.filter((l) => l.split(' ')[1] === %s).slice(-4))`, jsString(dc.Name))))
	thaw()
}

// shellOffline runs after dead (the data center that served bob's page) was
// SIGKILLed: the service worker controls the page, so reloading it at the
// dead address still loads the app. With the two other data centers frozen
// too, the chat list and the last message show from the local cache within
// a few seconds, before any /sync answers; once they thaw, the page works
// through them and a message typed meanwhile arrives once.
func shellOffline(t *testing.T, alice, bob *page, dead devcluster.DataCenter, others []devcluster.DataCenter, roomID, lastText string) {
	t.Helper()
	if bob.str(`location.origin`) != dead.URL {
		t.Fatalf("bob's page is at %s, not at the dead data center %s", bob.str(`location.origin`), dead.URL)
	}
	bob.waitJS("the service worker controls bob's page", uiTimeout, `navigator.serviceWorker && navigator.serviceWorker.controller ? '' : 'no controller'`)
	// IndexedDB answers asynchronously: each poll starts a read and shows
	// what the last one found.
	bob.waitJS("the local cache holds the last message", uiTimeout, fmt.Sprintf(`(() => {
		if (window.__cacheSeen === '') return '';
		if (!window.__cacheBusy) {
			window.__cacheBusy = true;
			const done = (v) => { window.__cacheSeen = v; window.__cacheBusy = false; };
			const r = indexedDB.open('planb');
			r.onerror = () => done('no database');
			r.onsuccess = () => {
				try {
					const g = r.result.transaction('rooms').objectStore('rooms').get(window.planb.chat.me);
					g.onsuccess = () => done(JSON.stringify(g.result || {}).includes(%s) ? '' : 'not cached yet');
					g.onerror = () => done('no record');
				} catch (e) { done(String(e)); }
			};
		}
		return window.__cacheSeen || 'reading';
	})()`, jsString(lastText)))

	// The shell cache holds the app's own files and nothing else (no API answer).
	bob.waitJS("the shell cache holds only the app's files", uiTimeout, `(() => {
		if (window.__shell === '') return '';
		if (!window.__shellBusy) {
			window.__shellBusy = true;
			(async () => {
				const names = (await caches.keys()).filter((k) => k.startsWith('planb-shell-'));
				if (names.length !== 1) return 'caches: ' + JSON.stringify(names);
				const urls = (await (await caches.open(names[0])).keys()).map((r) => new URL(r.url).pathname);
				const bad = urls.filter((u) => u !== '/' && !u.startsWith('/_planb/web/'));
				if (bad.length) return 'cached: ' + JSON.stringify(bad);
				return urls.includes('/') && urls.includes('/_planb/web/app.js') && urls.includes('/_planb/web/cache.js') ? '' : 'missing: ' + JSON.stringify(urls);
			})().catch((e) => String(e)).then((v) => { window.__shell = v; window.__shellBusy = false; });
		}
		return window.__shell || 'reading';
	})()`)

	thaw := freeze(t, others...)
	// A user coming back later: the page starts at the dead data center.
	editSession(bob, fmt.Sprintf(`s.current = %s; s.failed = {}`, jsString(dead.URL)))
	start := time.Now()
	bob.do("reload at the dead data center's address", chromedp.Reload())
	bob.waitJS("the shell loads, signed in, with the chat list and the last message from the cache", 5*time.Second, fmt.Sprintf(`(() => {
		if (!document.getElementById('chat-app')) return 'no app: ' + document.body.innerText.slice(0, 200);
		const item = document.querySelector('#chat-list .chat-item .chat-preview');
		if (!item || !item.textContent.includes(%[1]s)) return 'chat list: ' + (item ? item.textContent : 'empty');
		return %[2]s;
	})()`, jsString(lastText), hasMessage(lastText, "theirs", 1)))
	shown := time.Since(start)
	if ready := bob.str(`String(window.planb.chat.ready)`); ready != "false" {
		t.Errorf("a /sync answered while every data center was down or frozen (ready = %s): the cache was not what showed", ready)
	}
	const text = "typed while every data center is down"
	bob.str(watchStatusTruth)
	bob.send(text)
	bob.waitJS("the message waits in the outbox", uiTimeout, `document.querySelectorAll('.row.pending').length > 0 ? '' : 'no pending row'`)
	time.Sleep(time.Second) // let the page try: it must keep saying it is not sent
	thaw()
	arrivesOnce(t, alice, bob, others[0].URL, roomID, text)
	checkStatusTruth(t, bob)
	if dc := bob.str(`document.getElementById('dc-badge').textContent`); dc == dead.Name {
		t.Errorf("bob's page says it is on the dead data center %s", dc)
	}
	alice.send("welcome back")
	bob.waitJS("bob gets alice's message through a surviving data center", uiTimeout, hasMessage("welcome back", "theirs", 1))
	t.Logf("MEASURED: reloaded at dead %s with the others frozen: chat list and last message shown %s after the reload began; now on %s",
		dead.Name, shown.Round(10*time.Millisecond), bob.str(`document.getElementById('dc-badge').textContent`))
}
