package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"gonum.org/v1/gonum/floats"

	"github.com/ringo-ml/ringo/collective"
	rt "github.com/ringo-ml/ringo/runtime"
)

const (
	// rejoinTimeout bounds re-forming the group after a loss.
	rejoinTimeout = 2 * time.Minute
	// gatherWait is how long a group that formed with fewer than -max
	// workers at start-up waits for the missing ones to show up in gossip
	// before it trains without them (they join at an epoch's end then).
	gatherWait = 10 * time.Second
)

// errGrow ends a session on every rank at once when workers are waiting
// to join the group.
var errGrow = errors.New("a worker is waiting to join")

// errConfigMismatch: the checkpoint directory holds another run's state.
var errConfigMismatch = errors.New("the checkpoint was written by a run with other settings (model, data, seed, batch, learning rate); use another -checkpoint directory")

// record is what rank 0 reports as training goes; the launcher reads them
// from its workers as JSON lines, a worker started by hand prints them as
// a table.
type record struct {
	Kind string `json:"kind"` // "start", "epoch" or "done"

	// start
	Model    string `json:"model,omitempty"`
	Params   int    `json:"params,omitempty"`
	Buckets  string `json:"buckets,omitempty"`
	DataPath string `json:"data_path,omitempty"`
	Mode     string `json:"mode,omitempty"`

	// epoch, done
	Epoch     int     `json:"epoch,omitempty"`
	Step      int     `json:"step,omitempty"`    // updates applied so far
	Workers   int     `json:"workers,omitempty"` // the group's size
	GroupEp   uint64  `json:"group_epoch,omitempty"`
	Loss      float64 `json:"loss,omitempty"`
	TrainAcc  float64 `json:"train_acc,omitempty"`
	TestLoss  float64 `json:"test_loss,omitempty"`
	TestAcc   float64 `json:"test_acc,omitempty"`
	StepMs    float64 `json:"step_ms,omitempty"`    // wall time per step, mean over ranks
	ComputeMs float64 `json:"compute_ms,omitempty"` // of which gradients and updates
	CommMs    float64 `json:"comm_ms,omitempty"`    // of which waiting for communication
	Steps     int     `json:"steps,omitempty"`      // steps the times were measured over
	// SpanS is the wall-clock time from the start of the epoch's first
	// step to the end of its last (mean over ranks), measured apart from
	// the per-step times: steps run one after another, so Steps × StepMs
	// can never exceed it.
	SpanS    float64 `json:"span_s,omitempty"`
	Restores int     `json:"restores,omitempty"` // checkpoints restored after losses (done)
	// MovedMB is what a worker sent and received for training so far
	// (mean over workers, MB), as the ring moves it; WallS the time since
	// training began on rank 0.
	MovedMB float64 `json:"moved_mb,omitempty"`
	WallS   float64 `json:"wall_s,omitempty"`
	// Staleness of the gradients the server applied (downpour): the
	// median and largest number of server updates between a gradient's
	// parameters and its application.
	StaleMed float64 `json:"stale_med,omitempty"`
	StaleMax float64 `json:"stale_max,omitempty"`
	Lost     []int   `json:"lost,omitempty"` // downpour: workers that died
}

// worker is the actor that owns one replica: the model's weights, this
// worker's part of every global batch, the communicator, and (at rank 0 in
// ps mode) the parameter server actor. The training loop (trainWorker)
// drives it through its mailbox, one call per step.
type worker struct {
	cfg      *config
	rt       *rt.Runtime
	comm     *collective.Communicator
	logf     func(format string, args ...any)
	model    learner
	train    *dataset
	test     *dataset
	buckets  []bucket
	params   []float64
	grad     []float64
	velocity []float64 // allreduce mode: every replica's optimizer state
	psGrad   []float64 // ps mode: where the gradients are summed, at rank 0
	ps       *rt.Actor[*paramServer]

	step      int // steps [0, step) have been applied
	perm      []int
	permEpoch int
	xb        []float64
	yb        []int
	restores  int
	killArmed bool
	started   bool                       // reported the start record
	moved     float64                    // bytes this rank has sent and received for training (not for evaluation)
	began     time.Time                  // when training began here
	hog       *sharedParams              // -mode hogwild: the vector every worker updates
	arena     *collective.Arena[float64] // where grad lives; nil when it is ordinary memory
	reads     []int                      // -mode hogwild, sparse model: the components a step reads

	// Times of the current epoch's steps on this rank.
	nSteps                 int
	wall, compute, waiting time.Duration
	first, last            time.Time // start of the first step, end of the last
}

// paramServer is the parameter-server actor (ps mode): it alone holds the
// optimizer's state and applies updates, one at a time in its mailbox.
type paramServer struct {
	weights, velocity []float64
	lr, momentum      float64
}

// apply takes one step of SGD with momentum with the summed gradient.
func (p *paramServer) apply(grad []float64) { sgdUpdate(p.weights, p.velocity, grad, p.lr, p.momentum) }

// sgdUpdate: v ← μv + g; w ← w − ηv (the form PyTorch's SGD uses).
func sgdUpdate(w, v, g []float64, lr, momentum float64) {
	floats.Scale(momentum, v)
	floats.Add(v, g)
	floats.AddScaled(w, -lr, v)
}

func newWorker(cfg *config, r *rt.Runtime, comm *collective.Communicator, logf func(string, ...any)) (*worker, error) {
	train, test := loadData(cfg)
	m, err := newModel(cfg.model, train.Dim, cfg.hidden)
	if err != nil {
		return nil, err
	}
	w := &worker{
		cfg: cfg, rt: r, comm: comm, logf: logf, model: m, train: train, test: test,
		buckets: planBuckets(m.layout(), cfg.bucketBytes),
		params:  make([]float64, m.size()),

		velocity:  make([]float64, m.size()),
		psGrad:    make([]float64, m.size()),
		permEpoch: -1,
		killArmed: cfg.killRank >= 0 && comm.Rank() == cfg.killRank && comm.Epoch() <= 1,
	}
	w.grad = w.gradBuffer(m.size())
	return w, nil
}

// gradBuffer takes the gradient vector, whose buckets are averaged every
// step, from a collective.Arena: on shared memory the other workers map
// it, and buckets of 1 MiB or more are then reduced in place (see
// AllocFloat64; the buckets are consecutive tensors, so each is a plain
// sub-slice); elsewhere, or if that fails, it is ordinary memory. The
// arena is freed with the worker.
func (w *worker) gradBuffer(n int) []float64 {
	a, err := collective.NewArena[float64](w.comm, n)
	if err == nil {
		var g []float64
		if g, err = a.Take(n); err == nil {
			w.arena = a
			return g
		}
	}
	return make([]float64, n)
}

// permutation returns epoch e's order of the training examples: the same
// on every rank, from the seed alone.
func (w *worker) permutation(e int) []int {
	if w.permEpoch != e {
		rng := rand.New(rand.NewPCG(w.cfg.seed, 1000+uint64(e)))
		w.perm = rng.Perm(w.train.Len())
		w.permEpoch = e
	}
	return w.perm
}

// share is rank r's part [lo, hi) of n items split over size ranks:
// contiguous, sizes differing by at most one.
func share(n, size, r int) (lo, hi int) { return r * n / size, (r + 1) * n / size }

// sync brings every member of a freshly formed group to the same state:
// the newest checkpoint any of them can read (sent by its owner with a
// Broadcast), or the initial weights when there is none. Members are
// never trusted to agree by themselves: after a loss a survivor may hold a
// half-pulled copy (ps mode) or be a step ahead of another.
func (w *worker) sync(ctx context.Context) error {
	cfg := w.cfg
	if err := w.gather(ctx); err != nil {
		return err
	}
	n := w.model.size()
	mine, mismatch := -1.0, 0.0
	var ck *checkpoint
	if cfg.ckptDir != "" {
		c, err := readCheckpoint(cfg.ckptDir)
		switch {
		case errors.Is(err, errNoCheckpoint):
		case err != nil:
			w.logf("ignoring the checkpoint: %v", err)
		case c.Config != cfg.fingerprint() || len(c.Weights) != n:
			mismatch = 1
		default:
			ck, mine = c, float64(c.Step)
		}
	}
	v := []float64{mine, mismatch}
	if err := w.comm.AllReduce(ctx, v, collective.Max); err != nil {
		return err
	}
	if v[1] > 0 {
		return fmt.Errorf("%s: %w", cfg.ckptDir, errConfigMismatch)
	}
	best := int(v[0])
	if best < 0 {
		w.model.init(w.params, cfg.seed)
		clear(w.velocity)
		w.step = 0
	} else {
		owner := []float64{math.Inf(1)}
		if ck != nil && ck.Step == best {
			owner[0] = float64(w.comm.Rank())
		}
		if err := w.comm.AllReduce(ctx, owner, collective.Min); err != nil {
			return err
		}
		state := make([]float64, 2*n)
		if int(owner[0]) == w.comm.Rank() {
			copy(state, ck.Weights)
			copy(state[n:], ck.Velocity)
		}
		if err := w.comm.Broadcast(ctx, state, int(owner[0])); err != nil {
			return err
		}
		copy(w.params, state[:n])
		copy(w.velocity, state[n:])
		w.step = best
		if w.started || w.restores > 0 {
			w.restores++
		}
		w.logf("rank %d of %d at group epoch %d: restored the checkpoint of step %d (held by rank %d)",
			w.comm.Rank(), w.comm.Size(), w.comm.Epoch(), best, int(owner[0]))
	}
	if cfg.mode == "ps" && w.comm.Rank() == 0 {
		ps := &paramServer{weights: clone(w.params), velocity: clone(w.velocity), lr: cfg.lr, momentum: cfg.momentum}
		a, err := rt.Spawn(w.rt, func(context.Context) (*paramServer, error) { return ps, nil }, rt.ActorName("parameter-server"))
		if err != nil {
			return err
		}
		w.ps = a
	}
	if cfg.mode == "hogwild" {
		if err := w.setupHogwild(ctx); err != nil {
			return err
		}
	}
	if w.began.IsZero() {
		w.began = time.Now()
	}
	w.resetTimes()
	return nil
}

func clone(v []float64) []float64 { return append([]float64(nil), v...) }

// gather: a group that formed at start-up with fewer than -max workers
// (an elastic group forms once membership held still for -settle) takes
// in the stragglers before training, for up to gatherWait. The members
// decide together (the Max of what each sees), so all re-form or none.
func (w *worker) gather(ctx context.Context) error {
	if !w.cfg.elastic() || w.started || w.comm.Epoch() != 1 || w.comm.Size() >= w.cfg.max {
		return nil
	}
	t0 := time.Now()
	for {
		v := []float64{0, 0}
		if w.comm.Waiting() > 0 {
			v[0] = 1
		}
		if time.Since(t0) > gatherWait {
			v[1] = 1
		}
		if err := w.comm.AllReduce(ctx, v, collective.Max); err != nil {
			return err
		}
		switch {
		case v[0] > 0:
			return errGrow
		case v[1] > 0:
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// startRecord describes the run.
func (w *worker) startRecord() record {
	return record{
		Kind: "start", Model: w.model.String(), Params: w.model.size(),
		Buckets: describeBuckets(w.buckets), DataPath: w.comm.DataPath(), Mode: w.cfg.mode,
		Workers: w.comm.Size(),
	}
}

// runStep runs step w.step: this rank's share of the global batch
// forward and backward, the gradients averaged bucket by bucket (each
// bucket's collective starts as soon as backpropagation has produced it),
// and the update. The update is applied only once every bucket's
// collective has succeeded; if any fails the step is discarded whole and
// the error returned (the group then re-forms and restores a checkpoint).
func (w *worker) runStep(ctx context.Context) error {
	switch w.cfg.mode {
	case "average":
		return w.localStep(ctx)
	case "hogwild":
		return w.hogwildStep(ctx)
	}
	return w.syncStep(ctx)
}

// batchShare is this rank's share of step s's global batch: the same
// examples whatever the mode, so that every mode sees the same data.
func (w *worker) batchShare(s, size, rank int) (xb []float64, yb []int) {
	cfg := w.cfg
	spe := cfg.stepsPerEpoch()
	perm := w.permutation(s / spe)
	batch := perm[(s%spe)*cfg.batch : (s%spe+1)*cfg.batch]
	lo, hi := share(cfg.batch, size, rank)
	rows := hi - lo
	if cap(w.yb) < rows {
		w.xb, w.yb = make([]float64, rows*w.train.Dim), make([]int, rows)
	}
	xb, yb = w.xb[:rows*w.train.Dim], w.yb[:rows]
	w.train.gather(batch[lo:hi], xb, yb)
	return xb, yb
}

// timeStep counts a step that began at t0, computed until t1 and spent
// apply in its update.
func (w *worker) timeStep(t0, t1 time.Time, apply time.Duration) {
	w.step++
	end := time.Now()
	if w.nSteps == 0 {
		w.first = t0
	}
	w.last = end
	w.nSteps++
	w.wall += end.Sub(t0)
	w.compute += t1.Sub(t0) + apply
	w.waiting += end.Sub(t0) - t1.Sub(t0) - apply
}

// ringBytes is what one rank moves (sends and receives) in an AllReduce
// of n bytes over size ranks on the ring: 2(size-1)/size × n each way.
func ringBytes(n, size int) float64 { return 4 * float64(size-1) / float64(size) * float64(n) }

// syncStep is a step of the synchronous modes (allreduce, ps).
func (w *worker) syncStep(ctx context.Context) error {
	cfg, comm := w.cfg, w.comm
	t0 := time.Now()
	s := w.step
	xb, yb := w.batchShare(s, comm.Size(), comm.Rank())

	// allreduce: each rank contributes size/B × its gradient sum, and
	// AllReduce(Avg) divides by size: the mean over the global batch. ps:
	// each pushes 1/B × its sum, and the server's Reduce(Sum) adds them.
	scale := float64(comm.Size()) / float64(cfg.batch)
	if cfg.mode == "ps" {
		scale = 1 / float64(cfg.batch)
	}
	futs := make([]*collective.Work, 0, len(w.buckets))
	next := 0
	ready := func(t int) {
		if !cfg.overlap && t < len(w.model.layout())-1 {
			return // -overlap=false: everything after the backward pass
		}
		for next < len(w.buckets) && (w.buckets[next].Last <= t) {
			w.maybeDie(s, next, futs)
			b := w.buckets[next]
			if cfg.mode == "ps" {
				futs = append(futs, comm.ReduceAsync(ctx, w.psGrad[b.Lo:b.Hi], w.grad[b.Lo:b.Hi], collective.Sum, 0))
			} else {
				futs = append(futs, comm.AllReduceAsync(ctx, w.grad[b.Lo:b.Hi], collective.Avg))
			}
			next++
		}
	}
	w.model.gradient(w.params, w.grad, xb, yb, scale, ready)
	t1 := time.Now()
	if err := waitAll(ctx, futs); err != nil {
		return fmt.Errorf("step %d discarded: %w", s, err)
	}
	var applyTime time.Duration
	if cfg.mode == "ps" {
		// Push done; the server applies the summed gradient in its
		// mailbox, then every worker pulls the new weights.
		if comm.Rank() == 0 {
			_, err := rt.Call(w.ps, func(p *paramServer, _ context.Context) (struct{}, error) {
				p.apply(w.psGrad)
				copy(w.params, p.weights)
				return struct{}{}, nil
			}).Get(ctx)
			if err != nil {
				return fmt.Errorf("step %d: parameter server: %w", s, err)
			}
		}
		pulls := make([]*collective.Work, len(w.buckets))
		for i, b := range w.buckets {
			pulls[i] = comm.BroadcastAsync(ctx, w.params[b.Lo:b.Hi], 0)
		}
		if err := waitAll(ctx, pulls); err != nil {
			// This replica may now hold a mix of old and new weights; it
			// is never used: the group restores a checkpoint first.
			return fmt.Errorf("step %d (pulling the weights): %w", s, err)
		}
	} else {
		ta := time.Now()
		sgdUpdate(w.params, w.velocity, w.grad, cfg.lr, cfg.momentum)
		applyTime = time.Since(ta)
	}
	// Both modes move about the gradient's bytes around the ring twice
	// (ps: a Reduce to rank 0, then a Broadcast of the weights).
	w.moved += ringBytes(8*len(w.grad), comm.Size())
	w.timeStep(t0, t1, applyTime)
	return nil
}

// localStep is a step of parallelized SGD (-mode average): this rank
// trains its own model on its share of the global batch, with no
// communication, and every -sync-every steps (with 0, after the last
// step only) the models and their velocities are averaged with one
// AllReduce(Avg) each. The averages are exact and the same on every
// rank, so a run is deterministic. Each worker's step is the mean
// gradient of its share, at the full learning rate: averaging n models
// that each moved by η·g_r moves the average by η·mean(g_r), the
// synchronous step, at every average.
func (w *worker) localStep(ctx context.Context) error {
	cfg, comm := w.cfg, w.comm
	t0 := time.Now()
	xb, yb := w.batchShare(w.step, comm.Size(), comm.Rank())
	w.model.gradient(w.params, w.grad, xb, yb, 1/float64(len(yb)), noReady)
	sgdUpdate(w.params, w.velocity, w.grad, cfg.lr, cfg.momentum)
	t1 := time.Now()
	last := w.step+1 == cfg.totalSteps()
	if (cfg.syncEvery > 0 && (w.step+1)%cfg.syncEvery == 0) || last {
		if err := w.averageModels(ctx); err != nil {
			return fmt.Errorf("step %d: averaging the models: %w", w.step, err)
		}
	}
	w.timeStep(t0, t1, 0)
	return nil
}

// averageModels replaces every rank's model and velocity with their
// average over the ranks. The ring is asked for by name: Auto picks per
// call from costs measured at creation, and a ring and a tree sum in
// different orders, so two runs could differ in the last bits; the ring's
// order depends on the world size alone (and shared memory's on the rank
// order), so a run is deterministic.
func (w *worker) averageModels(ctx context.Context) error {
	if err := w.comm.AllReduce(ctx, w.params, collective.Avg, collective.Using(collective.Ring)); err != nil {
		return err
	}
	if err := w.comm.AllReduce(ctx, w.velocity, collective.Avg, collective.Using(collective.Ring)); err != nil {
		return err
	}
	w.moved += 2 * ringBytes(8*len(w.params), w.comm.Size())
	return nil
}

// waitAll waits until every Work has completed (their buffers are free
// again) and returns the first failure.
func waitAll(ctx context.Context, works []*collective.Work) error {
	return collective.WaitAll(ctx, works...)
}

// maybeDie is the -kill hook: the armed worker SIGKILLs itself in its
// kill step, after the first bucket's collective completed (so the others
// hold a partly averaged gradient) and before the second goes out; with a
// single bucket, before it goes out.
func (w *worker) maybeDie(step, bucketIdx int, futs []*collective.Work) {
	if !w.killArmed || step != w.cfg.killStep || (bucketIdx != 1 && len(w.buckets) > 1) {
		return
	}
	if bucketIdx == 1 {
		_ = waitAll(context.Background(), futs[:1])
	}
	w.logf("rank %d: -kill: SIGKILL in step %d, after %d of %d gradient buckets", w.comm.Rank(), step, bucketIdx, len(w.buckets))
	killSelf()
}

// timeShares writes this rank's share of the group's mean step times
// into v (ms per step: wall, compute, waiting; then the span in seconds):
// its own means divided by n, so that a Sum over the n ranks gives the
// mean over ranks.
func (w *worker) timeShares(v []float64, n int) {
	if w.nSteps == 0 {
		return
	}
	k := float64(w.nSteps) * float64(n)
	v[0], v[1], v[2] = ms(w.wall)/k, ms(w.compute)/k, ms(w.waiting)/k
	v[3] = w.last.Sub(w.first).Seconds() / float64(n)
}

func (w *worker) resetTimes() { w.nSteps, w.wall, w.compute, w.waiting = 0, 0, 0, 0 }

// endEpoch evaluates the model on the training and test sets, each rank
// its share, and sums the figures over the group; it also averages the
// epoch's step times over the ranks.
func (w *worker) endEpoch(ctx context.Context) (record, error) {
	n, r := w.comm.Size(), w.comm.Rank()
	params, err := w.evalParams(ctx)
	if err != nil {
		return record{}, err
	}
	v := make([]float64, 9)
	lo, hi := share(w.train.Len(), n, r)
	x, y := w.train.slice(lo, hi)
	loss, correct := w.model.evaluate(params, x, y)
	v[0], v[1] = loss, float64(correct)
	lo, hi = share(w.test.Len(), n, r)
	x, y = w.test.slice(lo, hi)
	loss, correct = w.model.evaluate(params, x, y)
	v[2], v[3] = loss, float64(correct)
	w.timeShares(v[4:8], n)
	v[8] = w.moved / float64(n)
	if err := w.comm.AllReduce(ctx, v, collective.Sum); err != nil {
		return record{}, err
	}
	rec := record{
		Kind: "epoch", Epoch: w.step / w.cfg.stepsPerEpoch(), Step: w.step, Workers: n, GroupEp: w.comm.Epoch(),
		Loss: v[0] / float64(w.train.Len()), TrainAcc: v[1] / float64(w.train.Len()),
		TestLoss: v[2] / float64(w.test.Len()), TestAcc: v[3] / float64(w.test.Len()),
		StepMs: v[4], ComputeMs: v[5], CommMs: v[6], Steps: w.nSteps, SpanS: v[7],
		MovedMB: v[8] / 1e6, WallS: time.Since(w.began).Seconds(),
	}
	w.resetTimes()
	return rec, nil
}

// evalParams is the model an epoch's figures describe, the same on every
// rank: the replicas' (synchronous modes, identical), the average of the
// local models (average; computed for the evaluation alone, training
// goes on from each rank's own), or rank 0's snapshot of the shared
// vector (hogwild).
func (w *worker) evalParams(ctx context.Context) ([]float64, error) {
	switch w.cfg.mode {
	case "average":
		avg := clone(w.params)
		return avg, w.comm.AllReduce(ctx, avg, collective.Avg)
	case "hogwild":
		snap := make([]float64, len(w.params))
		if w.comm.Rank() == 0 {
			w.hog.snapshot(snap)
		}
		return snap, w.comm.Broadcast(ctx, snap, 0)
	}
	return w.params, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// saveCheckpoint writes the state after w.step updates (rank 0 only).
func (w *worker) saveCheckpoint(ctx context.Context) error {
	if w.comm.Rank() != 0 || w.cfg.ckptDir == "" {
		return nil
	}
	c := &checkpoint{Config: w.cfg.fingerprint(), Step: w.step, Weights: w.params, Velocity: w.velocity}
	if w.ps != nil {
		var err error
		c.Velocity, err = rt.Call(w.ps, func(p *paramServer, _ context.Context) ([]float64, error) {
			return clone(p.velocity), nil
		}).Get(ctx)
		if err != nil {
			return err
		}
	}
	return writeCheckpoint(w.cfg.ckptDir, c)
}

// maybeGrow, at an epoch's end, ends the session on every rank when an
// elastic group smaller than -max has workers waiting to join.
func (w *worker) maybeGrow(ctx context.Context) error {
	if !w.cfg.elastic() || w.comm.Size() >= w.cfg.max {
		return nil
	}
	v := []float64{0}
	if w.comm.Waiting() > 0 {
		v[0] = 1
	}
	if err := w.comm.AllReduce(ctx, v, collective.Max); err != nil {
		return err
	}
	if v[0] > 0 {
		return errGrow
	}
	return nil
}

// reform forms the group's next epoch with the survivors (and anyone
// waiting to join) after err ended the last one.
func (w *worker) reform(ctx context.Context, cause error) error {
	if w.ps != nil {
		w.ps.Kill()
		<-w.ps.Done()
		w.ps = nil
	}
	rank, epoch := w.comm.Rank(), w.comm.Epoch()
	w.logf("rank %d at group epoch %d: %v; re-forming the group", rank, epoch, cause)
	t0 := time.Now()
	rctx, cancel := context.WithTimeout(ctx, rejoinTimeout)
	defer cancel()
	next, err := w.comm.Rejoin(rctx) // closes the old communicator
	for said := false; errors.Is(err, collective.ErrNoQuorum) && rctx.Err() == nil; said = true {
		// The minority side of a partition: no view may form here. Wait
		// for the network to heal and join the majority's group.
		if !said {
			w.logf("rank %d at group epoch %d: %v; waiting for the network to heal", rank, epoch, err)
		}
		next, err = w.comm.Rejoin(rctx)
	}
	if err != nil {
		return fmt.Errorf("re-forming the group after epoch %d: %w", epoch, err)
	}
	// A gradient buffer the new group's peers know; the old communicator
	// is closed, so nothing uses the old buffer any more.
	oldArena := w.arena
	w.comm, w.arena = next, nil
	w.grad = w.gradBuffer(len(w.grad))
	if oldArena != nil {
		_ = oldArena.Free()
	}
	w.killArmed = false
	w.logf("re-formed at group epoch %d in %v: rank %d of %d (view %016x)", next.Epoch(), time.Since(t0).Round(time.Millisecond), next.Rank(), next.Size(), next.ViewID())
	return nil
}

// result is how a worker's training ended.
type result struct {
	Step     int
	Rank     int
	Params   []float64
	Restores int
}

// trainWorker trains this worker's replica with the group comm belongs
// to, emitting rank 0's records. With rejoin (comm made by Join) and
// checkpoints, losing workers is survived: the group re-forms, restores
// the newest checkpoint and goes on. It closes comm (or its successor).
func trainWorker(ctx context.Context, cfg *config, comm *collective.Communicator, rejoin bool, emit func(record), logf func(string, ...any)) (*result, error) {
	r, err := rt.New(rt.Config{Workers: 1})
	if err != nil {
		_ = comm.Close()
		return nil, err
	}
	defer r.Close()
	a, err := rt.Spawn(r, func(context.Context) (*worker, error) { return newWorker(cfg, r, comm, logf) }, rt.ActorName("worker"))
	if err != nil {
		_ = comm.Close()
		return nil, err
	}
	do := func(f func(*worker, context.Context) error) error {
		_, err := rt.Do(a, f).Get(ctx)
		return err
	}
	defer func() {
		// Close whichever communicator the actor holds last.
		_ = do(func(w *worker, _ context.Context) error {
			if w.hog != nil {
				_ = w.hog.close()
			}
			err := w.comm.Close()
			if w.arena != nil {
				_ = w.arena.Free()
			}
			return err
		})
		_ = a.Stop(context.Background())
	}()
	for {
		err := session(ctx, cfg, a, do, emit)
		if err == nil {
			break
		}
		if ctx.Err() != nil || !rejoin || !cfg.elastic() || !(errors.Is(err, collective.ErrPeerLost) || errors.Is(err, errGrow)) {
			return nil, err
		}
		if err := do(func(w *worker, ctx context.Context) error { return w.reform(ctx, unwrapTask(err)) }); err != nil {
			return nil, err
		}
	}
	return rt.Call(a, func(w *worker, _ context.Context) (*result, error) {
		return &result{Step: w.step, Rank: w.comm.Rank(), Params: clone(w.params), Restores: w.restores}, nil
	}).Get(ctx)
}

// unwrapTask strips the runtime's *TaskError from an actor call's error,
// for messages.
func unwrapTask(err error) error {
	var te *rt.TaskError
	if errors.As(err, &te) {
		return te.Err
	}
	return err
}

// session trains from the group's agreed state to the end, or until an
// error ends this group epoch.
func session(ctx context.Context, cfg *config, a *rt.Actor[*worker], do func(func(*worker, context.Context) error) error, emit func(record)) error {
	var rank0 bool
	if err := do(func(w *worker, ctx context.Context) error {
		if err := w.sync(ctx); err != nil {
			return err
		}
		rank0 = w.comm.Rank() == 0
		if rank0 && !w.started {
			emit(w.startRecord())
		}
		w.started = true
		return nil
	}); err != nil {
		return err
	}
	spe, total := cfg.stepsPerEpoch(), cfg.totalSteps()
	for {
		var step int
		if err := do(func(w *worker, _ context.Context) error { step = w.step; return nil }); err != nil {
			return err
		}
		if step >= total {
			break
		}
		if err := do((*worker).runStep); err != nil {
			return err
		}
		step++
		if step%spe == 0 {
			rec, err := rt.Call(a, (*worker).endEpoch).Get(ctx)
			if err != nil {
				return err
			}
			if rank0 {
				emit(rec)
			}
		}
		if cfg.ckptDir != "" && (step%spe == 0 || (cfg.ckptEvery > 0 && step%cfg.ckptEvery == 0)) {
			if err := do((*worker).saveCheckpoint); err != nil {
				return err
			}
		}
		if step%spe == 0 && step < total {
			if err := do((*worker).maybeGrow); err != nil {
				return err
			}
		}
	}
	return do(func(w *worker, ctx context.Context) error {
		if w.hog != nil {
			// Every rank ends with the final shared vector: nobody writes
			// after the barrier.
			if err := w.comm.Barrier(ctx); err != nil {
				return err
			}
			w.hog.snapshot(w.params)
		}
		if rank0 {
			emit(record{Kind: "done", Step: w.step, Workers: w.comm.Size(), GroupEp: w.comm.Epoch(), Restores: w.restores})
		}
		return nil
	})
}
