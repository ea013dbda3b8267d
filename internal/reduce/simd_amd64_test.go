//go:build goexperiment.simd && amd64

package reduce

import (
	"math"
	"math/rand/v2"
	"simd/archsimd"
	"testing"
)

// forEachPath runs f with the AVX2 kernels (where the CPU has AVX2) and
// with the portable fallback.
func forEachPath(t *testing.T, f func(t *testing.T)) {
	saved := useAVX2
	defer func() { useAVX2 = saved }()
	if saved {
		useAVX2 = true
		t.Run("avx2", f)
	} else {
		t.Log("CPU without AVX2: only the portable kernels are tested")
	}
	useAVX2 = false
	t.Run("portable", f)
}

func needAVX2(t *testing.T) {
	t.Helper()
	if !useAVX2 {
		t.Skip("CPU without AVX2")
	}
}

// The builtins, one element at a time: the semantics the vector Min and
// Max must reproduce bit for bit (they are what the portable kernels run).
func loop32(op Op, dst, src []float32) {
	for i := range dst {
		switch op {
		case Sum:
			dst[i] += src[i]
		case Prod:
			dst[i] *= src[i]
		case Min:
			dst[i] = min(dst[i], src[i])
		case Max:
			dst[i] = max(dst[i], src[i])
		}
	}
}

func loop64(op Op, dst, src []float64) {
	for i := range dst {
		switch op {
		case Sum:
			dst[i] += src[i]
		case Prod:
			dst[i] *= src[i]
		case Min:
			dst[i] = min(dst[i], src[i])
		case Max:
			dst[i] = max(dst[i], src[i])
		}
	}
}

// TestAVXSpecialPairs runs every pair of special values through every lane
// of the vector kernels and compares with the builtins bit for bit (NaN
// payloads and signs included for Min and Max).
func TestAVXSpecialPairs(t *testing.T) {
	needAVX2(t)
	for _, op := range allOps {
		var a32, b32 []float32
		for _, x := range specials32 {
			for _, y := range specials32 {
				a32, b32 = append(a32, x), append(b32, y)
			}
		}
		var a64, b64 []float64
		for _, x := range specials64 {
			for _, y := range specials64 {
				a64, b64 = append(a64, x), append(b64, y)
			}
		}
		// Every rotation puts every pair in every lane of a block.
		for rot := range 32 {
			ra32 := append(append([]float32(nil), a32[rot:]...), a32[:rot]...)
			rb32 := append(append([]float32(nil), b32[rot:]...), b32[:rot]...)
			got, want := append([]float32(nil), ra32...), append([]float32(nil), ra32...)
			avx32(op, got, rb32)
			loop32(op, want, rb32)
			for i := range got {
				if !exact32(op, got[i], want[i]) {
					t.Fatalf("avx32 %v(%v, %v) = %#x, want %#x", op, ra32[i], rb32[i],
						math.Float32bits(got[i]), math.Float32bits(want[i]))
				}
			}
			if rot >= 16 {
				continue
			}
			ra64 := append(append([]float64(nil), a64[rot:]...), a64[:rot]...)
			rb64 := append(append([]float64(nil), b64[rot:]...), b64[:rot]...)
			g64, w64 := append([]float64(nil), ra64...), append([]float64(nil), ra64...)
			avx64(op, g64, rb64)
			loop64(op, w64, rb64)
			for i := range g64 {
				if !exact64(op, g64[i], w64[i]) {
					t.Fatalf("avx64 %v(%v, %v) = %#x, want %#x", op, ra64[i], rb64[i],
						math.Float64bits(g64[i]), math.Float64bits(w64[i]))
				}
			}
		}
	}
}

// TestAVXKernels compares the binary AVX2 kernels with the builtins at
// every length up to 70 and at long odd lengths, at several alignments,
// and checks that they write nothing outside dst.
func TestAVXKernels(t *testing.T) {
	needAVX2(t)
	const guard = 9
	r := rand.New(rand.NewPCG(21, 22))
	lengths := append([]int(nil), naryLengths...)
	lengths = append(lengths, 100003)
	for _, op := range allOps {
		for _, n := range lengths {
			for off := range 4 {
				a32, b32 := make([]float32, n+off+guard), make([]float32, n+off)
				fill32(r, a32)
				fill32(r, b32)
				got := append([]float32(nil), a32...)
				want := append([]float32(nil), a32...)
				avx32(op, got[off:off+n], b32[off:])
				loop32(op, want[off:off+n], b32[off:])
				for i := range got {
					if !exact32(op, got[i], want[i]) {
						t.Fatalf("avx32 %v n=%d off=%d i=%d: %v ⊕ %v = %#x, want %#x", op, n, off, i-off,
							a32[i], b32[min(i, len(b32)-1)], math.Float32bits(got[i]), math.Float32bits(want[i]))
					}
				}
				a64, b64 := make([]float64, n+off+guard), make([]float64, n+off)
				fill64(r, a64)
				fill64(r, b64)
				g64 := append([]float64(nil), a64...)
				w64 := append([]float64(nil), a64...)
				avx64(op, g64[off:off+n], b64[off:])
				loop64(op, w64[off:off+n], b64[off:])
				for i := range g64 {
					if !exact64(op, g64[i], w64[i]) {
						t.Fatalf("avx64 %v n=%d off=%d i=%d: %#x, want %#x", op, n, off, i-off,
							math.Float64bits(g64[i]), math.Float64bits(w64[i]))
					}
				}
			}
		}
	}
}

// TestAVXFusedFromDst checks the later passes of reduceN (more than
// maxStreams inputs), where the fused kernel starts from dst itself.
func TestAVXFusedFromDst(t *testing.T) {
	needAVX2(t)
	r := rand.New(rand.NewPCG(23, 24))
	for _, op := range allOps {
		for _, n := range []int{0, 5, 40, 77, 1001} {
			dst, src := make([]float32, n), make([]float32, n)
			fill32(r, dst)
			fill32(r, src)
			want := append([]float32(nil), dst...)
			loop32(op, want, src)
			fusedAVX32(op, dst, dst, [][]float32{src})
			for i := range n {
				if !exact32(op, dst[i], want[i]) {
					t.Fatalf("%v n=%d i=%d: %#x, want %#x", op, n, i, math.Float32bits(dst[i]), math.Float32bits(want[i]))
				}
			}
		}
	}
}

// TestAVXFloatAPI runs the public binary API on both paths.
func TestAVXFloatAPI(t *testing.T) {
	forEachPath(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(25, 26))
		for _, op := range allOps {
			for _, n := range []int{0, 3, 8, 31, 32, 33, 1000} {
				a, b := make([]float64, n), make([]float64, n)
				fill64(r, a)
				fill64(r, b)
				got, want := append([]float64(nil), a...), append([]float64(nil), a...)
				Float64(op, got, b)
				loop64(op, want, b)
				for i := range n {
					if !exact64(op, got[i], want[i]) {
						t.Fatalf("%v n=%d i=%d: %#x, want %#x", op, n, i, math.Float64bits(got[i]), math.Float64bits(want[i]))
					}
				}
			}
		}
	})
}

// kernelSets: the portable kernels and AVX2. The portable set clears the
// upper vector state before each call: in this build the runtime's
// asynchronous preemption restores the full YMM/ZMM registers on AVX2 and
// AVX-512 CPUs and so leaves the upper state dirty, which makes every
// legacy-SSE instruction after it (all of the portable kernels) several
// times slower until the next VZEROUPPER. Programs of this build do not run
// the portable kernels on such CPUs; the benchmark measures them as the
// default build runs them.
func kernelSets() []kernelSet {
	sets := []kernelSet{{"portable",
		func(op Op, dst, src []float32) { archsimd.ClearAVXUpperBits(); scalar32(op, dst, src) },
		func(op Op, dst, src []float64) { archsimd.ClearAVXUpperBits(); scalar64(op, dst, src) }}}
	if useAVX2 {
		sets = append(sets, kernelSet{"avx2", avx32, avx64})
	}
	return sets
}
