//go:build goexperiment.simd && amd64

package reduce

import (
	"math"
	"simd/archsimd"
)

// The SIMD build (GOEXPERIMENT=simd on amd64): 256-bit AVX2 kernels,
// used when the CPU has AVX2 and the portable kernels of kernels.go
// otherwise. Every kernel computes, element by element, exactly the
// operation of the portable kernel (dst ⊕ src, no reassociation), and Min
// and Max reproduce the compiler's lowering of the builtins bit for bit
// (see minV32 and maxV32). The float64 kernels are the float32 ones with
// the types and lane counts changed.
//
// A kernel processes blocks of 4 vectors, then single vectors, clears the
// upper halves of the vector registers (VZEROUPPER: the rest of the
// program, gonum's assembly included, is SSE code, which would otherwise
// pay for the dirty upper state) and returns how many elements it did; the
// caller finishes the last few with the portable kernel.

// useAVX2 selects the AVX2 kernels (AVX2 implies AVX). Tests clear it to
// check the fallback.
var useAVX2 = archsimd.X86.AVX2()

// maxStreams is how many inputs a fused n-ary pass reads at once; more
// inputs are folded into dst in further passes (dst is then the first
// input), which keeps the number of concurrent memory streams within what
// the hardware prefetchers track.
const maxStreams = 16

func binary32(op Op, dst, src []float32) {
	if useAVX2 {
		avx32(op, dst, src)
		return
	}
	scalar32(op, dst, src)
}

func binary64(op Op, dst, src []float64) {
	if useAVX2 {
		avx64(op, dst, src)
		return
	}
	scalar64(op, dst, src)
}

func reduceN32(op Op, dst, dst2 []float32, srcs [][]float32) {
	defer copy(dst2, dst) // this build stores once; the default one twice
	if !useAVX2 {
		tiled(op, dst, srcs, tileBytes/4, scalar32)
		return
	}
	first, rest := srcs[0], srcs[1:]
	for len(rest) > maxStreams {
		fusedAVX32(op, dst, first, rest[:maxStreams])
		first, rest = dst, rest[maxStreams:]
	}
	fusedAVX32(op, dst, first, rest)
}

func reduceN64(op Op, dst, dst2 []float64, srcs [][]float64) {
	defer copy(dst2, dst) // this build stores once; the default one twice
	if !useAVX2 {
		tiled(op, dst, srcs, tileBytes/8, scalar64)
		return
	}
	first, rest := srcs[0], srcs[1:]
	for len(rest) > maxStreams {
		fusedAVX64(op, dst, first, rest[:maxStreams])
		first, rest = dst, rest[maxStreams:]
	}
	fusedAVX64(op, dst, first, rest)
}

// ---- float32 ----

// minV32 is min(a, b) lane by lane with the semantics of the builtin, bit
// for bit. Where a and b are ordered and distinct, VMINP gives the minimum
// whatever the operand order. Elsewhere (a NaN, or a == b, ±0 included)
// VMINP returns one operand unchanged, and the compiler's scalar lowering,
// MINS(MINS(a, b), a) | MINS(a, b), leaves a|b: a NaN if either was, -0 if
// either zero was -0. OR-ing a|b into those lanes gives the same bits. (The
// compiler treats VMINP as commutative and may swap or merge a.Min(b) and
// b.Min(a), so nothing here depends on which operand VMINP returns.)
func minV32(a, b archsimd.Float32x8) archsimd.Float32x8 {
	m := a.Min(b).AsInt32x8()
	ordered := a.Less(b).Or(a.Greater(b)).ToInt32x8()
	return m.Or(a.AsInt32x8().Or(b.AsInt32x8()).AndNot(ordered)).AsFloat32x8()
}

// maxV32 is max(a, b) lane by lane with the semantics of the builtin,
// which the compiler lowers as -min(-a, -b); so is this.
func maxV32(a, b archsimd.Float32x8, sign archsimd.Int32x8) archsimd.Float32x8 {
	na := a.AsInt32x8().Xor(sign).AsFloat32x8()
	nb := b.AsInt32x8().Xor(sign).AsFloat32x8()
	return minV32(na, nb).AsInt32x8().Xor(sign).AsFloat32x8()
}

func load32(s []float32) archsimd.Float32x8 { return archsimd.LoadFloat32x8((*[8]float32)(s)) }

func store32(v archsimd.Float32x8, s []float32) { v.Store((*[8]float32)(s)) }

func signMask32() archsimd.Int32x8 { return archsimd.BroadcastInt32x8(math.MinInt32) }

// avx32 is dst ⊕= src with len(src) == len(dst).
func avx32(op Op, dst, src []float32) {
	var i int
	switch op {
	case Sum:
		i = sumAVX32(dst, src)
	case Prod:
		i = prodAVX32(dst, src)
	case Min:
		i = minAVX32(dst, src)
	case Max:
		i = maxAVX32(dst, src)
	default:
		panic(invalidOp(op))
	}
	if i < len(dst) {
		scalar32(op, dst[i:], src[i:])
	}
}

func sumAVX32(dst, src []float32) int {
	n := len(dst)
	src = src[:n]
	i := 0
	for ; i <= n-32; i += 32 {
		d := dst[i : i+32 : i+32]
		s := src[i : i+32 : i+32]
		store32(load32(d[0:8]).Add(load32(s[0:8])), d[0:8])
		store32(load32(d[8:16]).Add(load32(s[8:16])), d[8:16])
		store32(load32(d[16:24]).Add(load32(s[16:24])), d[16:24])
		store32(load32(d[24:32]).Add(load32(s[24:32])), d[24:32])
	}
	for ; i <= n-8; i += 8 {
		d := dst[i : i+8 : i+8]
		store32(load32(d).Add(load32(src[i:i+8])), d)
	}
	archsimd.ClearAVXUpperBits()
	return i
}

func prodAVX32(dst, src []float32) int {
	n := len(dst)
	src = src[:n]
	i := 0
	for ; i <= n-32; i += 32 {
		d := dst[i : i+32 : i+32]
		s := src[i : i+32 : i+32]
		store32(load32(d[0:8]).Mul(load32(s[0:8])), d[0:8])
		store32(load32(d[8:16]).Mul(load32(s[8:16])), d[8:16])
		store32(load32(d[16:24]).Mul(load32(s[16:24])), d[16:24])
		store32(load32(d[24:32]).Mul(load32(s[24:32])), d[24:32])
	}
	for ; i <= n-8; i += 8 {
		d := dst[i : i+8 : i+8]
		store32(load32(d).Mul(load32(src[i:i+8])), d)
	}
	archsimd.ClearAVXUpperBits()
	return i
}

func minAVX32(dst, src []float32) int {
	n := len(dst)
	src = src[:n]
	i := 0
	for ; i <= n-32; i += 32 {
		d := dst[i : i+32 : i+32]
		s := src[i : i+32 : i+32]
		store32(minV32(load32(d[0:8]), load32(s[0:8])), d[0:8])
		store32(minV32(load32(d[8:16]), load32(s[8:16])), d[8:16])
		store32(minV32(load32(d[16:24]), load32(s[16:24])), d[16:24])
		store32(minV32(load32(d[24:32]), load32(s[24:32])), d[24:32])
	}
	for ; i <= n-8; i += 8 {
		d := dst[i : i+8 : i+8]
		store32(minV32(load32(d), load32(src[i:i+8])), d)
	}
	archsimd.ClearAVXUpperBits()
	return i
}

func maxAVX32(dst, src []float32) int {
	n := len(dst)
	src = src[:n]
	sign := signMask32()
	i := 0
	for ; i <= n-32; i += 32 {
		d := dst[i : i+32 : i+32]
		s := src[i : i+32 : i+32]
		store32(maxV32(load32(d[0:8]), load32(s[0:8]), sign), d[0:8])
		store32(maxV32(load32(d[8:16]), load32(s[8:16]), sign), d[8:16])
		store32(maxV32(load32(d[16:24]), load32(s[16:24]), sign), d[16:24])
		store32(maxV32(load32(d[24:32]), load32(s[24:32]), sign), d[24:32])
	}
	for ; i <= n-8; i += 8 {
		d := dst[i : i+8 : i+8]
		store32(maxV32(load32(d), load32(src[i:i+8]), sign), d)
	}
	archsimd.ClearAVXUpperBits()
	return i
}

// fusedAVX32 sets dst = first ⊕ rest[0] ⊕ rest[1] ⊕ ... (left to right) in
// one pass: each block of 4 vectors is loaded from first, combined with the
// same block of every further input in registers and stored once. first
// may be dst; every slice is as long as dst.
func fusedAVX32(op Op, dst, first []float32, rest [][]float32) {
	var i int
	switch op {
	case Sum:
		i = sumFused32(dst, first, rest)
	case Prod:
		i = prodFused32(dst, first, rest)
	case Min:
		i = minFused32(dst, first, rest)
	case Max:
		i = maxFused32(dst, first, rest)
	default:
		panic(invalidOp(op))
	}
	if i < len(dst) {
		d := dst[i:]
		copy(d, first[i:])
		for _, s := range rest {
			scalar32(op, d, s[i:])
		}
	}
}

func sumFused32(dst, first []float32, rest [][]float32) int {
	n := len(dst)
	first = first[:n]
	i := 0
	for ; i <= n-32; i += 32 {
		a := first[i : i+32 : i+32]
		v0, v1, v2, v3 := load32(a[0:8]), load32(a[8:16]), load32(a[16:24]), load32(a[24:32])
		for _, s := range rest {
			b := s[i : i+32 : i+32]
			v0 = v0.Add(load32(b[0:8]))
			v1 = v1.Add(load32(b[8:16]))
			v2 = v2.Add(load32(b[16:24]))
			v3 = v3.Add(load32(b[24:32]))
		}
		d := dst[i : i+32 : i+32]
		store32(v0, d[0:8])
		store32(v1, d[8:16])
		store32(v2, d[16:24])
		store32(v3, d[24:32])
	}
	for ; i <= n-8; i += 8 {
		v := load32(first[i : i+8])
		for _, s := range rest {
			v = v.Add(load32(s[i : i+8]))
		}
		store32(v, dst[i:i+8])
	}
	archsimd.ClearAVXUpperBits()
	return i
}

func prodFused32(dst, first []float32, rest [][]float32) int {
	n := len(dst)
	first = first[:n]
	i := 0
	for ; i <= n-32; i += 32 {
		a := first[i : i+32 : i+32]
		v0, v1, v2, v3 := load32(a[0:8]), load32(a[8:16]), load32(a[16:24]), load32(a[24:32])
		for _, s := range rest {
			b := s[i : i+32 : i+32]
			v0 = v0.Mul(load32(b[0:8]))
			v1 = v1.Mul(load32(b[8:16]))
			v2 = v2.Mul(load32(b[16:24]))
			v3 = v3.Mul(load32(b[24:32]))
		}
		d := dst[i : i+32 : i+32]
		store32(v0, d[0:8])
		store32(v1, d[8:16])
		store32(v2, d[16:24])
		store32(v3, d[24:32])
	}
	for ; i <= n-8; i += 8 {
		v := load32(first[i : i+8])
		for _, s := range rest {
			v = v.Mul(load32(s[i : i+8]))
		}
		store32(v, dst[i:i+8])
	}
	archsimd.ClearAVXUpperBits()
	return i
}

func minFused32(dst, first []float32, rest [][]float32) int {
	n := len(dst)
	first = first[:n]
	i := 0
	for ; i <= n-32; i += 32 {
		a := first[i : i+32 : i+32]
		v0, v1, v2, v3 := load32(a[0:8]), load32(a[8:16]), load32(a[16:24]), load32(a[24:32])
		for _, s := range rest {
			b := s[i : i+32 : i+32]
			v0 = minV32(v0, load32(b[0:8]))
			v1 = minV32(v1, load32(b[8:16]))
			v2 = minV32(v2, load32(b[16:24]))
			v3 = minV32(v3, load32(b[24:32]))
		}
		d := dst[i : i+32 : i+32]
		store32(v0, d[0:8])
		store32(v1, d[8:16])
		store32(v2, d[16:24])
		store32(v3, d[24:32])
	}
	for ; i <= n-8; i += 8 {
		v := load32(first[i : i+8])
		for _, s := range rest {
			v = minV32(v, load32(s[i:i+8]))
		}
		store32(v, dst[i:i+8])
	}
	archsimd.ClearAVXUpperBits()
	return i
}

func maxFused32(dst, first []float32, rest [][]float32) int {
	n := len(dst)
	first = first[:n]
	sign := signMask32()
	i := 0
	for ; i <= n-32; i += 32 {
		a := first[i : i+32 : i+32]
		v0, v1, v2, v3 := load32(a[0:8]), load32(a[8:16]), load32(a[16:24]), load32(a[24:32])
		for _, s := range rest {
			b := s[i : i+32 : i+32]
			v0 = maxV32(v0, load32(b[0:8]), sign)
			v1 = maxV32(v1, load32(b[8:16]), sign)
			v2 = maxV32(v2, load32(b[16:24]), sign)
			v3 = maxV32(v3, load32(b[24:32]), sign)
		}
		d := dst[i : i+32 : i+32]
		store32(v0, d[0:8])
		store32(v1, d[8:16])
		store32(v2, d[16:24])
		store32(v3, d[24:32])
	}
	for ; i <= n-8; i += 8 {
		v := load32(first[i : i+8])
		for _, s := range rest {
			v = maxV32(v, load32(s[i:i+8]), sign)
		}
		store32(v, dst[i:i+8])
	}
	archsimd.ClearAVXUpperBits()
	return i
}

// ---- float64 ----

// minV64 is min(a, b) lane by lane with the semantics of the builtin, bit
// for bit. Where a and b are ordered and distinct, VMINP gives the minimum
// whatever the operand order. Elsewhere (a NaN, or a == b, ±0 included)
// VMINP returns one operand unchanged, and the compiler's scalar lowering,
// MINS(MINS(a, b), a) | MINS(a, b), leaves a|b: a NaN if either was, -0 if
// either zero was -0. OR-ing a|b into those lanes gives the same bits. (The
// compiler treats VMINP as commutative and may swap or merge a.Min(b) and
// b.Min(a), so nothing here depends on which operand VMINP returns.)
func minV64(a, b archsimd.Float64x4) archsimd.Float64x4 {
	m := a.Min(b).AsInt64x4()
	ordered := a.Less(b).Or(a.Greater(b)).ToInt64x4()
	return m.Or(a.AsInt64x4().Or(b.AsInt64x4()).AndNot(ordered)).AsFloat64x4()
}

// maxV64 is max(a, b) lane by lane with the semantics of the builtin,
// which the compiler lowers as -min(-a, -b); so is this.
func maxV64(a, b archsimd.Float64x4, sign archsimd.Int64x4) archsimd.Float64x4 {
	na := a.AsInt64x4().Xor(sign).AsFloat64x4()
	nb := b.AsInt64x4().Xor(sign).AsFloat64x4()
	return minV64(na, nb).AsInt64x4().Xor(sign).AsFloat64x4()
}

func load64(s []float64) archsimd.Float64x4 { return archsimd.LoadFloat64x4((*[4]float64)(s)) }

func store64(v archsimd.Float64x4, s []float64) { v.Store((*[4]float64)(s)) }

func signMask64() archsimd.Int64x4 { return archsimd.BroadcastInt64x4(math.MinInt64) }

// avx64 is dst ⊕= src with len(src) == len(dst).
func avx64(op Op, dst, src []float64) {
	var i int
	switch op {
	case Sum:
		i = sumAVX64(dst, src)
	case Prod:
		i = prodAVX64(dst, src)
	case Min:
		i = minAVX64(dst, src)
	case Max:
		i = maxAVX64(dst, src)
	default:
		panic(invalidOp(op))
	}
	if i < len(dst) {
		scalar64(op, dst[i:], src[i:])
	}
}

func sumAVX64(dst, src []float64) int {
	n := len(dst)
	src = src[:n]
	i := 0
	for ; i <= n-16; i += 16 {
		d := dst[i : i+16 : i+16]
		s := src[i : i+16 : i+16]
		store64(load64(d[0:4]).Add(load64(s[0:4])), d[0:4])
		store64(load64(d[4:8]).Add(load64(s[4:8])), d[4:8])
		store64(load64(d[8:12]).Add(load64(s[8:12])), d[8:12])
		store64(load64(d[12:16]).Add(load64(s[12:16])), d[12:16])
	}
	for ; i <= n-4; i += 4 {
		d := dst[i : i+4 : i+4]
		store64(load64(d).Add(load64(src[i:i+4])), d)
	}
	archsimd.ClearAVXUpperBits()
	return i
}

func prodAVX64(dst, src []float64) int {
	n := len(dst)
	src = src[:n]
	i := 0
	for ; i <= n-16; i += 16 {
		d := dst[i : i+16 : i+16]
		s := src[i : i+16 : i+16]
		store64(load64(d[0:4]).Mul(load64(s[0:4])), d[0:4])
		store64(load64(d[4:8]).Mul(load64(s[4:8])), d[4:8])
		store64(load64(d[8:12]).Mul(load64(s[8:12])), d[8:12])
		store64(load64(d[12:16]).Mul(load64(s[12:16])), d[12:16])
	}
	for ; i <= n-4; i += 4 {
		d := dst[i : i+4 : i+4]
		store64(load64(d).Mul(load64(src[i:i+4])), d)
	}
	archsimd.ClearAVXUpperBits()
	return i
}

func minAVX64(dst, src []float64) int {
	n := len(dst)
	src = src[:n]
	i := 0
	for ; i <= n-16; i += 16 {
		d := dst[i : i+16 : i+16]
		s := src[i : i+16 : i+16]
		store64(minV64(load64(d[0:4]), load64(s[0:4])), d[0:4])
		store64(minV64(load64(d[4:8]), load64(s[4:8])), d[4:8])
		store64(minV64(load64(d[8:12]), load64(s[8:12])), d[8:12])
		store64(minV64(load64(d[12:16]), load64(s[12:16])), d[12:16])
	}
	for ; i <= n-4; i += 4 {
		d := dst[i : i+4 : i+4]
		store64(minV64(load64(d), load64(src[i:i+4])), d)
	}
	archsimd.ClearAVXUpperBits()
	return i
}

func maxAVX64(dst, src []float64) int {
	n := len(dst)
	src = src[:n]
	sign := signMask64()
	i := 0
	for ; i <= n-16; i += 16 {
		d := dst[i : i+16 : i+16]
		s := src[i : i+16 : i+16]
		store64(maxV64(load64(d[0:4]), load64(s[0:4]), sign), d[0:4])
		store64(maxV64(load64(d[4:8]), load64(s[4:8]), sign), d[4:8])
		store64(maxV64(load64(d[8:12]), load64(s[8:12]), sign), d[8:12])
		store64(maxV64(load64(d[12:16]), load64(s[12:16]), sign), d[12:16])
	}
	for ; i <= n-4; i += 4 {
		d := dst[i : i+4 : i+4]
		store64(maxV64(load64(d), load64(src[i:i+4]), sign), d)
	}
	archsimd.ClearAVXUpperBits()
	return i
}

// fusedAVX64 sets dst = first ⊕ rest[0] ⊕ rest[1] ⊕ ... (left to right) in
// one pass: each block of 4 vectors is loaded from first, combined with the
// same block of every further input in registers and stored once. first
// may be dst; every slice is as long as dst.
func fusedAVX64(op Op, dst, first []float64, rest [][]float64) {
	var i int
	switch op {
	case Sum:
		i = sumFused64(dst, first, rest)
	case Prod:
		i = prodFused64(dst, first, rest)
	case Min:
		i = minFused64(dst, first, rest)
	case Max:
		i = maxFused64(dst, first, rest)
	default:
		panic(invalidOp(op))
	}
	if i < len(dst) {
		d := dst[i:]
		copy(d, first[i:])
		for _, s := range rest {
			scalar64(op, d, s[i:])
		}
	}
}

func sumFused64(dst, first []float64, rest [][]float64) int {
	n := len(dst)
	first = first[:n]
	i := 0
	for ; i <= n-16; i += 16 {
		a := first[i : i+16 : i+16]
		v0, v1, v2, v3 := load64(a[0:4]), load64(a[4:8]), load64(a[8:12]), load64(a[12:16])
		for _, s := range rest {
			b := s[i : i+16 : i+16]
			v0 = v0.Add(load64(b[0:4]))
			v1 = v1.Add(load64(b[4:8]))
			v2 = v2.Add(load64(b[8:12]))
			v3 = v3.Add(load64(b[12:16]))
		}
		d := dst[i : i+16 : i+16]
		store64(v0, d[0:4])
		store64(v1, d[4:8])
		store64(v2, d[8:12])
		store64(v3, d[12:16])
	}
	for ; i <= n-4; i += 4 {
		v := load64(first[i : i+4])
		for _, s := range rest {
			v = v.Add(load64(s[i : i+4]))
		}
		store64(v, dst[i:i+4])
	}
	archsimd.ClearAVXUpperBits()
	return i
}

func prodFused64(dst, first []float64, rest [][]float64) int {
	n := len(dst)
	first = first[:n]
	i := 0
	for ; i <= n-16; i += 16 {
		a := first[i : i+16 : i+16]
		v0, v1, v2, v3 := load64(a[0:4]), load64(a[4:8]), load64(a[8:12]), load64(a[12:16])
		for _, s := range rest {
			b := s[i : i+16 : i+16]
			v0 = v0.Mul(load64(b[0:4]))
			v1 = v1.Mul(load64(b[4:8]))
			v2 = v2.Mul(load64(b[8:12]))
			v3 = v3.Mul(load64(b[12:16]))
		}
		d := dst[i : i+16 : i+16]
		store64(v0, d[0:4])
		store64(v1, d[4:8])
		store64(v2, d[8:12])
		store64(v3, d[12:16])
	}
	for ; i <= n-4; i += 4 {
		v := load64(first[i : i+4])
		for _, s := range rest {
			v = v.Mul(load64(s[i : i+4]))
		}
		store64(v, dst[i:i+4])
	}
	archsimd.ClearAVXUpperBits()
	return i
}

func minFused64(dst, first []float64, rest [][]float64) int {
	n := len(dst)
	first = first[:n]
	i := 0
	for ; i <= n-16; i += 16 {
		a := first[i : i+16 : i+16]
		v0, v1, v2, v3 := load64(a[0:4]), load64(a[4:8]), load64(a[8:12]), load64(a[12:16])
		for _, s := range rest {
			b := s[i : i+16 : i+16]
			v0 = minV64(v0, load64(b[0:4]))
			v1 = minV64(v1, load64(b[4:8]))
			v2 = minV64(v2, load64(b[8:12]))
			v3 = minV64(v3, load64(b[12:16]))
		}
		d := dst[i : i+16 : i+16]
		store64(v0, d[0:4])
		store64(v1, d[4:8])
		store64(v2, d[8:12])
		store64(v3, d[12:16])
	}
	for ; i <= n-4; i += 4 {
		v := load64(first[i : i+4])
		for _, s := range rest {
			v = minV64(v, load64(s[i:i+4]))
		}
		store64(v, dst[i:i+4])
	}
	archsimd.ClearAVXUpperBits()
	return i
}

func maxFused64(dst, first []float64, rest [][]float64) int {
	n := len(dst)
	first = first[:n]
	sign := signMask64()
	i := 0
	for ; i <= n-16; i += 16 {
		a := first[i : i+16 : i+16]
		v0, v1, v2, v3 := load64(a[0:4]), load64(a[4:8]), load64(a[8:12]), load64(a[12:16])
		for _, s := range rest {
			b := s[i : i+16 : i+16]
			v0 = maxV64(v0, load64(b[0:4]), sign)
			v1 = maxV64(v1, load64(b[4:8]), sign)
			v2 = maxV64(v2, load64(b[8:12]), sign)
			v3 = maxV64(v3, load64(b[12:16]), sign)
		}
		d := dst[i : i+16 : i+16]
		store64(v0, d[0:4])
		store64(v1, d[4:8])
		store64(v2, d[8:12])
		store64(v3, d[12:16])
	}
	for ; i <= n-4; i += 4 {
		v := load64(first[i : i+4])
		for _, s := range rest {
			v = maxV64(v, load64(s[i:i+4]), sign)
		}
		store64(v, dst[i:i+4])
	}
	archsimd.ClearAVXUpperBits()
	return i
}
