package collective

import (
	"context"
	"time"

	"github.com/ringo-ml/ringo/internal/cost"
	"github.com/ringo-ml/ringo/internal/engine"
)

// calBudget bounds the predicted time of Calibrate's timed runs on a
// path; a variable for tests.
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
	scheds := []int{0, 1, 2}
	switch c.algo {
	case Ring:
		scheds = []int{0}
	case Tree:
		scheds = []int{1, 2}
	}
	models, err := cost.Calibrate(ctx, calRunner{c}, cost.Plan{World: c.world, Paths: len(c.paths), Chunk: float64(c.cb),
		Scheds: scheds, Budget: calBudget, Log: c.log})
	if err != nil {
		return err
	}
	for i, p := range c.paths {
		m := models[i]
		k := Costs{Transport: c.transportOf(p), Alpha: m.Alpha, Beta: m.Beta, Gamma: m.Gamma, AllReduce: m.AllReduce, AllReduceLarge: m.AllReduceLarge}
		c.pathCosts[p] = k
		c.log.Debug("collective: calibrated", "transport", k.Transport, "costs", k.String(), "allreduce", k.AllReduce)
	}
	return nil
}

// calRunner runs Calibrate's operations on a communicator's paths.
type calRunner struct{ c *Communicator }

func (r calRunner) on(path int, s engine.Schedule) CallOption {
	return CallOption{sched: s, over: r.c.transportOf(r.c.paths[path])}
}

func (r calRunner) Barrier(ctx context.Context, path int, s engine.Schedule) error {
	return r.c.Barrier(ctx, r.on(path, s))
}

func (r calRunner) SendRecv(ctx context.Context, path int, dst, src []float32) error {
	return r.c.SendRecv(ctx, dst, src, r.on(path, ScheduleRing))
}

func (r calRunner) AllReduce(ctx context.Context, path int, s engine.Schedule, buf []float32) error {
	return r.c.AllReduce(ctx, buf, Sum, r.on(path, s))
}

func (r calRunner) AgreeMax(ctx context.Context, vals []float64) error {
	return r.c.AllReduce(ctx, vals, Max, r.on(0, ScheduleRing))
}
