// Package e2ee drives mautrix-go's OlmMachine for planb's tests: a Peer is
// a Matrix client that encrypts and decrypts like a stock client does
// (device keys, one-time keys, Olm to-device room keys, Megolm messages).
//
// It needs mautrix's pure-Go Olm (goolm), so it is built only with the
// goolm build tag: go test -tags goolm ./...
package e2ee
