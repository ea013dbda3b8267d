//go:build !amd64

package reduce

// The default build: the portable kernels of kernels.go on every
// architecture. The SIMD build (simd_amd64.go, simd32_amd64.go and the
// generated simd64_amd64.go) replaces these functions.

func binary32(op Operator, dst, src []float32) { scalar32(op, dst, src) }

func binary64(op Operator, dst, src []float64) { scalar64(op, dst, src) }

func reduceN32(op Operator, dst, dst2 []float32, srcs [][]float32) {
	tiled(op, dst, srcs, tile32, scalar32)
	copy(dst2, dst)
}

func reduceN64(op Operator, dst, dst2 []float64, srcs [][]float64) {
	tiled(op, dst, srcs, tile64, scalar64)
	copy(dst2, dst)
}
