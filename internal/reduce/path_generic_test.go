//go:build !amd64

package reduce

import "testing"

// forEachPath runs f once per kernel set the build can choose at run
// time: here only the portable kernels.
func forEachPath(t *testing.T, f func(t *testing.T)) {
	t.Run("portable", f)
}

func kernelSets() []kernelSet {
	return []kernelSet{{"portable", scalar32, scalar64}}
}
