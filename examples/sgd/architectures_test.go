package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ringo-ml/ringo/internal/shm"
)

// asyncSmall is a small problem on which the asynchronous and
// communication-avoiding modes learn: larger shares of the batch per
// worker than small's, and a gentler step.
var asyncSmall = []string{"-hidden", "32", "-train", "1024", "-test", "512", "-batch", "128", "-epochs", "4", "-lr", "0.05"}

// TestAsyncModes runs parallelized SGD, Hogwild! and Downpour as a user
// does, with 1 and 4 worker processes: each learns, and its 4-worker
// accuracy is close to its 1-worker run's (the same data and seed).
func TestAsyncModes(t *testing.T) {
	for _, mode := range []string{"average", "hogwild", "downpour"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			js := filepath.Join(dir, "out.json")
			args := append([]string{"-mode", mode, "-workers", "4", "-sizes", "1,4", "-json", js}, asyncSmall...)
			stdout, stderr, code := runSGD(t, args...)
			if code != 0 {
				t.Fatalf("exit status %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
			}
			sc := readJSON(t, js)
			if len(sc.Runs) != 2 {
				t.Fatalf("%d runs, want 2\n%s", len(sc.Runs), stdout)
			}
			var acc [2]float64
			for i, r := range sc.Runs {
				if len(r.Epochs) == 0 || r.Done == nil {
					t.Fatalf("%d workers: %d epochs, done %+v", r.Workers, len(r.Epochs), r.Done)
				}
				last := r.Epochs[len(r.Epochs)-1]
				acc[i] = last.TestAcc
				// Downpour's final state depends on the timing of the
				// pushes (72-89% over eight runs of this problem with 4
				// workers on the 2-core machine); chance is 10%.
				if last.TestAcc < 0.6 || (mode != "downpour" && (last.TestAcc < 0.75 || last.Loss > r.Epochs[0].Loss)) {
					t.Errorf("%d workers did not learn: epochs %+v", r.Workers, r.Epochs)
				}
				if last.WallS <= 0 {
					t.Errorf("%d workers: no wall time in %+v", r.Workers, last)
				}
			}
			if mode != "downpour" && acc[1] < acc[0]-0.05 {
				t.Errorf("4 workers reached %.2f%%, 1 worker %.2f%%", 100*acc[1], 100*acc[0])
			}
			if mode == "downpour" && !strings.Contains(stdout, "parameter-server shard") {
				t.Errorf("stdout does not say where the parameters live:\n%s", stdout)
			}
		})
	}
}

// TestDownpourLosesAWorker: a Downpour worker SIGKILLed mid-run takes
// nothing with it: the server (this launcher's process) and the other
// three workers (processes of their own) finish, and the report names
// the lost worker.
func TestDownpourLosesAWorker(t *testing.T) {
	args := append([]string{"-mode", "downpour", "-workers", "4", "-sizes", "4", "-servers", "2", "-kill", "1@10"}, asyncSmall...)
	stdout, stderr, code := runSGD(t, args...)
	if code != 0 {
		t.Fatalf("exit status %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"-kill: SIGKILL in step 10", "as -kill asked; the others go on"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if !strings.Contains(stdout, "3 workers at the end") || !strings.Contains(stdout, "lost worker(s) [1], the others went on") {
		t.Errorf("stdout lacks the end of the run without worker 1:\n%s", stdout)
	}
}

// TestAverageDeterministic: parallelized SGD and local SGD are exact
// arithmetic between averages: two runs give the same bits, and every
// rank ends with the same model.
func TestAverageDeterministic(t *testing.T) {
	for _, every := range []string{"0", "4"} {
		cfg := mustConfig(t, append([]string{"-mode", "average", "-sync-every", every}, small...)...)
		_, a := trainInProc(t, cfg, 3)
		_, b := trainInProc(t, cfg, 3)
		if d := maxRelDiff(a.Params, b.Params); d != 0 {
			t.Errorf("-sync-every %s: two runs differ by %g", every, d)
		}
	}
}

// TestHogwildInProcess runs Hogwild! with 4 goroutine ranks in one
// process, where the race detector sees every access to the shared
// vector: under go test -race it reports nothing, because the vector is
// touched only through sync/atomic. The model still learns.
func TestHogwildInProcess(t *testing.T) {
	if !shm.Supported {
		t.Skip("no shared memory on this system")
	}
	cfg := mustConfig(t, append([]string{"-mode", "hogwild"}, asyncSmall...)...)
	recs, _ := trainInProc(t, cfg, 4)
	ep := epochs(recs)
	if len(ep) != cfg.epochs || ep[len(ep)-1].TestAcc < 0.75 {
		t.Fatalf("hogwild did not learn: %+v", ep)
	}
}

// TestSharedAdd: concurrent adds into the shared vector are atomic per
// component: none is lost, whatever the interleaving.
func TestSharedAdd(t *testing.T) {
	if !shm.Supported {
		t.Skip("no shared memory on this system")
	}
	const n, workers, rounds = 64, 4, 500
	seg, err := shm.Create(hogwildHeader + 8*n)
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Close()
	_ = seg.Unlink()
	p := &sharedParams{seg: seg}
	p.bits = bitsOf(seg, n)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			d := make([]float64, n)
			for i := range d {
				d[i] = float64(w + 1)
			}
			d[w] = 0 // a zero is not written
			for range rounds {
				p.add(1, d)
			}
		})
	}
	wg.Wait()
	got := make([]float64, n)
	p.snapshot(got)
	for i, v := range got {
		want := float64(rounds * (1 + 2 + 3 + 4))
		if i < workers {
			want -= float64(rounds * (i + 1))
		}
		if v != want {
			t.Fatalf("component %d: %v, want %v: an update was lost", i, v, want)
		}
	}
}

// TestCompare runs the comparison on a small problem: every mode with 1
// and 2 workers, the table, the answer, the JSON and the plot.
func TestCompare(t *testing.T) {
	dir := t.TempDir()
	js, svg := filepath.Join(dir, "cmp.json"), filepath.Join(dir, "cmp.svg")
	args := append([]string{"-compare", "-workers", "2", "-json", js, "-plot", svg}, asyncSmall...)
	stdout, stderr, code := runSGD(t, args...)
	if code != 0 {
		t.Fatalf("exit status %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range append(modes, "Will parallelization help?", "wrote "+svg) {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Outcomes []outcome `json:"outcomes"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Outcomes) != 2*len(modes) {
		t.Fatalf("%d outcomes, want %d", len(out.Outcomes), 2*len(modes))
	}
	for _, o := range out.Outcomes {
		if o.TestAcc < 0.6 || !(o.TrainS > 0) || math.IsNaN(o.Speedup) {
			t.Errorf("%s with %d workers: %+v", o.Mode, o.Workers, o)
		}
	}
	if p, err := os.ReadFile(svg); err != nil || !bytes.Contains(p, []byte("<svg")) {
		t.Errorf("no plot (%v)", err)
	}
}

// TestDownpourServe: the Downpour server and its workers started by hand,
// as on separate hosts: sgd -mode downpour -serve on one, sgd -mode
// downpour -join on the others.
func TestDownpourServe(t *testing.T) {
	addr, err := freeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	server := exec.CommandContext(ctx, sgdBin, append([]string{"-mode", "downpour", "-serve", "-bind", addr, "-workers", "2", "-servers", "2"}, asyncSmall...)...)
	var out, errb bytes.Buffer
	server.Stdout, server.Stderr = &out, &errb
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	werrs := make([]error, 2)
	for r := range 2 {
		wg.Go(func() {
			args := append([]string{"-mode", "downpour", "-join", addr, "-rank", fmt.Sprint(r), "-workers", "2", "-servers", "2"}, asyncSmall...)
			if b, err := exec.CommandContext(ctx, sgdBin, args...).CombinedOutput(); err != nil {
				werrs[r] = fmt.Errorf("worker %d: %v\n%s", r, err, b)
			}
		})
	}
	wg.Wait()
	if err := server.Wait(); err != nil {
		t.Fatalf("server: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	for _, err := range werrs {
		if err != nil {
			t.Error(err)
		}
	}
	if !strings.Contains(out.String(), "done: 32 steps applied, 2 workers at the end") {
		t.Errorf("the server's report lacks the end of the run:\n%s", out.String())
	}
}

// TestHogwildSparse: Hogwild! on its own ground, the hashed sparse
// model with plain SGD, 4 goroutine workers under the race detector: it
// learns as the synchronous run does.
func TestHogwildSparse(t *testing.T) {
	if !shm.Supported {
		t.Skip("no shared memory on this system")
	}
	args := []string{"-model", "hashed", "-momentum", "0", "-lr", "2", "-train", "2048", "-test", "512", "-batch", "128", "-epochs", "3"}
	syncRecs, _ := trainInProc(t, mustConfig(t, args...), 1)
	cfg := mustConfig(t, append([]string{"-mode", "hogwild"}, args...)...)
	recs, _ := trainInProc(t, cfg, 4)
	want, got := epochs(syncRecs), epochs(recs)
	if len(got) != cfg.epochs {
		t.Fatalf("%d epochs", len(got))
	}
	// Lock-free updates race, and how often they collide depends on the
	// machine's load: over 30 runs on 2 cores hogwild ended between 79.9%
	// and 85.4% against 84.4% for one synchronous worker. The bound leaves
	// room for a busier machine and still fails a run that stops learning
	// (after one epoch the synchronous worker is near 70%).
	a, b := want[len(want)-1].TestAcc, got[len(got)-1].TestAcc
	if b < 0.7 || b < a-0.10 {
		t.Errorf("hogwild reached %.2f%%, one synchronous worker %.2f%%", 100*b, 100*a)
	}
}
