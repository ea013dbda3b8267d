//go:build goexperiment.simd && amd64

// The float32 kernels of the SIMD build (see simd_amd64.go), written by
// hand. simd64_amd64.go, the float64 kernels, is generated from this file
// by gen_simd.go ("go generate" in this package), which documents the
// substitutions. Spell everything that depends on the element type so that
// they cover it: names ending in 32 (float32, math.MinInt32, scalar32, the
// kernels' own names), archsimd names with 32x8, and element counts as
// integer literals that are multiples of 8, the float32 lane count. This
// comment is not copied.

package reduce

import (
	"math"
	"simd/archsimd"
)

func binary32(op Operator, dst, src []float32) {
	if useAVX2 {
		avx32(op, dst, src)
		return
	}
	scalar32(op, dst, src)
}

func reduceN32(op Operator, dst, dst2 []float32, srcs [][]float32) {
	defer copy(dst2, dst) // this build stores once; the default one twice
	if !useAVX2 {
		tiled(op, dst, srcs, tile32, scalar32)
		return
	}
	first, rest := srcs[0], srcs[1:]
	for len(rest) > maxStreams {
		fusedAVX32(op, dst, first, rest[:maxStreams])
		first, rest = dst, rest[maxStreams:]
	}
	fusedAVX32(op, dst, first, rest)
}

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
func avx32(op Operator, dst, src []float32) {
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
func fusedAVX32(op Operator, dst, first []float32, rest [][]float32) {
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
