package collective_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ringo-ml/ringo/collective"
	"github.com/ringo-ml/ringo/internal/launch"
)

// TestDTypes runs every operation on every integer and 16-bit dtype, in
// process, over shared memory, QUIC and TCP lanes, against a reference:
// integers exactly (sums and products wrap), 16-bit floats within one
// unit in the last place of the float64 result rounded to 16 bits, and
// every rank's result bit for bit the same.
func TestDTypes(t *testing.T) {
	const world, n = 3, 1000
	for name, start := range map[string]starter{"inproc": launch.InProc, "shm": shmOnly, "quic": quicOnly, "tcp": tcpOnly} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			g := startGroup(t, ctx, start, world, collective.Config{Algorithm: collective.Ring})
			defer g.Close()
			checkInts[int32](t, ctx, g.Comms, n, func(r *rand.Rand) int32 { return int32(r.Uint32()) })
			checkInts[int64](t, ctx, g.Comms, n, func(r *rand.Rand) int64 { return int64(r.Uint64()) })
			checkInts[uint8](t, ctx, g.Comms, n, func(r *rand.Rand) uint8 { return uint8(r.Uint32()) })
			checkHalf(t, ctx, g.Comms, n, collective.Float16From, collective.Float16.Float32)
			checkHalf(t, ctx, g.Comms, n, collective.BFloat16From, collective.BFloat16.Float32)
		})
	}
}

type integer interface{ ~int32 | ~int64 | ~uint8 }

func combine[T integer](op collective.ReduceOp, a, b T) T {
	switch op {
	case collective.Sum:
		return a + b
	case collective.Prod:
		return a * b
	case collective.Min:
		return min(a, b)
	}
	return max(a, b)
}

// inputs gives every rank n values.
func inputs[T any](world, n int, gen func(*rand.Rand) T) [][]T {
	r := rand.New(rand.NewPCG(7, 11))
	out := make([][]T, world)
	for k := range out {
		out[k] = make([]T, n)
		for i := range out[k] {
			out[k][i] = gen(r)
		}
	}
	return out
}

func checkInts[T integer](t *testing.T, ctx context.Context, comms []*collective.Communicator, n int, gen func(*rand.Rand) T) {
	t.Helper()
	world := len(comms)
	in := inputs(world, n, gen)
	for _, op := range []collective.ReduceOp{collective.Sum, collective.Prod, collective.Min, collective.Max} {
		want := append([]T(nil), in[0]...)
		for k := 1; k < world; k++ {
			for i := range want {
				want[i] = combine(op, want[i], in[k][i])
			}
		}
		bufs := make([][]T, world)
		rs := make([][]T, world)
		red := make([]T, n)
		noErrors(t, fmt.Sprintf("%T %v", want, op), launch.OnEveryRank(comms, func(r int, c *collective.Communicator) error {
			bufs[r] = append([]T(nil), in[r]...)
			if err := c.AllReduce(ctx, bufs[r], op); err != nil {
				return err
			}
			var dst []T
			if r == 1 {
				dst = red
			}
			if err := c.Reduce(ctx, dst, in[r], op, 1); err != nil {
				return err
			}
			rs[r] = make([]T, n/world)
			return c.ReduceScatter(ctx, rs[r], in[r][:n/world*world], op)
		}))
		for r := range world {
			for i := range want {
				if bufs[r][i] != want[i] {
					t.Fatalf("%T AllReduce %v: rank %d element %d: %v, want %v", want, op, r, i, bufs[r][i], want[i])
				}
			}
			for i, v := range rs[r] {
				if w := want[r*(n/world)+i]; v != w {
					t.Fatalf("%T ReduceScatter %v: rank %d element %d: %v, want %v", want, op, r, i, v, w)
				}
			}
		}
		for i := range want {
			if red[i] != want[i] {
				t.Fatalf("%T Reduce %v at the root: element %d: %v, want %v", want, op, i, red[i], want[i])
			}
		}
	}
	checkMoves(t, ctx, comms, in)
	if err := comms[0].AllReduce(ctx, []T{1}, collective.Avg); err == nil {
		t.Errorf("%T Avg accepted", in[0])
	}
}

// checkMoves runs the operations that move without reducing: Broadcast,
// Gather, AllGather, SendRecv.
func checkMoves[T comparable](t *testing.T, ctx context.Context, comms []*collective.Communicator, in [][]T) {
	t.Helper()
	world, n := len(comms), len(in[0])
	bc, ag, sr := make([][]T, world), make([][]T, world), make([][]T, world)
	gat := make([]T, world*n)
	noErrors(t, fmt.Sprintf("moving %T", in[0]), launch.OnEveryRank(comms, func(r int, c *collective.Communicator) error {
		bc[r] = append([]T(nil), in[r]...)
		if err := c.Broadcast(ctx, bc[r], 2); err != nil {
			return err
		}
		var dst []T
		if r == 0 {
			dst = gat
		}
		if err := c.Gather(ctx, dst, in[r], 0); err != nil {
			return err
		}
		ag[r] = make([]T, world*n)
		if err := c.AllGather(ctx, ag[r], in[r]); err != nil {
			return err
		}
		sr[r] = make([]T, n)
		return c.SendRecv(ctx, sr[r], in[r])
	}))
	for r := range world {
		for i := range n {
			prev := (r + world - 1) % world
			if bc[r][i] != in[2][i] || sr[r][i] != in[prev][i] {
				t.Fatalf("%T rank %d element %d: Broadcast %v (want %v), SendRecv %v (want %v)", in[0], r, i, bc[r][i], in[2][i], sr[r][i], in[prev][i])
			}
			for k := range world {
				if ag[r][k*n+i] != in[k][i] || gat[k*n+i] != in[k][i] {
					t.Fatalf("%T AllGather/Gather block %d element %d wrong on rank %d", in[0], k, i, r)
				}
			}
		}
	}
}

// checkHalf: 16-bit float reductions against float64 references rounded
// to 16 bits.
func checkHalf[T ~uint16](t *testing.T, ctx context.Context, comms []*collective.Communicator, n int, from func(float32) T, to func(T) float32) {
	t.Helper()
	world := len(comms)
	in := inputs(world, n, func(r *rand.Rand) T { return from(float32(r.NormFloat64())) })
	for _, op := range []collective.ReduceOp{collective.Sum, collective.Avg, collective.Prod, collective.Min, collective.Max} {
		bufs := make([][]T, world)
		noErrors(t, fmt.Sprintf("%T %v", in[0], op), launch.OnEveryRank(comms, func(r int, c *collective.Communicator) error {
			bufs[r] = append([]T(nil), in[r]...)
			return c.AllReduce(ctx, bufs[r], op)
		}))
		wants := make([]T, n)
		near := func(what string, i int, got T) {
			if d := int(got) - int(wants[i]); d < -1 || d > 1 {
				t.Fatalf("%T %s %v element %d: %v (%#x), want %v (%#x) within one unit in the last place", got, what, op, i, to(got), got, to(wants[i]), wants[i])
			}
		}
		for i := range n {
			ref := float64(to(in[0][i]))
			for k := 1; k < world; k++ {
				x := float64(to(in[k][i]))
				switch op {
				case collective.Sum, collective.Avg:
					ref += x
				case collective.Prod:
					ref *= x
				case collective.Min:
					ref = math.Min(ref, x)
				case collective.Max:
					ref = math.Max(ref, x)
				}
			}
			if op == collective.Avg {
				ref /= float64(world)
			}
			want := from(float32(ref))
			wants[i] = want
			for r := range world {
				if bufs[r][i] != bufs[0][i] {
					t.Fatalf("%T %v element %d: rank %d has %#x, rank 0 %#x", want, op, i, r, bufs[r][i], bufs[0][i])
				}
			}
			near("AllReduce", i, bufs[0][i])
		}
		if op == collective.Sum {
			red, rs := make([]T, n), make([][]T, world)
			noErrors(t, fmt.Sprintf("%T Reduce, ReduceScatter", in[0]), launch.OnEveryRank(comms, func(r int, c *collective.Communicator) error {
				var dst []T
				if r == 1 {
					dst = red
				}
				if err := c.Reduce(ctx, dst, in[r], op, 1); err != nil {
					return err
				}
				rs[r] = make([]T, n/world)
				return c.ReduceScatter(ctx, rs[r], in[r][:n/world*world], op)
			}))
			for i := range n {
				near("Reduce", i, red[i])
			}
			for r := range world {
				for i, v := range rs[r] {
					near("ReduceScatter", r*(n/world)+i, v)
				}
			}
		}
	}
	checkMoves(t, ctx, comms, in)
}

// TestBFloat16From: rounding to the nearest bfloat16, ties to even, NaN
// kept a NaN, infinities and overflow to infinity.
func TestBFloat16From(t *testing.T) {
	for _, tc := range []struct {
		in   float32
		want uint16
	}{
		{1, 0x3f80}, {-2, 0xc000}, {0, 0}, {float32(math.Inf(1)), 0x7f80},
		{math.Float32frombits(0x3f808000), 0x3f80}, // a tie: to even (down)
		{math.Float32frombits(0x3f818000), 0x3f82}, // a tie: to even (up)
		{math.Float32frombits(0x3f808001), 0x3f81}, // above the tie
		{math.MaxFloat32, 0x7f80},                  // rounds past the largest bfloat16
	} {
		if got := collective.BFloat16From(tc.in); uint16(got) != tc.want {
			t.Errorf("BFloat16From(%v) = %#x, want %#x", tc.in, uint16(got), tc.want)
		}
	}
	if nan := collective.BFloat16From(float32(math.NaN())).Float32(); nan == nan {
		t.Error("NaN did not stay a NaN")
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 10000 {
		f := math.Float32frombits(r.Uint32()&^(0xff<<23) | 0x3f<<24) // finite, moderate
		got := collective.BFloat16From(f)
		lo := math.Float32frombits(math.Float32bits(f) &^ 0xffff)
		hi := math.Float32frombits(math.Float32bits(lo) + 0x10000)
		if g := got.Float32(); g != lo && g != hi || math.Abs(float64(g-f)) > math.Abs(float64(lo-f)) && math.Abs(float64(g-f)) > math.Abs(float64(hi-f)) {
			t.Fatalf("BFloat16From(%v) = %v, not the nearest of %v and %v", f, g, lo, hi)
		}
	}
	if h := collective.Float16From(1.5); h.Float32() != 1.5 || uint16(h) != 0x3e00 {
		t.Errorf("Float16From(1.5) = %#x", uint16(h))
	}
}
