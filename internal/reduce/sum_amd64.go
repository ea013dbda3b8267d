//go:build amd64

package reduce

// sumN32AVX2 sets dst[i] = ((srcs[0][i] + srcs[1][i]) + ...) for i < n:
// n a multiple of 32, every input at least n long, AVX2 required
// (sum_amd64.s).
//
//go:noescape
func sumN32AVX2(dst []float32, srcs [][]float32, n int)

// sumN64AVX2 is the float64 twin: n a multiple of 16.
//
//go:noescape
func sumN64AVX2(dst []float64, srcs [][]float64, n int)
