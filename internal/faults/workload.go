package faults

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"

	"github.com/ringo-ml/ringo/collective"
)

// Kinds of collective call a workload draws from.
const (
	KindAllReduce     = "allreduce"
	KindBroadcast     = "broadcast"
	KindReduce        = "reduce"
	KindGather        = "gather"
	KindAllGather     = "allgather"
	KindReduceScatter = "reducescatter"
	KindBarrier       = "barrier"
)

// AllKinds lists every kind a workload can draw.
var AllKinds = []string{KindAllReduce, KindBroadcast, KindReduce, KindGather, KindAllGather, KindReduceScatter, KindBarrier}

// Call is one collective call of a workload: the same on every rank.
type Call struct {
	Index int
	Kind  string
	F64   bool // []float64 rather than []float32
	Count int  // elements of each rank's input (of its output for ReduceScatter)
	Op    collective.ReduceOp
	Root  int
}

func (c Call) String() string {
	t := "float32"
	if c.F64 {
		t = "float64"
	}
	return fmt.Sprintf("#%d %s(%s[%d], %v, root %d)", c.Index, c.Kind, t, c.Count, c.Op, c.Root)
}

// Replicated reports whether every rank ends with the same output, so
// that the ranks' result digests must agree.
func (c Call) Replicated() bool {
	return c.Kind == KindAllReduce || c.Kind == KindBroadcast || c.Kind == KindAllGather || c.Kind == KindBarrier
}

// splitmix is a small, fast, seedable generator: the workload must be the
// same function of the seed in every process.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// MakeCall is call i of the workload seeded with seed for a group of world
// ranks: its kind (from kinds), type, size (up to maxCount elements),
// operator and root. Every rank computes the same calls.
func MakeCall(seed uint64, i, world, maxCount int, kinds []string) Call {
	h := splitmix(seed ^ uint64(i)*0x1000193)
	c := Call{Index: i}
	c.Kind = kinds[h%uint64(len(kinds))]
	h = splitmix(h)
	c.F64 = h&1 == 1
	// Sizes spread over orders of magnitude: 0 elements, a handful, up to
	// maxCount, so calls land below, at and above the chunk and window
	// boundaries.
	h = splitmix(h)
	if maxCount > 0 {
		exp := int(h % 24)
		c.Count = min(maxCount, 1<<exp)
		h = splitmix(h)
		c.Count = max(0, c.Count-int(h%uint64(c.Count/3+1)))
	}
	if c.Kind == KindBarrier {
		c.Count = 0
	}
	h = splitmix(h)
	c.Op = collective.ReduceOp(1 + h%5)
	h = splitmix(h)
	c.Root = int(h % uint64(world))
	return c
}

// input is element j of rank r's input to call i: a small integer, so that
// sums, products (of at most 8 ranks) and averages are exact in float32
// whatever the order of reduction, and the expected result is exact too.
func input(seed uint64, i, r, j int) float64 {
	h := splitmix(seed ^ uint64(i)<<40 ^ uint64(r)<<32 ^ uint64(j))
	v := float64(int(h%9) - 4) // -4..4
	return v
}

// inputs fills rank r's input of call c (n elements).
func inputs(seed uint64, c Call, r, n int) any {
	if c.F64 {
		b := make([]float64, n)
		for j := range b {
			b[j] = input(seed, c.Index, r, j)
		}
		return b
	}
	b := make([]float32, n)
	for j := range b {
		b[j] = float32(input(seed, c.Index, r, j))
	}
	return b
}

// reduced is element j of the reduction over world ranks of call c's
// inputs, computed the way the library finishes Avg (a sum, then one
// division by the world size in the call's type).
func reduced(seed uint64, c Call, world, j int) float64 {
	acc := input(seed, c.Index, 0, j)
	for r := 1; r < world; r++ {
		v := input(seed, c.Index, r, j)
		switch c.Op {
		case collective.Sum, collective.Avg:
			acc += v
		case collective.Prod:
			acc *= v
		case collective.Min:
			acc = math.Min(acc, v)
		case collective.Max:
			acc = math.Max(acc, v)
		}
	}
	if c.Op == collective.Avg {
		if c.F64 {
			return acc / float64(world)
		}
		return float64(float32(acc) / float32(world))
	}
	return acc
}

// allocLike returns a copy of buf in memory from the communicator's
// AllocFloat32 or AllocFloat64.
func allocLike(comm *collective.Communicator, buf any) (any, error) {
	switch b := buf.(type) {
	case []float32:
		reg, err := comm.AllocFloat32(len(b))
		copy(reg, b)
		return reg, err
	case []float64:
		reg, err := comm.AllocFloat64(len(b))
		copy(reg, b)
		return reg, err
	}
	return nil, fmt.Errorf("faults: no registered buffer for a %T", buf)
}

// Outcome is what one rank saw of one call.
type Outcome struct {
	Err    error
	Wrong  int    // elements that differ from the exact result
	First  string // the first wrong element, for the report
	Digest string // SHA-256 of the output's bytes (replicated outputs)
}

// Run makes call c on comm with rank r's inputs and checks the result
// exactly against the reference. Buffers are made per call: the checks,
// not the speed, matter here.
func Run(ctx context.Context, comm *collective.Communicator, seed uint64, c Call) Outcome {
	return RunOn(ctx, comm, seed, c, false)
}

// RunOn is Run; with registered, an AllReduce's buffer comes from the
// communicator's AllocFloat32/64 (freed after the check).
func RunOn(ctx context.Context, comm *collective.Communicator, seed uint64, c Call, registered bool) Outcome {
	r, n := comm.Rank(), comm.Size()
	var out any // what is checked afterwards
	var want func(j int) float64
	var err error
	switch c.Kind {
	case KindAllReduce:
		buf := inputs(seed, c, r, c.Count)
		if registered {
			reg, aerr := allocLike(comm, buf)
			if aerr != nil {
				return Outcome{Err: aerr}
			}
			defer func() { _ = comm.Free(reg) }()
			buf = reg
		}
		err = comm.AllReduce(ctx, buf, c.Op)
		out, want = buf, func(j int) float64 { return reduced(seed, c, n, j) }
	case KindBroadcast:
		buf := inputs(seed, c, r, c.Count)
		err = comm.Broadcast(ctx, buf, c.Root)
		out, want = buf, func(j int) float64 { return input(seed, c.Index, c.Root, j) }
	case KindReduce:
		src := inputs(seed, c, r, c.Count)
		var dst any
		if r == c.Root {
			dst = inputs(seed, Call{Index: -1, F64: c.F64}, 0, c.Count)
			out, want = dst, func(j int) float64 { return reduced(seed, c, n, j) }
		}
		err = comm.Reduce(ctx, dst, src, c.Op, c.Root)
	case KindGather:
		src := inputs(seed, c, r, c.Count)
		var dst any
		if r == c.Root {
			dst = inputs(seed, Call{Index: -1, F64: c.F64}, 0, c.Count*n)
			out = dst
			want = func(j int) float64 {
				if c.Count == 0 {
					return 0
				}
				return input(seed, c.Index, j/c.Count, j%c.Count)
			}
		}
		err = comm.Gather(ctx, dst, src, c.Root)
	case KindAllGather:
		src := inputs(seed, c, r, c.Count)
		dst := inputs(seed, Call{Index: -1, F64: c.F64}, 0, c.Count*n)
		err = comm.AllGather(ctx, dst, src)
		out = dst
		want = func(j int) float64 {
			if c.Count == 0 {
				return 0
			}
			return input(seed, c.Index, j/c.Count, j%c.Count)
		}
	case KindReduceScatter:
		// Rank r's input is n blocks; the reference reduces element
		// r*Count+j of every rank's input.
		src := inputs(seed, c, r, c.Count*n)
		dst := inputs(seed, Call{Index: -1, F64: c.F64}, 0, c.Count)
		err = comm.ReduceScatter(ctx, dst, src, c.Op)
		out = dst
		want = func(j int) float64 { return reduced(seed, c, n, r*c.Count+j) }
	case KindBarrier:
		err = comm.Barrier(ctx)
	default:
		return Outcome{Err: fmt.Errorf("faults: unknown call kind %q", c.Kind)}
	}
	if err != nil {
		return Outcome{Err: err}
	}
	var o Outcome
	sum := sha256.New()
	var b [8]byte
	switch v := out.(type) {
	case []float32:
		for j, x := range v {
			if w := float32(want(j)); math.Float32bits(x) != math.Float32bits(w) {
				if o.Wrong == 0 {
					o.First = fmt.Sprintf("element %d = %v, want %v", j, x, w)
				}
				o.Wrong++
			}
			binary.LittleEndian.PutUint32(b[:4], math.Float32bits(x))
			sum.Write(b[:4])
		}
	case []float64:
		for j, x := range v {
			if w := want(j); math.Float64bits(x) != math.Float64bits(w) {
				if o.Wrong == 0 {
					o.First = fmt.Sprintf("element %d = %v, want %v", j, x, w)
				}
				o.Wrong++
			}
			binary.LittleEndian.PutUint64(b[:], math.Float64bits(x))
			sum.Write(b[:])
		}
	}
	o.Digest = hex.EncodeToString(sum.Sum(nil)[:8])
	return o
}
