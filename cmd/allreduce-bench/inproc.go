package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/ringo-ml/ringo/collective"
)

// runInProc runs the sweep with cfg.np goroutine ranks in this process.
func runInProc(ctx context.Context, cfg *config, stdout, stderr io.Writer) int {
	n := cfg.np
	comms, err := collective.NewInProc(ctx, n, collective.Config{
		View:       collective.View{Group: "allreduce-bench"},
		Algorithm:  cfg.algo,
		ChunkBytes: int(cfg.chunk),
		Timeout:    cfg.opTimeout(),
	})
	if err != nil {
		fmt.Fprintf(stderr, "allreduce-bench: %v\n", err)
		return exitFailed
	}
	pw := newProgress(stdout, terminal(stderr), sweepRows(cfg, n))
	rep := newReport(cfg, n, fmt.Sprintf("inproc (%d goroutines, in-memory pipes)", n), pw)
	errs := make([]error, n)
	var wrong int64
	var wg sync.WaitGroup
	for r, c := range comms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var rp *report
			if r == 0 {
				rp = rep
			}
			w, err := runRank(ctx, cfg, c, rp)
			if r == 0 {
				wrong = w
			}
			errs[r] = err
			_ = c.Close() // as a process would at exit: waits for the neighbours
		}()
	}
	wg.Wait()
	_ = pw.Close()
	if err := errors.Join(errs...); err != nil {
		for r, err := range errs {
			if err != nil {
				fmt.Fprintf(stderr, "allreduce-bench: rank %d: %v\n", r, err)
			}
		}
		return exitFailed
	}
	if rep.err != nil {
		fmt.Fprintf(stderr, "allreduce-bench: %v\n", rep.err)
		return exitFailed
	}
	if wrong > 0 {
		return exitWrong
	}
	return exitOK
}
