//go:build unix && !linux

package devcluster

import (
	"os"
	"syscall"
)

// sysProcAttr puts a data center's process in its own process group, so a
// Ctrl-C in the terminal reaches only the supervisor. This platform has no
// parent-death signal: if the supervisor is SIGKILLed, its children live on
// and must be stopped by hand (their pids are in cluster.json).
func sysProcAttr(tied bool) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// processAlive reports whether pid is a running process.
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}

// isOurProcess cannot read another process's argv portably here; it trusts
// the recorded pid.
func isOurProcess(pid int, args []string) bool { return true }

// wake resumes a process a drill may have stopped (SIGSTOP), so that it can
// handle the SIGTERM that follows and shut down cleanly.
func wake(p *os.Process) { _ = p.Signal(syscall.SIGCONT) }
