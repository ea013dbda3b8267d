//go:build goexperiment.simd && amd64

package reduce

import (
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

// loop is the builtins, one element at a time: the semantics the vector
// Min and Max must reproduce bit for bit (they are what the portable
// kernels run).
func loop[F float](op Operator, dst, src []F) {
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

// avxKernels is the AVX2 side of one element type.
type avxKernels[F float] struct {
	typed[F]
	lanes int                                           // per vector
	avx   func(op Operator, dst, src []F)               // avx32, avx64
	fused func(op Operator, dst, first []F, rest [][]F) // fusedAVX32, fusedAVX64
}

var (
	avxF32 = avxKernels[float32]{f32, 8, avx32, fusedAVX32}
	avxF64 = avxKernels[float64]{f64, 4, avx64, fusedAVX64}
)

// TestAVXSpecialPairs runs every pair of special values through every lane
// of the vector kernels and compares with the builtins bit for bit (NaN
// payloads and signs included for Min and Max).
func TestAVXSpecialPairs(t *testing.T) {
	needAVX2(t)
	for _, op := range allOps {
		specialPairs(t, avxF32, op)
		specialPairs(t, avxF64, op)
	}
}

func specialPairs[F float](t *testing.T, k avxKernels[F], op Operator) {
	t.Helper()
	var a, b []F
	for _, x := range k.specials {
		for _, y := range k.specials {
			a, b = append(a, x), append(b, y)
		}
	}
	// Every rotation puts every pair in every lane of a block.
	for rot := range 4 * k.lanes {
		ra := append(append([]F(nil), a[rot:]...), a[:rot]...)
		rb := append(append([]F(nil), b[rot:]...), b[:rot]...)
		got, want := append([]F(nil), ra...), append([]F(nil), ra...)
		k.avx(op, got, rb)
		loop(op, want, rb)
		for i := range got {
			if !exact(op, got[i], want[i]) {
				t.Fatalf("avx%s %v(%v, %v) = %#x, want %#x", k.w, op, ra[i], rb[i], bits(got[i]), bits(want[i]))
			}
		}
	}
}

// TestAVXKernels compares the binary AVX2 kernels with the builtins at
// every length up to 70 and at long odd lengths, at several alignments,
// and checks that they write nothing outside dst.
func TestAVXKernels(t *testing.T) {
	needAVX2(t)
	r := rand.New(rand.NewPCG(21, 22))
	lengths := append([]int(nil), naryLengths...)
	lengths = append(lengths, 100003)
	for _, op := range allOps {
		for _, n := range lengths {
			for off := range 4 {
				avxKernel(t, avxF32, r, op, n, off)
				avxKernel(t, avxF64, r, op, n, off)
			}
		}
	}
}

func avxKernel[F float](t *testing.T, k avxKernels[F], r *rand.Rand, op Operator, n, off int) {
	t.Helper()
	const guard = 9
	a, b := make([]F, n+off+guard), make([]F, n+off)
	k.fill(r, a)
	k.fill(r, b)
	got := append([]F(nil), a...)
	want := append([]F(nil), a...)
	k.avx(op, got[off:off+n], b[off:])
	loop(op, want[off:off+n], b[off:])
	for i := range got {
		if !exact(op, got[i], want[i]) {
			t.Fatalf("avx%s %v n=%d off=%d i=%d: %v ⊕ %v = %#x, want %#x", k.w, op, n, off, i-off,
				a[i], b[min(i, len(b)-1)], bits(got[i]), bits(want[i]))
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
			fusedFromDst(t, avxF32, r, op, n)
			fusedFromDst(t, avxF64, r, op, n)
		}
	}
}

func fusedFromDst[F float](t *testing.T, k avxKernels[F], r *rand.Rand, op Operator, n int) {
	t.Helper()
	dst, src := make([]F, n), make([]F, n)
	k.fill(r, dst)
	k.fill(r, src)
	want := append([]F(nil), dst...)
	loop(op, want, src)
	k.fused(op, dst, dst, [][]F{src})
	for i := range n {
		if !exact(op, dst[i], want[i]) {
			t.Fatalf("fusedAVX%s %v n=%d i=%d: %#x, want %#x", k.w, op, n, i, bits(dst[i]), bits(want[i]))
		}
	}
}

// TestAVXFloatAPI runs the public binary API on both paths.
func TestAVXFloatAPI(t *testing.T) {
	forEachPath(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(25, 26))
		for _, op := range allOps {
			for _, n := range []int{0, 3, 8, 31, 32, 33, 1000} {
				floatAPI(t, f64, r, op, n)
				floatAPI(t, f32, r, op, n)
			}
		}
	})
}

func floatAPI[F float](t *testing.T, ty typed[F], r *rand.Rand, op Operator, n int) {
	t.Helper()
	a, b := make([]F, n), make([]F, n)
	ty.fill(r, a)
	ty.fill(r, b)
	got, want := append([]F(nil), a...), append([]F(nil), a...)
	ty.binary(op, got, b)
	loop(op, want, b)
	for i := range n {
		if !exact(op, got[i], want[i]) {
			t.Fatalf("Float%s %v n=%d i=%d: %#x, want %#x", ty.w, op, n, i, bits(got[i]), bits(want[i]))
		}
	}
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
		func(op Operator, dst, src []float32) { archsimd.ClearAVXUpperBits(); scalar32(op, dst, src) },
		func(op Operator, dst, src []float64) { archsimd.ClearAVXUpperBits(); scalar64(op, dst, src) }}}
	if useAVX2 {
		sets = append(sets, kernelSet{"avx2", avx32, avx64})
	}
	return sets
}
