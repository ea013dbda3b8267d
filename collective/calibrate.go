package collective

import (
	"context"
	"slices"
	"time"

	"github.com/ringo-ml/ringo/internal/cost"
	"github.com/ringo-ml/ringo/internal/engine/stream"
	"github.com/ringo-ml/ringo/internal/reduce"
	"github.com/ringo-ml/ringo/internal/turns"
)

// calCand is one schedule on one data path, as Calibrate times it.
type calCand struct {
	path  stream.Path
	sched int // index in cost.AllReduceScheds
}

// Calibration's sizes in float32 elements: 4 KiB, 256 KiB, 1 MiB.
const calSmall, calBulk, calLarge = cost.Small / 4, cost.Bulk / 4, cost.Top / 4

// calBlock is how many back-to-back runs make one timed sample at the
// small size of Calibrate.
const calBlock = 4

// calBudget bounds the predicted time of Calibrate's timed runs; a
// variable for tests.
var calBudget = 3 * time.Second

// Calibrate measures the model's parameters on every data path of this
// communicator (TLS lanes and QUIC, or the one it has), then agrees with
// the other ranks on the slowest rank's figures (so that every rank holds
// the same model and makes the same choices): the latency of a dependent
// step (a ring Barrier), the bandwidth of a bulk SendRecv around the
// ring, this machine's reduction speed, and for each AllReduce schedule
// (those of Config.Algorithm, or all three for Auto) the lines through
// three timed runs (4 KiB, 256 KiB, 1 MiB). It takes a few dozen
// operations per path, about a second on loopback. It is a collective
// call: every rank must make it, in the same place in its sequence of
// calls. New calls it when Config.Algorithm is Auto or the communicator
// has two data paths to choose between.
func (c *Communicator) Calibrate(ctx context.Context) error {
	if c.world == 1 || c.shm != nil {
		return nil
	}
	sbuf, rbuf := make([]float32, calBulk), make([]float32, calLarge)
	var models [stream.NumPaths]Costs
	for _, p := range c.paths {
		k, err := c.probe(ctx, p, sbuf, rbuf)
		if err != nil {
			return err
		}
		models[p] = k
	}
	// Agree on the probes' figures now, and skip a path's timed runs of
	// the schedules when the model says they would take longer than
	// calBudget (slow or lossy links): every rank predicts the same and
	// so decides the same, and that path's choices then rest on alpha,
	// beta and gamma alone.
	var agreed []*float64
	for _, p := range c.paths {
		agreed = append(agreed, &models[p].Beta, &models[p].Gamma)
	}
	alphas := make([]float64, len(c.paths))
	for i, p := range c.paths {
		alphas[i] = models[p].Alpha.Seconds()
		agreed = append(agreed, &alphas[i])
	}
	if err := c.agreeMax(ctx, agreed); err != nil {
		return err
	}
	var cands []calCand
	for i, p := range c.paths {
		models[p].Alpha = secs(alphas[i])
		if pt := models[p].model().CalibrationTime(c.world, float64(c.cb), calBlock); pt > calBudget.Seconds() {
			c.log.Debug("collective: calibrated from the probes alone", "transport", models[p].Transport, "costs", models[p].String(),
				"timed runs would take", secs(pt).String(), "budget", calBudget.String())
			continue
		}
		for _, i := range c.calibratedScheds() {
			cands = append(cands, calCand{p, i})
		}
	}
	if err := c.fitSchedules(ctx, cands, &models, rbuf); err != nil {
		return err
	}
	for _, p := range c.paths {
		c.pathCosts[p] = models[p]
		c.log.Debug("collective: calibrated", "transport", models[p].Transport, "costs", models[p].String(), "allreduce", models[p].AllReduce)
	}
	return nil
}

// probe measures this rank's alpha, beta and gamma on path p.
func (c *Communicator) probe(ctx context.Context, p stream.Path, sbuf, rbuf []float32) (Costs, error) {
	on := Over(c.transportOf(p))
	ring := []CallOption{Using(Ring), on}
	if _, err := fastest(2, func() error { return c.Barrier(ctx, ring...) }); err != nil { // warm up
		return Costs{}, err
	}
	tBarrier, err := fastest(5, func() error { return c.Barrier(ctx, ring...) })
	if err != nil {
		return Costs{}, err
	}
	tSmall, err := fastest(3, func() error { return c.SendRecv(ctx, rbuf[:calSmall], sbuf[:calSmall], on) })
	if err != nil {
		return Costs{}, err
	}
	tBulk, err := fastest(3, func() error { return c.SendRecv(ctx, rbuf[:calBulk], sbuf, on) })
	if err != nil {
		return Costs{}, err
	}
	gamma, _ := fastest(5, func() error { reduce.Float32(reduce.Sum, rbuf[:calBulk], sbuf); return nil })
	return Costs{Transport: c.transportOf(p), Alpha: secs(tBarrier / float64(c.world-1)),
		Beta: max(tBulk-tSmall, 1e-9) / float64(cost.Bulk-cost.Small), Gamma: gamma / cost.Bulk}, nil
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

// agreeMax replaces each value with its maximum over the ranks: the
// slowest rank's figure, the same on every rank.
func (c *Communicator) agreeMax(ctx context.Context, vals []*float64) error {
	buf := make([]float64, len(vals))
	for i, v := range vals {
		buf[i] = *v
	}
	if err := c.AllReduce(ctx, buf, Max, Using(Ring), Over(c.transportOf(c.paths[0]))); err != nil {
		return err
	}
	for i, v := range vals {
		*v = buf[i]
	}
	return nil
}

// fitSchedules times every candidate, agrees on the slowest rank's
// times and fits each candidate's lines into models.
func (c *Communicator) fitSchedules(ctx context.Context, cands []calCand, models *[stream.NumPaths]Costs, rbuf []float32) error {
	if len(cands) == 0 {
		return nil
	}
	t, err := c.timeSchedules(ctx, cands, rbuf)
	if err != nil {
		return err
	}
	var agreed []*float64
	for _, ts := range t {
		for k := range ts {
			agreed = append(agreed, &ts[k])
		}
	}
	if err := c.agreeMax(ctx, agreed); err != nil {
		return err
	}
	for k, x := range cands {
		m := &models[x.path]
		m.AllReduce[x.sched], m.AllReduceLarge[x.sched] = cost.Fit(t[0][k], t[1][k], t[2][k])
	}
	return nil
}

// calibratedScheds are the AllReduce schedules (indices in
// cost.AllReduceScheds) that Config.Algorithm allows.
func (c *Communicator) calibratedScheds() []int {
	switch c.algo {
	case Ring:
		return []int{0}
	case Tree:
		return []int{1, 2}
	}
	return []int{0, 1, 2}
}

// calPoint is one size Calibrate times: elems float32s, reps samples
// (after one untimed round), each of block back-to-back runs, with a
// Barrier before each sample when lineUp.
type calPoint struct {
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
func (c *Communicator) timeSchedules(ctx context.Context, cands []calCand, rbuf []float32) ([3][]float64, error) {
	var t [3][]float64
	for _, x := range cands {
		if err := c.AllReduce(ctx, rbuf, Sum, c.calOptions(x)...); err != nil {
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
	points := [3]calPoint{{calSmall, 7, calBlock, false}, {calBulk, 3, 1, true}, {calLarge, 3, 1, true}}
	for i, pt := range points {
		runs, err := c.samplePoint(ctx, cands, rbuf, pt)
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

// samplePoint takes pt.reps samples of every candidate at one size. The
// candidates take turns, one sample each per round, so that a burst of
// load from elsewhere on the machine slows all of them rather than the
// one that happened to be running; the first round is not timed. The
// rounds follow package turns: each schedule follows each other one of
// its path equally often, and the paths alternate (what ran before
// matters: links another schedule left idle restart slowly).
func (c *Communicator) samplePoint(ctx context.Context, cands []calCand, rbuf []float32, pt calPoint) ([][]float64, error) {
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
				if err := c.Barrier(ctx, CallOption{sched: ScheduleRecursiveDoubling, over: c.transportOf(x.path)}); err != nil {
					return nil, err
				}
			}
			t0 := time.Now()
			for range pt.block {
				if err := c.AllReduce(ctx, rbuf[:pt.elems], Sum, c.calOptions(x)...); err != nil {
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

// calOptions run one candidate's schedule on its path.
func (c *Communicator) calOptions(x calCand) []CallOption {
	return []CallOption{{sched: cost.AllReduceScheds[x.sched], over: c.transportOf(x.path)}}
}

func secs(s float64) time.Duration { return time.Duration(s * 1e9) }
