// Command sgd trains a classifier with synchronous data-parallel SGD over
// ringo: N worker processes each hold a replica of the model, compute the
// gradient of their share of every global batch, average the gradients
// and apply the same update, so that together they compute exactly what
// one worker would with the whole batch (up to the order of float64
// additions).
//
// Two ways to combine the gradients (-mode):
//
//   - allreduce: every worker is a runtime actor with a communicator; the
//     gradients are averaged with AllReduce(Avg), in buckets that start as
//     soon as backpropagation has produced them (tensor fusion), and every
//     replica applies the update.
//   - ps: a parameter-server actor (in the process of rank 0) holds the
//     weights and the optimizer; workers push their gradients (Reduce to
//     rank 0), the server applies the update in its mailbox, and the
//     workers pull the new weights (Broadcast from rank 0).
//
// By default the program is a local launcher: it starts -workers
// processes of this same binary (and, for the speedup table, runs with 1,
// 2, 4, ... workers first), which find each other by gossip on loopback
// (collective.Join) and move tensors through shared memory. With -join it
// is one worker of a group spread over hosts. With -checkpoint DIR the
// group survives losing workers: the others discard the step in flight,
// re-form (Rejoin), restore the newest checkpoint and go on.
//
//	go run ./examples/sgd -workers 4 -plot sgd.svg
//	go run ./examples/sgd -workers 4 -mode ps
//	go run ./examples/sgd -workers 3 -checkpoint /tmp/sgd-ck -kill 1@50
//
// The data are synthetic handwritten-looking digits (16×16 pixels)
// generated from -seed, so nothing is downloaded. Exit status: 0 when
// training finished and every run's losses match the 1-worker run's
// within -tol, 1 otherwise, 2 for a bad command line.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	goruntime "runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ringo-ml/ringo/collective"
	"github.com/ringo-ml/ringo/internal/launchenv"
)

// Exit statuses.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

// joinTimeout bounds finding the group and agreeing on its first view.
const joinTimeout = 2 * time.Minute

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the program; it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "sgd: %v\nRun sgd -h for the flags.\n", strings.TrimPrefix(err.Error(), errUsage.Error()+": "))
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cfg.join == "" && !cfg.compare && !cfg.serve {
		// Started by mpirun, srun, torchrun or an Indexed Job: one worker
		// of the job, its group formed from the launcher's variables.
		env, ok, err := launchenv.Detect(os.Getenv)
		if err != nil {
			fmt.Fprintf(stderr, "sgd: %v\n", err)
			return exitUsage
		}
		if ok {
			if cfg.mode == "downpour" {
				fmt.Fprintf(stderr, "sgd: -mode downpour under a launcher: start the server with -serve and the workers with -join and -rank\n")
				return exitUsage
			}
			cfg.workers, cfg.sizes, cfg.launched = env.World, []int{env.World}, true
			return runJoin(ctx, cfg, stdout, stderr)
		}
	}
	switch {
	case cfg.serve:
		if err := runDownpourServe(ctx, cfg, stdout); err != nil {
			fmt.Fprintf(stderr, "sgd: %v\n", err)
			return exitFailed
		}
		return exitOK
	case cfg.join != "":
		return runJoin(ctx, cfg, stdout, stderr)
	case cfg.compare:
		return runCompare(ctx, cfg, stdout, stderr)
	}
	return runLauncher(ctx, cfg, stdout, stderr)
}

// runJoin is one worker of a group formed by gossip: started by the local
// launcher, or by hand (or a scheduler) on each host with the same -join
// seeds, -workers (or -min/-max) and RINGO_CLUSTER_KEY. The worker that is
// rank 0 reports: a table on stdout, or JSON records with -records.
func runJoin(ctx context.Context, cfg *config, stdout, stderr io.Writer) int {
	if cfg.procs > 0 {
		goruntime.GOMAXPROCS(cfg.procs)
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(stderr, "sgd: "+format+"\n", args...)
	}
	if cfg.mode == "downpour" {
		if err := runDownpourWorker(ctx, cfg, stderr); err != nil {
			logf("%v", err)
			return exitFailed
		}
		return exitOK
	}
	if cfg.ckptDir != "" {
		if err := os.MkdirAll(cfg.ckptDir, 0o755); err != nil {
			logf("%v", err)
			return exitFailed
		}
	}
	var seeds []string
	for _, s := range strings.Split(cfg.join, ",") {
		if s = strings.TrimSpace(s); s != "" && s != cfg.bind {
			seeds = append(seeds, s)
		}
	}
	// The library logs membership changes and gossip trouble; the events
	// that matter here (a loss, a re-form, a restore) this program reports
	// itself, so its log is shown only with -v.
	level := slog.Level(100)
	if cfg.verbose {
		level = slog.LevelInfo
	}
	jc := collective.JoinConfig{
		Group: cfg.group, World: cfg.workers, Join: seeds, Bind: cfg.bind,
		DataBind: cfg.dataBind, DataAdvertise: cfg.dataAdvertise,
		Comm: collective.Config{Transport: cfg.transport, Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))},
	}
	if cfg.elastic() {
		jc.World, jc.Min, jc.Max, jc.Settle = 0, cfg.min, cfg.max, cfg.settle
	}
	join := collective.Join
	if cfg.launched {
		jc.World, jc.Join, jc.Bind = 0, nil, ""
		join = collective.JoinEnv
	}
	jctx, cancel := context.WithTimeout(ctx, joinTimeout)
	comm, err := join(jctx, jc)
	cancel()
	if err != nil {
		logf("joining group %q at %s: %v", cfg.group, cfg.join, err)
		return exitFailed
	}
	logf("joined group %q at group epoch %d: rank %d of %d (view %016x)", cfg.group, comm.Epoch(), comm.Rank(), comm.Size(), comm.ViewID())
	var emit func(record)
	if cfg.records {
		enc := json.NewEncoder(stdout)
		emit = func(r record) { _ = enc.Encode(r) }
	} else {
		t := newTable(stdout, cfg)
		emit = t.record
	}
	res, err := trainWorker(ctx, cfg, comm, true, emit, logf)
	if err != nil {
		logf("%v", unwrapTask(err))
		return exitFailed
	}
	if res.Step < cfg.totalSteps() {
		logf("stopped at step %d of %d", res.Step, cfg.totalSteps())
		return exitFailed
	}
	return exitOK
}

func numCPU() int { return goruntime.NumCPU() }

// lockedWriter serialises whole writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
