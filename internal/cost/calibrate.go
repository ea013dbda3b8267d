package cost

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/ringo-ml/ringo/internal/engine"
	"github.com/ringo-ml/ringo/internal/reduce"
	"github.com/ringo-ml/ringo/internal/turns"
)

// Runner runs the operations a calibration times. Every rank calibrates
// at once and calls the same methods in the same order; path indexes the
// communicator's data paths.
type Runner interface {
	Barrier(ctx context.Context, path int, s engine.Schedule) error
	SendRecv(ctx context.Context, path int, dst, src []float32) error
	AllReduce(ctx context.Context, path int, s engine.Schedule, buf []float32) error
	// AgreeMax replaces each value with its maximum over the ranks.
	AgreeMax(ctx context.Context, vals []float64) error
}

// Plan says what to calibrate.
type Plan struct {
	World  int
	Paths  int           // data paths to calibrate, 0..Paths-1
	Chunk  float64       // the pipelining unit, bytes
	Scheds []int         // the AllReduce schedules to time (AllReduceScheds indices)
	Budget time.Duration // the longest the timed runs of a path may be predicted to take
	Log    *slog.Logger
}

// Calibration's sizes in float32 elements.
const smallElems, bulkElems, topElems = Small / 4, Bulk / 4, Top / 4

// Block is how many back-to-back runs make one timed sample at Small.
const Block = 4

// Calibrate measures every path's model and returns the slowest rank's
// figures (so that every rank holds the same model and makes the same
// choices): the latency of a dependent step (a ring Barrier), the
// bandwidth of a bulk SendRecv around the ring, this machine's reduction
// speed, and, where the probes predict they fit in the budget, the lines
// through timed runs of each AllReduce schedule at Small, Bulk and Top.
func Calibrate(ctx context.Context, r Runner, p Plan) ([]Model, error) {
	sbuf, rbuf := make([]float32, bulkElems), make([]float32, topElems)
	models := make([]Model, p.Paths)
	for i := range models {
		var err error
		if models[i], err = probe(ctx, r, i, p.World, sbuf, rbuf); err != nil {
			return nil, err
		}
	}
	// Agree on the probes' figures now, and skip a path's timed runs of
	// the schedules when the model says they would take longer than the
	// budget (slow or lossy links): every rank predicts the same and so
	// decides the same, and that path's choices then rest on alpha, beta
	// and gamma alone.
	alphas := make([]float64, len(models))
	var agreed []*float64
	for i := range models {
		alphas[i] = models[i].Alpha.Seconds()
		agreed = append(agreed, &alphas[i], &models[i].Beta, &models[i].Gamma)
	}
	if err := agreeMax(ctx, r, agreed); err != nil {
		return nil, err
	}
	var cands []candidate
	for i := range models {
		models[i].Alpha = seconds(alphas[i])
		if pt := models[i].CalibrationTime(p.World, p.Chunk, Block); pt > p.Budget.Seconds() {
			p.Log.Debug("collective: calibrated from the probes alone", "path", i, "alpha", models[i].Alpha,
				"timed runs would take", seconds(pt).String(), "budget", p.Budget.String())
			continue
		}
		for _, s := range p.Scheds {
			cands = append(cands, candidate{i, s})
		}
	}
	if err := fit(ctx, r, cands, models, rbuf); err != nil {
		return nil, err
	}
	return models, nil
}

// candidate is one schedule (AllReduceScheds index) on one path.
type candidate struct{ path, sched int }

// probe measures this rank's alpha, beta and gamma on path.
func probe(ctx context.Context, r Runner, path, world int, sbuf, rbuf []float32) (Model, error) {
	barrier := func() error { return r.Barrier(ctx, path, engine.Ring) }
	if _, err := fastest(2, barrier); err != nil { // warm up
		return Model{}, err
	}
	tBarrier, err := fastest(5, barrier)
	if err != nil {
		return Model{}, err
	}
	tSmall, err := fastest(3, func() error { return r.SendRecv(ctx, path, rbuf[:smallElems], sbuf[:smallElems]) })
	if err != nil {
		return Model{}, err
	}
	tBulk, err := fastest(3, func() error { return r.SendRecv(ctx, path, rbuf[:bulkElems], sbuf) })
	if err != nil {
		return Model{}, err
	}
	gamma, _ := fastest(5, func() error { reduce.Float32(reduce.Sum, rbuf[:bulkElems], sbuf); return nil })
	return Model{Alpha: seconds(tBarrier / float64(world-1)),
		Beta: max(tBulk-tSmall, 1e-9) / (Bulk - Small), Gamma: gamma / Bulk}, nil
}

// fastest is the fastest of reps runs of f, in seconds: on a shared
// machine the others measure the neighbours' load, which differs from
// rank to rank and run to run, more than the algorithm.
func fastest(reps int, f func() error) (float64, error) {
	best := 0.0
	for i := range reps {
		t0 := time.Now()
		if err := f(); err != nil {
			return 0, err
		}
		if t := time.Since(t0).Seconds(); i == 0 || t < best {
			best = t
		}
	}
	return best, nil
}

// agreeMax replaces each value with its maximum over the ranks.
func agreeMax(ctx context.Context, r Runner, vals []*float64) error {
	buf := make([]float64, len(vals))
	for i, v := range vals {
		buf[i] = *v
	}
	if err := r.AgreeMax(ctx, buf); err != nil {
		return err
	}
	for i, v := range vals {
		*v = buf[i]
	}
	return nil
}

// fit times every candidate, agrees on the slowest rank's times and fits
// each candidate's lines into models.
func fit(ctx context.Context, r Runner, cands []candidate, models []Model, rbuf []float32) error {
	if len(cands) == 0 {
		return nil
	}
	t, err := timeSchedules(ctx, r, cands, rbuf)
	if err != nil {
		return err
	}
	var agreed []*float64
	for _, ts := range t {
		for k := range ts {
			agreed = append(agreed, &ts[k])
		}
	}
	if err := agreeMax(ctx, r, agreed); err != nil {
		return err
	}
	for k, x := range cands {
		m := &models[x.path]
		m.AllReduce[x.sched], m.AllReduceLarge[x.sched] = Fit(t[0][k], t[1][k], t[2][k])
	}
	return nil
}

// point is one size the calibration times: elems float32s, reps samples
// (after one untimed round), each of block back-to-back runs, with a
// Barrier before each sample when lineUp.
type point struct {
	elems, reps, block int
	lineUp             bool
}

// timeSchedules times every candidate at the three sizes and returns the
// medians, t[size point][candidate].
//
// Each schedule runs once unmeasured, to bring its links up to speed (a
// QUIC connection left idle while other schedules ran restarts slowly),
// then a few measured runs, and keeps its median: a schedule whose time
// varies a lot from run to run (the double binary tree when its halves
// are one chunk each) is judged by a typical run, not its luckiest. First
// every candidate moves the largest size once, so that every link any of
// them uses has carried a bulk transfer before anything is timed: fresh
// connections start with small windows, and whichever schedule ran later
// would otherwise inherit links the earlier ones had warmed.
func timeSchedules(ctx context.Context, r Runner, cands []candidate, rbuf []float32) ([3][]float64, error) {
	var t [3][]float64
	for _, x := range cands {
		if err := r.AllReduce(ctx, x.path, AllReduceScheds[x.sched], rbuf); err != nil {
			return t, err
		}
	}
	// A sample at the small size is a block of back-to-back runs, timed
	// together: one run as a rank sees it lasts from its own start, which
	// depends on when it finished the previous operation, so it varies
	// from rank to rank by as much as the operation takes (from 0.1 to
	// 0.8 ms for recursive doubling at 4 KiB with 4 ranks on 2 cores), and
	// the agreed figure, the slowest rank's, measured that skew more than
	// the schedule. Within a block the skew is paid once. At the larger
	// sizes a block would cost too much time; there a recursive-doubling
	// Barrier (whose ranks all leave after the same exchange) lines the
	// ranks up before each sample instead.
	points := [3]point{{smallElems, 7, Block, false}, {bulkElems, 3, 1, true}, {topElems, 3, 1, true}}
	for i, pt := range points {
		runs, err := sample(ctx, r, cands, rbuf, pt)
		if err != nil {
			return t, err
		}
		t[i] = make([]float64, len(cands))
		for k := range runs {
			slices.Sort(runs[k])
			t[i][k] = runs[k][len(runs[k])/2]
		}
	}
	return t, nil
}

// sample takes pt.reps samples of every candidate at one size. The
// candidates take turns, one sample each per round, so that a burst of
// load from elsewhere on the machine slows all of them rather than the
// one that happened to be running; the first round is not timed. The
// rounds follow package turns: each schedule follows each other one of
// its path equally often, and the paths alternate (what ran before
// matters: links another schedule left idle restart slowly).
func sample(ctx context.Context, r Runner, cands []candidate, rbuf []float32, pt point) ([][]float64, error) {
	groups := 1 // the paths: cands holds each path's schedules together
	for i := 1; i < len(cands); i++ {
		if cands[i].path != cands[i-1].path {
			groups++
		}
	}
	runs := make([][]float64, len(cands))
	for rep := range pt.reps + 1 {
		for k := range cands {
			i := turns.Nested(rep, k, groups, len(cands)/groups)
			x := cands[i]
			if pt.lineUp {
				if err := r.Barrier(ctx, x.path, engine.RecursiveDoubling); err != nil {
					return nil, err
				}
			}
			t0 := time.Now()
			for range pt.block {
				if err := r.AllReduce(ctx, x.path, AllReduceScheds[x.sched], rbuf[:pt.elems]); err != nil {
					return nil, err
				}
			}
			if rep > 0 {
				runs[i] = append(runs[i], time.Since(t0).Seconds()/float64(pt.block))
			}
		}
	}
	return runs, nil
}
