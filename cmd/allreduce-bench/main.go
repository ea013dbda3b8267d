// Command allreduce-bench measures ringo's collectives the way nccl-tests
// measures NCCL's: a sweep of sizes, each timed over a number of
// iterations after a warm-up, printed as nccl-tests' table (size, count,
// type, redop, root, time, algbw, busbw, #wrong), with every result
// checked against known values.
//
// By default it is also a local launcher: -np N starts N processes of this
// same binary on this machine, joined over QUIC on 127.0.0.1 with mutual
// TLS from an ephemeral CA; -inproc runs the ranks as goroutines over
// in-memory pipes instead.
//
//	allreduce-bench -np 4 -b 1K -e 16M -f 4
//	allreduce-bench -inproc -np 8 -op allgather -t double -json out.json -plot out.svg
//
// Exit status: 0 when every result is right, 1 when some are wrong, 2 for
// a bad command line, 3 when a rank fails, 130 or 143 when interrupted.
// docs/benchmarks.md explains how to read the table.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/ringo-ml/ringo/internal/launchenv"
)

// Exit statuses.
const (
	exitOK     = 0
	exitWrong  = 1 // some results were wrong
	exitUsage  = 2 // bad command line
	exitFailed = 3 // a rank failed: error, lost peer, crash
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run is the program; it returns the exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "allreduce-bench: %v\nRun allreduce-bench -h for the flags.\n", err)
		return exitUsage
	}
	switch {
	case cfg.streamWorker:
		return runStreamWorker(cfg.budget, stdout)
	case cfg.stream:
		return runStream(context.Background(), cfg, stdout, stderr)
	}
	var launched *launchenv.Env
	if !cfg.worker && !cfg.inproc && cfg.join == "" && !cfg.npSet {
		// Started by mpirun, srun, torchrun or an Indexed Job: one rank of
		// the job, not a launcher of its own.
		env, ok, err := launchenv.Detect(os.Getenv)
		if err != nil {
			fmt.Fprintf(stderr, "allreduce-bench: %v\n", err)
			return exitUsage
		}
		if ok {
			launched = &env
		}
	}
	if !cfg.worker && !cfg.inproc && cfg.join == "" && launched == nil {
		return runLauncher(cfg, args, stdout, stderr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var code int
	switch {
	case launched != nil:
		code = runLaunched(ctx, cfg, *launched, stdout, stderr)
	case cfg.join != "":
		code = runJoin(ctx, cfg, stdout, stderr)
	case cfg.worker:
		code = runWorker(ctx, cfg, stdin, stdout, stderr)
	default:
		code = runInProc(ctx, cfg, stdout, stderr)
	}
	if code == exitFailed && ctx.Err() != nil {
		return interruptedStatus
	}
	return code
}

// interruptedStatus is the exit status after SIGINT or SIGTERM, as a
// shell reports a process killed by SIGINT.
const interruptedStatus = 128 + int(syscall.SIGINT)
