//go:build !unix

package devcluster

import (
	"os"
	"syscall"
)

// sysProcAttr has no process groups or parent-death signal to set here;
// `planb dev` is meant for Linux and other Unix systems.
func sysProcAttr(tied bool) *syscall.SysProcAttr { return nil }

// processAlive reports whether pid can be found.
func processAlive(pid int) bool {
	_, err := os.FindProcess(pid)
	return err == nil
}

// isOurProcess trusts the recorded pid.
func isOurProcess(pid int, args []string) bool { return true }

// wake has no stopped processes to resume here.
func wake(p *os.Process) {}
