//go:build !linux

package e2e

import "os/exec"

// setDeathSignal is a no-op where the kernel offers no parent-death signal;
// the cleanup in startServer still stops servers on normal test exits.
func setDeathSignal(cmd *exec.Cmd) {}
