package projection

import (
	"math"
	"slices"
	"strings"
	"testing"
)

func TestTokenRoundTrip(t *testing.T) {
	for _, tok := range []Token{
		{Parts: []uint64{}, Receipts: 0, AccountData: 0, Typing: 0},
		{Parts: []uint64{7}, Receipts: 1, AccountData: 2, Typing: 3},
		{Parts: []uint64{0, 0, 0}, Receipts: 0, AccountData: 0, Typing: 0},
		{Parts: []uint64{1, 22, 333}, Receipts: 4444, AccountData: 55555, Typing: 1_700_000_000_000},
		{Parts: []uint64{math.MaxUint64, 0}, Receipts: math.MaxUint64, AccountData: math.MaxUint64, Typing: math.MaxUint64},
		{Parts: []uint64{2}, Receipts: 1, AccountData: 2, Typing: 3, ToDevice: 4, DeviceKeys: 5, Presence: 6},
	} {
		s := tok.String()
		if !strings.HasPrefix(s, "s") {
			t.Errorf("%v: String %q lacks the s prefix", tok, s)
		}
		got, err := ParseToken(s, len(tok.Parts))
		if err != nil {
			t.Errorf("ParseToken(%q): %v", s, err)
			continue
		}
		if !tokenEqual(got, tok) {
			t.Errorf("ParseToken(%q) = %+v, want %+v", s, got, tok)
		}
		if got.String() != s {
			t.Errorf("round trip of %q gave %q", s, got.String())
		}
	}
}

func TestTokenStringFormat(t *testing.T) {
	got := Token{Parts: []uint64{5, 6}, Receipts: 7, AccountData: 8, Typing: 9, ToDevice: 10, DeviceKeys: 11,
		OneTimeKeys: 12, FallbackKeys: 13, Presence: 14}.String()
	if got != "s5_6_7_8_9_10_11_14" {
		t.Fatalf("String = %q, want s5_6_7_8_9_10_11_14", got)
	}
}

// A token handed out before the to-device and device-keys positions
// existed still parses, with both at 0, so clients stay signed in across
// an upgrade.
func TestParseTokenOfEarlierRelease(t *testing.T) {
	got, err := ParseToken("s5_6_7_8_9", 2)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Token{Parts: []uint64{5, 6}, Receipts: 7, AccountData: 8, Typing: 9}); !tokenEqual(got, want) {
		t.Fatalf("ParseToken = %+v, want %+v", got, want)
	}
	// Before the presence position: read with it at 0.
	got, err = ParseToken("s5_6_7_8_9_10_11", 2)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Token{Parts: []uint64{5, 6}, Receipts: 7, AccountData: 8, Typing: 9, ToDevice: 10, DeviceKeys: 11}); !tokenEqual(got, want) {
		t.Fatalf("ParseToken = %+v, want %+v", got, want)
	}
}

func TestParseTokenRejectsMalformed(t *testing.T) {
	for _, s := range []string{
		"",
		"s",
		"t5",                          // a topological token is not a sync token
		"S1_2_3_4",                    // prefix is case-sensitive
		"x1_2_3_4",                    // no prefix
		"1_2_3_4",                     // no prefix
		"s1_2_3",                      // one position short for 1 partition
		"s1_2_3_4_5",                  // one position too many
		"s1_2_3_4_5_6_7_8",            // one position too many for the newest format
		"s1__3_4",                     // empty position
		"s1_2_3_",                     // trailing separator
		"s_1_2_3",                     // leading separator
		"s-1_2_3_4",                   // negative
		"s+1_2_3_4",                   // sign
		"s1_2_3_0x4",                  // hex
		"s1_a_3_4",                    // not a number
		"s 1_2_3_4",                   // space
		"s1_2_3_4 ",                   // trailing space
		"s18446744073709551616_2_3_4", // overflows uint64
		"s1.5_2_3_4",                  // not an integer
		"s1-2-3-4",                    // wrong separator
	} {
		if tok, err := ParseToken(s, 1); err == nil {
			t.Errorf("ParseToken(%q, 1) = %+v, want an error", s, tok)
		}
	}
	// A valid token for one partition count is invalid for another — but
	// for one more partition it has the length of the format before the
	// presence position, so 3 is not tried: the count never changes in a
	// cluster (jetstream's checkPartitions), so that reading cannot happen.
	s := Token{Parts: []uint64{1, 2}}.String()
	for _, n := range []int{0, 1, 4} {
		if _, err := ParseToken(s, n); err == nil {
			t.Errorf("ParseToken(%q, %d) accepted a token of 2 partitions", s, n)
		}
	}
}

func TestTokenMax(t *testing.T) {
	a := Token{Parts: []uint64{5, 1, 9}, Receipts: 3, AccountData: 10, Typing: 100, ToDevice: 7, DeviceKeys: 1, Presence: 4}
	b := Token{Parts: []uint64{2, 8, 9}, Receipts: 4, AccountData: 1, Typing: 50, ToDevice: 2, DeviceKeys: 6, Presence: 3}
	want := Token{Parts: []uint64{5, 8, 9}, Receipts: 4, AccountData: 10, Typing: 100, ToDevice: 7, DeviceKeys: 6, Presence: 4}
	if got := a.Max(b); !tokenEqual(got, want) {
		t.Errorf("a.Max(b) = %+v, want %+v", got, want)
	}
	if got := b.Max(a); !tokenEqual(got, want) {
		t.Errorf("b.Max(a) = %+v, want %+v", got, want)
	}
	if got := a.Max(a); !tokenEqual(got, a) {
		t.Errorf("a.Max(a) = %+v, want %+v", got, a)
	}
	// Different lengths: missing parts count as zero.
	short := Token{Parts: []uint64{7}}
	if got, want := short.Max(a), (Token{Parts: []uint64{7, 1, 9}, Receipts: 3, AccountData: 10, Typing: 100, ToDevice: 7, DeviceKeys: 1, Presence: 4}); !tokenEqual(got, want) {
		t.Errorf("short.Max(a) = %+v, want %+v", got, want)
	}
	// The result does not share memory with the operands.
	got := a.Max(b)
	got.Parts[0] = 999
	if a.Parts[0] != 5 || b.Parts[0] != 2 {
		t.Errorf("Max aliased an operand's parts: a=%v b=%v", a.Parts, b.Parts)
	}
}

func TestTopoToken(t *testing.T) {
	for _, n := range []int{0, 1, 42, 1 << 30} {
		got, ok := parseTopo(topoToken(n))
		if !ok || got != n {
			t.Errorf("parseTopo(topoToken(%d)) = %d, %v", n, got, ok)
		}
	}
	for _, s := range []string{"", "t", "t-1", "tx", "s1_0_0_0", "T3", "t1.0"} {
		if n, ok := parseTopo(s); ok {
			t.Errorf("parseTopo(%q) = %d, want rejection", s, n)
		}
	}
}

// FuzzParseToken checks that ParseToken never panics and that every token
// it accepts survives String and ParseToken unchanged.
func FuzzParseToken(f *testing.F) {
	for _, s := range []string{"s0_0_0", "s1_2_3_4", "s1_2_3_4_5_6", "s18446744073709551615_0_0_0",
		"s", "", "s__", "s-1_0_0_0", "s01_002_3_4", "t5", "s1_2_3_4\x00"} {
		for n := range 4 {
			f.Add(s, uint8(n))
		}
	}
	f.Fuzz(func(t *testing.T, s string, n uint8) {
		parts := int(n % 8)
		tok, err := ParseToken(s, parts)
		if err != nil {
			return
		}
		if len(tok.Parts) != parts {
			t.Fatalf("ParseToken(%q, %d) returned %d parts", s, parts, len(tok.Parts))
		}
		again, err := ParseToken(tok.String(), parts)
		if err != nil {
			t.Fatalf("ParseToken(%q) = %+v, but its String %q does not parse: %v", s, tok, tok.String(), err)
		}
		if !tokenEqual(again, tok) {
			t.Fatalf("round trip of %q: %+v became %+v", s, tok, again)
		}
		if again.String() != tok.String() {
			t.Fatalf("String is not stable: %q then %q", tok.String(), again.String())
		}
	})
}

// tokenEqual compares tokens, treating nil and empty Parts alike.
func tokenEqual(a, b Token) bool {
	return slices.Equal(a.Parts, b.Parts) && a.Receipts == b.Receipts &&
		a.AccountData == b.AccountData && a.Typing == b.Typing && a.ToDevice == b.ToDevice &&
		a.DeviceKeys == b.DeviceKeys && a.Presence == b.Presence && a.OneTimeKeys == b.OneTimeKeys && a.FallbackKeys == b.FallbackKeys
}
