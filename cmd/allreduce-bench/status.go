//go:build unix

package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"

	"github.com/ringo-ml/ringo/collective"
)

// statusSignal asks a running benchmark what it is doing: every rank
// prints its communicator's Status (the operation in flight and its
// progress on each link) to stderr. Send it to the launcher, which passes
// it on to the ranks, or to one rank:
//
//	kill -USR1 <pid>
const statusSignal = syscall.SIGUSR1

// statusMu serialises the reports of the ranks of one process (-inproc).
var statusMu sync.Mutex

// watchStatus prints comm's status to w whenever the process receives
// statusSignal, until the returned stop is called.
func watchStatus(comm *collective.Communicator, w io.Writer) (stop func()) {
	return onStatusSignal(func() {
		s := comm.Status()
		statusMu.Lock()
		fmt.Fprintf(w, "allreduce-bench: status of %s", s)
		statusMu.Unlock()
	})
}

// forwardStatus passes statusSignal from the launcher to every rank,
// until the returned stop is called.
func forwardStatus(children []*child) (stop func()) {
	return onStatusSignal(func() {
		for _, c := range children {
			signalChild(c.cmd, statusSignal)
		}
	})
}

// onStatusSignal runs f, on a goroutine it owns, each time the process
// receives statusSignal, until the returned stop is called (which waits
// for the goroutine to end).
func onStatusSignal(f func()) (stop func()) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, statusSignal)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-sigs:
				f()
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(done)
		wg.Wait()
	}
}

// signalChild signals a rank; one that has exited is skipped (the error
// says so).
func signalChild(cmd *exec.Cmd, sig os.Signal) {
	if cmd.Process != nil {
		_ = cmd.Process.Signal(sig)
	}
}
