// Package freeport picks free TCP ports on loopback for processes that are
// killed and started again on the same ports (dev clusters, drills, tests).
//
// It picks them below the kernel's ephemeral port range. While a process
// is down its ports are free, and a port inside the ephemeral range can be
// handed to any outgoing connection on the machine (a route reconnect, an
// HTTP client) as its local port, after which the restarted process cannot
// listen on it. Ports below the range are only ever taken by bind.
package freeport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// Lowest is the lowest port picked: above the well-known and commonly
// configured ports.
const Lowest = 10000

// Range returns a base port such that base..base+span lies below the
// ephemeral range and free(base) returns nil; free checks the ports the
// caller will use.
func Range(span int, free func(base int) error) (int, error) {
	high := EphemeralLow() - span - 1
	if high <= Lowest {
		return 0, fmt.Errorf("the ephemeral port range starts at %d: no room below it for %d ports; choose the ports yourself", EphemeralLow(), span+1)
	}
	var last error
	for range 100 {
		base := Lowest + rand.IntN(high-Lowest)
		if last = free(base); last == nil {
			return base, nil
		}
	}
	return 0, fmt.Errorf("no free range of %d ports in %d..%d after 100 tries; last: %w", span+1, Lowest, high+span, last)
}

// One returns a single free port below the ephemeral range.
func One() (int, error) {
	return Range(0, Check)
}

// Transient returns a free port the kernel picks from its ephemeral range,
// for a listener that is never restarted on the same port (an in-process
// engine of a unit test). Such ports never collide with the ones Range
// hands out to processes that are killed and restarted.
func Transient() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Check returns an error if port cannot be listened on at 127.0.0.1 now.
func Check(port int) error {
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return fmt.Errorf("port %d is taken: %w", port, err)
	}
	return ln.Close()
}

// EphemeralLow is the first port of the kernel's ephemeral range (Linux's
// net.ipv4.ip_local_port_range), or 32768, Linux's default, where that
// cannot be read.
func EphemeralLow() int {
	const fallback = 32768
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return fallback
	}
	low, err := parseRangeLow(string(b))
	if err != nil {
		return fallback
	}
	return low
}

func parseRangeLow(s string) (int, error) {
	fields := strings.Fields(s)
	if len(fields) != 2 {
		return 0, errors.New("want two ports")
	}
	low, err := strconv.Atoi(fields[0])
	if err != nil || low < 1 || low > 65535 {
		return 0, fmt.Errorf("bad first port %q", fields[0])
	}
	return low, nil
}
