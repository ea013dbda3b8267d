package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// stopGrace is how long the workers may take to stop by themselves (after
// a worker failed, or a Ctrl-C was forwarded) before the launcher kills
// them.
const stopGrace = 20 * time.Second

// runLauncher runs the group once per worker count in -sizes, each a set
// of processes of this binary joined by gossip on loopback, prints every
// epoch as it ends, then the speedup table, and writes -json and -plot.
func runLauncher(ctx context.Context, cfg *config, stdout, stderr io.Writer) int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "sgd: finding this program to start the workers: %v\n", err)
		return exitFailed
	}
	fmt.Fprint(stdout, describeRun(cfg))
	var runs []*runSummary
	failed := false
	for _, n := range cfg.sizes {
		launch := launchGroup
		if cfg.mode == "downpour" {
			launch = launchDownpour
		}
		s, err := launch(ctx, cfg, exe, n, stdout, stderr)
		if s != nil {
			runs = append(runs, s)
		}
		if err != nil {
			fmt.Fprintf(stderr, "sgd: the run with %d workers failed: %v\n", n, err)
			failed = true
			break
		}
	}
	sc := analyse(runs, cfg.tol, cfg.exact())
	sc.print(stdout, cfg)
	if !sc.Matches {
		fmt.Fprintf(stdout, "FAIL: a run's loss differs from the 1-worker run's by more than -tol %g\n", cfg.tol)
		failed = true
	}
	if cfg.jsonOut != "" {
		if err := sc.writeJSON(cfg.jsonOut, cfg); err != nil {
			fmt.Fprintf(stderr, "sgd: -json: %v\n", err)
			failed = true
		}
	}
	if cfg.plot != "" && len(runs) > 0 {
		if err := writePlot(cfg.plot, cfg, sc); err != nil {
			fmt.Fprintf(stderr, "sgd: -plot: %v\n", err)
			failed = true
		} else {
			fmt.Fprintf(stdout, "wrote %s\n", cfg.plot)
		}
	}
	if failed {
		return exitFailed
	}
	return exitOK
}

// workerArgs are the flags of a worker of a group of n on loopback.
func workerArgs(cfg *config, n int, group, seed, bind string) []string {
	a := []string{
		"-join", seed, "-bind", bind, "-group", group, "-records",
		"-workers", strconv.Itoa(n), "-procs", strconv.Itoa(cfg.procs),
		"-mode", cfg.mode, "-model", cfg.model, "-hidden", strconv.Itoa(cfg.hidden),
		"-epochs", strconv.Itoa(cfg.epochs), "-batch", strconv.Itoa(cfg.batch),
		"-lr", strconv.FormatFloat(cfg.lr, 'g', -1, 64), "-momentum", strconv.FormatFloat(cfg.momentum, 'g', -1, 64),
		"-seed", strconv.FormatUint(cfg.seed, 10), "-train", strconv.Itoa(cfg.trainN), "-test", strconv.Itoa(cfg.testN),
		"-bucket", strconv.Itoa(cfg.bucketBytes), "-overlap=" + strconv.FormatBool(cfg.overlap),
		"-transport", cfg.transport.String(), "-sync-every", strconv.Itoa(cfg.syncEvery),
		"-push-every", strconv.Itoa(cfg.pushEvery), "-fetch-every", strconv.Itoa(cfg.fetchEvery),
		"-servers", strconv.Itoa(cfg.servers),
	}
	if cfg.verbose {
		a = append(a, "-v")
	}
	if cfg.ckptDir != "" {
		a = append(a, "-checkpoint", checkpointDir(cfg, n), "-checkpoint-every", strconv.Itoa(cfg.ckptEvery))
		if cfg.killRank >= 0 && n == cfg.workers {
			a = append(a, "-kill", fmt.Sprintf("%d@%d", cfg.killRank, cfg.killStep))
		}
	}
	return a
}

// checkpointDir is the run of n workers' checkpoint directory: -checkpoint
// itself when only one count runs, else a subdirectory per count.
func checkpointDir(cfg *config, n int) string {
	if len(cfg.sizes) == 1 {
		return cfg.ckptDir
	}
	return filepath.Join(cfg.ckptDir, fmt.Sprintf("workers-%d", n))
}

// proc is one worker process.
type proc struct {
	idx  int
	cmd  *exec.Cmd
	err  error  // Wait's error, once exited
	last string // its last line on stderr
}

// launchGroup runs n workers to the end and returns what rank 0 reported.
func launchGroup(ctx context.Context, cfg *config, exe string, n int, stdout, stderr io.Writer) (*runSummary, error) {
	seed, err := freeLoopbackAddr()
	if err != nil {
		return nil, fmt.Errorf("finding a free port for the group's seed: %w", err)
	}
	var nonce [4]byte
	_, _ = rand.Read(nonce[:])
	group := fmt.Sprintf("sgd-%d-%d-%s", os.Getpid(), n, hex.EncodeToString(nonce[:]))
	plural := "s"
	if n == 1 {
		plural = ""
	}
	fmt.Fprintf(stdout, "\n== %d worker%s ==\n", n, plural)

	sum := &runSummary{Workers: n}
	tbl := newTable(stdout, cfg)
	var mu sync.Mutex // sum and tbl: records come from any worker
	errw := &lockedWriter{w: stderr}
	records := func(r record) {
		mu.Lock()
		defer mu.Unlock()
		switch r.Kind {
		case "start":
			sum.Start = r
		case "epoch":
			sum.addEpoch(r)
		case "done":
			sum.Done = &r
		}
		tbl.record(r)
	}

	exited := make(chan *proc, n)
	var procs []*proc
	for i := range n {
		bind := "127.0.0.1:0"
		if i == 0 {
			bind = seed
		}
		p, err := startWorker(exe, i, workerArgs(cfg, n, group, seed, bind), records, errw, exited)
		if err != nil {
			for _, q := range procs {
				_ = q.cmd.Process.Kill()
			}
			for range procs {
				<-exited
			}
			return nil, fmt.Errorf("starting worker %d: %w", i, err)
		}
		procs = append(procs, p)
	}

	// Wait for every worker. After the first unexpected failure (or a
	// Ctrl-C), the others get stopGrace to stop by themselves.
	var grace <-chan time.Time
	var failures []string
	expectKill := cfg.killRank >= 0 && n == cfg.workers
	ctxDone := ctx.Done()
	for range n {
		var p *proc
		for p == nil {
			select {
			case p = <-exited:
			case <-ctxDone:
				ctxDone = nil
				for _, q := range procs {
					_ = q.cmd.Process.Signal(syscall.SIGTERM)
				}
				grace = time.After(stopGrace)
			case <-grace:
				for _, q := range procs {
					_ = q.cmd.Process.Kill()
				}
				grace = nil
			}
		}
		if p.err == nil {
			continue
		}
		var ee *exec.ExitError
		if expectKill && errors.As(p.err, &ee) && isSIGKILL(ee) {
			expectKill = false // the -kill hook: the others recover
			sum.Lost = append(sum.Lost, fmt.Sprintf("worker %d: %v", p.idx, p.err))
			fmt.Fprintf(errw, "sgd: worker process %d died (%v), as -kill asked\n", p.idx, p.err)
			continue
		}
		last := p.last
		if last == "" {
			last = "(nothing on stderr)"
		}
		failures = append(failures, fmt.Sprintf("worker %d: %v: %s", p.idx, p.err, last))
		if grace == nil && ctx.Err() == nil {
			grace = time.After(stopGrace)
		}
	}
	switch {
	case ctx.Err() != nil:
		return sum, fmt.Errorf("interrupted")
	case len(failures) > 0:
		return sum, errors.New(strings.Join(failures, "; "))
	case sum.Done == nil:
		return sum, errors.New("the workers exited without finishing")
	}
	return sum, nil
}

// isSIGKILL reports whether the process was killed by SIGKILL.
func isSIGKILL(ee *exec.ExitError) bool {
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// startWorker starts worker idx: its JSON records go to records, its
// stderr lines to errw prefixed with "[worker idx] ", and exited receives
// it once it has exited.
func startWorker(exe string, idx int, args []string, records func(record), errw io.Writer, exited chan<- *proc) (*proc, error) {
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), "QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING=true")
	cmd.SysProcAttr = childAttr()
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	errp, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{idx: idx, cmd: cmd}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var r record
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				fmt.Fprintf(errw, "[worker %d] (not a record) %s\n", idx, sc.Text())
				continue
			}
			records(r)
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	go func() {
		defer wg.Done()
		br := bufio.NewReader(errp)
		for {
			line, err := br.ReadString('\n')
			if line = strings.TrimRight(line, "\r\n"); strings.TrimSpace(line) != "" {
				p.last = line
				fmt.Fprintf(errw, "[worker %d] %s\n", idx, line)
			}
			if err != nil {
				return
			}
		}
	}()
	go func() {
		wg.Wait() // the pipes are drained before Wait
		p.err = cmd.Wait()
		exited <- p
	}()
	return p, nil
}

// freeLoopbackAddr returns a loopback address whose port is free right
// now for both TCP and UDP, as a gossip address must be.
func freeLoopbackAddr() (string, error) {
	var last error
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := l.Addr().String()
		u, err := net.ListenPacket("udp", addr)
		_ = l.Close()
		if err != nil {
			last = err
			continue
		}
		_ = u.Close()
		return addr, nil
	}
	return "", last
}
