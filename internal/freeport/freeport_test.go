package freeport

import (
	"errors"
	"testing"
)

func TestRangeBelowEphemeral(t *testing.T) {
	const span = 260
	base, err := Range(span, func(base int) error {
		for p := base; p <= base+span; p++ {
			if err := Check(p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if base < Lowest || base+span >= EphemeralLow() {
		t.Errorf("base %d..%d: want within %d..%d", base, base+span, Lowest, EphemeralLow()-1)
	}
}

func TestRangeGivesUp(t *testing.T) {
	tries := 0
	_, err := Range(0, func(int) error { tries++; return errors.New("taken") })
	if err == nil || tries != 100 {
		t.Errorf("err %v after %d tries; want an error after 100", err, tries)
	}
	if _, err := Range(70000, Check); err == nil {
		t.Error("span 70000: want an error")
	}
}

func TestOne(t *testing.T) {
	port, err := One()
	if err != nil {
		t.Fatal(err)
	}
	if port < Lowest || port >= EphemeralLow() {
		t.Errorf("port %d: want within %d..%d", port, Lowest, EphemeralLow()-1)
	}
}

func TestParseRangeLow(t *testing.T) {
	if low, err := parseRangeLow("32768\t60999\n"); err != nil || low != 32768 {
		t.Errorf("got %d, %v; want 32768", low, err)
	}
	for _, bad := range []string{"", "32768", "x 60999", "0 10", "70000 70001"} {
		if _, err := parseRangeLow(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func TestTransientIsAboveTheRangeRestartedProcessesUse(t *testing.T) {
	p, err := Transient()
	if err != nil {
		t.Fatal(err)
	}
	if p < EphemeralLow() {
		t.Errorf("transient port %d is below the ephemeral range (from %d), where Range picks", p, EphemeralLow())
	}
	if err := Check(p); err != nil {
		t.Errorf("transient port %d is not free: %v", p, err)
	}
}
