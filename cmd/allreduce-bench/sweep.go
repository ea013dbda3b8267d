package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ringo-ml/ringo/collective"
	"github.com/ringo-ml/ringo/internal/turns"
)

// rowSpec is one size of a sweep, with nccl-tests' meaning of the columns.
type rowSpec struct {
	// bytes is the size column: the per-rank buffer for allreduce,
	// broadcast, reduce and sendrecv; the total (receive buffer of
	// allgather and gather, send buffer of reducescatter) for the others.
	bytes int64
	// count is the count column: elements per rank in the call (the
	// per-rank send count of allgather and gather, the per-rank receive
	// count of reducescatter).
	count int64
}

// split says whether the op's size is divided among the ranks.
func (o opKind) split() bool { return o == opAllGather || o == opGather || o == opReduceScatter }

// sweepRows lists the sizes of a sweep for n ranks: -b, -b×f, ... up to
// -e, each rounded down to whole elements (and to a multiple of n elements
// where the op splits the size among ranks). Sizes that round to zero
// elements are skipped, except the size 0 itself when -b is 0.
func sweepRows(cfg *config, n int) []rowSpec {
	rows, _ := sweepPlan(cfg, n)
	return rows
}

// sweepPlan is sweepRows with, for each row, the position of the size it
// came from in the sequence -b, -b×f, ...: a name for the row that does
// not depend on n, for an elastic group to resume a sweep at.
func sweepPlan(cfg *config, n int) (rows []rowSpec, step []int) {
	es := cfg.dt.size()
	for s, k := cfg.minBytes, 0; s <= cfg.maxBytes; k++ {
		count := s / es
		bytes := count * es
		if cfg.op.split() {
			count /= int64(n)
			bytes = count * int64(n) * es
		}
		if count > 0 || s == 0 {
			rows = append(rows, rowSpec{bytes: bytes, count: count})
			step = append(step, k)
		}
		switch {
		case s == 0:
			s = es
		case s > cfg.maxBytes/cfg.factor:
			return rows, step
		default:
			s *= cfg.factor
		}
	}
	return rows, step
}

// lens gives the element counts of the src and dst buffers one rank uses
// for a row (0 where the op has no such buffer on this rank). In-place ops
// (allreduce, broadcast) use dst only.
func (o opKind) lens(row rowSpec, n, rank, root int) (src, dst int64) {
	c := row.count
	switch o {
	case opAllReduce, opBroadcast:
		return 0, c
	case opReduce:
		if rank == root {
			return c, c
		}
		return c, 0
	case opGather:
		if rank == root {
			return c, c * int64(n)
		}
		return c, 0
	case opAllGather:
		return c, c * int64(n)
	case opReduceScatter:
		return c * int64(n), c
	}
	return c, c // sendrecv
}

// rowResult is one measured row, as the table and the JSON show it.
type rowResult struct {
	Size   int64   `json:"size"`
	Count  int64   `json:"count"`
	Type   string  `json:"type"`
	Redop  string  `json:"redop"`
	Root   int     `json:"root"`
	TimeUS float64 `json:"time_us"`
	AlgBW  float64 `json:"algbw_gbps"`
	BusBW  float64 `json:"busbw_gbps"`
	// Wrong is the number of wrong elements summed over ranks; nil when
	// results were not checked (-c 0).
	Wrong *int64 `json:"wrong"`
	// Algorithm is the schedule collective ran, as Explain names it:
	// "ring", "recursive doubling", "double binary tree", "binomial tree".
	Algorithm string `json:"algorithm"`
	// Transport is what carried the calls, as Explain says: "tls",
	// "quic", "tcp" or "shm"; empty for in-process pipes.
	Transport string `json:"transport,omitempty"`
	// Reason is why: the cost model's estimates compared, or "forced".
	Reason string `json:"reason"`
	// Requested is what -algo compare or -transport compare asked for on
	// this row: ring, tree or auto; tls, quic or auto; empty otherwise.
	Requested string `json:"requested,omitempty"`
	// TimeUS is the median over the row's repetitions (each the slowest
	// rank's mean over its calls); these are the fastest and slowest
	// repetitions, and Iters the timed calls in all.
	TimeMinUS float64 `json:"time_min_us"`
	TimeMaxUS float64 `json:"time_max_us"`
	Iters     int     `json:"iters"`
}

// float is the element types the benchmark sweeps.
// elem is an element type of a sweep: collective.Float16 and BFloat16
// are the ~uint16 ones.
type elem interface {
	~float32 | ~float64 | ~int32 | ~int64 | ~uint8 | ~uint16
}

// rankRun is one rank's sweep.
type rankRun struct {
	cfg  *config
	comm *collective.Communicator
	rep  *report // rank 0's report, nil on the other ranks
	ops  int     // benchmark operations run so far, for the die hook
}

// runRank runs the whole sweep on one rank. Every rank of the group calls
// it with the same configuration; rep is non-nil on the rank that prints.
// It returns the number of wrong elements summed over all ranks.
func runRank(ctx context.Context, cfg *config, comm *collective.Communicator, rep *report) (int64, error) {
	r := &rankRun{cfg: cfg, comm: comm, rep: rep}
	defer watchStatus(comm, os.Stderr)() // SIGUSR1 prints comm.Status (status.go)
	switch cfg.dt {
	case float64T:
		return sweep[float64](ctx, r)
	case int32T:
		return sweep[int32](ctx, r)
	case int64T:
		return sweep[int64](ctx, r)
	case uint8T:
		return sweep[uint8](ctx, r)
	case float16T:
		return sweep[collective.Float16](ctx, r)
	case bfloat16T:
		return sweep[collective.BFloat16](ctx, r)
	}
	return sweep[float32](ctx, r)
}

func sweep[T elem](ctx context.Context, r *rankRun) (int64, error) {
	if r.cfg.tcompare && !strings.Contains(r.comm.DataPath(), " or ") {
		return 0, fmt.Errorf("-transport compare needs the TLS lanes and QUIC paths of ranks on separate hosts, and these move data over %s; run each rank on a host (or network namespace) of its own: cmd/allreduce-bench/netns.sh", r.comm.DataPath())
	}
	rows := sweepRows(r.cfg, r.comm.Size())
	src, dst := sweepBuffers[T](r, rows)
	var wrongTotal int64
	if r.rep != nil {
		// Fail now rather than after the sweep if -json or -plot cannot be
		// written. The other ranks then fail their first call.
		if err := r.rep.createFiles(); err != nil {
			return 0, err
		}
		r.rep.start(rows)
	}
	for _, row := range rows {
		algs := configured
		if r.cfg.compare {
			algs = compared
		} else if r.cfg.tcompare {
			algs = transportsCompared
		}
		results, err := measure(ctx, r, row, src, dst, algs)
		if err != nil {
			return 0, err
		}
		for _, res := range results {
			if res.Wrong != nil {
				wrongTotal += *res.Wrong
			}
			if r.rep != nil {
				r.rep.row(res)
			}
		}
	}
	if r.rep != nil {
		r.rep.finish(wrongTotal)
	}
	return wrongTotal, nil
}

// sweepBuffers allocates this rank's buffers for the largest of rows and
// touches them once, before any timing, so that no row pays for fresh
// pages.
func sweepBuffers[T elem](r *rankRun, rows []rowSpec) (src, dst []T) {
	cfg, n, rank := r.cfg, r.comm.Size(), r.comm.Rank()
	var srcMax, dstMax int64
	for _, row := range rows {
		s, d := cfg.op.lens(row, n, rank, cfg.root)
		srcMax, dstMax = max(srcMax, s), max(dstMax, d)
	}
	src, dst = make([]T, srcMax), make([]T, dstMax)
	if cfg.reg {
		// Registered with the shared-memory peers (ordinary memory on
		// other paths); on failure the plain buffers above stay.
		if s, err := allocFor[T](r.comm, srcMax); err == nil {
			src = s
		}
		if d, err := allocFor[T](r.comm, dstMax); err == nil {
			dst = d
		}
	}
	fill(src, 1)
	fill(dst, 1)
	return src, dst
}

// runRow measures one size with the configured algorithm: warm-up, a
// barrier, the timed iterations, the slowest rank's mean time, and with -c
// the check, its wrong elements summed over the ranks. Every rank gets the
// same result.
func runRow[T elem](ctx context.Context, r *rankRun, row rowSpec, src, dst []T) (rowResult, error) {
	res, err := measure(ctx, r, row, src, dst, configured)
	if err != nil {
		return rowResult{}, err
	}
	return res[0], nil
}

// algChoice is an algorithm a row is measured with: its name in the
// table's last column (empty for the configured one) and the call options.
type algChoice struct {
	name string
	opts []collective.CallOption
}

// configured measures a row as the communicator's Config says.
var configured = []algChoice{{}}

// reps is how many repetitions a size's timed calls are cut into (fewer
// when there are fewer calls): the row is their median, and with -spread
// their range. With -algo or -transport compare the algorithms take turns
// by repetition.
const reps = 5

// Bounds of the calls a time budget gives a size.
const minIters, maxIters = reps, 1 << 20

// iterations runs the warm-up and decides how many timed calls each
// algorithm gets: -n when it was given; else as many as fit in the time
// budget (-T) at the pace the warm-up measured, the slowest rank's, so
// that every rank runs the same number of calls. The warm-up is -w calls
// of each algorithm and, with a budget, at least a fifth of it: first
// touches of the segments and a warm link are then behind.
func (r *rankRun) iterations(ctx context.Context, calls []func() error) (int, error) {
	cfg := r.cfg
	n := cfg.warmup
	if !cfg.itersSet {
		n = max(n, 1)
	}
	pace, err := r.warm(ctx, calls, n)
	if err != nil {
		return 0, err
	}
	if cfg.itersSet {
		return cfg.iters, r.comm.Barrier(ctx)
	}
	// Warm up in rounds of doubling length until a fifth of the budget is
	// spent: the first calls of a size (first touches, cold links) are
	// slower than the rest, so the pace that sets the count is the last
	// round's. Every rank decides from the agreed (slowest) pace, so every
	// rank runs the same calls.
	// At least one such round follows the first, whose pace includes the
	// cold start.
	for spent, k := pace*float64(n), max(n, 1); ; {
		k = min(2*k, maxIters)
		if pace, err = r.warm(ctx, calls, k); err != nil {
			return 0, err
		}
		if spent += pace * float64(k); spent >= cfg.budget.Seconds()/5 || k >= maxIters {
			break
		}
	}
	if err := r.comm.Barrier(ctx); err != nil {
		return 0, err
	}
	if !(pace > 0) {
		return maxIters, nil
	}
	return max(minIters, min(maxIters, int(cfg.budget.Seconds()/pace))), nil
}

// warm runs n rounds of the calls, untimed as far as the row goes, and
// returns the slowest rank's mean time of a round.
func (r *rankRun) warm(ctx context.Context, calls []func() error, n int) (float64, error) {
	t0 := time.Now()
	for range n {
		for _, call := range calls {
			if err := call(); err != nil {
				return 0, err
			}
		}
	}
	pace := []float64{0}
	if n > 0 {
		pace[0] = time.Since(t0).Seconds() / float64(n)
	}
	if err := r.comm.AllReduce(ctx, pace, collective.Max); err != nil {
		return 0, err
	}
	return pace[0], nil
}

// timeTurns times iters calls of each algorithm in repetitions that take
// turns (package turns) and returns, per algorithm, the median over the
// repetitions of the slowest rank's mean time per call, and the fastest
// and slowest repetitions.
func (r *rankRun) timeTurns(ctx context.Context, calls []func() error, iters int) (med, lo, hi []float64, err error) {
	k := len(calls)
	nr := min(reps, iters)
	block := (iters + nr - 1) / nr
	lead := k > 1 // an untimed call opens each turn
	times := make([]float64, k*reps)
	for rep, done := 0, 0; rep < nr; rep++ {
		b := min(block, iters-done)
		if b == 0 {
			nr = rep
			break
		}
		for j := range k {
			i := turns.Index(rep, j, k)
			if lead {
				if err := calls[i](); err != nil {
					return nil, nil, nil, err
				}
			}
			t0 := time.Now()
			for range b {
				if err := calls[i](); err != nil {
					return nil, nil, nil, err
				}
			}
			times[i*reps+rep] = time.Since(t0).Seconds() / float64(b)
		}
		done += b
	}
	times = times[:k*reps]
	// The slowest rank's time of each repetition.
	if err := r.comm.AllReduce(ctx, times, collective.Max); err != nil {
		return nil, nil, nil, err
	}
	med, lo, hi = make([]float64, k), make([]float64, k), make([]float64, k)
	for i := range k {
		t := slices.Clone(times[i*reps : i*reps+nr])
		slices.Sort(t)
		med[i], lo[i], hi[i] = t[len(t)/2], t[0], t[len(t)-1]
	}
	return med, lo, hi, nil
}

// compared is what -algo compare times: each forced algorithm and auto.
var compared = []algChoice{
	{"ring", []collective.CallOption{collective.Using(collective.Ring)}},
	{"tree", []collective.CallOption{collective.Using(collective.Tree)}},
	{"auto", nil},
}

// transportsCompared is what -transport compare times: each encrypted
// data path forced (the algorithm still Auto's choice on it), and auto.
var transportsCompared = []algChoice{
	{"tls", []collective.CallOption{collective.Over(collective.TransportTLS)}},
	{"quic", []collective.CallOption{collective.Over(collective.TransportQUIC)}},
	{"auto", nil},
}

// measure measures one size with every algorithm of algs in the same run:
// after their warm-ups, the timed iterations take turns (package turns), so
// that a change in the machine's load reaches all of them alike. Each gets
// its own row: the slowest rank's mean time per call, and with -c its own
// check.
//
// With several algorithms a turn is a block of back-to-back calls (at most
// compareTurns turns each) after one untimed call. A call as a rank times
// it lasts from that rank's own start, which depends on when it finished
// the previous call; after a call of another algorithm the ranks start
// apart by as much as a small call takes, and the slowest rank's time
// measured that switch as well as the algorithm, unequally: with one call
// a turn, 4 ranks over QUIC on 2 cores gave auto ÷ ring 0.55 at 4 KiB
// where -algo auto and -algo ring alone give 0.62-0.64 (the ring's
// back-to-back calls overlap, which single calls in turns hid). The
// untimed call absorbs the switch, so each row is the algorithm's time in
// a loop of its own calls, what -algo with that algorithm alone measures.
func measure[T elem](ctx context.Context, r *rankRun, row rowSpec, src, dst []T, algs []algChoice) ([]rowResult, error) {
	cfg, n, rank := r.cfg, r.comm.Size(), r.comm.Rank()
	calls := make([]func() error, len(algs))
	for i, a := range algs {
		calls[i] = makeCall(ctx, r, row, src, dst, a.opts...)
	}
	// Timing inputs are fixed points of the operator (0 for sum, 1
	// otherwise), so repeated in-place reductions never drift into
	// infinities or slow subnormal numbers.
	s, d := cfg.op.lens(row, n, rank, cfg.root)
	v := T(1)
	if cfg.op.reduces() && cfg.redop == collective.Sum {
		v = 0
	}
	fill(src[:s], v)
	fill(dst[:d], v)
	iters, err := r.iterations(ctx, calls)
	if err != nil {
		return nil, err
	}
	stat, lo, hi, err := r.timeTurns(ctx, calls, iters)
	if err != nil {
		return nil, err
	}
	out := make([]rowResult, len(calls))
	for i, a := range algs {
		res := rowResult{Size: row.bytes, Count: row.count, Type: cfg.dt.ncclName(), Redop: "none", Root: -1, TimeUS: stat[i] * 1e6, Requested: a.name,
			TimeMinUS: lo[i] * 1e6, TimeMaxUS: hi[i] * 1e6, Iters: iters}
		if cfg.op.reduces() {
			res.Redop = cfg.redop.String()
		}
		if cfg.op.hasRoot() {
			res.Root = cfg.root
		}
		res.Algorithm = "?"
		if ch, err := r.comm.Explain(cfg.op.collective(), int(cfg.dt.size()), int(row.count), a.opts...); err == nil {
			res.Algorithm, res.Reason = ch.Schedule.String(), ch.Reason
			if ch.Transport != collective.TransportAuto {
				res.Transport = ch.Transport.String()
			}
		}
		if stat[i] > 0 {
			res.AlgBW = float64(row.bytes) / stat[i] / 1e9
			res.BusBW = res.AlgBW * cfg.op.busFactor(n)
		}
		out[i] = res
	}
	if cfg.check {
		wrong := make([]float64, len(calls))
		for i, call := range calls {
			w, err := check(ctx, r, row, src[:s], dst[:d], call)
			if err != nil {
				return nil, err
			}
			wrong[i] = float64(w)
		}
		if err := r.comm.AllReduce(ctx, wrong, collective.Sum); err != nil {
			return nil, err
		}
		for i := range out {
			w := int64(wrong[i])
			out[i].Wrong = &w
		}
	}
	return out, nil
}

// makeCall returns a function that runs the row's collective once on this
// rank's slices of src and dst. The slices are converted to interfaces
// once, here, so that the timed calls allocate nothing.
func makeCall[T elem](ctx context.Context, r *rankRun, row rowSpec, src, dst []T, opts ...collective.CallOption) func() error {
	cfg, comm := r.cfg, r.comm
	s, d := cfg.op.lens(row, comm.Size(), comm.Rank(), cfg.root)
	var sa, da any = src[:s], dst[:d]
	if comm.Rank() != cfg.root && (cfg.op == opReduce || cfg.op == opGather) {
		da = nil // not the root: no result buffer
	}
	var f func() error
	switch cfg.op {
	case opAllReduce:
		f = func() error { return comm.AllReduce(ctx, da, cfg.redop, opts...) }
	case opBroadcast:
		f = func() error { return comm.Broadcast(ctx, da, cfg.root, opts...) }
	case opReduce:
		f = func() error { return comm.Reduce(ctx, da, sa, cfg.redop, cfg.root, opts...) }
	case opGather:
		f = func() error { return comm.Gather(ctx, da, sa, cfg.root, opts...) }
	case opAllGather:
		f = func() error { return comm.AllGather(ctx, da, sa, opts...) }
	case opReduceScatter:
		f = func() error { return comm.ReduceScatter(ctx, da, sa, cfg.redop, opts...) }
	case opSendRecv:
		f = func() error { return comm.SendRecv(ctx, da, sa, opts...) }
	}
	if cfg.dieRank != comm.Rank() {
		return f
	}
	return func() error {
		err := f()
		r.ops++
		if r.ops == cfg.dieAfter {
			// Test hook: vanish as a crashed process would.
			fmt.Fprintf(os.Stderr, "test hook: rank %d kills itself after %d operations\n", comm.Rank(), r.ops)
			killSelf()
		}
		return err
	}
}

// allocFor allocates n elements with the communicator's AllocFloat32 or
// AllocFloat64.
func allocFor[T elem](c *collective.Communicator, n int64) ([]T, error) {
	var z T
	switch any(z).(type) {
	case float32:
		b, err := c.AllocFloat32(int(n))
		return any(b).([]T), err
	case float64:
		b, err := c.AllocFloat64(int(n))
		return any(b).([]T), err
	}
	return make([]T, n), nil // registered buffers are float32 and float64
}

func fill[T elem](s []T, v T) {
	for i := range s {
		s[i] = v
	}
}

// flipLowBit changes x in its last bit: the smallest corruption there is.
func flipLowBit[T elem](x T) T {
	switch v := any(x).(type) {
	case float32:
		return T(math.Float32frombits(math.Float32bits(v) ^ 1))
	case float64:
		return T(math.Float64frombits(math.Float64bits(v) ^ 1))
	case int32:
		return T(v ^ 1)
	case int64:
		return T(v ^ 1)
	case uint8:
		return T(v ^ 1)
	case collective.Float16:
		return T(v ^ 1)
	case collective.BFloat16:
		return T(v ^ 1)
	}
	panic("unreachable")
}
