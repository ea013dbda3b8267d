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
	"github.com/ringo-ml/ringo/internal/wire"
)

// CallOption adjusts one call. (A value, not a function, so that passing
// options costs no allocation.)
type CallOption struct {
	algo Algorithm
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

// Costs are the link and kernel parameters of the alpha-beta-gamma model
// that Auto chooses algorithms with, measured on this communicator's links
// (the slowest rank's figure, so that every rank holds the same values and
// makes the same choice).
type Costs struct {
	Alpha time.Duration // latency of one step: a small frame to a neighbour
	Beta  float64       // seconds per byte moved over a link
	Gamma float64       // seconds per byte reduced
}

func (k Costs) String() string {
	return fmt.Sprintf("α=%v β=%.3g ns/B γ=%.3g ns/B", k.Alpha.Round(100*time.Nanosecond), k.Beta*1e9, k.Gamma*1e9)
}

// Choice is the algorithm Auto picked for a call, with the reason.
type Choice struct {
	Algorithm Algorithm
	Name      string        // the schedule: "ring", "recursive doubling", "double binary tree", "binomial tree"
	Estimate  time.Duration // the model's time for it
	Reason    string        // the estimates compared
}

// candidate is one algorithm's estimate for a call.
type candidate struct {
	algo Algorithm
	name string
	t    float64 // seconds
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
	add := func(algo Algorithm, name string, t float64) {
		out.c[out.n] = candidate{algo, name, t}
		out.n++
	}
	c := min(chunk, bytes)
	switch op {
	case wire.OpAllReduce:
		seg := bytes / n
		add(Ring, "ring", 2*(n-1)*(a+min(c, seg)*b)+2*(n-1)/n*bytes*b+(n-1)/n*bytes*g)
		p := 1 << (bits.Len(uint(world)) - 1)
		steps := float64(bits.Len(uint(p)) - 1)
		if p != world {
			steps += 2
		}
		add(Tree, "recursive doubling", steps*(a+bytes*b+bytes*g))
		// A rank interior in one tree and a leaf in the other sends (and
		// receives) 2N in all, and reduces up to N.
		add(Tree, "double binary tree", 2*depth*(a+min(c, bytes/2)*b)+2*bytes*b+bytes*g)
	case wire.OpBroadcast:
		add(Ring, "ring", (n-1)*(a+c*b)+bytes*b+a)
		add(Tree, "binomial tree", depth*(a+c*b)+depth*bytes*b+depth*a)
	case wire.OpReduce:
		add(Ring, "ring", (n-1)*(a+c*b)+bytes*(b+g)+a)
		add(Tree, "binomial tree", depth*(a+c*b)+depth*bytes*(b+g)+a)
	case wire.OpGather:
		add(Ring, "ring", (n-1)*a+(n-1)*bytes*b+a)
		add(Tree, "binomial tree", depth*a+(n-1)*bytes*b+a)
	case wire.OpBarrier:
		add(Ring, "ring", (n-1)*a)
		p := 1 << (bits.Len(uint(world)) - 1)
		steps := float64(bits.Len(uint(p)) - 1)
		if p != world {
			steps += 2
		}
		add(Tree, "recursive doubling", steps*a)
	default: // AllGather, ReduceScatter, SendRecv: the ring only
		add(Ring, "ring", 0)
	}
	// Insertion sort, stable: ties keep the order above (ring first).
	for i := 1; i < out.n; i++ {
		for j := i; j > 0 && out.c[j].t < out.c[j-1].t; j-- {
			out.c[j], out.c[j-1] = out.c[j-1], out.c[j]
		}
	}
	return out
}

// choose picks the schedule for a call: the forced algorithm, or Auto's
// fastest estimate. It allocates nothing; explain adds the reason.
func (c *Communicator) choose(op wire.Op, algo Algorithm, bytes int) (Choice, error) {
	if algo == Auto {
		algo = c.algo
	}
	if algo > Tree {
		return Choice{}, fmt.Errorf("%w: unknown algorithm %v", ErrInvalid, algo)
	}
	if c.world == 1 {
		return Choice{Algorithm: Ring, Name: "ring"}, nil
	}
	cs := c.costs.estimates(op, c.world, float64(bytes), float64(c.cb))
	cands := cs.list()
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
	return Choice{Algorithm: pick.algo, Name: pick.name, Estimate: dur(pick.t)}, nil
}

// explain is choose with the reason spelt out.
func (c *Communicator) explain(op wire.Op, algo Algorithm, bytes int) (Choice, error) {
	ch, err := c.choose(op, algo, bytes)
	if err != nil {
		return ch, err
	}
	if algo == Auto {
		algo = c.algo
	}
	cs := c.costs.estimates(op, c.world, float64(bytes), float64(c.cb))
	switch {
	case c.world == 1:
		ch.Reason = "a world of one moves nothing"
	case algo == Auto:
		var b strings.Builder
		for i, x := range cs.list() {
			if i > 0 {
				b.WriteString(" < ")
			}
			fmt.Fprintf(&b, "%s %v", x.name, dur(x.t))
		}
		ch.Reason = b.String() + " (" + c.costs.String() + ")"
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

// Explain says which algorithm a call with these arguments would use, and
// why. count is the call's count as the operation defines it (elements of
// the buffer for AllReduce and Broadcast, of each rank's input for Reduce,
// Gather and AllGather, of each rank's result for ReduceScatter).
func (c *Communicator) Explain(op string, dtypeSize, count int, opts ...CallOption) (Choice, error) {
	wop, ok := opNames[op]
	if !ok {
		return Choice{}, fmt.Errorf("%w: unknown operation %q", ErrInvalid, op)
	}
	return c.explain(wop, callAlgo(opts), dtypeSize*count)
}

var opNames = map[string]wire.Op{
	"allreduce": wire.OpAllReduce, "broadcast": wire.OpBroadcast, "reduce": wire.OpReduce,
	"gather": wire.OpGather, "allgather": wire.OpAllGather, "reducescatter": wire.OpReduceScatter,
	"barrier": wire.OpBarrier, "sendrecv": wire.OpSendRecv,
}

// Costs returns the model parameters Auto currently uses.
func (c *Communicator) Costs() Costs { return c.costs }

// Calibrate measures the model's parameters on this communicator's links:
// a few small and bulk SendRecv exchanges around the ring (well under a
// second) and this machine's reduction speed, then agrees on the slowest
// rank's figures. It is a collective call: every rank must make it, in the
// same place in its sequence of calls. New calls it when Config.Algorithm is
// Auto.
func (c *Communicator) Calibrate(ctx context.Context) error {
	if c.world == 1 {
		return nil
	}
	const small, bulk = 8, 256 << 10 // float32 elements
	sbuf, rbuf := make([]float32, bulk), make([]float32, bulk)
	timeIt := func(n, reps int) (time.Duration, error) {
		var ts []time.Duration
		for range reps {
			t0 := time.Now()
			if err := c.SendRecv(ctx, rbuf[:n], sbuf[:n]); err != nil {
				return 0, err
			}
			ts = append(ts, time.Since(t0))
		}
		slices.Sort(ts)
		return ts[len(ts)/2], nil
	}
	if _, err := timeIt(small, 2); err != nil { // warm up the links
		return err
	}
	tSmall, err := timeIt(small, 7)
	if err != nil {
		return err
	}
	tBulk, err := timeIt(bulk, 3)
	if err != nil {
		return err
	}
	beta := max((tBulk-tSmall).Seconds(), 1e-9) / float64(4*bulk)
	var tRed []time.Duration
	for range 5 {
		t0 := time.Now()
		reduce.Float32(reduce.Sum, rbuf, sbuf)
		tRed = append(tRed, time.Since(t0))
	}
	slices.Sort(tRed)
	gamma := tRed[2].Seconds() / float64(4*bulk)
	m := []float64{tSmall.Seconds(), beta, gamma}
	if err := c.AllReduce(ctx, m, Max, Using(Ring)); err != nil {
		return err
	}
	c.costs = Costs{Alpha: time.Duration(m[0] * 1e9), Beta: m[1], Gamma: m[2]}
	c.log.Debug("collective: calibrated", "costs", c.costs.String())
	return nil
}
