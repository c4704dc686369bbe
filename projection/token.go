package projection

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/planb-chat/planb/roomauth"
)

var redact = roomauth.RedactContent

// Token is a sync position: the applied sequence of every partition of the
// log, of the receipts and account-data buckets, the typing position, the
// sequence of the to-device stream up to which the syncing device has its
// messages, the applied sequence of the device-keys bucket (device list
// changes) and that of the presence bucket. Tokens are valid on every node: a node first catches up to a
// token's log positions, then answers from them.
type Token struct {
	Parts       []uint64
	Receipts    uint64
	AccountData uint64
	Typing      uint64
	ToDevice    uint64
	DeviceKeys  uint64
	Presence    uint64
	// The applied sequences of the one-time-key and fallback-key buckets.
	// They are not part of a client's token (key counts are always the
	// current ones): only a node's own catch-up waits for them.
	OneTimeKeys, FallbackKeys uint64
	// Likewise of the accounts and room-directory buckets (the
	// directories' read models).
	Accounts, Directory uint64
}

// String encodes the token as
// "s<p0>_<p1>_..._<receipts>_<data>_<typing>_<to-device>_<device keys>_<presence>".
func (t Token) String() string {
	var b strings.Builder
	b.WriteByte('s')
	for _, p := range t.Parts {
		b.WriteString(strconv.FormatUint(p, 10))
		b.WriteByte('_')
	}
	fmt.Fprintf(&b, "%d_%d_%d_%d_%d_%d", t.Receipts, t.AccountData, t.Typing, t.ToDevice, t.DeviceKeys, t.Presence)
	return b.String()
}

// ParseToken decodes a token made by String for a log of n partitions. A
// token of an earlier planb, without the presence position or also without
// the to-device and device-keys positions, is read with those at 0.
func ParseToken(s string, n int) (Token, error) {
	if !strings.HasPrefix(s, "s") {
		return Token{}, fmt.Errorf("token %q: not a sync token", s)
	}
	f := strings.Split(s[1:], "_")
	if len(f) != n+6 && len(f) != n+5 && len(f) != n+3 {
		return Token{}, fmt.Errorf("token %q: want %d positions", s, n+6)
	}
	v := make([]uint64, n+6)
	for i, x := range f {
		u, err := strconv.ParseUint(x, 10, 64)
		if err != nil {
			return Token{}, fmt.Errorf("token %q: %w", s, err)
		}
		v[i] = u
	}
	return Token{Parts: v[:n:n], Receipts: v[n], AccountData: v[n+1], Typing: v[n+2], ToDevice: v[n+3], DeviceKeys: v[n+4],
		Presence: v[n+5]}, nil
}

// ToDeviceOr0 returns t's to-device position, 0 for a nil t.
func (t *Token) ToDeviceOr0() uint64 {
	if t == nil {
		return 0
	}
	return t.ToDevice
}

// Max returns the component-wise maximum of t and o.
func (t Token) Max(o Token) Token {
	r := Token{Parts: make([]uint64, max(len(t.Parts), len(o.Parts)))}
	for i := range r.Parts {
		if i < len(t.Parts) {
			r.Parts[i] = t.Parts[i]
		}
		if i < len(o.Parts) {
			r.Parts[i] = max(r.Parts[i], o.Parts[i])
		}
	}
	r.Receipts, r.AccountData, r.Typing = max(t.Receipts, o.Receipts), max(t.AccountData, o.AccountData), max(t.Typing, o.Typing)
	r.ToDevice, r.DeviceKeys = max(t.ToDevice, o.ToDevice), max(t.DeviceKeys, o.DeviceKeys)
	r.Presence = max(t.Presence, o.Presence)
	r.OneTimeKeys, r.FallbackKeys = max(t.OneTimeKeys, o.OneTimeKeys), max(t.FallbackKeys, o.FallbackKeys)
	r.Accounts, r.Directory = max(t.Accounts, o.Accounts), max(t.Directory, o.Directory)
	return r
}

// topoToken is a position in one room's timeline: the number of events
// before it. /messages and prev_batch use "t<n>".
func topoToken(n int) string { return "t" + strconv.Itoa(n) }

func parseTopo(s string) (int, bool) {
	if !strings.HasPrefix(s, "t") {
		return 0, false
	}
	n, err := strconv.Atoi(s[1:])
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}
