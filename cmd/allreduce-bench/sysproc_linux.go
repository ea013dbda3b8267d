package main

import (
	"os"
	"syscall"
)

// childAttr puts a rank in its own process group, so that signals reach it
// only through the launcher, which forwards them, and has the kernel
// SIGKILL it when the launcher dies, so that no rank outlives it. (The
// kernel ties Pdeathsig to the thread that started the child; Go keeps its
// threads alive unless a goroutine exits locked to one, which this program
// never does.)
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killSelf ends this process at once, as a crash would (test hook).
func killSelf() { _ = syscall.Kill(os.Getpid(), syscall.SIGKILL) }
