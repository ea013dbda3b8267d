package collective

import (
	"context"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"
	"time"

	"github.com/ringo-ml/ringo/internal/reduce"
	"github.com/ringo-ml/ringo/internal/turns"
	"github.com/ringo-ml/ringo/internal/wire"
)

// CallOption adjusts one call. (A value, not a function, so that passing
// options costs no allocation.)
type CallOption struct {
	algo  Algorithm
	over  Transport // a data path (Over)
	sched Schedule  // a specific schedule (calibration)
}

// Using runs the call with algorithm a instead of Config.Algorithm. Every
// rank must make the same choice (the frames carry it; a difference fails
// with ErrMismatch).
func Using(a Algorithm) CallOption { return CallOption{algo: a} }

// callAlgo is the algorithm the options ask for (Auto: the config's).
func callAlgo(opts []CallOption) Algorithm {
	a := Auto
	for _, o := range opts {
		if o.algo != Auto {
			a = o.algo
		}
	}
	return a
}

// callSched is the schedule the options name, if any.
func callSched(opts []CallOption) Schedule {
	for _, o := range opts {
		if o.sched != 0 {
			return o.sched
		}
	}
	return 0
}

// Costs are the link and kernel parameters of the alpha-beta-gamma model
// that Auto chooses algorithms with, measured on one data path of this
// communicator's links (the slowest rank's figure, so that every rank
// holds the same values and makes the same choice). A communicator that
// chooses between TLS lanes and QUIC per call holds one Costs for each.
type Costs struct {
	// Transport is the data path the figures were measured on.
	Transport Transport
	Alpha     time.Duration // latency of one dependent step (a ring Barrier's step)
	Beta      float64       // seconds per byte moved over a link
	Gamma     float64       // seconds per byte reduced
	// AllReduce holds, per AllReduce schedule (ring, recursive doubling,
	// double binary tree), the line T(N) = Fixed + PerByte·N through two
	// timed runs (4 KiB and 256 KiB): each schedule's real costs (how its
	// steps overlap, how its traffic shares links and cores) differ more
	// than a textbook formula says. AllReduceLarge continues each line
	// from 256 KiB through a third run at 1 MiB, where pipelining and
	// per-byte costs have taken over; it is used above 256 KiB. Beyond 1
	// MiB, the largest size timed, a tree's line grows at least as fast as
	// the ring's measured per-byte cost times the formulas' ratio of the
	// two (a tree moves and reduces more bytes per rank than the ring:
	// log2(n)·N for recursive doubling against 2(n-1)/n·N), so that the
	// noise of two timed points does not carry a tree to 64 MiB. Zero
	// until calibrated: the formulas stand in.
	AllReduce, AllReduceLarge [3]Line
}

// calBulk is the middle calibration size (bytes): AllReduce lines bend
// here; calTop is the largest, beyond which the lines are extrapolated.
const calBulk, calTop = 256 << 10, 1 << 20

// Line is a fitted time: Fixed + PerByte·bytes.
type Line struct {
	Fixed   time.Duration
	PerByte float64 // seconds
}

func (l Line) at(bytes float64) float64 { return l.Fixed.Seconds() + l.PerByte*bytes }

func (k Costs) String() string {
	return fmt.Sprintf("α=%v β=%.3g ns/B γ=%.3g ns/B", k.Alpha.Round(100*time.Nanosecond), k.Beta*1e9, k.Gamma*1e9)
}

// allReduceScheds are the AllReduce schedules in Costs.AllReduce order.
var allReduceScheds = [3]Schedule{ScheduleRing, ScheduleRecursiveDoubling, ScheduleDoubleBinaryTree}

// Choice is the algorithm and data path Auto picked for a call, with the
// reason.
type Choice struct {
	Algorithm Algorithm // Ring or Tree: the family of Schedule
	Schedule  Schedule
	// Transport is what carries the call's bytes: TransportTLS,
	// TransportQUIC, TransportTCP or TransportShm (TransportAuto for
	// in-process pipes).
	Transport Transport
	Estimate  time.Duration // the model's time for it
	Reason    string        // the estimates compared
}

// candidate is one algorithm's estimate for a call on one path.
type candidate struct {
	algo  Algorithm
	sched Schedule
	t     float64 // seconds
	path  dataPath
}

// candidates holds a call's estimates without allocating.
type candidates struct {
	c [3]candidate
	n int
}

func (cs *candidates) list() []candidate { return cs.c[:cs.n] }

// estimates returns the model's time for each algorithm that can run op on
// bytes bytes per rank (as the call's count defines it), fastest first.
func (k Costs) estimates(op wire.Op, world int, bytes, chunk float64) candidates {
	n := float64(world)
	a, b, g := k.Alpha.Seconds(), k.Beta, k.Gamma
	depth := float64(bits.Len(uint(world - 1))) // ceil(log2 n)
	var out candidates
	add := func(sched Schedule, t float64) {
		algo := Ring
		if sched.Tree() {
			algo = Tree
		}
		out.c[out.n] = candidate{algo: algo, sched: sched, t: t}
		out.n++
	}
	c := min(chunk, bytes)
	switch op {
	case wire.OpAllReduce:
		seg := bytes / n
		per := allReducePerByte(world, b, g)
		t := [3]float64{ // the formulas, where a schedule was not timed
			2*(n-1)*(a+min(c, seg)*b) + bytes*per[0],
			rdSteps(world)*a + bytes*per[1],
			2*depth*(a+min(c, bytes/2)*b) + bytes*per[2],
		}
		ring := k.AllReduceLarge[0].PerByte // 0 if the ring was not timed: no floor
		for i := range t {
			l := k.AllReduce[i]
			if l.PerByte <= 0 {
				continue
			}
			if bytes > calBulk && k.AllReduceLarge[i].PerByte > 0 {
				l = k.AllReduceLarge[i]
			}
			t[i] = l.at(bytes)
			if bytes > calTop {
				t[i] = l.at(calTop) + (bytes-calTop)*max(l.PerByte, ring*per[i]/per[0])
			}
		}
		add(ScheduleRing, max(t[0], 0))
		add(ScheduleRecursiveDoubling, max(t[1], 0))
		add(ScheduleDoubleBinaryTree, max(t[2], 0))
	case wire.OpBroadcast:
		add(ScheduleRing, (n-1)*(a+c*b)+bytes*b+a)
		add(ScheduleBinomialTree, depth*(a+c*b)+depth*bytes*b+depth*a)
	case wire.OpReduce:
		add(ScheduleRing, (n-1)*(a+c*b)+bytes*(b+g)+a)
		add(ScheduleBinomialTree, depth*(a+c*b)+depth*bytes*(b+g)+a)
	case wire.OpGather:
		add(ScheduleRing, (n-1)*a+(n-1)*bytes*b+a)
		add(ScheduleBinomialTree, depth*a+(n-1)*bytes*b+a)
	case wire.OpBarrier:
		add(ScheduleRing, (n-1)*a)
		add(ScheduleRecursiveDoubling, rdSteps(world)*a)
	default: // AllGather, ReduceScatter, SendRecv: the ring only
		add(ScheduleRing, 0)
	}
	// Insertion sort, stable: ties keep the order above (ring first).
	for i := 1; i < out.n; i++ {
		for j := i; j > 0 && out.c[j].t < out.c[j-1].t; j-- {
			out.c[j], out.c[j-1] = out.c[j-1], out.c[j]
		}
	}
	return out
}

// rdSteps is the number of dependent steps of recursive doubling: log2 of
// the largest power of two in the world, and two more (fold in, fold
// out) when the world is not one.
func rdSteps(world int) float64 {
	p := 1 << (bits.Len(uint(world)) - 1)
	steps := float64(bits.Len(uint(p)) - 1)
	if p != world {
		steps += 2
	}
	return steps
}

// allReducePerByte is each AllReduce schedule's cost per byte of the
// tensor (in allReduceScheds order) in the formulas: what a rank moves
// over its links at b seconds a byte and reduces at g. The ring moves
// 2(n-1)/n·N and reduces (n-1)/n·N; recursive doubling moves and reduces
// N at each step; in the double binary tree a rank interior in one tree
// and a leaf in the other sends (and receives) 2N in all, and reduces up
// to N.
func allReducePerByte(world int, b, g float64) [3]float64 {
	n := float64(world)
	return [3]float64{2*(n-1)/n*b + (n-1)/n*g, rdSteps(world) * (b + g), 2*b + g}
}

// choose picks the schedule and data path for a call: the forced ones, or
// Auto's fastest estimates. It allocates nothing; explain adds the reason.
func (c *Communicator) choose(op wire.Op, algo Algorithm, over Transport, bytes int, sched Schedule) (Choice, dataPath, error) {
	if algo == Auto {
		algo = c.algo
	}
	if algo > Tree {
		return Choice{}, 0, fmt.Errorf("%w: unknown algorithm %v", ErrInvalid, algo)
	}
	var one [1]dataPath
	paths := c.paths
	switch {
	case over == TransportAuto:
	case over > TransportTLS:
		return Choice{}, 0, fmt.Errorf("%w: unknown transport %v", ErrInvalid, over)
	case c.shm != nil && over != TransportShm:
		return Choice{}, 0, fmt.Errorf("%w: the call asks for %s, but this communicator moves data through shared memory", ErrInvalid, over)
	case c.shm == nil:
		p, ok := c.pathFor(over)
		if !ok {
			return Choice{}, 0, fmt.Errorf("%w: the call asks for %s, but this communicator moves data over %s", ErrInvalid, over, c.DataPath())
		}
		one[0] = p
		paths = one[:]
	}
	if c.shm != nil {
		paths = nil
	}
	first := onQUIC // where there is no choice of path
	if len(paths) > 0 {
		first = paths[0]
	}
	if sched != 0 { // calibration runs one schedule
		a := Ring
		if sched.Tree() {
			a = Tree
		}
		return Choice{Algorithm: a, Schedule: sched, Transport: c.choiceTransport(first), Reason: "forced"}, first, nil
	}
	if c.world == 1 || len(paths) == 0 {
		return Choice{Algorithm: Ring, Schedule: ScheduleRing, Transport: c.choiceTransport(first)}, first, nil
	}
	pick, _ := c.bestOn(paths[0], op, algo, bytes)
	for _, p := range paths[1:] {
		// Another path must be faster by more than pathMargin.
		if x, _ := c.bestOn(p, op, algo, bytes); x.t*(1+pathMargin) < pick.t {
			pick = x
		}
	}
	return Choice{Algorithm: pick.algo, Schedule: pick.sched, Transport: c.choiceTransport(pick.path), Estimate: dur(pick.t)}, pick.path, nil
}

// choiceTransport is what Choice.Transport says of path p.
func (c *Communicator) choiceTransport(p dataPath) Transport {
	switch {
	case c.shm != nil:
		return TransportShm
	case c.inProc:
		return TransportAuto
	}
	return c.transportOf(p)
}

// bestOn picks the schedule for a call on path p: the forced algorithm's,
// or the fastest estimate, taking the ring within ringMargin of it; it
// also returns every estimate. It allocates nothing.
func (c *Communicator) bestOn(p dataPath, op wire.Op, algo Algorithm, bytes int) (candidate, candidates) {
	cs := c.pathCosts[p].estimates(op, c.world, float64(bytes), float64(c.cb))
	cands := cs.list()
	for i := range cands {
		cands[i].path = p
	}
	pick := cands[0]
	if algo != Auto {
		pick.algo = Auto
		for _, x := range cands {
			if x.algo == algo && pick.algo == Auto {
				pick = x
			}
		}
		if pick.algo == Auto { // no schedule of that kind (ring-only ops): the ring, as NCCL does
			for _, x := range cands {
				if x.algo == Ring {
					pick = x
				}
			}
		}
	}
	if algo == Auto && pick.algo != Ring {
		// Within ringMargin of the ring, take the ring: the estimates are
		// that close only where the schedules' costs cross, and there the
		// ring's steady pipeline varies least from run to run.
		for _, x := range cands {
			if x.algo == Ring && x.t <= pick.t*(1+ringMargin) {
				pick = x
			}
		}
	}
	return pick, cs
}

// ringMargin is how much faster than the ring a tree must be estimated to
// be for Auto to choose it.
const ringMargin = 0.05

// pathMargin is how much faster than the first data path (TLS lanes,
// where there are lanes) another must be estimated to be for Auto to
// choose it.
const pathMargin = 0.05

// explain is choose with the reason spelt out.
func (c *Communicator) explain(op wire.Op, algo Algorithm, over Transport, bytes int) (Choice, error) {
	ch, chosen, err := c.choose(op, algo, over, bytes, 0)
	if err != nil {
		return ch, err
	}
	if c.shm != nil {
		return Choice{Algorithm: ch.Algorithm, Schedule: ScheduleSharedMemory, Transport: TransportShm,
			Reason: "every rank is on this host: each reduces its part of every window from the others' segments"}, nil
	}
	if algo == Auto {
		algo = c.algo
	}
	paths := c.paths
	if over != TransportAuto {
		paths = []dataPath{chosen}
	}
	switch {
	case c.world == 1:
		ch.Reason = "a world of one moves nothing"
	case algo == Auto || len(paths) > 1:
		var b strings.Builder
		ringKept := false // the ring taken within ringMargin of a faster tree
		for i, p := range paths {
			if i > 0 {
				b.WriteString("; ")
			}
			if len(paths) > 1 {
				fmt.Fprintf(&b, "%s: ", c.transportOf(p))
			}
			pick, cs := c.bestOn(p, op, algo, bytes)
			for j, x := range cs.list() {
				if j > 0 {
					b.WriteString(" < ")
				}
				fmt.Fprintf(&b, "%s %v", x.sched, dur(x.t))
			}
			b.WriteString(" (" + c.pathCosts[p].String() + ")")
			if p == chosen {
				ringKept = algo == Auto && pick.algo == Ring && cs.list()[0].algo != Ring
			}
		}
		if ringKept {
			fmt.Fprintf(&b, "; the ring is within %.0f%% of the fastest on %s, so the ring", ringMargin*100, ch.Transport)
		} else if algo != Auto && ch.Algorithm != algo {
			fmt.Fprintf(&b, "; %s has no %s schedule", op, algo)
		}
		if len(paths) > 1 {
			if chosen == paths[0] {
				fmt.Fprintf(&b, "; %s unless another is over %.0f%% faster, so %s", ch.Transport, pathMargin*100, ch.Transport)
			} else {
				fmt.Fprintf(&b, "; so %s", ch.Transport)
			}
		}
		ch.Reason = b.String()
	case ch.Algorithm != algo:
		ch.Reason = fmt.Sprintf("%s has no %s schedule", op, algo)
	default:
		ch.Reason = "forced"
	}
	return ch, nil
}

func dur(s float64) time.Duration {
	if math.IsInf(s, 0) || math.IsNaN(s) || s > float64(math.MaxInt64)/1e9 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(s * 1e9).Round(100 * time.Nanosecond)
}

// Explain says which algorithm and data path a call with these arguments
// would use, and why. count is the call's count as the operation defines
// it (elements of the buffer for AllReduce and Broadcast, of each rank's
// input for Reduce, Gather and AllGather, of each rank's result for
// ReduceScatter). Options are the call's (Using, Over).
func (c *Communicator) Explain(op string, dtypeSize, count int, opts ...CallOption) (Choice, error) {
	wop, ok := opNames[op]
	if !ok {
		return Choice{}, fmt.Errorf("%w: unknown operation %q", ErrInvalid, op)
	}
	return c.explain(wop, callAlgo(opts), callOver(opts), dtypeSize*count)
}

var opNames = map[string]wire.Op{
	"allreduce": wire.OpAllReduce, "broadcast": wire.OpBroadcast, "reduce": wire.OpReduce,
	"gather": wire.OpGather, "allgather": wire.OpAllGather, "reducescatter": wire.OpReduceScatter,
	"barrier": wire.OpBarrier, "sendrecv": wire.OpSendRecv,
}

// Costs returns the model parameters Auto uses on this communicator's
// first data path (TLS lanes where it has lanes, else QUIC).
func (c *Communicator) Costs() Costs { return c.pathCosts[c.paths[0]] }

// CostsOver returns the model parameters of data path t, if the
// communicator has it.
func (c *Communicator) CostsOver(t Transport) (Costs, bool) {
	p, ok := c.pathFor(t)
	if !ok {
		return Costs{}, false
	}
	return c.pathCosts[p], true
}

// calCand is one schedule on one data path, as Calibrate times it.
type calCand struct {
	path  dataPath
	sched int // index in allReduceScheds
}

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
	const small, bulk, large = 1 << 10, calBulk / 4, calTop / 4 // float32 elements: 4 KiB, 256 KiB, 1 MiB
	sbuf, rbuf := make([]float32, bulk), make([]float32, large)
	// The fastest of a few runs: on a shared machine the others measure
	// the neighbours' load, which differs from rank to rank and run to run,
	// more than the algorithm.
	fastest := func(reps int, f func() error) (float64, error) {
		ts := make([]float64, 0, reps)
		for range reps {
			t0 := time.Now()
			if err := f(); err != nil {
				return 0, err
			}
			ts = append(ts, time.Since(t0).Seconds())
		}
		return slices.Min(ts), nil
	}
	agree := []CallOption{Using(Ring), Over(c.transportOf(c.paths[0]))}
	// The probes, on each path.
	abg := make([]float64, 0, 3*len(c.paths))
	for _, p := range c.paths {
		on := Over(c.transportOf(p))
		ring := []CallOption{Using(Ring), on}
		if _, err := fastest(2, func() error { return c.Barrier(ctx, ring...) }); err != nil { // warm up
			return err
		}
		tBarrier, err := fastest(5, func() error { return c.Barrier(ctx, ring...) })
		if err != nil {
			return err
		}
		tSmall, err := fastest(3, func() error { return c.SendRecv(ctx, rbuf[:small], sbuf[:small], on) })
		if err != nil {
			return err
		}
		tBulk, err := fastest(3, func() error { return c.SendRecv(ctx, rbuf[:bulk], sbuf, on) })
		if err != nil {
			return err
		}
		gamma, _ := fastest(5, func() error { reduce.Float32(reduce.Sum, rbuf[:bulk], sbuf); return nil })
		abg = append(abg, tBarrier/float64(c.world-1), max(tBulk-tSmall, 1e-9)/float64(4*(bulk-small)), gamma/float64(4*bulk))
	}
	// Agree on the probes' figures now, and skip a path's timed runs of
	// the schedules when the model says they would take longer than
	// calBudget (slow or lossy links): every rank predicts the same and
	// so decides the same, and that path's choices then rest on alpha,
	// beta and gamma alone.
	if err := c.AllReduce(ctx, abg, Max, agree...); err != nil {
		return err
	}
	var models [numPaths]Costs
	scheds := c.calibratedScheds()
	var cands []calCand
	for i, p := range c.paths {
		models[p] = Costs{Transport: c.transportOf(p), Alpha: secs(abg[3*i]), Beta: abg[3*i+1], Gamma: abg[3*i+2]}
		if pt := models[p].calibrationTime(c.world, float64(c.cb)); pt > calBudget.Seconds() {
			c.log.Debug("collective: calibrated from the probes alone", "transport", models[p].Transport, "costs", models[p].String(),
				"timed runs would take", secs(pt).String(), "budget", calBudget.String())
			continue
		}
		for _, i := range scheds {
			cands = append(cands, calCand{p, i})
		}
	}
	if len(cands) > 0 {
		t, err := c.timeSchedules(ctx, cands, rbuf, small, bulk, large)
		if err != nil {
			return err
		}
		// Each candidate's lines: [4 KiB, 256 KiB] and [256 KiB, 1 MiB].
		m := make([]float64, 4*len(cands))
		for k := range cands {
			ts, tb, tl := t[0][k], t[1][k], t[2][k]
			per := max(tb-ts, 1e-12) / float64(4*(bulk-small))
			m[4*k], m[4*k+1] = max(ts-per*4*small, 0), per
			per2 := max(tl-tb, 1e-12) / float64(4*(large-bulk))
			m[4*k+2], m[4*k+3] = tb-per2*4*bulk, per2
		}
		if err := c.AllReduce(ctx, m, Max, agree...); err != nil {
			return err
		}
		for k, x := range cands {
			models[x.path].AllReduce[x.sched] = Line{Fixed: secs(m[4*k]), PerByte: m[4*k+1]}
			models[x.path].AllReduceLarge[x.sched] = Line{Fixed: secs(m[4*k+2]), PerByte: m[4*k+3]}
		}
	}
	for _, p := range c.paths {
		c.pathCosts[p] = models[p]
		c.log.Debug("collective: calibrated", "transport", models[p].Transport, "costs", models[p].String(), "allreduce", models[p].AllReduce)
	}
	return nil
}

// calibratedScheds are the AllReduce schedules (indices in
// allReduceScheds) that Config.Algorithm allows.
func (c *Communicator) calibratedScheds() []int {
	switch c.algo {
	case Ring:
		return []int{0}
	case Tree:
		return []int{1, 2}
	}
	return []int{0, 1, 2}
}

// timeSchedules times every candidate at the three sizes and returns the
// medians, t[size point][candidate].
func (c *Communicator) timeSchedules(ctx context.Context, cands []calCand, rbuf []float32, small, bulk, large int) ([3][]float64, error) {
	opt := func(x calCand) []CallOption {
		return []CallOption{{sched: allReduceScheds[x.sched], over: c.transportOf(x.path)}}
	}
	// Each schedule runs once unmeasured, to bring its links up to speed
	// (a QUIC connection left idle while other schedules ran restarts
	// slowly), then a few measured runs, and keeps its median: a schedule
	// whose time varies a lot from run to run (the double binary tree
	// when its halves are one chunk each) is judged by a typical run, not
	// its luckiest.
	// First every candidate moves the largest size once, so that every
	// link any of them uses has carried a bulk transfer before anything is
	// timed: fresh connections start with small windows, and whichever
	// schedule ran later would otherwise inherit links the earlier ones
	// had warmed.
	var t [3][]float64
	for _, x := range cands {
		if err := c.AllReduce(ctx, rbuf, Sum, opt(x)...); err != nil {
			return t, err
		}
	}
	// The candidates take turns, one sample each per round, so that a
	// burst of load from elsewhere on the machine slows all of them rather
	// than the one that happened to be running; the first round is not
	// timed. The rounds follow package turns: each schedule follows each
	// other one of its path equally often, and the paths alternate (what
	// ran before matters: links another schedule left idle restart
	// slowly).
	//
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
	groups := 1 // the paths: cands holds each path's schedules together
	for i := 1; i < len(cands); i++ {
		if cands[i].path != cands[i-1].path {
			groups++
		}
	}
	runs := make([][]float64, len(cands))
	for p, pt := range []struct {
		elems, reps, block int
		lineUp             bool // a Barrier before each sample
	}{{small, 7, calBlock, false}, {bulk, 3, 1, true}, {large, 3, 1, true}} {
		for i := range runs {
			runs[i] = runs[i][:0]
		}
		for rep := range pt.reps + 1 {
			for k := range cands {
				i := turns.Nested(rep, k, groups, len(cands)/groups)
				x := cands[i]
				if pt.lineUp {
					if err := c.Barrier(ctx, CallOption{sched: ScheduleRecursiveDoubling, over: c.transportOf(x.path)}); err != nil {
						return t, err
					}
				}
				t0 := time.Now()
				for range pt.block {
					if err := c.AllReduce(ctx, rbuf[:pt.elems], Sum, opt(x)...); err != nil {
						return t, err
					}
				}
				if rep > 0 {
					runs[i] = append(runs[i], time.Since(t0).Seconds()/float64(pt.block))
				}
			}
		}
		t[p] = make([]float64, len(cands))
		for i := range runs {
			slices.Sort(runs[i])
			t[p][i] = runs[i][len(runs[i])/2]
		}
	}
	return t, nil
}

func secs(s float64) time.Duration { return time.Duration(s * 1e9) }

// calBlock is how many back-to-back runs make one timed sample at the
// small size of Calibrate.
const calBlock = 4

// calBudget bounds the predicted time of Calibrate's timed runs; a
// variable for tests.
var calBudget = 3 * time.Second

// calibrationTime predicts, from the probes' model alone, how long
// Calibrate's timed AllReduce runs take: every schedule once at 1 MiB,
// then every schedule at each point, one more run than is timed.
func (k Costs) calibrationTime(world int, chunk float64) float64 {
	const small, bulk, large = 1 << 10, calBulk / 4, calTop / 4
	var t float64
	for _, pt := range []struct{ elems, runs int }{{large, 1}, {small, 8 * calBlock}, {bulk, 4}, {large, 4}} {
		cs := k.estimates(wire.OpAllReduce, world, float64(4*pt.elems), chunk)
		for _, x := range cs.list() {
			t += float64(pt.runs) * x.t
		}
	}
	return t
}
