//go:build amd64 && !goexperiment.simd

package reduce

import "testing"

// forEachPath runs f once per kernel set the build can choose at run
// time: the AVX2 n-ary sum (when the CPU has AVX2) and the portable
// kernels.
func forEachPath(t *testing.T, f func(t *testing.T)) {
	saved := hasAVX2
	defer func() { hasAVX2 = saved }()
	if saved {
		t.Run("avx2", f)
	} else {
		t.Log("CPU without AVX2: only the portable kernels are tested")
	}
	hasAVX2 = false
	t.Run("portable", f)
}

func kernelSets() []kernelSet {
	return []kernelSet{{"portable", scalar32, scalar64}}
}
