//go:build amd64 && !goexperiment.simd

package reduce

import "golang.org/x/sys/cpu"

// The default build on amd64: the portable kernels of kernels.go, except
// the sums (binary and n-ary), which on CPUs with AVX2 run the one-pass
// assembly of sum_amd64.s: each input read once, dst written once, 32 float32s (16
// float64s) in four registers at a time. (The SIMD build, simd_amd64.go,
// simd32_amd64.go and the generated simd64_amd64.go, replaces these
// functions with its own for every operation.)

// hasAVX2 gates the assembly; a variable so that tests can take the
// portable path too.
var hasAVX2 = cpu.X86.HasAVX2

func binary32(op Operator, dst, src []float32) {
	if op != Sum || !hasAVX2 || len(dst) < sumAsmMin32 {
		scalar32(op, dst, src)
		return
	}
	n := len(dst) &^ 31
	pair := [2][]float32{dst, src}
	sumN32AVX2(dst, nil, pair[:], n)
	if n < len(dst) {
		sumUnroll4(dst[n:], src[n:len(dst)])
	}
}

func binary64(op Operator, dst, src []float64) {
	if op != Sum || !hasAVX2 || len(dst) < sumAsmMin64 {
		scalar64(op, dst, src)
		return
	}
	n := len(dst) &^ 15
	pair := [2][]float64{dst, src}
	sumN64AVX2(dst, nil, pair[:], n)
	if n < len(dst) {
		sumUnroll4(dst[n:], src[n:len(dst)])
	}
}

func reduceN32(op Operator, dst, dst2 []float32, srcs [][]float32) {
	if op != Sum || !hasAVX2 || len(srcs) < 2 {
		tiled(op, dst, srcs, tile32, scalar32)
		copy(dst2, dst)
		return
	}
	n := len(dst) &^ 31
	sumN32AVX2(dst, dst2, srcs, n)
	sumTail(dst, dst2, srcs, n)
}

func reduceN64(op Operator, dst, dst2 []float64, srcs [][]float64) {
	if op != Sum || !hasAVX2 || len(srcs) < 2 {
		tiled(op, dst, srcs, tile64, scalar64)
		copy(dst2, dst)
		return
	}
	n := len(dst) &^ 15
	sumN64AVX2(dst, dst2, srcs, n)
	sumTail(dst, dst2, srcs, n)
}

// sumTail finishes an n-ary sum from element n on, past the assembly's
// last whole block: the same additions in the same order.
func sumTail[F float](dst, dst2 []F, srcs [][]F, n int) {
	for i := n; i < len(dst); i++ {
		v := srcs[0][i]
		for _, s := range srcs[1:] {
			v += s[i]
		}
		dst[i] = v
		if len(dst2) > 0 {
			dst2[i] = v
		}
	}
}
