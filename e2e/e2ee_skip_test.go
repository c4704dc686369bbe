//go:build !goolm

package e2e

import "testing"

// TestEncryptedChat needs mautrix's pure-Go Olm: run the tests as the
// README says, with -tags goolm.
func TestEncryptedChat(t *testing.T) {
	t.Skip("end-to-end encryption tests need -tags goolm (mautrix's pure-Go Olm); the README's test command sets it")
}

// TestCrossSigningAndKeyBackup needs -tags goolm, as TestEncryptedChat.
func TestCrossSigningAndKeyBackup(t *testing.T) {
	t.Skip("end-to-end encryption tests need -tags goolm (mautrix's pure-Go Olm); the README's test command sets it")
}
