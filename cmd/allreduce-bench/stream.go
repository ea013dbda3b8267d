package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The memory ceiling (-stream): a STREAM-like copy (a[i] = b[i]) and add
// (a[i] = b[i] + c[i]) over -np processes at once, each on arrays of
// streamBytes that no cache holds, for the time budget -T. It reports
// the machine's memory bandwidth as STREAM counts it (copy moves two
// arrays' bytes, add three), summed over the processes: what an AllReduce
// over shared memory can at most use (docs/performance.md, "The
// ceiling").

// streamBytes is each array's size.
const streamBytes = 64 << 20

// runStream starts -np stream workers together and sums their rates.
func runStream(ctx context.Context, cfg *config, stdout, stderr io.Writer) int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "allreduce-bench: %v\n", err)
		return exitFailed
	}
	procs := max(1, goruntime.NumCPU()/cfg.np)
	type rate struct{ copy, add float64 }
	rates := make([]rate, cfg.np)
	errs := make([]error, cfg.np)
	var wg sync.WaitGroup
	for i := range cfg.np {
		wg.Go(func() {
			cmd := exec.CommandContext(ctx, exe, "-stream-worker", "-T", cfg.budget.String())
			cmd.Env = append(os.Environ(), "GOMAXPROCS="+strconv.Itoa(procs))
			out, err := cmd.Output()
			if err != nil {
				errs[i] = err
				return
			}
			f := strings.Fields(strings.TrimSpace(string(out)))
			if len(f) != 4 {
				errs[i] = fmt.Errorf("worker %d printed %q", i, out)
				return
			}
			rates[i].copy, _ = strconv.ParseFloat(f[1], 64)
			rates[i].add, _ = strconv.ParseFloat(f[3], 64)
		})
	}
	wg.Wait()
	var c, a float64
	for i, err := range errs {
		if err != nil {
			fmt.Fprintf(stderr, "allreduce-bench: stream worker %d: %v\n", i, err)
			return exitFailed
		}
		c, a = c+rates[i].copy, a+rates[i].add
	}
	fmt.Fprintf(stdout, "# memory bandwidth, %d processes at once (GOMAXPROCS %d each), arrays of %s, %v each kernel\n", cfg.np, procs, formatSize(streamBytes), cfg.budget/2)
	fmt.Fprintf(stdout, "copy %.2f GB/s\nadd  %.2f GB/s\n", c, a)
	return exitOK
}

// runStreamWorker is one process of -stream: it prints "copy GB/s add
// GB/s".
func runStreamWorker(budget time.Duration, stdout io.Writer) int {
	n := streamBytes / 8
	a, b, c := make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range b {
		a[i], b[i], c[i] = 1, 2, 3 // first touch, outside the timing
	}
	copyRate := streamRate(budget/2, 2*streamBytes, func() { copy(a, b) })
	addRate := streamRate(budget/2, 3*streamBytes, func() {
		for i := range a {
			a[i] = b[i] + c[i]
		}
	})
	w := bufio.NewWriter(stdout)
	fmt.Fprintf(w, "copy %.3f add %.3f\n", copyRate, addRate)
	_ = w.Flush()
	return exitOK
}

// streamRate runs f for about d and returns bytes moved per second, in GB/s.
func streamRate(d time.Duration, bytes int, f func()) float64 {
	t0 := time.Now()
	k := 0
	for k == 0 || time.Since(t0) < d {
		f()
		k++
	}
	return float64(k) * float64(bytes) / time.Since(t0).Seconds() / 1e9
}
