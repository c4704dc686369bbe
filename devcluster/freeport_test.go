package devcluster

import (
	"testing"

	"github.com/planb-chat/planb/internal/freeport"
)

func TestFreeBasePortBelowEphemeralRange(t *testing.T) {
	for _, dcs := range []int{3, 5} {
		base, err := FreeBasePort(dcs)
		if err != nil {
			t.Fatal(err)
		}
		ports, err := newPortPlan(base, dcs).ports()
		if err != nil {
			t.Fatal(err)
		}
		for p, what := range ports {
			if p < freeport.Lowest || p >= freeport.EphemeralLow() {
				t.Errorf("%d data centers: %s on port %d: want within %d..%d", dcs, what, p, freeport.Lowest, freeport.EphemeralLow()-1)
			}
		}
	}
}
