package main

import (
	"os"
	"syscall"
)

// childAttr puts a worker in its own process group, so that a Ctrl-C
// reaches it only through the launcher, and has the kernel SIGKILL it when
// the launcher dies, so that no worker outlives it.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killSelf ends this process at once, as a crash would (-kill).
func killSelf() {
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal is on its way
}
