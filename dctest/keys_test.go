package dctest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/signatures"
	"maunium.net/go/mautrix/id"
)

// TestOneTimeKeyClaimRaceAcrossDataCenters uploads one-time keys at dc1
// and claims them from all three data centers at once, more claims than
// keys: every one-time key is handed out exactly once (compare-and-delete
// on the replicated bucket, whichever data center serves the claim), and
// the claims beyond them get the fallback key.
func TestOneTimeKeyClaimRaceAcrossDataCenters(t *testing.T) {
	skipShort(t)
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	aliceID, aliceTok := c.register("key-owner", "dc1")
	alice := c.pinned(aliceID, aliceTok, "dc1")
	who, err := alice.Whoami(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dev := who.DeviceID
	const keys = 30
	sig := signatures.Signatures{aliceID: {id.NewKeyID(id.KeyAlgorithmEd25519, string(dev)): "sig"}}
	otks := map[id.KeyID]mautrix.OneTimeKey{}
	for i := range keys {
		otks[id.NewKeyID(id.KeyAlgorithmSignedCurve25519, fmt.Sprintf("otk%02d", i))] = mautrix.OneTimeKey{
			Key: id.Curve25519(fmt.Sprintf("key%02d", i)), Signatures: sig, IsSigned: true}
	}
	resp, err := alice.UploadKeys(ctx, &mautrix.ReqUploadKeys{
		DeviceKeys: &mautrix.DeviceKeys{UserID: aliceID, DeviceID: dev,
			Algorithms: []id.Algorithm{id.AlgorithmOlmV1, id.AlgorithmMegolmV1},
			Keys: mautrix.KeyMap{id.NewDeviceKeyID(id.KeyAlgorithmCurve25519, dev): "curve",
				id.NewDeviceKeyID(id.KeyAlgorithmEd25519, dev): "ed"},
			Signatures: sig},
		OneTimeKeys: otks})
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	t.Logf("one-time keys counted in the upload's answer: %d of %d", resp.OneTimeKeyCounts.SignedCurve25519, keys)
	// The fallback key, through the raw body (mautrix's request type has no field for it).
	fb := fmt.Sprintf(`{"fallback_keys":{"signed_curve25519:fb":{"key":"fallback","fallback":true,"signatures":{%q:{"ed25519:%s":"sig"}}}}}`, aliceID, dev)
	if _, err := alice.MakeRequest(ctx, "POST", alice.BuildClientURL("v3", "keys", "upload"), json.RawMessage(fb), nil); err != nil {
		t.Fatalf("upload the fallback key: %v", err)
	}

	var mu sync.Mutex
	got := map[id.KeyID]int{}
	var wg sync.WaitGroup
	for _, dc := range c.names() {
		uid, tok := c.register("claimer-at-"+dc, dc)
		cli := c.pinned(uid, tok, dc)
		for w := range 3 {
			wg.Go(func() {
				for range 5 { // 3 DCs × 3 claimers × 5 = 45 claims for 30 keys
					r, err := cli.ClaimKeys(ctx, &mautrix.ReqClaimKeys{OneTimeKeys: mautrix.OneTimeKeysRequest{
						aliceID: {dev: id.KeyAlgorithmSignedCurve25519}}})
					if err != nil {
						t.Errorf("claim at %s (claimer %d): %v", dc, w, err)
						return
					}
					mu.Lock()
					for kid := range r.OneTimeKeys[aliceID][dev] {
						got[kid]++
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	handed, fallbacks := 0, 0
	for kid, n := range got {
		switch {
		case kid == "signed_curve25519:fb":
			fallbacks += n
		case n == 1:
			handed++
		default:
			t.Errorf("one-time key %s handed out %d times", kid, n)
		}
	}
	if handed != keys || fallbacks != 45-keys {
		t.Errorf("%d one-time keys handed out (want %d) and %d fallback keys (want %d): %v", handed, keys, fallbacks, 45-keys, got)
	}
}
