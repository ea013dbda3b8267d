package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// compareTarget is the test accuracy whose time and steps the comparison
// reports.
const compareTarget = 0.95

// outcome is one mode with one worker count, as the comparison reads it.
type outcome struct {
	Mode       string      `json:"mode"`
	Workers    int         `json:"workers"`
	TestAcc    float64     `json:"test_acc"`    // after the last epoch
	TrainS     float64     `json:"train_s"`     // wall time of the training, seconds
	TargetS    float64     `json:"target_s"`    // when the test accuracy first reached compareTarget (at an epoch's end); -1 never
	TargetStep int         `json:"target_step"` // and after how many steps
	MovedMB    float64     `json:"moved_mb"`    // per worker, sent and received
	StaleMed   float64     `json:"stale_med"`   // downpour
	StaleMax   float64     `json:"stale_max"`
	Speedup    float64     `json:"speedup"` // TrainS of the mode's 1-worker run ÷ TrainS
	Lost       int         `json:"lost"`
	Run        *runSummary `json:"-"`
}

// summarise reads an outcome from a run's records.
func summarise(mode string, r *runSummary) outcome {
	o := outcome{Mode: mode, Workers: r.Workers, TargetS: -1, Run: r}
	var stale []float64
	for _, e := range r.Epochs {
		if o.TargetS < 0 && e.TestAcc >= compareTarget {
			o.TargetS, o.TargetStep = e.WallS, e.Step
		}
		if e.StaleMax > 0 || e.StaleMed > 0 {
			stale = append(stale, e.StaleMed)
			o.StaleMax = max(o.StaleMax, e.StaleMax)
		}
	}
	if n := len(r.Epochs); n > 0 {
		last := r.Epochs[n-1]
		o.TestAcc, o.TrainS, o.MovedMB = last.TestAcc, last.WallS, last.MovedMB
	}
	o.StaleMed = median(stale)
	if r.Done != nil {
		o.Lost = len(r.Done.Lost)
	}
	return o
}

// runCompare runs every mode for every worker count in -sizes on the same
// data and seed, and prints the comparison: what each architecture
// reaches, how fast, at what cost in traffic, and whether more workers
// help.
func runCompare(ctx context.Context, cfg *config, stdout, stderr io.Writer) int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "sgd: finding this program to start the workers: %v\n", err)
		return exitFailed
	}
	fmt.Fprintf(stdout, "sgd -compare: %d modes × worker counts %v, %d epochs each; the runs' own tables are not shown\n", len(modes), cfg.sizes, cfg.epochs)
	var all []outcome
	for _, mode := range modes {
		c := *cfg
		c.mode = mode
		for _, n := range cfg.sizes {
			launch := launchGroup
			if mode == "downpour" {
				launch = launchDownpour
			}
			fmt.Fprintf(stdout, "  %-9s %s ...", mode, workersLabel(n))
			r, err := launch(ctx, &c, exe, n, io.Discard, stderr)
			if err != nil {
				fmt.Fprintf(stdout, " failed\n")
				fmt.Fprintf(stderr, "sgd: %s with %d workers: %v\n", mode, n, err)
				return exitFailed
			}
			o := summarise(mode, r)
			fmt.Fprintf(stdout, " %.2f%% in %.2fs\n", 100*o.TestAcc, o.TrainS)
			all = append(all, o)
		}
	}
	for i := range all {
		for _, b := range all {
			if b.Mode == all[i].Mode && b.Workers == 1 && all[i].TrainS > 0 {
				all[i].Speedup = b.TrainS / all[i].TrainS
			}
		}
	}
	fits := printComparison(stdout, cfg, all)
	if cfg.jsonOut != "" {
		b, _ := json.MarshalIndent(struct {
			Outcomes []outcome          `json:"outcomes"`
			Serial   map[string]float64 `json:"serial_fraction"`
		}{all, fits}, "", "  ")
		if err := os.WriteFile(cfg.jsonOut, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintf(stderr, "sgd: -json: %v\n", err)
			return exitFailed
		}
	}
	if cfg.plot != "" {
		if err := writeComparePlot(cfg.plot, all, fits); err != nil {
			fmt.Fprintf(stderr, "sgd: -plot: %v\n", err)
			return exitFailed
		}
		fmt.Fprintf(stdout, "wrote %s\n", cfg.plot)
	}
	return exitOK
}

// printComparison prints the table and the answer to "will
// parallelization help me?", and returns each mode's fitted serial
// fraction.
func printComparison(w io.Writer, cfg *config, all []outcome) map[string]float64 {
	fmt.Fprintf(w, "\n%-9s %7s %8s %8s %14s %9s %9s %8s\n", "mode", "workers", "test acc", "time", fmt.Sprintf("to %.0f%%", 100*compareTarget), "MB/worker", "staleness", "speedup")
	fits := map[string]float64{}
	for _, mode := range modes {
		var ns, ss []float64
		for _, o := range all {
			if o.Mode != mode {
				continue
			}
			target := "never"
			if o.TargetS >= 0 {
				target = fmt.Sprintf("%.2fs/%d st", o.TargetS, o.TargetStep)
			}
			note := ""
			if o.Lost > 0 {
				note = fmt.Sprintf("  (%d worker(s) lost)", o.Lost)
			}
			fmt.Fprintf(w, "%-9s %7d %7.2f%% %7.2fs %14s %9.2f %9s %7.2fx%s\n", o.Mode, o.Workers, 100*o.TestAcc, o.TrainS, target,
				o.MovedMB, staleText(o.StaleMed, o.StaleMax), o.Speedup, note)
			if o.Workers > 1 && o.Speedup > 0 {
				ns, ss = append(ns, float64(o.Workers)), append(ss, o.Speedup)
			}
		}
		if len(ns) > 0 {
			fits[mode] = amdahlFit(ns, ss)
		}
	}
	fmt.Fprintf(w, "(time: the training's wall time; to %.0f%%: when the test accuracy first reached it, at an epoch's end; MB/worker: sent and received for training, as the ring or the server moves it (hogwild's updates go through shared memory, not counted); staleness: median/largest server updates between a gradient's parameters and its application; speedup: over the same mode with 1 worker)\n", 100*compareTarget)
	fmt.Fprintf(w, "\nWill parallelization help? Amdahl fits of the speedups (serial fraction s: at most 1/s×; efficiency under 50%% beyond (1+s)/s workers):\n")
	best, bestS := "", math.Inf(1)
	for _, mode := range modes {
		s, ok := fits[mode]
		if !ok || s < 0 {
			continue
		}
		limit := "no limit in reach"
		if s > 0 {
			limit = fmt.Sprintf("at most %.1fx; efficiency under 50%% beyond %.1f workers", 1/s, (1+s)/s)
		}
		fmt.Fprintf(w, "  %-9s s = %.2f: %s\n", mode, s, limit)
		if s < bestS {
			best, bestS = mode, s
		}
	}
	if best != "" {
		fmt.Fprintf(w, "On this machine (%s), %s scales best; %s.\n", cfg.machine(), best, answer(bestS, slices.Max(cfg.sizes)))
	}
	return fits
}

// answer says where adding workers stops paying for serial fraction s.
func answer(s float64, measured int) string {
	if s <= 0 {
		return fmt.Sprintf("up to %d workers every worker still paid", measured)
	}
	knee := (1 + s) / s
	if knee < 2 {
		return "a second worker already costs more than it brings: parallelism does not help here"
	}
	return fmt.Sprintf("beyond about %.0f workers more machines stop paying (each adds less than half a worker's worth)", math.Floor(knee))
}

// machine names the machine for the answer.
func (c *config) machine() string {
	return fmt.Sprintf("%d cores, %d GOMAXPROCS per worker", numCPU(), c.procs)
}

// writeComparePlot draws test accuracy against wall time for every mode
// at the largest worker count, and every mode's speedups with its
// Amdahl curve.
func writeComparePlot(file string, all []outcome, fits map[string]float64) error {
	acc := plot.New()
	top := 0
	for _, o := range all {
		top = max(top, o.Workers)
	}
	acc.Title.Text = fmt.Sprintf("test accuracy against time, %s", workersLabel(top))
	acc.X.Label.Text = "seconds of training"
	acc.Y.Label.Text = "test accuracy"
	acc.Add(plotter.NewGrid())
	acc.Legend.Top = false
	sp := newSpeedupPlot("speedup over 1 worker, with Amdahl fits")
	for i, mode := range modes {
		var pts, spd plotter.XYs
		spd = append(spd, plotter.XY{X: 1, Y: 1})
		for _, o := range all {
			if o.Mode != mode {
				continue
			}
			if o.Workers == top {
				for _, e := range o.Run.Epochs {
					pts = append(pts, plotter.XY{X: e.WallS, Y: e.TestAcc})
				}
			}
			if o.Workers > 1 && o.Speedup > 0 {
				spd = append(spd, plotter.XY{X: float64(o.Workers), Y: o.Speedup})
			}
		}
		if len(pts) > 0 {
			l, s, err := plotter.NewLinePoints(pts)
			if err != nil {
				return err
			}
			l.Color, s.Color, s.Shape = plotutil.Color(i), plotutil.Color(i), plotutil.Shape(i)
			acc.Add(l, s)
			acc.Legend.Add(mode, l, s)
		}
		if len(spd) > 1 {
			_, s, err := plotter.NewLinePoints(spd)
			if err != nil {
				return err
			}
			s.Color, s.Shape = plotutil.Color(i), plotutil.Shape(i)
			sp.Add(s)
			if f, ok := fits[mode]; ok && f >= 0 {
				am := plotter.NewFunction(func(x float64) float64 { return amdahl(f, x) })
				am.Color = plotutil.Color(i)
				sp.Add(am)
				sp.Legend.Add(fmt.Sprintf("%s (s = %.2f)", mode, f), s)
			}
		}
	}
	sp.X.Min, sp.X.Max = 0.5, float64(top)+0.5
	sp.Y.Min, sp.Y.Max = 0, float64(top)+0.5
	return savePanels(file, 6*vg.Inch, acc, sp)
}
