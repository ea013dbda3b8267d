package reduce

import (
	"math"
	"sync/atomic"

	"gonum.org/v1/gonum/blas/gonum"
	"gonum.org/v1/gonum/floats"
)

// The kernels used by Float32, Float64, Div32 and Div64. Every kernel
// requires len(src) == len(dst) (checked by the callers); re-slicing src to
// len(dst) lets the compiler drop the bounds checks in the loops. The
// alternatives that lost the measurements live in alt_test.go.

type float interface{ float32 | float64 }

// scalar32 and scalar64 are the portable binary kernels: dst ⊕= src with
// len(src) == len(dst). They are what Float32 and Float64 run in the
// default build, and the fallback of the SIMD build on CPUs without AVX2.
func scalar32(op Operator, dst, src []float32) {
	switch op {
	case Sum:
		sum32(dst, src)
	case Prod:
		prodUnroll4(dst, src)
	case Min:
		minUnroll4(dst, src)
	case Max:
		maxUnroll4(dst, src)
	default:
		panic(invalidOp(op))
	}
}

func scalar64(op Operator, dst, src []float64) {
	switch op {
	case Sum:
		sum64(dst, src)
	case Prod:
		prodUnroll4(dst, src)
	case Min:
		minUnroll4(dst, src)
	case Max:
		maxUnroll4(dst, src)
	default:
		panic(invalidOp(op))
	}
}

// tileBytes is the size of the dst tile of tiled: 8 KiB, so that the tile
// and the matching tile of the input being folded in (16 KiB together) stay
// in a 32 KiB L1 data cache; 16 KiB measures the same, 2 and 4 KiB are
// slower (the per-tile calls), and so is 64 KiB for short vectors (see
// BenchmarkReduceTile).
const tileBytes = 8 << 10

// tile32 and tile64 are tileBytes in float32 and float64 elements.
const (
	tile32 = tileBytes / 4
	tile64 = tileBytes / 8
)

// tiled computes the n-ary reduction (len(srcs) >= 1, every input as long
// as dst) tile by tile: it copies a tile of srcs[0] into dst and folds the
// matching tile of srcs[1], srcs[2], ... into it with the binary kernel, so
// that dst's tile is read and written in L1 rather than once per input from
// memory. Each element sees exactly the operations, in the same order, of
// copy(dst, srcs[0]) followed by one kernel pass per further input.
func tiled[F float](op Operator, dst []F, srcs [][]F, tile int, kernel func(Operator, []F, []F)) {
	n := len(dst)
	s0, rest := srcs[0], srcs[1:]
	for lo := 0; lo < n; lo += tile {
		hi := min(lo+tile, n)
		d := dst[lo:hi]
		copy(d, s0[lo:hi])
		for _, s := range rest {
			kernel(op, d, s[lo:hi])
		}
	}
}

// Below these lengths the plain Go loops beat the gonum assembly, whose
// fixed cost (argument checks, alignment prologue, the microcoded LOOP
// instruction in its tails) is 15-20 ns; see BenchmarkCutoff.
const (
	sumAsmMin32 = 64
	sumAsmMin64 = 32
	divAsmMin64 = 64
)

// sum32 is dst += src: gonum's SSE Saxpy with alpha = 1 (MULPS by 1 is
// exact, then ADDPS) for long slices, an unrolled loop for short ones.
func sum32(dst, src []float32) {
	n := len(dst)
	if n < sumAsmMin32 {
		sumUnroll4(dst, src)
		return
	}
	gonum.Implementation{}.Saxpy(n, 1, src[:n], 1, dst, 1)
}

// sum64 is dst += src: gonum's SSE2 floats.Add (AxpyUnitaryTo with
// alpha = 1) for long slices, an unrolled loop for short ones.
func sum64(dst, src []float64) {
	if len(dst) < sumAsmMin64 {
		sumUnroll4(dst, src)
		return
	}
	floats.Add(dst, src[:len(dst)])
}

func sumUnroll4[F float](dst, src []F) {
	n := len(dst)
	src = src[:n]
	i := 0
	for ; i <= n-4; i += 4 {
		d := dst[i : i+4 : i+4]
		s := src[i : i+4 : i+4]
		d[0] += s[0]
		d[1] += s[1]
		d[2] += s[2]
		d[3] += s[3]
	}
	for ; i < n; i++ {
		dst[i] += src[i]
	}
}

func prodUnroll4[F float](dst, src []F) {
	n := len(dst)
	src = src[:n]
	i := 0
	for ; i <= n-4; i += 4 {
		d := dst[i : i+4 : i+4]
		s := src[i : i+4 : i+4]
		d[0] *= s[0]
		d[1] *= s[1]
		d[2] *= s[2]
		d[3] *= s[3]
	}
	for ; i < n; i++ {
		dst[i] *= src[i]
	}
}

// maxUnroll4 uses the builtin max, which the compiler lowers to a
// branch-free MINSS/POR sequence with Go's semantics: NaN if either operand
// is NaN, and max(-0, +0) = +0.
func maxUnroll4[F float](dst, src []F) {
	n := len(dst)
	src = src[:n]
	i := 0
	for ; i <= n-4; i += 4 {
		d := dst[i : i+4 : i+4]
		s := src[i : i+4 : i+4]
		d[0] = max(d[0], s[0])
		d[1] = max(d[1], s[1])
		d[2] = max(d[2], s[2])
		d[3] = max(d[3], s[3])
	}
	for ; i < n; i++ {
		dst[i] = max(dst[i], src[i])
	}
}

// minUnroll4 uses the builtin min: NaN if either operand is NaN, and
// min(-0, +0) = -0.
func minUnroll4[F float](dst, src []F) {
	n := len(dst)
	src = src[:n]
	i := 0
	for ; i <= n-4; i += 4 {
		d := dst[i : i+4 : i+4]
		s := src[i : i+4 : i+4]
		d[0] = min(d[0], s[0])
		d[1] = min(d[1], s[1])
		d[2] = min(d[2], s[2])
		d[3] = min(d[3], s[3])
	}
	for ; i < n; i++ {
		dst[i] = min(dst[i], src[i])
	}
}

func divUnroll4[F float](dst []F, n F) {
	l := len(dst)
	i := 0
	for ; i <= l-4; i += 4 {
		d := dst[i : i+4 : i+4]
		d[0] /= n
		d[1] /= n
		d[2] /= n
		d[3] /= n
	}
	for ; i < l; i++ {
		dst[i] /= n
	}
}

// div64 is dst /= n. For long slices it uses gonum's floats.Div (packed
// DIVPD, two quotients per instruction, each correctly rounded exactly as
// the scalar DIVSD of the Go loop) against a read-only slice filled with n.
func div64(dst []float64, n float64) {
	if len(dst) < divAsmMin64 {
		divUnroll4(dst, n)
		return
	}
	v := splat(n)
	for len(dst) > 0 {
		k := min(len(dst), len(v))
		floats.Div(dst[:k], v[:k])
		dst = dst[k:]
	}
}

// splatLen is the length of a divisor vector (4 KiB: stays in L1).
const splatLen = 512

type splat64 struct {
	bits uint64 // math.Float64bits of every element of v
	v    [splatLen]float64
}

// splats caches divisor vectors. The vectors are immutable once published,
// so concurrent readers need no locking. A miss allocates one (4 KiB) and
// stores it in an empty slot, or when all are taken in a slot picked by a
// hash of n, so a steady state that uses at most len(splats) distinct
// divisors (typically one: the world size) does not allocate.
var splats [4]atomic.Pointer[splat64]

func splat(n float64) *[splatLen]float64 {
	bits := math.Float64bits(n)
	free := -1
	for i := range splats {
		s := splats[i].Load()
		if s == nil {
			if free < 0 {
				free = i
			}
			continue
		}
		if s.bits == bits {
			return &s.v
		}
	}
	if free < 0 {
		free = int((bits * 0x9E3779B97F4A7C15) >> 62)
	}
	s := &splat64{bits: bits}
	for i := range s.v {
		s.v[i] = n
	}
	splats[free].Store(s)
	return &s.v
}
