package reduce

import (
	"math"
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

// passes32 is the reference for Reduce32: copy, then one binary pass of the
// portable kernel per further input.
func passes32(op Op, dst []float32, srcs [][]float32) {
	copy(dst, srcs[0])
	for _, s := range srcs[1:] {
		scalar32(op, dst, s)
	}
}

func passes64(op Op, dst []float64, srcs [][]float64) {
	copy(dst, srcs[0])
	for _, s := range srcs[1:] {
		scalar64(op, dst, s)
	}
}

// exact32 is the comparison of the n-ary and SIMD tests: bit for bit, except
// that Sum and Prod may return any NaN where the reference has a NaN (the
// documented contract: x86 propagates the payload of one operand, and which
// one depends on operand order that the compiler may swap, because Add and
// Mul are commutative). Min and Max must match every bit, NaNs included.
func exact32(op Op, got, want float32) bool {
	if op == Sum || op == Prod {
		return same32(got, want)
	}
	return math.Float32bits(got) == math.Float32bits(want)
}

func exact64(op Op, got, want float64) bool {
	if op == Sum || op == Prod {
		return same64(got, want)
	}
	return math.Float64bits(got) == math.Float64bits(want)
}

func TestReduce32(t *testing.T) {
	forEachPath(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(11, 12))
		for _, op := range allOps {
			for _, k := range naryCounts {
				for _, n := range naryLengths {
					if skipNary(k, n) {
						continue
					}
					srcs := make([][]float32, k)
					for j := range srcs {
						srcs[j] = make([]float32, n)
						fill32(r, srcs[j])
					}
					want := make([]float32, n)
					passes32(op, want, srcs)
					got := make([]float32, n)
					Reduce32(op, got, srcs)
					for i := range n {
						if !exact32(op, got[i], want[i]) {
							t.Fatalf("%v k=%d n=%d i=%d: %#x, want %#x", op, k, n, i,
								math.Float32bits(got[i]), math.Float32bits(want[i]))
						}
						// The reference itself against the scalar semantics.
						acc := srcs[0][i]
						for _, s := range srcs[1:] {
							acc = ref32(op, acc, s[i])
						}
						if !same32(want[i], acc) {
							t.Fatalf("%v k=%d n=%d i=%d: reference %v, want %v", op, k, n, i, want[i], acc)
						}
					}
					// dst may be srcs[0].
					Reduce32(op, srcs[0], srcs)
					for i := range n {
						if !exact32(op, srcs[0][i], want[i]) {
							t.Fatalf("%v k=%d n=%d i=%d aliased: %#x, want %#x", op, k, n, i,
								math.Float32bits(srcs[0][i]), math.Float32bits(want[i]))
						}
					}
				}
			}
		}
	})
}

func TestReduce64(t *testing.T) {
	forEachPath(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(13, 14))
		for _, op := range allOps {
			for _, k := range naryCounts {
				for _, n := range naryLengths {
					if skipNary(k, n) {
						continue
					}
					srcs := make([][]float64, k)
					for j := range srcs {
						srcs[j] = make([]float64, n)
						fill64(r, srcs[j])
					}
					want := make([]float64, n)
					passes64(op, want, srcs)
					got := make([]float64, n)
					Reduce64(op, got, srcs)
					for i := range n {
						if !exact64(op, got[i], want[i]) {
							t.Fatalf("%v k=%d n=%d i=%d: %#x, want %#x", op, k, n, i,
								math.Float64bits(got[i]), math.Float64bits(want[i]))
						}
						acc := srcs[0][i]
						for _, s := range srcs[1:] {
							acc = ref64(op, acc, s[i])
						}
						if !same64(want[i], acc) {
							t.Fatalf("%v k=%d n=%d i=%d: reference %v, want %v", op, k, n, i, want[i], acc)
						}
					}
					Reduce64(op, srcs[0], srcs)
					for i := range n {
						if !exact64(op, srcs[0][i], want[i]) {
							t.Fatalf("%v k=%d n=%d i=%d aliased: %#x, want %#x", op, k, n, i,
								math.Float64bits(srcs[0][i]), math.Float64bits(want[i]))
						}
					}
				}
			}
		}
	})
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
	const guard = 19
	sentinel32 := math.Float32frombits(0x7fc0beef)
	sentinel64 := math.Float64frombits(0x7ff8deadbeefbeef)
	r := rand.New(rand.NewPCG(15, 16))
	forEachPath(t, func(t *testing.T) {
		for _, n := range []int{0, 1, 7, 9, 31, 33, 63, 65, 1001} {
			for off := 1; off <= 4; off++ {
				for _, op := range allOps {
					d32 := make([]float32, n+2*guard)
					d64 := make([]float64, n+2*guard)
					for i := range d32 {
						d32[i], d64[i] = sentinel32, sentinel64
					}
					var s32 [][]float32
					var s64 [][]float64
					for range 3 {
						a, b := make([]float32, n+off), make([]float64, n+off)
						fill32(r, a)
						fill64(r, b)
						s32, s64 = append(s32, a[off:]), append(s64, b[off:])
					}
					Reduce32(op, d32[off:off+n], s32)
					Reduce64(op, d64[off:off+n], s64)
					for i := range d32 {
						if i >= off && i < off+n {
							continue
						}
						if math.Float32bits(d32[i]) != math.Float32bits(sentinel32) ||
							math.Float64bits(d64[i]) != math.Float64bits(sentinel64) {
							t.Fatalf("%v off=%d n=%d: wrote outside at %d", op, off, n, i-off)
						}
					}
				}
			}
		}
	})
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
	for _, op := range []Op{0, 5, 255} {
		msg := "reduce: invalid Op " + op.String()
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
				d32, d64 := make([]float32, n), make([]float64, n)
				s32, s64 := make([][]float32, k), make([][]float64, k)
				for j := range k {
					s32[j], s64[j] = make([]float32, n), make([]float64, n)
				}
				for _, op := range allOps {
					if a := testing.AllocsPerRun(10, func() { Reduce32(op, d32, s32) }); a != 0 {
						t.Errorf("Reduce32 %v n=%d k=%d: %v allocs", op, n, k, a)
					}
					if a := testing.AllocsPerRun(10, func() { Reduce64(op, d64, s64) }); a != 0 {
						t.Errorf("Reduce64 %v n=%d k=%d: %v allocs", op, n, k, a)
					}
				}
			}
		}
	})
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
				passes64(op, want, srcs)
				tiled(op, got, srcs, tile, scalar64)
				for i := range n {
					if !exact64(op, got[i], want[i]) {
						t.Fatalf("%v tile=%d n=%d i=%d: %#x, want %#x", op, tile, n, i,
							math.Float64bits(got[i]), math.Float64bits(want[i]))
					}
				}
			}
		}
	}
}

// TestReduceTo2 checks that Reduce32To2 and Reduce64To2 leave Reduce32's
// and Reduce64's bits in both destinations, for every op, length and
// number of inputs, on every path.
func TestReduceTo2(t *testing.T) {
	forEachPath(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(11, 12))
		for _, op := range []Op{Sum, Prod, Min, Max} {
			for _, k := range []int{1, 2, 4, 5} {
				for _, n := range []int{0, 1, 31, 32, 33, 100, 1001} {
					s32 := make([][]float32, k)
					s64 := make([][]float64, k)
					for j := range k {
						s32[j], s64[j] = make([]float32, n), make([]float64, n)
						for i := range n {
							s32[j][i], s64[j][i] = float32(rng.NormFloat64()), rng.NormFloat64()
						}
					}
					w32, a32, b32 := make([]float32, n), make([]float32, n), make([]float32, n)
					w64, a64, b64 := make([]float64, n), make([]float64, n), make([]float64, n)
					Reduce32(op, w32, s32)
					Reduce32To2(op, a32, b32, s32)
					Reduce64(op, w64, s64)
					Reduce64To2(op, a64, b64, s64)
					for i := range n {
						if !exact32(op, a32[i], w32[i]) || !exact32(op, b32[i], w32[i]) ||
							!exact64(op, a64[i], w64[i]) || !exact64(op, b64[i], w64[i]) {
							t.Fatalf("%v, %d inputs of %d: element %d: %v %v want %v; %v %v want %v",
								op, k, n, i, a32[i], b32[i], w32[i], a64[i], b64[i], w64[i])
						}
					}
				}
			}
		}
	})
	defer func() {
		if recover() == nil {
			t.Error("a dst2 of another length was accepted")
		}
	}()
	Reduce32To2(Sum, make([]float32, 4), make([]float32, 3), [][]float32{make([]float32, 4)})
}
