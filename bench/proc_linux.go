package bench

import "syscall"

// childAttr makes a child process die with the bench (Linux: parent-death
// signal), so an interrupted run leaves no node behind.
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }
