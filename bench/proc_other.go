//go:build !linux

package bench

import "syscall"

// childAttr: without a parent-death signal, the bench stops its child on
// every normal exit path.
func childAttr() *syscall.SysProcAttr { return nil }
