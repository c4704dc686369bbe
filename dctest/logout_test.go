package dctest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/planb-chat/planb/internal/testutil"
)

// staleTokenBound is how long after a cut a data center may still accept a
// token logged out elsewhere: homeserver's sessionFreshness (15 s) after
// the last confirmation that its tokens follower was current (made every
// second), plus slack for a loaded machine.
const staleTokenBound = 20 * time.Second

// TestLogoutReachesCutOffDataCenter logs a token out at dc1 while dc3 is
// cut off from the other data centers. dc3 cannot hear of the logout, so
// after staleTokenBound it must refuse the token (503: it cannot check it)
// instead of serving it from its session cache or its stale replica; after
// healing it answers 401 M_UNKNOWN_TOKEN.
func TestLogoutReachesCutOffDataCenter(t *testing.T) {
	skipShort(t)
	c := startCluster(t)
	ctx := context.Background()
	user, tok := c.register("logged-out-elsewhere", "dc1")
	// Stays logged in: works again at dc3 once it is healed.
	u2, tok2 := c.register("still-logged-in", "dc1")
	at3 := c.pinned(user, tok, "dc3")
	// dc3 knows the session (and remembers it in its cache).
	testutil.WaitFor(t, 30*time.Second, "dc3 accepts the new token", func() error {
		_, err := at3.Whoami(ctx)
		return err
	})

	c.setLinks("dc3", false)
	cut := time.Now()
	healed := false
	defer func() {
		if !healed {
			c.setLinks("dc3", true)
		}
	}()
	at1 := c.pinned(user, tok, "dc1")
	testutil.WaitFor(t, 30*time.Second, "logout at dc1 while dc3 is cut off", func() error {
		if _, err := at1.Logout(ctx); err != nil && status(err) != http.StatusUnauthorized {
			return err
		}
		if _, err := at1.Whoami(ctx); status(err) != http.StatusUnauthorized {
			return fmt.Errorf("dc1 still answers whoami for the logged-out token: %v", err)
		}
		return nil
	})
	t.Logf("logged out at dc1 %v after the cut", time.Since(cut).Round(time.Millisecond))

	time.Sleep(time.Until(cut.Add(staleTokenBound)))
	for i := range 5 {
		_, err := at3.Whoami(ctx)
		switch st := status(err); st {
		case http.StatusServiceUnavailable, http.StatusUnauthorized:
		case http.StatusOK:
			t.Fatalf("cut-off dc3 accepted a token logged out at dc1 %v after the cut", time.Since(cut).Round(time.Millisecond))
		default:
			t.Fatalf("whoami %d at cut-off dc3: %d %v, want 503 or 401", i, st, err)
		}
		time.Sleep(time.Second)
	}

	c.setLinks("dc3", true)
	healed = true
	c.waitReady("dc3", 2*time.Minute)
	testutil.WaitFor(t, time.Minute, "dc3 answers M_UNKNOWN_TOKEN after healing", func() error {
		_, err := at3.Whoami(ctx)
		if st := status(err); st != http.StatusUnauthorized || !errors.Is(err, mautrix.MUnknownToken) {
			return fmt.Errorf("whoami at dc3: %d %v", st, err)
		}
		return nil
	})
	// A valid token works at dc3 again.
	testutil.WaitFor(t, time.Minute, "a valid token works at healed dc3", func() error {
		_, err := c.pinned(u2, tok2, "dc3").Whoami(ctx)
		return err
	})
}

// status is the HTTP status of a Matrix call's result: 200 for success,
// 0 when no response arrived.
func status(err error) int {
	if err == nil {
		return http.StatusOK
	}
	var he mautrix.HTTPError
	if errors.As(err, &he) && he.Response != nil {
		return he.Response.StatusCode
	}
	return 0
}
