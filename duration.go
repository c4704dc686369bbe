package planb

import (
	"fmt"
	"time"
)

// Duration is a time.Duration that configuration files and flags spell as
// Go durations ("15s", "2m", "0").
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String spells d as a Go duration.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText spells d as a Go duration.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads a Go duration such as "15s".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q: want a duration such as \"15s\"", b)
	}
	*d = Duration(v)
	return nil
}

// Set reads a Go duration (for flag.Var).
func (d *Duration) Set(s string) error { return d.UnmarshalText([]byte(s)) }
