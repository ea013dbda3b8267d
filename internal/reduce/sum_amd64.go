//go:build amd64

package reduce

// sumN32AVX2 sets dst[i] = ((srcs[0][i] + srcs[1][i]) + ...) for i < n,
// and dst2[i] too unless dst2 is empty: n a multiple of 32, every input
// (and dst2) at least n long, AVX2 required (sum_amd64.s).
//
//go:noescape
func sumN32AVX2(dst, dst2 []float32, srcs [][]float32, n int)

// sumN64AVX2 is the float64 twin: n a multiple of 16.
//
//go:noescape
func sumN64AVX2(dst, dst2 []float64, srcs [][]float64, n int)
