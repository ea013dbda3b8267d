package reduce

import (
	"math/rand/v2"
	"testing"
)

// naryLengths are the lengths of the n-ary tests: every length up to 70
// (the SIMD kernels' blocks, single vectors and scalar tails in every
// combination) and longer odd ones that cross tile and block boundaries.
var naryLengths = func() []int {
	var l []int
	for n := 0; n <= 70; n++ {
		l = append(l, n)
	}
	return append(l, 127, 1001, 2047, 2049, 4097, 8195)
}()

// skipNary thins the n-ary tests for speed (they also run under -race):
// many inputs only at the short lengths and one long one.
func skipNary(k, n int) bool { return k > 4 && n > 70 && n != 1001 }

// naryCounts are the numbers of inputs tested: 1 (a copy), the common
// world sizes, and more than maxStreams of the SIMD build.
var naryCounts = []int{1, 2, 3, 4, 5, 8, 17, 33}

// passes is the reference for Reduce32 and Reduce64: copy, then one binary
// pass of the portable kernel per further input.
func passes[F float](op Operator, dst []F, srcs [][]F, scalar func(Operator, []F, []F)) {
	copy(dst, srcs[0])
	for _, s := range srcs[1:] {
		scalar(op, dst, s)
	}
}

// exact is the comparison of the n-ary and SIMD tests: bit for bit, except
// that Sum and Prod may return any NaN where the reference has a NaN (the
// documented contract: x86 propagates the payload of one operand, and which
// one depends on operand order that the compiler may swap, because Add and
// Mul are commutative). Min and Max must match every bit, NaNs included.
func exact[F float](op Operator, got, want F) bool {
	if op == Sum || op == Prod {
		return same(got, want)
	}
	return bits(got) == bits(want)
}

func TestReduce32(t *testing.T) {
	forEachPath(t, func(t *testing.T) { testReduce(t, f32, rand.New(rand.NewPCG(11, 12))) })
}

func TestReduce64(t *testing.T) {
	forEachPath(t, func(t *testing.T) { testReduce(t, f64, rand.New(rand.NewPCG(13, 14))) })
}

// testReduce checks Reduce32 or Reduce64 against passes, and passes
// against the reference semantics, with and without dst being srcs[0].
func testReduce[F float](t *testing.T, ty typed[F], r *rand.Rand) {
	for _, op := range allOps {
		for _, k := range naryCounts {
			for _, n := range naryLengths {
				if skipNary(k, n) {
					continue
				}
				srcs := make([][]F, k)
				for j := range srcs {
					srcs[j] = make([]F, n)
					ty.fill(r, srcs[j])
				}
				want := make([]F, n)
				passes(op, want, srcs, ty.scalar)
				got := make([]F, n)
				ty.reduce(op, got, srcs)
				for i := range n {
					if !exact(op, got[i], want[i]) {
						t.Fatalf("%v k=%d n=%d i=%d: %#x, want %#x", op, k, n, i, bits(got[i]), bits(want[i]))
					}
					// The reference itself against the scalar semantics.
					acc := srcs[0][i]
					for _, s := range srcs[1:] {
						acc = ref(op, acc, s[i])
					}
					if !same(want[i], acc) {
						t.Fatalf("%v k=%d n=%d i=%d: reference %v, want %v", op, k, n, i, want[i], acc)
					}
				}
				// dst may be srcs[0].
				ty.reduce(op, srcs[0], srcs)
				for i := range n {
					if !exact(op, srcs[0][i], want[i]) {
						t.Fatalf("%v k=%d n=%d i=%d aliased: %#x, want %#x", op, k, n, i, bits(srcs[0][i]), bits(want[i]))
					}
				}
			}
		}
	}
}

// TestReduceOrder checks the left-to-right order with values where any
// other order rounds differently: 1 + 2^-24 + 2^-24 ... in float32.
func TestReduceOrder(t *testing.T) {
	forEachPath(t, func(t *testing.T) {
		for _, n := range []int{1, 7, 8, 9, 33, 100} {
			srcs := [][]float32{make([]float32, n), make([]float32, n), make([]float32, n)}
			for i := range n {
				srcs[0][i], srcs[1][i], srcs[2][i] = 1, 0x1p-24, 0x1p-24
			}
			got := make([]float32, n)
			Reduce32(Sum, got, srcs)
			for i := range n {
				if got[i] != 1 { // (1 + 2^-24) + 2^-24 = 1, not 1 + 2^-23
					t.Fatalf("n=%d i=%d: %v, want 1", n, i, got[i])
				}
			}
			srcs[0], srcs[2] = srcs[2], srcs[0] // 2^-24 + 2^-24 + 1 = 1 + 2^-23
			Reduce32(Sum, got, srcs)
			for i := range n {
				if got[i] != 1+0x1p-23 {
					t.Fatalf("n=%d i=%d: %v, want 1+2^-23", n, i, got[i])
				}
			}
		}
	})
}

// TestReduceGuardBands checks that Reduce32/64 touch nothing outside dst,
// at every alignment.
func TestReduceGuardBands(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	forEachPath(t, func(t *testing.T) {
		for _, n := range []int{0, 1, 7, 9, 31, 33, 63, 65, 1001} {
			for off := 1; off <= 4; off++ {
				for _, op := range allOps {
					reduceGuardBands(t, f32, r, op, n, off)
					reduceGuardBands(t, f64, r, op, n, off)
				}
			}
		}
	})
}

func reduceGuardBands[F float](t *testing.T, ty typed[F], r *rand.Rand, op Operator, n, off int) {
	t.Helper()
	const guard = 19
	d := make([]F, n+2*guard)
	for i := range d {
		d[i] = ty.sentinel
	}
	var srcs [][]F
	for range 3 {
		s := make([]F, n+off)
		ty.fill(r, s)
		srcs = append(srcs, s[off:])
	}
	ty.reduce(op, d[off:off+n], srcs)
	checkGuard(t, "Reduce"+ty.w+" "+op.String(), d, ty.sentinel, off, n)
}

func TestReducePanics(t *testing.T) {
	const lenMsg = "reduce: slice lengths do not match"
	for _, op := range allOps {
		wantPanic(t, "Reduce32 no inputs", "reduce: no inputs", func() { Reduce32(op, make([]float32, 2), nil) })
		wantPanic(t, "Reduce64 no inputs", "reduce: no inputs", func() { Reduce64(op, nil, [][]float64{}) })
		wantPanic(t, "Reduce32 length", lenMsg, func() {
			Reduce32(op, make([]float32, 3), [][]float32{make([]float32, 3), make([]float32, 2)})
		})
		wantPanic(t, "Reduce64 length", lenMsg, func() {
			Reduce64(op, make([]float64, 3), [][]float64{make([]float64, 4)})
		})
	}
	for _, op := range []Operator{0, 5, 255} {
		msg := "reduce: invalid Operator " + op.String()
		wantPanic(t, "Reduce32 invalid", msg, func() { Reduce32(op, nil, [][]float32{nil}) })
		wantPanic(t, "Reduce64 invalid", msg, func() {
			Reduce64(op, make([]float64, 100), [][]float64{make([]float64, 100), make([]float64, 100)})
		})
	}
}

func TestReduceZeroAllocs(t *testing.T) {
	forEachPath(t, func(t *testing.T) {
		for _, n := range []int{0, 1, 16, 1000, 4097} {
			for _, k := range []int{1, 2, 8, 20} {
				reduceZeroAllocs(t, f32, n, k)
				reduceZeroAllocs(t, f64, n, k)
			}
		}
	})
}

func reduceZeroAllocs[F float](t *testing.T, ty typed[F], n, k int) {
	t.Helper()
	d, srcs := make([]F, n), make([][]F, k)
	for j := range k {
		srcs[j] = make([]F, n)
	}
	for _, op := range allOps {
		if a := testing.AllocsPerRun(10, func() { ty.reduce(op, d, srcs) }); a != 0 {
			t.Errorf("Reduce%s %v n=%d k=%d: %v allocs", ty.w, op, n, k, a)
		}
	}
}

// TestTiled checks the portable n-ary kernel at tile sizes that do not
// divide the lengths (the default build's Reduce32/64 use tileBytes).
func TestTiled(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	for _, tile := range []int{1, 3, 8, 64} {
		for _, n := range []int{0, 1, 5, 64, 65, 200} {
			for _, op := range allOps {
				srcs := make([][]float64, 4)
				for j := range srcs {
					srcs[j] = make([]float64, n)
					fill64(r, srcs[j])
				}
				want, got := make([]float64, n), make([]float64, n)
				passes(op, want, srcs, scalar64)
				tiled(op, got, srcs, tile, scalar64)
				for i := range n {
					if !exact(op, got[i], want[i]) {
						t.Fatalf("%v tile=%d n=%d i=%d: %#x, want %#x", op, tile, n, i, bits(got[i]), bits(want[i]))
					}
				}
			}
		}
	}
}

// TestReduceTo2 checks that Reduce32To2 and Reduce64To2 leave Reduce32's
// and Reduce64's bits in both destinations, for every op, length and
// number of inputs, on every path, and that they refuse a dst2 of another
// length.
func TestReduceTo2(t *testing.T) {
	forEachPath(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(11, 12))
		for _, op := range allOps {
			for _, k := range []int{1, 2, 4, 5} {
				for _, n := range []int{0, 1, 31, 32, 33, 100, 1001} {
					reduceTo2(t, f32, rng, op, k, n)
					reduceTo2(t, f64, rng, op, k, n)
				}
			}
		}
	})
	wantPanic(t, "Reduce32To2 short dst2", errLength, func() {
		Reduce32To2(Sum, make([]float32, 4), make([]float32, 3), [][]float32{make([]float32, 4)})
	})
	wantPanic(t, "Reduce64To2 long dst2", errLength, func() {
		Reduce64To2(Sum, make([]float64, 4), make([]float64, 5), [][]float64{make([]float64, 4)})
	})
}

func reduceTo2[F float](t *testing.T, ty typed[F], rng *rand.Rand, op Operator, k, n int) {
	t.Helper()
	srcs := make([][]F, k)
	for j := range k {
		srcs[j] = make([]F, n)
		for i := range n {
			srcs[j][i] = F(rng.NormFloat64())
		}
	}
	w, a, b := make([]F, n), make([]F, n), make([]F, n)
	ty.reduce(op, w, srcs)
	ty.to2(op, a, b, srcs)
	for i := range n {
		if !exact(op, a[i], w[i]) || !exact(op, b[i], w[i]) {
			t.Fatalf("Reduce%sTo2 %v, %d inputs of %d: element %d: %v %v want %v", ty.w, op, k, n, i, a[i], b[i], w[i])
		}
	}
}
