package planb

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
)

// MaxIDLength is the longest user, room or event ID the spec allows.
const MaxIDLength = 255

// UserID builds "@localpart:server".
func UserID(localpart, server string) string { return "@" + localpart + ":" + server }

// SplitID splits a sigil-prefixed Matrix ID into sigil, localpart and server
// name. It returns an error when the ID is malformed.
func SplitID(id string) (sigil byte, local, server string, err error) {
	if len(id) < 4 || len(id) > MaxIDLength {
		return 0, "", "", fmt.Errorf("id %q: bad length", id)
	}
	sigil = id[0]
	switch sigil {
	case '@', '!', '#', '$':
	default:
		return 0, "", "", fmt.Errorf("id %q: unknown sigil", id)
	}
	i := strings.IndexByte(id, ':')
	if i < 2 || i == len(id)-1 {
		return 0, "", "", fmt.Errorf("id %q: missing server name", id)
	}
	return sigil, id[1:i], id[i+1:], nil
}

// ValidLocalpart reports whether s is a valid user ID localpart for a new
// user: lower-case letters, digits and ._=-/+ only (spec "User Identifiers").
func ValidLocalpart(s string) bool {
	if s == "" || len(s) > 200 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '.', c == '_', c == '=', c == '-', c == '/', c == '+':
		default:
			return false
		}
	}
	return true
}

// ValidUserID reports whether id is a syntactically valid user ID.
// It accepts historical localparts (any printable ASCII except ':').
func ValidUserID(id string) bool {
	s, local, server, err := SplitID(id)
	if err != nil || s != '@' || server == "" {
		return false
	}
	for i := 0; i < len(local); i++ {
		if local[i] < 0x21 || local[i] > 0x7e || local[i] == ':' {
			return false
		}
	}
	return true
}

// RandomString returns n random bytes as unpadded URL-safe base64.
func RandomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// RandomLetters returns n random upper-case letters (for device and room IDs).
func RandomLetters(n int) string {
	const letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b)
}

// TxnKey returns the idempotency key of a client transaction: txnIds are
// scoped to the device and to the endpoint (scope names it, e.g.
// "send/!room:hs/m.room.message").
func TxnKey(userID, deviceID, scope, txnID string) string {
	h := sha256.New()
	for _, s := range []string{userID, deviceID, scope, txnID} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:18])
}
