package cost

import (
	"math"
	"testing"
	"time"

	"github.com/ringo-ml/ringo/internal/engine"
	"github.com/ringo-ml/ringo/internal/wire"
)

// TestExtrapolation: beyond the largest calibrated size a tree's line may
// not grow more slowly than the ring's times the formulas' ratio, however
// its two timed points lie — the case seen on a 16-core machine, where
// recursive doubling timed a little under the ring at 1 MiB and Auto
// carried it to 64 MiB, 1.1–1.3x slower than the ring there.
func TestExtrapolation(t *testing.T) {
	const world = 4
	ring := Line{Fixed: 200 * time.Microsecond, PerByte: 8e-9}
	k := Model{Alpha: 50 * time.Microsecond, Beta: 5e-9, Gamma: 5e-11,
		AllReduce:      [3]Line{ring, ring, ring},
		AllReduceLarge: [3]Line{ring, {Fixed: 100 * time.Microsecond, PerByte: 7.5e-9}, {Fixed: 300 * time.Microsecond, PerByte: 11e-9}}}
	first := func(bytes float64) Estimate {
		es := k.Estimates(wire.OpAllReduce, world, bytes, 512<<10)
		return es.List()[0]
	}
	if c := first(Top); c.Sched != engine.RecursiveDoubling {
		t.Errorf("at the largest timed size the measured line stands: got %s", c.Sched)
	}
	for _, bytes := range []float64{4 << 20, 64 << 20} {
		if c := first(bytes); c.Sched != engine.Ring {
			t.Errorf("%v bytes: %s extrapolated below the ring", bytes, c.Sched)
		}
	}
	// The bound is a floor: a tree measured steeper than it keeps its slope.
	per := AllReducePerByte(world, k.Beta, k.Gamma)
	es := k.Estimates(wire.OpAllReduce, world, 64<<20, 512<<10)
	for _, c := range es.List() {
		var want float64
		switch c.Sched {
		case engine.Ring:
			want = ring.At(64 << 20)
		case engine.RecursiveDoubling:
			want = k.AllReduceLarge[1].At(Top) + (64<<20-Top)*ring.PerByte*per[1]/per[0]
		case engine.DoubleBinaryTree:
			want = k.AllReduceLarge[2].At(64 << 20)
		}
		if math.Abs(c.T-want) > 1e-12 {
			t.Errorf("%s at 64 MiB: %v, want %v", c.Sched, c.T, want)
		}
	}
	// The formulas' ratios: recursive doubling moves log2(n) tensors, the
	// ring 2(n-1)/n; a world that is not a power of two folds in and out.
	for _, tc := range []struct {
		world int
		steps float64
	}{{2, 1}, {3, 3}, {4, 2}, {5, 4}, {8, 3}, {12, 5}, {16, 4}} {
		if s := RDSteps(tc.world); s != tc.steps {
			t.Errorf("world %d: %v recursive-doubling steps, want %v", tc.world, s, tc.steps)
		}
	}
}

// Fit's lines pass through the three timed points.
func TestFit(t *testing.T) {
	ts, tb, tl := 50e-6, 300e-6, 1100e-6
	low, high := Fit(ts, tb, tl)
	for _, p := range []struct {
		l     Line
		bytes float64
		want  float64
	}{{low, Small, ts}, {low, Bulk, tb}, {high, Bulk, tb}, {high, Top, tl}} {
		if got := p.l.At(p.bytes); math.Abs(got-p.want) > 2e-9 { // Fixed is whole nanoseconds
			t.Errorf("line %+v at %v bytes: %v, want %v", p.l, p.bytes, got, p.want)
		}
	}
}
