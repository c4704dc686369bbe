//go:build linux

package devcluster

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// sysProcAttr puts a data center's process in its own process group, so a
// Ctrl-C in the terminal reaches only the supervisor, which then stops the
// children in order. With tied set it also asks the kernel to SIGKILL the
// child when its parent dies (Pdeathsig), so a SIGKILLed supervisor leaves
// no orphan holding ports and data directories.
//
// Pdeathsig fires when the OS thread that forked the child exits, not the
// process. The Go runtime only ends threads that a goroutine left locked
// (runtime.LockOSThread without unlock); nothing in the supervisor locks
// threads, so in practice it fires exactly when the supervisor dies.
func sysProcAttr(tied bool) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true}
	if tied {
		a.Pdeathsig = syscall.SIGKILL
	}
	return a
}

// processAlive reports whether pid is a running process. A process whose
// every thread has exited (a zombie, dead but not yet reaped) counts as gone;
// one whose main thread is a zombie while other threads still exit does not:
// those threads still hold its files, listening sockets included, so a
// restart on the same ports would fail with "address already in use" (seen
// in CI right after a SIGKILL of a Go process).
func processAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && err != syscall.EPERM {
		return false
	}
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/stat")
		if err != nil {
			continue // the thread is gone
		}
		if taskRunning(b) {
			return true
		}
	}
	return false
}

// taskRunning reads a /proc stat line, "tid (comm) S ...": every state but
// zombie (Z) and dead (X) is a thread that still runs or can run.
func taskRunning(stat []byte) bool {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return true
	}
	return stat[i+2] != 'Z' && stat[i+2] != 'X'
}

// isOurProcess reports whether pid runs exactly args, so a pid that the
// kernel has since given to another program is never signalled.
func isOurProcess(pid int, args []string) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	return strings.TrimSuffix(string(b), "\x00") == strings.Join(args, "\x00")
}

// wake resumes a process a drill may have stopped (SIGSTOP), so that it can
// handle the SIGTERM that follows and shut down cleanly.
func wake(p *os.Process) { _ = p.Signal(syscall.SIGCONT) }
