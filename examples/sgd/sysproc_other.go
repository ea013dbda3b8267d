//go:build !linux

package main

import (
	"os"
	"syscall"
)

// childAttr: only Linux can have the kernel kill a worker when the
// launcher dies; elsewhere workers share the launcher's process group.
func childAttr() *syscall.SysProcAttr { return nil }

// killSelf ends this process at once, as a crash would (-kill).
func killSelf() {
	if p, err := os.FindProcess(os.Getpid()); err == nil {
		_ = p.Kill()
	}
	os.Exit(137)
}
