//go:build !race

package testutil

// Race is true when the test binary was built with the race detector.
const Race = false
