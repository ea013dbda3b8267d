package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	rt "github.com/ringo-ml/ringo/runtime"
)

// Downpour SGD (Dean et al., "Large Scale Distributed Deep Networks",
// NIPS 2012): the parameters live on parameter-server shards; each worker
// fetches them every -fetch-every steps, computes gradients on its own
// examples, and pushes their sum every -push-every steps, on its own
// clock: nobody waits for anybody. A shard applies a push as soon as it
// arrives, to whatever its parameters are by then, so a gradient may be
// computed on parameters several updates old (its staleness, which the
// server records).
//
// Here the server is the launcher's process, a runtime worker (package
// runtime, the course's Ray model in Go): each shard is a runtime actor
// whose mailbox applies the pushes one at a time, and the training
// workers, separate processes, call the shards remotely through two
// functions registered by name in every process, sgd.downpour.fetch and
// sgd.downpour.push, over the runtime's QUIC with mutual TLS. (A remote
// actor of package runtime belongs to the driver that placed it, so the
// shards are placed by the server process itself and reached through the
// registered functions.) The server applies SGD with momentum, the
// example's optimizer, with a step of η/n per pushed step: n workers then
// move the parameters as far per example as the synchronous modes do.
// A worker that dies takes nothing with it: the others go on, and the
// report says who was lost.

// The wire format of the two calls: []float64, whose codec the runtime
// has built in (8 bytes an element, no headers).
const (
	fetchHeader = 1 // version | parameters of the shard
	pushHeader  = 4 // worker | shard | version | steps | gradient of the shard
)

// Remote calls by name, registered in every process of the binary.
var (
	dpFetch = rt.Register("sgd.downpour.fetch", func(ctx context.Context, shard int64) ([]float64, error) {
		s := dpServing.Load()
		if s == nil {
			return nil, fmt.Errorf("this process serves no parameters")
		}
		return s.fetch(ctx, int(shard))
	})
	dpPush = rt.Register("sgd.downpour.push", func(ctx context.Context, msg []float64) (struct{}, error) {
		s := dpServing.Load()
		if s == nil {
			return struct{}{}, fmt.Errorf("this process serves no parameters")
		}
		return struct{}{}, s.push(ctx, msg)
	})
	dpDone = rt.Register("sgd.downpour.done", func(ctx context.Context, rank int64) (struct{}, error) {
		s := dpServing.Load()
		if s == nil {
			return struct{}{}, fmt.Errorf("this process serves no parameters")
		}
		s.finished(int(rank))
		return struct{}{}, nil
	})
)

// dpServing is the server of this process, if it is one.
var dpServing atomic.Pointer[dpServer]

// dpShard is one shard's state: an actor's, touched only in its mailbox.
type dpShard struct {
	lo, hi  int
	w, v    []float64
	version int64 // updates applied
	stale   []int // staleness of every push applied since the last report
}

// dpServer holds the shards and counts the work done.
type dpServer struct {
	cfg     *config
	n       int // workers
	shards  []*rt.Actor[*dpShard]
	bounds  [][2]int
	lr      float64
	mom     float64      // momentum
	steps   atomic.Int64 // worker steps pushed
	moved   atomic.Int64 // bytes fetched and pushed, all workers
	started atomic.Int64 // unix nanoseconds of the first fetch: training began
	onSteps func(steps int64)

	mu       sync.Mutex
	lastPush map[int]time.Time // per worker
	done     map[int]bool      // workers that said they finished
}

// over reports whether a run of n workers is over: all finished, or some
// have and the others have pushed nothing for stall (they are lost).
func (s *dpServer) over(n int, stall time.Duration) (lost []int, over bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.done) == n {
		return nil, true
	}
	if len(s.done) == 0 {
		return nil, false
	}
	for r := range n {
		if s.done[r] {
			continue
		}
		if t, ok := s.lastPush[r]; ok && time.Since(t) < stall {
			return nil, false
		}
		lost = append(lost, r)
	}
	return lost, true
}

// finished records that worker r pushed its last step.
func (s *dpServer) finished(r int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done == nil {
		s.done = map[int]bool{}
	}
	s.done[r] = true
}

// newDPServer makes the shards of params (split in -servers contiguous
// parts) as actors of r.
func newDPServer(r *rt.Runtime, cfg *config, n int, params []float64) (*dpServer, error) {
	s := &dpServer{cfg: cfg, n: n, lr: cfg.lr / float64(n), mom: cfg.momentum}
	k := min(cfg.servers, len(params))
	for i := range k {
		lo, hi := share(len(params), k, i)
		st := &dpShard{lo: lo, hi: hi, w: clone(params[lo:hi]), v: make([]float64, hi-lo)}
		a, err := rt.Spawn(r, func(context.Context) (*dpShard, error) { return st, nil }, rt.ActorName(fmt.Sprintf("ps-shard-%d", i)))
		if err != nil {
			return nil, err
		}
		s.shards = append(s.shards, a)
		s.bounds = append(s.bounds, [2]int{lo, hi})
	}
	return s, nil
}

func (s *dpServer) shard(i int) (*rt.Actor[*dpShard], error) {
	if i < 0 || i >= len(s.shards) {
		return nil, fmt.Errorf("no shard %d (there are %d)", i, len(s.shards))
	}
	return s.shards[i], nil
}

// fetch returns shard i's version and parameters.
func (s *dpServer) fetch(ctx context.Context, i int) ([]float64, error) {
	a, err := s.shard(i)
	if err != nil {
		return nil, err
	}
	s.started.CompareAndSwap(0, time.Now().UnixNano())
	out, err := rt.Call(a, func(st *dpShard, _ context.Context) ([]float64, error) {
		return append([]float64{float64(st.version)}, st.w...), nil
	}).Get(ctx)
	if err == nil {
		s.moved.Add(int64(8 * len(out)))
	}
	return out, err
}

// push applies a worker's accumulated gradient to its shard.
func (s *dpServer) push(ctx context.Context, msg []float64) error {
	if len(msg) < pushHeader {
		return fmt.Errorf("a push of %d values has no header", len(msg))
	}
	i, version, steps := int(msg[1]), int64(msg[2]), int64(msg[3])
	a, err := s.shard(i)
	if err != nil {
		return err
	}
	if want := s.bounds[i][1] - s.bounds[i][0]; len(msg)-pushHeader != want || steps < 1 {
		return fmt.Errorf("a push to shard %d of %d values and %d steps; want %d values", i, len(msg)-pushHeader, steps, want)
	}
	g := msg[pushHeader:]
	_, err = rt.Call(a, func(st *dpShard, _ context.Context) (struct{}, error) {
		st.stale = append(st.stale, int(st.version-version))
		floatsScaleAdd(st.v, s.mom, g)
		for j, v := range st.v {
			st.w[j] -= s.lr * v
		}
		st.version++
		return struct{}{}, nil
	}).Get(ctx)
	if err != nil {
		return err
	}
	s.moved.Add(int64(8 * len(msg)))
	s.mu.Lock()
	if s.lastPush == nil {
		s.lastPush = map[int]time.Time{}
	}
	s.lastPush[int(msg[0])] = time.Now()
	f := s.onSteps
	s.mu.Unlock()
	if i == 0 {
		total := s.steps.Add(steps)
		if f != nil {
			f(total)
		}
	}
	return nil
}

// snapshot gathers the parameters and the staleness seen since the last
// snapshot (median and largest, over every shard's pushes).
func (s *dpServer) snapshot(ctx context.Context, dst []float64) (staleMed, staleMax float64, err error) {
	var stale []int
	for i, a := range s.shards {
		lo := s.bounds[i][0]
		st, err := rt.Call(a, func(st *dpShard, _ context.Context) ([]int, error) {
			copy(dst[lo:], st.w)
			out := st.stale
			st.stale = nil
			return out, nil
		}).Get(ctx)
		if err != nil {
			return 0, 0, err
		}
		stale = append(stale, st...)
	}
	if len(stale) == 0 {
		return 0, 0, nil
	}
	slices.Sort(stale)
	return float64(stale[len(stale)/2]), float64(stale[len(stale)-1]), nil
}

// runDownpourWorker is one training worker process (-mode downpour with
// -join): a driver of the server's runtime cluster that trains on its
// share of every global batch, fetching and pushing on its own clock.
func runDownpourWorker(ctx context.Context, cfg *config, stderr io.Writer) error {
	level := slog.Level(100)
	if cfg.verbose {
		level = slog.LevelInfo
	}
	c, err := rt.Connect(ctx, rt.ClusterConfig{Group: cfg.group, Join: []string{cfg.join}, Bind: cfg.bind,
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))})
	if err != nil {
		return fmt.Errorf("reaching the parameter server: %w", err)
	}
	defer c.Close()
	wctx, cancel := context.WithTimeout(ctx, joinTimeout)
	_, err = c.WaitWorkers(wctx, 1)
	cancel()
	if err != nil {
		return fmt.Errorf("waiting for the parameter server: %w", err)
	}
	train, _ := loadData(cfg)
	m, err := newModel(cfg.model, train.Dim, cfg.hidden)
	if err != nil {
		return err
	}
	w := &worker{cfg: cfg, model: m, train: train, permEpoch: -1,
		params: make([]float64, m.size()), grad: make([]float64, m.size())}
	acc := make([]float64, m.size())
	k := min(cfg.servers, m.size())
	versions := make([]float64, k)
	pending := 0 // steps accumulated in acc
	for s := range cfg.totalSteps() {
		if s%cfg.fetchEvery == 0 {
			for i := range k {
				out, err := dpFetch.Remote(c, int64(i)).Get(ctx)
				if err != nil {
					return fmt.Errorf("step %d: fetching shard %d: %w", s, i, err)
				}
				lo, hi := share(m.size(), k, i)
				if len(out) != fetchHeader+hi-lo {
					return fmt.Errorf("step %d: shard %d sent %d values, want %d", s, i, len(out), fetchHeader+hi-lo)
				}
				versions[i] = out[0]
				copy(w.params[lo:hi], out[fetchHeader:])
			}
		}
		if s == cfg.killStep && cfg.rank == cfg.killRank {
			fmt.Fprintf(stderr, "sgd: worker %d: -kill: SIGKILL in step %d\n", cfg.rank, s)
			killSelf()
		}
		xb, yb := w.batchShare(s, cfg.workers, cfg.rank)
		w.model.gradient(w.params, w.grad, xb, yb, 1/float64(len(yb)), noReady)
		for j, g := range w.grad {
			acc[j] += g
		}
		pending++
		if pending < cfg.pushEvery && s+1 < cfg.totalSteps() {
			continue
		}
		for i := range k {
			lo, hi := share(m.size(), k, i)
			msg := append([]float64{float64(cfg.rank), float64(i), versions[i], float64(pending)}, acc[lo:hi]...)
			if _, err := dpPush.Remote(c, msg).Get(ctx); err != nil {
				return fmt.Errorf("step %d: pushing to shard %d: %w", s, i, err)
			}
		}
		clear(acc)
		pending = 0
	}
	if _, err := dpDone.Remote(c, int64(cfg.rank)).Get(ctx); err != nil {
		return fmt.Errorf("telling the server this worker is done: %w", err)
	}
	return nil
}

// dpRun is a Downpour server at work: its shards, the runtime worker that
// serves them, and what it has reported.
type dpRun struct {
	cfg      *config
	n        int
	srv      *dpServer
	r        *rt.Runtime
	rw       *rt.Worker
	ev       *dpEval
	sum      *runSummary
	emit     func(record)
	evalMu   sync.Mutex // guards evals and closed
	evals    chan int64
	closed   bool
	evalDone chan struct{}
}

// startDPServer serves the initial parameters for n workers in group at
// bind (a runtime worker of this process), evaluating them each time the
// workers have pushed an epoch's worth of steps.
func startDPServer(ctx context.Context, cfg *config, n int, group, bind string, stdout io.Writer) (*dpRun, error) {
	train, test := loadData(cfg)
	m, err := newModel(cfg.model, train.Dim, cfg.hidden)
	if err != nil {
		return nil, err
	}
	params := make([]float64, m.size())
	m.init(params, cfg.seed)
	r, err := rt.New(rt.Config{})
	if err != nil {
		return nil, err
	}
	srv, err := newDPServer(r, cfg, n, params)
	if err != nil {
		r.Close()
		return nil, err
	}
	level := slog.Level(100)
	if cfg.verbose {
		level = slog.LevelInfo
	}
	rw, err := rt.StartWorker(ctx, rt.WorkerConfig{Group: group, Bind: bind,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))})
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("starting the parameter server: %w", err)
	}
	d := &dpRun{cfg: cfg, n: n, srv: srv, r: r, rw: rw, sum: &runSummary{Workers: n},
		evals: make(chan int64, cfg.epochs+1), evalDone: make(chan struct{})}
	tbl := newTable(stdout, cfg)
	var mu sync.Mutex
	d.emit = func(rec record) {
		mu.Lock()
		defer mu.Unlock()
		switch rec.Kind {
		case "start":
			d.sum.Start = rec
		case "epoch":
			d.sum.addEpoch(rec)
		case "done":
			d.sum.Done = &rec
		}
		tbl.record(rec)
	}
	d.emit(record{Kind: "start", Model: m.String(), Params: m.size(), Mode: "downpour", Workers: n,
		DataPath: fmt.Sprintf("the runtime's QUIC to %d parameter-server shard(s)", len(srv.shards)),
		Buckets:  fmt.Sprintf("push every %d, fetch every %d steps", cfg.pushEvery, cfg.fetchEvery)})
	d.ev = &dpEval{srv: srv, cfg: cfg, model: m, train: train, test: test, n: n, emit: d.emit, began: time.Now(), last: time.Now()}
	epochSteps := int64(cfg.stepsPerEpoch() * n)
	var next atomic.Int64
	next.Store(epochSteps)
	srv.onSteps = func(steps int64) {
		for e := next.Load(); steps >= e; e = next.Load() {
			if next.CompareAndSwap(e, e+epochSteps) {
				d.evalMu.Lock()
				if !d.closed {
					select {
					case d.evals <- e / epochSteps:
					default: // more epochs than the run has: nothing to report
					}
				}
				d.evalMu.Unlock()
			}
		}
	}
	go func() {
		defer close(d.evalDone)
		for e := range d.evals {
			d.ev.epoch(ctx, int(e))
		}
	}()
	dpServing.Store(srv)
	return d, nil
}

// finish ends the run: the last evaluation if the workers lost some
// steps, the done record, and the server.
func (d *dpRun) finish(ctx context.Context, lost []int) *runSummary {
	dpServing.Store(nil)
	d.evalMu.Lock()
	d.closed = true
	close(d.evals)
	d.evalMu.Unlock()
	<-d.evalDone
	if len(d.sum.Epochs) < d.cfg.epochs { // workers lost: evaluate what the others left
		d.ev.epoch(ctx, len(d.sum.Epochs)+1)
	}
	d.emit(record{Kind: "done", Step: int(d.srv.steps.Load()) / d.n, Workers: d.n - len(lost), Lost: lost})
	for _, w := range lost {
		d.sum.Lost = append(d.sum.Lost, fmt.Sprintf("worker %d: lost", w))
	}
	_ = d.rw.Close()
	d.r.Close()
	return d.sum
}

// launchDownpour runs -mode downpour with n workers: this process serves
// the parameters, n worker processes train.
func launchDownpour(ctx context.Context, cfg *config, exe string, n int, stdout, stderr io.Writer) (*runSummary, error) {
	fmt.Fprintf(stdout, "\n== %s ==\n", workersLabel(n))
	group := fmt.Sprintf("sgd-dp-%d-%d-%d", os.Getpid(), n, time.Now().UnixNano())
	d, err := startDPServer(ctx, cfg, n, group, "127.0.0.1:0", stdout)
	if err != nil {
		return nil, err
	}
	lost, err := runDPWorkers(ctx, cfg, exe, n, group, d.rw.GossipAddr(), stderr)
	sum := d.finish(ctx, lost)
	return sum, err
}

// dpStall is how long -serve waits for a worker that stopped pushing
// while others have finished before it counts it lost.
const dpStall = 30 * time.Second

// runDownpourServe is -mode downpour -serve: this process serves the
// parameters at -bind for -workers workers started elsewhere (other
// hosts: sgd -mode downpour -join THIS -rank R -workers N), prints the
// epochs as they are reached, and ends when every worker has finished
// or, once some have, the others have been silent for dpStall.
func runDownpourServe(ctx context.Context, cfg *config, stdout io.Writer) error {
	fmt.Fprint(stdout, describeRun(cfg))
	d, err := startDPServer(ctx, cfg, cfg.workers, cfg.group, cfg.bind, stdout)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "serving the parameters at %s (gossip; group %q) for %d workers\n", d.rw.GossipAddr(), cfg.group, cfg.workers)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			d.finish(context.Background(), nil)
			return ctx.Err()
		case <-tick.C:
		}
		if lost, over := d.srv.over(cfg.workers, dpStall); over {
			d.finish(ctx, lost)
			return nil
		}
	}
}

// dpEval evaluates the server's parameters.
type dpEval struct {
	srv         *dpServer
	cfg         *config
	model       learner
	train, test *dataset
	n           int
	emit        func(record)
	began, last time.Time
}

// epoch evaluates the parameters as they stand once the workers have
// pushed e epochs' worth of steps, and reports them.
func (ev *dpEval) epoch(ctx context.Context, e int) {
	params := make([]float64, ev.model.size())
	staleMed, staleMax, err := ev.srv.snapshot(ctx, params)
	if err != nil {
		return
	}
	loss, correct := ev.model.evaluate(params, ev.train.X, ev.train.Y)
	tloss, tcorrect := ev.model.evaluate(params, ev.test.X, ev.test.Y)
	now := time.Now()
	if t := ev.srv.started.Load(); t != 0 && ev.began.Before(time.Unix(0, t)) {
		ev.began, ev.last = time.Unix(0, t), time.Unix(0, t) // the first fetch: training began
	}
	spe := ev.cfg.stepsPerEpoch()
	span := now.Sub(ev.last).Seconds()
	ev.last = now
	ev.emit(record{Kind: "epoch", Epoch: e, Step: int(ev.srv.steps.Load()) / ev.n, Workers: ev.n,
		Loss: loss / float64(ev.train.Len()), TrainAcc: float64(correct) / float64(ev.train.Len()),
		TestLoss: tloss / float64(ev.test.Len()), TestAcc: float64(tcorrect) / float64(ev.test.Len()),
		StepMs: 1000 * span / float64(spe), Steps: spe, SpanS: span,
		MovedMB: float64(ev.srv.moved.Load()) / float64(ev.n) / 1e6, WallS: now.Sub(ev.began).Seconds(),
		StaleMed: staleMed, StaleMax: staleMax})
}

// runDPWorkers starts the n worker processes and waits for them; a
// worker killed by -kill is lost, not a failure.
func runDPWorkers(ctx context.Context, cfg *config, exe string, n int, group, seed string, stderr io.Writer) (lost []int, err error) {
	errw := &lockedWriter{w: stderr}
	exited := make(chan *proc, n)
	var procs []*proc
	for i := range n {
		args := append(workerArgs(cfg, n, group, seed, "127.0.0.1:0"), "-rank", fmt.Sprint(i))
		if cfg.killRank >= 0 && n == cfg.workers {
			args = append(args, "-kill", fmt.Sprintf("%d@%d", cfg.killRank, cfg.killStep))
		}
		p, err := startWorker(exe, i, args, func(record) {}, errw, exited)
		if err != nil {
			for _, q := range procs {
				_ = q.cmd.Process.Kill()
			}
			return nil, fmt.Errorf("starting worker %d: %w", i, err)
		}
		procs = append(procs, p)
	}
	var failures []string
	for range n {
		var p *proc
		select {
		case p = <-exited:
		case <-ctx.Done():
			for _, q := range procs {
				_ = q.cmd.Process.Kill()
			}
			p = <-exited
		}
		if p.err == nil {
			continue
		}
		var ee *exec.ExitError
		if errors.As(p.err, &ee) && isSIGKILL(ee) && cfg.killRank == p.idx && n == cfg.workers {
			lost = append(lost, p.idx)
			fmt.Fprintf(errw, "sgd: worker process %d died (%v), as -kill asked; the others go on\n", p.idx, p.err)
			continue
		}
		failures = append(failures, fmt.Sprintf("worker %d: %v: %s", p.idx, p.err, p.last))
	}
	if ctx.Err() != nil {
		return lost, ctx.Err()
	}
	if len(failures) > 0 {
		return lost, fmt.Errorf("%s", failures)
	}
	return lost, nil
}

// staleText formats a staleness pair for tables.
func staleText(med, max float64) string {
	if math.IsNaN(med) || (med == 0 && max == 0) {
		return "-"
	}
	return fmt.Sprintf("%.0f/%.0f", med, max)
}
