package faults

import "syscall"

// childAttr has the kernel SIGKILL a rank when the process that started it
// dies, so that no rank outlives a crashed test. (The kernel ties
// Pdeathsig to the thread that started the child; Go keeps its threads
// alive unless a goroutine exits locked to one, which this package never
// does.) Each rank gets a process group of its own: in a shared group,
// the exit of one rank could orphan the group, and the kernel then sends
// SIGHUP and SIGCONT to every member, waking a rank that is meant to stay
// frozen.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
