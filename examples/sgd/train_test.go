package main

import (
	"context"
	"errors"
	"io"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/ringo-ml/ringo/collective"
	rt "github.com/ringo-ml/ringo/runtime"
)

// mustConfig parses args as the command line.
func mustConfig(t *testing.T, args ...string) *config {
	t.Helper()
	cfg, err := parseFlags(args, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// trainInProc trains with n goroutine workers over in-process pipes and
// returns rank 0's records and result.
func trainInProc(t *testing.T, cfg *config, n int) ([]record, *result) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	comms, err := collective.NewInProc(ctx, n, collective.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var recs []record
	results := make([]*result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, c := range comms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			emit := func(r record) {
				mu.Lock()
				defer mu.Unlock()
				recs = append(recs, r)
			}
			results[i], errs[i] = trainWorker(ctx, cfg, c, false, emit, func(string, ...any) {})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", i, err)
		}
	}
	for i, r := range results[1:] {
		if d := maxRelDiff(r.Params, results[0].Params); d != 0 {
			t.Fatalf("rank %d's weights differ from rank 0's by %g: replicas diverged", i+1, d)
		}
	}
	return recs, results[0]
}

// maxRelDiff is the largest |a_i − b_i| relative to the largest |b_i|.
func maxRelDiff(a, b []float64) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var scale, worst float64
	for i := range b {
		scale = math.Max(scale, math.Abs(b[i]))
		worst = math.Max(worst, math.Abs(a[i]-b[i]))
	}
	return worst / scale
}

// checkSpan: a rank runs its steps one after another, so the sum of its
// step times cannot exceed the wall-clock span from the first step's start
// to the last one's end; nor can the means over ranks.
func checkSpan(t *testing.T, r record) {
	t.Helper()
	if r.Steps <= 0 || !(r.StepMs > 0) || !(r.SpanS > 0) {
		t.Errorf("epoch %d: no timings: steps %d, step %gms, span %gs", r.Epoch, r.Steps, r.StepMs, r.SpanS)
		return
	}
	if sum := float64(r.Steps) * r.StepMs / 1000; sum > r.SpanS*(1+1e-9) {
		t.Errorf("epoch %d with %d workers: %d steps of %.3gms make %.3gs, more than the %.3gs they took",
			r.Epoch, r.Workers, r.Steps, r.StepMs, sum, r.SpanS)
	}
}

func epochs(recs []record) []record {
	var out []record
	for _, r := range recs {
		if r.Kind == "epoch" {
			out = append(out, r)
		}
	}
	return out
}

// TestSameLossAnyWorkers is the example's promise: with the same global
// batch and seed, the loss after every epoch with 2 or 4 workers equals
// the 1-worker loss up to float64 summation order (asserted: 1e-5
// relative; measured: about 1e-15), in both modes, with logistic
// regression and the mlp, with and without overlapping communication.
func TestSameLossAnyWorkers(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"allreduce-mlp", []string{"-mode", "allreduce", "-model", "mlp"}},
		{"allreduce-mlp-overlap", []string{"-mode", "allreduce", "-model", "mlp", "-overlap", "-bucket", "1K"}},
		{"ps-mlp", []string{"-mode", "ps", "-model", "mlp"}},
		{"allreduce-logreg", []string{"-mode", "allreduce", "-model", "logreg"}},
		{"ps-logreg", []string{"-mode", "ps", "-model", "logreg"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := mustConfig(t, append([]string{"-hidden", "16", "-train", "512", "-test", "256", "-batch", "64", "-epochs", "2", "-lr", "0.1"}, tc.args...)...)
			base, baseRes := trainInProc(t, cfg, 1)
			be := epochs(base)
			if len(be) != 2 || baseRes.Step != 16 {
				t.Fatalf("1 worker: %d epochs, %d steps; want 2 and 16", len(be), baseRes.Step)
			}
			if be[1].Loss >= be[0].Loss || be[1].TrainAcc < 0.6 {
				t.Errorf("1 worker did not learn: %+v", be)
			}
			for _, n := range []int{2, 4} {
				recs, res := trainInProc(t, cfg, n)
				ep := epochs(recs)
				if len(ep) != len(be) {
					t.Fatalf("%d workers: %d epochs, want %d", n, len(ep), len(be))
				}
				worst := 0.0
				for i := range ep {
					if ep[i].Workers != n {
						t.Errorf("epoch %d ran with %d workers, want %d", ep[i].Epoch, ep[i].Workers, n)
					}
					checkSpan(t, ep[i])
					worst = math.Max(worst, math.Abs(ep[i].Loss-be[i].Loss)/be[i].Loss)
				}
				if worst > 1e-5 {
					t.Errorf("%d workers: loss differs from 1 worker's by %g relative", n, worst)
				}
				if d := maxRelDiff(res.Params, baseRes.Params); d > 1e-9 {
					t.Errorf("%d workers: weights differ from 1 worker's by %g relative", n, d)
				}
				t.Logf("%d workers: loss within %.1e, weights within %.1e of 1 worker's", n, worst, maxRelDiff(res.Params, baseRes.Params))
			}
		})
	}
}

// TestStepAllOrNothing: a worker that takes part in the first gradient
// bucket's AllReduce and then leaves makes the other's step fail, and
// that step changes nothing: weights, velocity and step count are as
// before it, although half of the gradient had been averaged.
func TestStepAllOrNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := mustConfig(t, "-hidden", "16", "-train", "256", "-test", "64", "-batch", "32", "-bucket", "1K")
	comms, err := collective.NewInProc(ctx, 2, collective.Config{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := rt.New(rt.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w, err := newWorker(cfg, r, comms[0], t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if len(w.buckets) < 2 {
		t.Fatalf("%d buckets; the test needs 2 or more", len(w.buckets))
	}
	w.model.init(w.params, cfg.seed)
	for i := range w.velocity {
		w.velocity[i] = float64(i%7) * 1e-3
	}
	params, velocity := clone(w.params), clone(w.velocity)

	// The peer averages the first bucket, then closes.
	done := make(chan error, 1)
	go func() {
		b := w.buckets[0]
		err := comms[1].AllReduce(ctx, make([]float64, b.Hi-b.Lo), collective.Avg)
		_ = comms[1].Close()
		done <- err
	}()
	err = w.runStep(ctx)
	if perr := <-done; perr != nil {
		t.Fatalf("the peer's AllReduce of the first bucket: %v", perr)
	}
	if err == nil {
		t.Fatal("the step succeeded without its peer")
	}
	if !errors.Is(err, collective.ErrPeerLost) {
		t.Errorf("error %v, want one wrapping ErrPeerLost", err)
	}
	if w.step != 0 || maxRelDiff(w.params, params) != 0 || maxRelDiff(w.velocity, velocity) != 0 {
		t.Errorf("the failed step changed the state: step %d, weights moved %g, velocity moved %g",
			w.step, maxRelDiff(w.params, params), maxRelDiff(w.velocity, velocity))
	}
	_ = comms[0].Close()
}
