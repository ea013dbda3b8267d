package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
)

// describeRun is the launcher's first line: what is trained, on what.
func describeRun(cfg *config) string {
	model, data := "mlp (one hidden layer of "+fmt.Sprint(cfg.hidden)+" ReLU units)", "digits"
	switch cfg.model {
	case "logreg":
		model = "logistic regression"
	case "hashed":
		model, data = fmt.Sprintf("logistic regression on %d hashed features", hashedDim), "documents"
	}
	how := modeText[cfg.mode]
	switch cfg.mode {
	case "average":
		if cfg.syncEvery > 0 {
			how = fmt.Sprintf("local SGD: each worker trains its own model, the models averaged with AllReduce(Avg) every %d steps", cfg.syncEvery)
		}
	case "downpour":
		how += fmt.Sprintf(" (push every %d, fetch every %d steps, %d shard(s))", cfg.pushEvery, cfg.fetchEvery, cfg.servers)
	}
	return fmt.Sprintf("sgd: %s on %d synthetic %s (%d held out, seed %d)\n"+
		"sgd: global batch %d (%d steps an epoch), SGD lr %g momentum %g, %d epochs\n"+
		"sgd: mode %s: %s\n",
		model, cfg.trainN, data, cfg.testN, cfg.seed, cfg.batch, cfg.stepsPerEpoch(), cfg.lr, cfg.momentum, cfg.epochs, cfg.mode, how)
}

// modeText says in a line what each mode does.
var modeText = map[string]string{
	"allreduce": "synchronous: gradients averaged with AllReduce(Avg) every step, every replica applies the update",
	"ps":        "synchronous parameter server: gradients pushed with Reduce(Sum) to rank 0, weights pulled with Broadcast",
	"average":   "parallelized SGD: each worker trains its own model on its share, the models averaged once at the end",
	"downpour":  "asynchronous parameter server: workers fetch and push on their own clocks, the server applies pushes as they come",
	"hogwild":   "lock-free: every worker adds its updates into one shared vector, component by component, atomically",
}

// table prints records as people read them.
type table struct {
	w      io.Writer
	header bool
}

func newTable(w io.Writer, _ *config) *table { return &table{w: w} }

func (t *table) record(r record) {
	switch r.Kind {
	case "start":
		what := "gradient buckets " + r.Buckets
		if r.Mode == "downpour" {
			what = r.Buckets
		}
		fmt.Fprintf(t.w, "%s, %d parameters; %s over %s; %s\n", r.Model, r.Params, workersLabel(r.Workers), r.DataPath, what)
	case "epoch":
		if !t.header {
			fmt.Fprintf(t.w, "%5s %8s %9s %9s %8s %8s %8s %7s\n", "epoch", "loss", "train acc", "test acc", "step", "compute", "comm", "workers")
			t.header = true
		}
		fmt.Fprintf(t.w, "%5d %8.5f %8.2f%% %8.2f%% %6.2fms %6.2fms %6.2fms %7d\n",
			r.Epoch, r.Loss, 100*r.TrainAcc, 100*r.TestAcc, r.StepMs, r.ComputeMs, r.CommMs, r.Workers)
	case "done":
		s := ""
		if r.Restores > 0 {
			s = fmt.Sprintf(", after %d restore(s) of a checkpoint", r.Restores)
		}
		if len(r.Lost) > 0 {
			s += fmt.Sprintf("; lost worker(s) %v, the others went on", r.Lost)
		}
		fmt.Fprintf(t.w, "done: %d steps applied, %s at the end (group epoch %d)%s\n", r.Step, workersLabel(r.Workers), r.GroupEp, s)
	}
}

// runSummary is one launch of the group: its epochs and its figures.
type runSummary struct {
	Workers   int      `json:"workers"`
	Start     record   `json:"start"`
	Epochs    []record `json:"epochs"`
	Done      *record  `json:"done,omitempty"`
	Lost      []string `json:"lost,omitempty"` // workers that died, and how
	StepMs    float64  `json:"step_ms"`        // median over epochs
	ComputeMs float64  `json:"compute_ms"`
	CommMs    float64  `json:"comm_ms"`
	// SpanMs is the wall-clock time of the training steps per step,
	// measured from the first step's start to the last one's end, so it
	// includes whatever happens between steps; speedups are its ratios.
	SpanMs     float64 `json:"span_ms"`
	Speedup    float64 `json:"speedup"`
	Efficiency float64 `json:"efficiency"`
	// LossRelDiff is the largest relative difference between this run's
	// loss after an epoch and the 1-worker run's; -1 without a 1-worker
	// run.
	LossRelDiff float64 `json:"loss_rel_diff"`
}

// addEpoch keeps the newest record of each epoch (an epoch run again
// after a restore replaces the first one).
func (s *runSummary) addEpoch(r record) {
	for i, e := range s.Epochs {
		if e.Epoch == r.Epoch {
			s.Epochs[i] = r
			return
		}
	}
	s.Epochs = append(s.Epochs, r)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// finish computes the medians of the step times.
func (s *runSummary) finish() {
	var step, comp, comm, span []float64
	for _, e := range s.Epochs {
		if e.Steps > 0 {
			step, comp, comm = append(step, e.StepMs), append(comp, e.ComputeMs), append(comm, e.CommMs)
			span = append(span, 1000*e.SpanS/float64(e.Steps))
		}
	}
	s.StepMs, s.ComputeMs, s.CommMs, s.SpanMs = median(step), median(comp), median(comm), median(span)
}

// lossRelDiff is the largest relative difference between the losses of a
// and base after the epochs both have.
func lossRelDiff(a, base *runSummary) float64 {
	worst := 0.0
	for _, e := range a.Epochs {
		for _, b := range base.Epochs {
			if b.Epoch == e.Epoch {
				worst = math.Max(worst, math.Abs(e.Loss-b.Loss)/math.Abs(b.Loss))
			}
		}
	}
	return worst
}

// scaling is the speedup table's analysis.
type scaling struct {
	Runs []*runSummary `json:"runs"`
	// SerialFraction is Amdahl's s fitted to the measured speedups:
	// speedup(n) = 1 / (s + (1-s)/n). -1 when there is nothing to fit.
	SerialFraction float64 `json:"serial_fraction"`
	Tolerance      float64 `json:"tolerance"`
	Matches        bool    `json:"losses_match"`
}

// analyse fills in speedups, efficiencies, loss differences and the
// Amdahl fit, against the 1-worker run when there is one (else the
// smallest run, counted as linear up to its size).
//
// Only the synchronous modes (exact) must match the 1-worker run's losses;
// the others report the difference.
func analyse(runs []*runSummary, tol float64, exact bool) *scaling {
	sc := &scaling{Runs: runs, SerialFraction: -1, Tolerance: tol, Matches: true}
	var base *runSummary
	for _, r := range runs {
		r.finish()
		if base == nil && len(r.Epochs) > 0 && r.SpanMs > 0 {
			base = r
		}
	}
	var ns, ss []float64
	for _, r := range runs {
		r.LossRelDiff = -1
		if base == nil || len(r.Epochs) == 0 || !(r.SpanMs > 0) {
			continue
		}
		r.Speedup = float64(base.Workers) * base.SpanMs / r.SpanMs
		r.Efficiency = r.Speedup / float64(r.Workers)
		if base.Workers == 1 {
			r.LossRelDiff = lossRelDiff(r, base)
			if exact && !(r.LossRelDiff <= tol) {
				sc.Matches = false
			}
		}
		if r.Workers > 1 {
			ns, ss = append(ns, float64(r.Workers)), append(ss, r.Speedup)
		}
	}
	if len(ns) > 0 {
		sc.SerialFraction = amdahlFit(ns, ss)
	}
	return sc
}

// amdahlFit returns the serial fraction s that best fits the speedups
// ss at worker counts ns (least squares on 1/speedup − 1/n = s·(1 − 1/n),
// Amdahl's law made linear in s), within [0, 1].
func amdahlFit(ns, ss []float64) float64 {
	var num, den float64
	for i, n := range ns {
		x := 1 - 1/n
		num += (1/ss[i] - 1/n) * x
		den += x * x
	}
	if den == 0 {
		return -1
	}
	return math.Min(1, math.Max(0, num/den))
}

// amdahl is the speedup Amdahl's law predicts at n workers for serial
// fraction s.
func amdahl(s, n float64) float64 { return 1 / (s + (1-s)/n) }

// print writes the speedup table.
func (sc *scaling) print(w io.Writer, cfg *config) {
	if len(sc.Runs) < 2 {
		return // nothing to compare
	}
	base := "1 worker"
	if sc.Runs[0].Workers != 1 {
		base = fmt.Sprintf("%d workers, counted as %dx", sc.Runs[0].Workers, sc.Runs[0].Workers)
	}
	fmt.Fprintf(w, "\nspeedup against %s (same global batch and seed; step times: medians over epochs of the means over workers; epoch: the wall-clock time of an epoch's steps, whose ratio is the speedup)\n", base)
	fmt.Fprintf(w, "%7s %8s %8s %8s %8s %8s %10s %16s %8s\n", "workers", "step", "compute", "comm", "epoch", "speedup", "efficiency", "loss vs 1 worker", "test acc")
	for _, r := range sc.Runs {
		if len(r.Epochs) == 0 {
			fmt.Fprintf(w, "%7d  (failed)\n", r.Workers)
			continue
		}
		diff := "-"
		if r.LossRelDiff >= 0 && r.Workers > 1 {
			diff = fmt.Sprintf("%.1e", r.LossRelDiff)
		}
		last := r.Epochs[len(r.Epochs)-1]
		fmt.Fprintf(w, "%7d %6.2fms %6.2fms %6.2fms %7.2fs %7.2fx %9.0f%% %16s %7.2f%%\n",
			r.Workers, r.StepMs, r.ComputeMs, r.CommMs, r.SpanMs*float64(cfg.stepsPerEpoch())/1000,
			r.Speedup, 100*r.Efficiency, diff, 100*last.TestAcc)
	}
	if sc.SerialFraction >= 0 {
		limit := "no limit"
		if sc.SerialFraction > 0 {
			limit = fmt.Sprintf("at most %.1fx with any number of workers", 1/sc.SerialFraction)
		}
		fmt.Fprintf(w, "Amdahl fit: serial fraction %.3f (%s)\n", sc.SerialFraction, limit)
	}
}

// writeJSON writes the analysis to file.
func (sc *scaling) writeJSON(file string, cfg *config) error {
	out := struct {
		Mode      string   `json:"mode"`
		Model     string   `json:"model"`
		Batch     int      `json:"batch"`
		Epochs    int      `json:"epochs"`
		Seed      uint64   `json:"seed"`
		Procs     int      `json:"procs"`
		Scaling   *scaling `json:"scaling"`
		Generated string   `json:"generated_by"`
	}{cfg.mode, cfg.model, cfg.batch, cfg.epochs, cfg.seed, cfg.procs, sc, "go run ./examples/sgd " + strings.Join(os.Args[1:], " ")}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(file, append(b, '\n'), 0o644)
}
