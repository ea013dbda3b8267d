package main

import (
	"math"
	"testing"
)

// TestSameLosses: 1 and 4 workers give the same losses, to 1e-6 relative
// (the order of float64 additions differs), and the model learns.
func TestSameLosses(t *testing.T) {
	s := settings{features: 8, hidden: 16, examples: 512, batch: 64, epochs: 3, lr: 0.05, seed: 3}
	one, err := train(s, 1)
	if err != nil {
		t.Fatal(err)
	}
	four, err := train(s, 4)
	if err != nil {
		t.Fatal(err)
	}
	for e := range one {
		if d := math.Abs(one[e]-four[e]) / one[e]; d > 1e-6 {
			t.Errorf("epoch %d: losses %v and %v differ by %.1e relative", e+1, one[e], four[e], d)
		}
	}
	if !(one[len(one)-1] < one[0]) {
		t.Errorf("the model did not learn: %v", one)
	}
}
