package collective

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/ringo-ml/ringo/internal/cost"
	"github.com/ringo-ml/ringo/internal/engine/stream"
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
// holds the same values and makes the same choice): Alpha the latency of
// one dependent step, Beta seconds per byte moved over a link, Gamma
// seconds per byte reduced, and per AllReduce schedule the lines fitted
// through timed runs (docs/algorithms.md). A communicator that chooses
// between TLS lanes and QUIC per call holds one Costs for each.
type Costs = cost.Costs

// Line is a fitted time: Fixed + PerByte·bytes.
type Line = cost.Line

// Choice is the algorithm and data path Auto picked for a call, with the
// reason.
type Choice = cost.Choice

// candidate is one schedule's estimate for a call on one path.
type candidate struct {
	algo  Algorithm
	sched Schedule
	t     float64 // seconds
	path  stream.Path
}

func (x candidate) of(e cost.Estimate, p stream.Path) candidate {
	algo := Ring
	if e.Sched.Tree() {
		algo = Tree
	}
	return candidate{algo: algo, sched: e.Sched, t: e.T, path: p}
}

// choose picks the schedule and data path for a call: the forced ones, or
// Auto's fastest estimates. It allocates nothing; explain adds the reason.
func (c *Communicator) choose(op wire.Op, algo Algorithm, over Transport, bytes int, sched Schedule) (Choice, stream.Path, error) {
	if algo == Auto {
		algo = c.algo
	}
	if algo > Tree {
		return Choice{}, 0, fmt.Errorf("%w: unknown algorithm %v", ErrInvalid, algo)
	}
	var one [1]stream.Path
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
	first := stream.QUIC // where there is no choice of path
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
func (c *Communicator) choiceTransport(p stream.Path) Transport {
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
func (c *Communicator) bestOn(p stream.Path, op wire.Op, algo Algorithm, bytes int) (candidate, cost.Estimates) {
	es := c.pathCosts[p].Model().Estimates(op, c.world, float64(bytes), float64(c.cb))
	list := es.List()
	pick := candidate{}.of(list[0], p)
	if algo != Auto {
		pick.algo = Auto
		for _, e := range list {
			if x := pick.of(e, p); x.algo == algo && pick.algo == Auto {
				pick = x
			}
		}
		if pick.algo == Auto { // no schedule of that kind (ring-only ops): the ring, as NCCL does
			for _, e := range list {
				if x := pick.of(e, p); x.algo == Ring {
					pick = x
				}
			}
		}
	}
	if algo == Auto && pick.algo != Ring {
		// Within ringMargin of the ring, take the ring: the estimates are
		// that close only where the schedules' costs cross, and there the
		// ring's steady pipeline varies least from run to run.
		for _, e := range list {
			if x := pick.of(e, p); x.algo == Ring && x.t <= pick.t*(1+ringMargin) {
				pick = x
			}
		}
	}
	return pick, es
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
		paths = []stream.Path{chosen}
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
			pick, es := c.bestOn(p, op, algo, bytes)
			for j, x := range es.List() {
				if j > 0 {
					b.WriteString(" < ")
				}
				fmt.Fprintf(&b, "%s %v", x.Sched, dur(x.T))
			}
			b.WriteString(" (" + c.pathCosts[p].String() + ")")
			if p == chosen {
				ringKept = algo == Auto && pick.algo == Ring && es.List()[0].Sched != ScheduleRing
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
func (c *Communicator) Explain(op Operation, dtypeSize, count int, opts ...CallOption) (Choice, error) {
	if !wire.Op(op).Valid() {
		return Choice{}, fmt.Errorf("%w: unknown operation %v", ErrInvalid, op)
	}
	return c.explain(wire.Op(op), callAlgo(opts), callOver(opts), dtypeSize*count)
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
