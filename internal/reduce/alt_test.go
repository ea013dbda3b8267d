package reduce

import (
	"math"

	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/gonum"
	"gonum.org/v1/gonum/floats"
)

// Alternatives that lost to the kernels in kernels.go. They are kept here,
// tested against the reference and benchmarked side by side with the chosen
// kernels (BenchmarkSumImpl32 etc.), so the choice can be re-measured.

func sumLoop[F float](dst, src []F) {
	src = src[:len(dst)]
	for i := range dst {
		dst[i] += src[i]
	}
}

// sumBlas32 goes through the blas32 package (an interface call to the same
// Saxpy): about 12 ns more fixed cost than calling gonum.Implementation.
func sumBlas32(dst, src []float32) {
	n := len(dst)
	if n == 0 {
		return
	}
	blas32.Axpy(1, blas32.Vector{N: n, Inc: 1, Data: src[:n]}, blas32.Vector{N: n, Inc: 1, Data: dst})
}

// sumSaxpy32 is Saxpy at every length (sum32 without the short-slice loop).
func sumSaxpy32(dst, src []float32) {
	gonum.Implementation{}.Saxpy(len(dst), 1, src[:len(dst)], 1, dst, 1)
}

// sumFloatsAdd64 is floats.Add at every length (sum64 without the
// short-slice loop).
func sumFloatsAdd64(dst, src []float64) {
	floats.Add(dst, src[:len(dst)])
}

// sumDaxpy64 is Daxpy with alpha = 1 (AxpyUnitary rather than floats.Add's
// AxpyUnitaryTo).
func sumDaxpy64(dst, src []float64) {
	gonum.Implementation{}.Daxpy(len(dst), 1, src[:len(dst)], 1, dst, 1)
}

func prodLoop[F float](dst, src []F) {
	src = src[:len(dst)]
	for i := range dst {
		dst[i] *= src[i]
	}
}

func prodUnroll8[F float](dst, src []F) {
	n := len(dst)
	src = src[:n]
	i := 0
	for ; i <= n-8; i += 8 {
		d := dst[i : i+8 : i+8]
		s := src[i : i+8 : i+8]
		d[0] *= s[0]
		d[1] *= s[1]
		d[2] *= s[2]
		d[3] *= s[3]
		d[4] *= s[4]
		d[5] *= s[5]
		d[6] *= s[6]
		d[7] *= s[7]
	}
	for ; i < n; i++ {
		dst[i] *= src[i]
	}
}

func maxLoop[F float](dst, src []F) {
	src = src[:len(dst)]
	for i := range dst {
		dst[i] = max(dst[i], src[i])
	}
}

func minLoop[F float](dst, src []F) {
	src = src[:len(dst)]
	for i := range dst {
		dst[i] = min(dst[i], src[i])
	}
}

// The branch kernels implement the same semantics as the builtins with
// compares: take src if it is larger (smaller) or NaN, and resolve a ±0 tie
// by and-ing (or-ing) the sign bits.

func maxBranch32(dst, src []float32) {
	src = src[:len(dst)]
	for i, s := range src {
		d := dst[i]
		if s > d || s != s {
			dst[i] = s
		} else if s == d && s == 0 {
			dst[i] = math.Float32frombits(math.Float32bits(d) & math.Float32bits(s))
		}
	}
}

func minBranch32(dst, src []float32) {
	src = src[:len(dst)]
	for i, s := range src {
		d := dst[i]
		if s < d || s != s {
			dst[i] = s
		} else if s == d && s == 0 {
			dst[i] = math.Float32frombits(math.Float32bits(d) | math.Float32bits(s))
		}
	}
}

func maxBranch64(dst, src []float64) {
	src = src[:len(dst)]
	for i, s := range src {
		d := dst[i]
		if s > d || s != s {
			dst[i] = s
		} else if s == d && s == 0 {
			dst[i] = math.Float64frombits(math.Float64bits(d) & math.Float64bits(s))
		}
	}
}

func minBranch64(dst, src []float64) {
	src = src[:len(dst)]
	for i, s := range src {
		d := dst[i]
		if s < d || s != s {
			dst[i] = s
		} else if s == d && s == 0 {
			dst[i] = math.Float64frombits(math.Float64bits(d) | math.Float64bits(s))
		}
	}
}

func divLoop[F float](dst []F, n F) {
	for i := range dst {
		dst[i] /= n
	}
}

// divFloatsDiv64 is div64 without the short-slice loop.
func divFloatsDiv64(dst []float64, n float64) {
	v := splat(n)
	for len(dst) > 0 {
		k := min(len(dst), len(v))
		floats.Div(dst[:k], v[:k])
		dst = dst[k:]
	}
}
