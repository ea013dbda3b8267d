//go:build !linux

package main

import (
	"os"
	"syscall"
)

// childAttr: only Linux can have the kernel kill a rank when the launcher
// dies; elsewhere ranks share the launcher's process group.
func childAttr() *syscall.SysProcAttr { return nil }

// killSelf ends this process at once, as a crash would (test hook).
func killSelf() {
	p, err := os.FindProcess(os.Getpid())
	if err == nil {
		_ = p.Kill()
	}
	os.Exit(137)
}
