package reduce

import (
	"math"
	"testing"
)

// TestInts checks every operator on every integer type against a scalar
// loop, with values that overflow (sums and products wrap).
func TestInts(t *testing.T) {
	checkInts(t, []int32{1, -5, math.MaxInt32, 7}, []int32{2, 3, 1, -7})
	checkInts(t, []int64{1, -5, math.MaxInt64, 1 << 40}, []int64{2, 3, 1, 1 << 30})
	checkInts(t, []uint8{1, 200, 255, 16}, []uint8{2, 100, 1, 16})
	var w int32 = math.MaxInt32
	dst := []int32{w}
	Ints(Sum, dst, []int32{1})
	if dst[0] != math.MinInt32 {
		t.Errorf("int32 sum does not wrap: %d", dst[0])
	}
}

func checkInts[T Integer](t *testing.T, a, b []T) {
	t.Helper()
	for op := Sum; op <= Max; op++ {
		got := append([]T(nil), a...)
		Ints(op, got, b)
		for i := range a {
			var want T
			switch op {
			case Sum:
				want = a[i] + b[i]
			case Prod:
				want = a[i] * b[i]
			case Min:
				want = min(a[i], b[i])
			case Max:
				want = max(a[i], b[i])
			}
			if got[i] != want {
				t.Errorf("%T %v: element %d: %v, want %v", a, op, i, got[i], want)
			}
		}
		n := make([]T, len(a))
		ReduceInts(op, n, [][]T{a, b, a})
		c := append([]T(nil), a...)
		Ints(op, c, b)
		Ints(op, c, a)
		for i := range n {
			if n[i] != c[i] {
				t.Errorf("%T %v: ReduceInts element %d: %v, want %v", a, op, i, n[i], c[i])
			}
		}
	}
}
