//go:build unix && !linux

package faults

import "syscall"

// childAttr: a process group per rank (see sysproc_linux.go); without
// Pdeathsig, ranks rely on Cluster.Close (and on their stdin closing when
// the parent dies) to end.
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
