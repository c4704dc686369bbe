package homeserver

import (
	"strings"
	"testing"

	"github.com/planb-chat/planb/jetstream"
)

// TestReceiptKeys: a receipt's bucket key gives back its room, user, type
// and thread; an unthreaded receipt keeps the three-part key receipts had
// before threads, and keys of anything else are no receipts.
func TestReceiptKeys(t *testing.T) {
	for _, c := range []struct{ room, user, rtype, thread string }{
		{"!r:hs", "@a:hs", "m.read", ""},
		{"!r:hs", "@a:hs", "m.read", "main"},
		{"!r:hs", "@a:hs", "m.read.private", "$root/with+odd=chars"},
	} {
		k := receiptKey(c.room, c.user, c.rtype, c.thread)
		if want := 3 + min(len(c.thread), 1); strings.Count(k, ".")+1 != want {
			t.Errorf("key %q of %+v has %d parts, want %d", k, c, strings.Count(k, ".")+1, want)
		}
		room, user, rtype, thread, ok := parseReceiptKey(k)
		if !ok || room != c.room || user != c.user || rtype != c.rtype || thread != c.thread {
			t.Errorf("parseReceiptKey(%q) = %q %q %q %q %v, want %+v", k, room, user, rtype, thread, ok, c)
		}
	}
	p := jetstream.KeyPart
	for _, k := range []string{p("!r:hs") + "." + p("@a:hs"), p("a") + "." + p("b") + "." + p("c") + "." + p("d") + "." + p("e"),
		p("!r:hs") + ".%%%." + p("m.read")} {
		if _, _, _, _, ok := parseReceiptKey(k); ok {
			t.Errorf("parseReceiptKey(%q) accepted", k)
		}
	}
}
