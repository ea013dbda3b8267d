package reduce

import (
	"math"
	"math/rand/v2"
	"sync"
	"testing"
)

var testLengths = []int{0, 1, 2, 3, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 511, 512, 513, 1000, 1025, 4097}

var allOps = []Op{Sum, Prod, Min, Max}

func TestOpStringValid(t *testing.T) {
	want := map[Op]string{Sum: "sum", Prod: "prod", Min: "min", Max: "max"}
	for op := range Op(255) {
		s, ok := want[op]
		if op.Valid() != ok {
			t.Errorf("Op(%d).Valid() = %v, want %v", op, op.Valid(), ok)
		}
		if ok && op.String() != s {
			t.Errorf("Op(%d).String() = %q, want %q", op, op.String(), s)
		}
	}
	if got := Op(0).String(); got != "Op(0)" {
		t.Errorf("Op(0).String() = %q", got)
	}
	if got := Op(200).String(); got != "Op(200)" {
		t.Errorf("Op(200).String() = %q", got)
	}
}

// Reference semantics, written without the builtins so that they check
// them.

func refMax(a, b float64) float64 {
	switch {
	case a != a || b != b:
		return math.NaN()
	case a == 0 && b == 0:
		if math.Signbit(a) && math.Signbit(b) {
			return math.Copysign(0, -1)
		}
		return 0
	case a > b:
		return a
	}
	return b
}

func refMin(a, b float64) float64 {
	switch {
	case a != a || b != b:
		return math.NaN()
	case a == 0 && b == 0:
		if math.Signbit(a) || math.Signbit(b) {
			return math.Copysign(0, -1)
		}
		return 0
	case a < b:
		return a
	}
	return b
}

func ref32(op Op, a, b float32) float32 {
	switch op {
	case Sum:
		return a + b
	case Prod:
		return a * b
	case Min:
		return float32(refMin(float64(a), float64(b)))
	case Max:
		return float32(refMax(float64(a), float64(b)))
	}
	panic("bad op")
}

func ref64(op Op, a, b float64) float64 {
	switch op {
	case Sum:
		return a + b
	case Prod:
		return a * b
	case Min:
		return refMin(a, b)
	case Max:
		return refMax(a, b)
	}
	panic("bad op")
}

// same32 reports whether a and b are bit-identical or both NaN.
func same32(a, b float32) bool {
	return math.Float32bits(a) == math.Float32bits(b) || (a != a && b != b)
}

func same64(a, b float64) bool {
	return math.Float64bits(a) == math.Float64bits(b) || (a != a && b != b)
}

var specials64 = []float64{
	math.NaN(), -math.NaN(), math.Float64frombits(0x7ff0000000000001), // signalling NaN
	math.Inf(1), math.Inf(-1), 0, math.Copysign(0, -1),
	math.SmallestNonzeroFloat64, -math.SmallestNonzeroFloat64, 0x1p-1030, -0x1p-1050, // subnormal
	0x1p-1022, math.MaxFloat64, -math.MaxFloat64, 1, -1, 0x1p600, 0x1p-600,
}

var specials32 = []float32{
	float32(math.NaN()), float32(-math.NaN()), math.Float32frombits(0x7f800001), // signalling NaN
	float32(math.Inf(1)), float32(math.Inf(-1)), 0, float32(math.Copysign(0, -1)),
	math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32, 0x1p-130, -0x1p-140, // subnormal
	0x1p-126, math.MaxFloat32, -math.MaxFloat32, 1, -1, 0x1p70, 0x1p-70,
}

// fill64 fills x with a mix of specials (1 in 4), subnormals, ±0 and random
// values over a wide range of magnitudes (so that products overflow and
// underflow, sums cancel and round).
func fill64(r *rand.Rand, x []float64) {
	for i := range x {
		switch r.IntN(8) {
		case 0, 1:
			x[i] = specials64[r.IntN(len(specials64))]
		case 2:
			x[i] = math.Float64frombits(r.Uint64() & 0x800fffffffffffff) // subnormal or ±0
		case 3:
			x[i] = float64(r.IntN(5) - 2) // small integers: ties for min/max
		default:
			x[i] = (2*r.Float64() - 1) * math.Ldexp(1, r.IntN(2100)-1050)
		}
	}
}

func fill32(r *rand.Rand, x []float32) {
	for i := range x {
		switch r.IntN(8) {
		case 0, 1:
			x[i] = specials32[r.IntN(len(specials32))]
		case 2:
			x[i] = math.Float32frombits(r.Uint32() & 0x807fffff)
		case 3:
			x[i] = float32(r.IntN(5) - 2)
		default:
			x[i] = float32((2*r.Float64() - 1) * math.Ldexp(1, r.IntN(270)-140))
		}
	}
}

func TestFloat32(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, op := range allOps {
		for _, n := range testLengths {
			for trial := range 3 {
				a, b := make([]float32, n), make([]float32, n)
				fill32(r, a)
				fill32(r, b)
				ab, ba := append([]float32(nil), a...), append([]float32(nil), b...)
				Float32(op, ab, b)
				Float32(op, ba, a)
				for i := range n {
					want := ref32(op, a[i], b[i])
					if !same32(ab[i], want) {
						t.Fatalf("%v n=%d trial=%d i=%d: %v ⊕ %v = %v (%#x), want %v (%#x)",
							op, n, trial, i, a[i], b[i], ab[i], math.Float32bits(ab[i]), want, math.Float32bits(want))
					}
					if !same32(ab[i], ba[i]) {
						t.Fatalf("%v n=%d i=%d not commutative: %v ⊕ %v = %#x, reversed %#x",
							op, n, i, a[i], b[i], math.Float32bits(ab[i]), math.Float32bits(ba[i]))
					}
				}
			}
		}
	}
}

func TestFloat64(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, op := range allOps {
		for _, n := range testLengths {
			for trial := range 3 {
				a, b := make([]float64, n), make([]float64, n)
				fill64(r, a)
				fill64(r, b)
				ab, ba := append([]float64(nil), a...), append([]float64(nil), b...)
				Float64(op, ab, b)
				Float64(op, ba, a)
				for i := range n {
					want := ref64(op, a[i], b[i])
					if !same64(ab[i], want) {
						t.Fatalf("%v n=%d trial=%d i=%d: %v ⊕ %v = %v (%#x), want %v (%#x)",
							op, n, trial, i, a[i], b[i], ab[i], math.Float64bits(ab[i]), want, math.Float64bits(want))
					}
					if !same64(ab[i], ba[i]) {
						t.Fatalf("%v n=%d i=%d not commutative: %v ⊕ %v = %#x, reversed %#x",
							op, n, i, a[i], b[i], math.Float64bits(ab[i]), math.Float64bits(ba[i]))
					}
				}
			}
		}
	}
}

// TestSignedZeroAndNaN spells out the documented Min/Max semantics.
func TestSignedZeroAndNaN(t *testing.T) {
	negZero, nan, inf := math.Copysign(0, -1), math.NaN(), math.Inf(1)
	cases := []struct {
		op         Op
		a, b, want float64
	}{
		{Max, negZero, 0, 0}, {Max, 0, negZero, 0}, {Max, negZero, negZero, negZero},
		{Min, negZero, 0, negZero}, {Min, 0, negZero, negZero}, {Min, 0, 0, 0},
		{Max, nan, 1, nan}, {Max, 1, nan, nan}, {Min, nan, -inf, nan}, {Min, -inf, nan, nan},
		{Max, nan, inf, nan}, {Min, inf, nan, nan},
		{Sum, negZero, 0, 0}, {Sum, 0, negZero, 0}, {Sum, negZero, negZero, negZero},
		{Sum, inf, -inf, nan}, {Prod, 0, inf, nan}, {Prod, negZero, 3, negZero},
	}
	for _, c := range cases {
		d64 := []float64{c.a}
		Float64(c.op, d64, []float64{c.b})
		if !same64(d64[0], c.want) {
			t.Errorf("Float64(%v, %v, %v) = %v (sign %v), want %v (sign %v)",
				c.op, c.a, c.b, d64[0], math.Signbit(d64[0]), c.want, math.Signbit(c.want))
		}
		d32 := []float32{float32(c.a)}
		Float32(c.op, d32, []float32{float32(c.b)})
		if !same32(d32[0], float32(c.want)) {
			t.Errorf("Float32(%v, %v, %v) = %v (sign %v), want %v",
				c.op, c.a, c.b, d32[0], math.Signbit(float64(d32[0])), c.want)
		}
	}
}

func TestDiv(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	divisors := []float64{1, 2, 3, 7, 8, 0.1, -3, 0, math.Copysign(0, -1), math.Inf(1), math.NaN(), 0x1p-1074, 1e300}
	for _, n := range testLengths {
		for _, dv := range divisors {
			a64 := make([]float64, n)
			fill64(r, a64)
			got64 := append([]float64(nil), a64...)
			Div64(got64, dv)
			a32 := make([]float32, n)
			fill32(r, a32)
			got32 := append([]float32(nil), a32...)
			Div32(got32, float32(dv))
			for i := range n {
				if want := a64[i] / dv; !same64(got64[i], want) {
					t.Fatalf("Div64 n=%d i=%d: %v / %v = %v, want %v", n, i, a64[i], dv, got64[i], want)
				}
				if want := a32[i] / float32(dv); !same32(got32[i], want) {
					t.Fatalf("Div32 n=%d i=%d: %v / %v = %v, want %v", n, i, a32[i], float32(dv), got32[i], want)
				}
			}
		}
	}
}

// TestDiv64Concurrent exercises the divisor cache from many goroutines with
// more distinct divisors than cache slots (run it with -race).
func TestDiv64Concurrent(t *testing.T) {
	const n = 1500
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dv := float64(g + 2)
			for range 50 {
				x := make([]float64, n)
				for i := range x {
					x[i] = float64(i) + 0.25
				}
				Div64(x, dv)
				for i := range x {
					if x[i] != (float64(i)+0.25)/dv {
						errs <- "wrong quotient"
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}

// TestAlternatives checks every kernel, including the benchmarked losers,
// against dst[i] op= src[i] on the same special-value data, at every length
// and with the assembly paths forced for short slices. In particular it
// checks that gonum's axpy with alpha = 1 (x*1 + y) is bit-identical to
// y + x, subnormals and infinities included.
func TestAlternatives(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	k32 := map[string]struct {
		op Op
		f  func(dst, src []float32)
	}{
		"sumLoop":     {Sum, sumLoop[float32]},
		"sumUnroll4":  {Sum, sumUnroll4[float32]},
		"sumBlas32":   {Sum, sumBlas32},
		"sumSaxpy32":  {Sum, sumSaxpy32},
		"sum32":       {Sum, sum32},
		"prodLoop":    {Prod, prodLoop[float32]},
		"prodUnroll4": {Prod, prodUnroll4[float32]},
		"prodUnroll8": {Prod, prodUnroll8[float32]},
		"maxLoop":     {Max, maxLoop[float32]},
		"maxUnroll4":  {Max, maxUnroll4[float32]},
		"maxBranch32": {Max, maxBranch32},
		"minLoop":     {Min, minLoop[float32]},
		"minUnroll4":  {Min, minUnroll4[float32]},
		"minBranch32": {Min, minBranch32},
	}
	k64 := map[string]struct {
		op Op
		f  func(dst, src []float64)
	}{
		"sumLoop":        {Sum, sumLoop[float64]},
		"sumUnroll4":     {Sum, sumUnroll4[float64]},
		"sumFloatsAdd64": {Sum, sumFloatsAdd64},
		"sumDaxpy64":     {Sum, sumDaxpy64},
		"sum64":          {Sum, sum64},
		"prodLoop":       {Prod, prodLoop[float64]},
		"prodUnroll4":    {Prod, prodUnroll4[float64]},
		"prodUnroll8":    {Prod, prodUnroll8[float64]},
		"maxLoop":        {Max, maxLoop[float64]},
		"maxUnroll4":     {Max, maxUnroll4[float64]},
		"maxBranch64":    {Max, maxBranch64},
		"minLoop":        {Min, minLoop[float64]},
		"minUnroll4":     {Min, minUnroll4[float64]},
		"minBranch64":    {Min, minBranch64},
	}
	d64 := map[string]func([]float64, float64){
		"divLoop": divLoop[float64], "divUnroll4": divUnroll4[float64],
		"divFloatsDiv64": divFloatsDiv64, "div64": div64,
	}
	d32 := map[string]func([]float32, float32){"divLoop": divLoop[float32], "divUnroll4": divUnroll4[float32]}
	for _, n := range testLengths {
		a32, b32 := make([]float32, n), make([]float32, n)
		a64, b64 := make([]float64, n), make([]float64, n)
		fill32(r, a32)
		fill32(r, b32)
		fill64(r, a64)
		fill64(r, b64)
		for name, k := range k32 {
			got := append([]float32(nil), a32...)
			k.f(got, b32)
			for i := range n {
				if want := ref32(k.op, a32[i], b32[i]); !same32(got[i], want) {
					t.Fatalf("%s n=%d i=%d: %v, %v -> %#x, want %#x", name, n, i, a32[i], b32[i],
						math.Float32bits(got[i]), math.Float32bits(want))
				}
			}
		}
		for name, k := range k64 {
			got := append([]float64(nil), a64...)
			k.f(got, b64)
			for i := range n {
				if want := ref64(k.op, a64[i], b64[i]); !same64(got[i], want) {
					t.Fatalf("%s n=%d i=%d: %v, %v -> %#x, want %#x", name, n, i, a64[i], b64[i],
						math.Float64bits(got[i]), math.Float64bits(want))
				}
			}
		}
		for name, f := range d64 {
			for _, dv := range []float64{3, 0x1p-1074, math.Inf(-1)} {
				got := append([]float64(nil), a64...)
				f(got, dv)
				for i := range n {
					if !same64(got[i], a64[i]/dv) {
						t.Fatalf("%s n=%d i=%d: %v / %v = %v", name, n, i, a64[i], dv, got[i])
					}
				}
			}
		}
		for name, f := range d32 {
			got := append([]float32(nil), a32...)
			f(got, 3)
			for i := range n {
				if !same32(got[i], a32[i]/3) {
					t.Fatalf("%s n=%d i=%d: %v / 3 = %v", name, n, i, a32[i], got[i])
				}
			}
		}
	}
}

// TestGuardBands runs every op on sub-slices at several offsets (so the
// assembly paths see every alignment) of larger slices filled with a
// sentinel, and checks that nothing outside the sub-slice changed.
func TestGuardBands(t *testing.T) {
	const guard = 19
	sentinel32 := math.Float32frombits(0x7fc0beef) // a NaN: any write shows
	sentinel64 := math.Float64frombits(0x7ff8deadbeefbeef)
	r := rand.New(rand.NewPCG(9, 10))
	check32 := func(name string, buf []float32, off, n int) {
		for i, v := range buf {
			if (i < off || i >= off+n) && math.Float32bits(v) != math.Float32bits(sentinel32) {
				t.Fatalf("%s off=%d n=%d: wrote outside at %d", name, off, n, i-off)
			}
		}
	}
	check64 := func(name string, buf []float64, off, n int) {
		for i, v := range buf {
			if (i < off || i >= off+n) && math.Float64bits(v) != math.Float64bits(sentinel64) {
				t.Fatalf("%s off=%d n=%d: wrote outside at %d", name, off, n, i-off)
			}
		}
	}
	for _, n := range testLengths {
		for off := 1; off <= 4; off++ { // 1..4 elements: misaligned and aligned starts
			d32, s32 := make([]float32, n+2*guard), make([]float32, n+2*guard)
			d64, s64 := make([]float64, n+2*guard), make([]float64, n+2*guard)
			for _, op := range allOps {
				for i := range d32 {
					d32[i], s32[i], d64[i], s64[i] = sentinel32, sentinel32, sentinel64, sentinel64
				}
				fill32(r, d32[off:off+n])
				fill32(r, s32[off:off+n])
				fill64(r, d64[off:off+n])
				fill64(r, s64[off:off+n])
				Float32(op, d32[off:off+n], s32[off:off+n])
				Float64(op, d64[off:off+n], s64[off:off+n])
				check32("Float32 "+op.String()+" dst", d32, off, n)
				check32("Float32 "+op.String()+" src", s32, off, n)
				check64("Float64 "+op.String()+" dst", d64, off, n)
				check64("Float64 "+op.String()+" src", s64, off, n)
			}
			Div32(d32[off:off+n], 3)
			Div64(d64[off:off+n], 3)
			check32("Div32", d32, off, n)
			check64("Div64", d64, off, n)
		}
	}
}

// TestAliased checks dst and src being the same slice.
func TestAliased(t *testing.T) {
	for _, n := range []int{5, 100, 1000} {
		x32 := make([]float32, n)
		x64 := make([]float64, n)
		for i := range n {
			x32[i], x64[i] = float32(i)-50.5, float64(i)-50.5
		}
		for _, op := range allOps {
			g32 := append([]float32(nil), x32...)
			g64 := append([]float64(nil), x64...)
			Float32(op, g32, g32)
			Float64(op, g64, g64)
			for i := range n {
				if w := ref32(op, x32[i], x32[i]); !same32(g32[i], w) {
					t.Fatalf("Float32 %v aliased n=%d i=%d: %v, want %v", op, n, i, g32[i], w)
				}
				if w := ref64(op, x64[i], x64[i]); !same64(g64[i], w) {
					t.Fatalf("Float64 %v aliased n=%d i=%d: %v, want %v", op, n, i, g64[i], w)
				}
			}
		}
	}
}

func wantPanic(t *testing.T, name, msg string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		if r == nil {
			t.Errorf("%s: no panic", name)
			return
		}
		if s, ok := r.(string); !ok || s != msg {
			t.Errorf("%s: panic %v, want %q", name, r, msg)
		}
	}()
	f()
}

func TestPanics(t *testing.T) {
	const lenMsg = "reduce: slice lengths do not match"
	for _, op := range allOps {
		for _, l := range [][2]int{{0, 1}, {1, 0}, {3, 4}, {100, 99}} {
			wantPanic(t, "Float32 "+op.String(), lenMsg, func() {
				Float32(op, make([]float32, l[0]), make([]float32, l[1]))
			})
			wantPanic(t, "Float64 "+op.String(), lenMsg, func() {
				Float64(op, make([]float64, l[0]), make([]float64, l[1]))
			})
		}
	}
	for _, op := range []Op{0, 5, 255} {
		msg := "reduce: invalid Op " + op.String()
		wantPanic(t, "Float32 invalid", msg, func() { Float32(op, make([]float32, 2), make([]float32, 2)) })
		wantPanic(t, "Float64 invalid", msg, func() { Float64(op, make([]float64, 2), make([]float64, 2)) })
		wantPanic(t, "Float32 invalid, empty", msg, func() { Float32(op, nil, nil) })
		wantPanic(t, "Float64 invalid, empty", msg, func() { Float64(op, nil, nil) })
	}
}

func TestEmpty(t *testing.T) {
	for _, op := range allOps {
		Float32(op, nil, nil)
		Float64(op, nil, nil)
		Float32(op, []float32{}, []float32{})
		Float64(op, []float64{}, []float64{})
	}
	Div32(nil, 3)
	Div64(nil, 3)
}

func TestZeroAllocs(t *testing.T) {
	for _, n := range []int{1, 16, 1000, 4097} {
		d32, s32 := make([]float32, n), make([]float32, n)
		d64, s64 := make([]float64, n), make([]float64, n)
		for _, op := range allOps {
			if a := testing.AllocsPerRun(20, func() { Float32(op, d32, s32) }); a != 0 {
				t.Errorf("Float32 %v n=%d: %v allocs", op, n, a)
			}
			if a := testing.AllocsPerRun(20, func() { Float64(op, d64, s64) }); a != 0 {
				t.Errorf("Float64 %v n=%d: %v allocs", op, n, a)
			}
		}
		if a := testing.AllocsPerRun(20, func() { Div32(d32, 4) }); a != 0 {
			t.Errorf("Div32 n=%d: %v allocs", n, a)
		}
		// The first call with a new divisor may fill a cache slot
		// (AllocsPerRun does one warm-up run); later calls must not allocate.
		if a := testing.AllocsPerRun(20, func() { Div64(d64, 4) }); a != 0 {
			t.Errorf("Div64 n=%d: %v allocs", n, a)
		}
	}
}

// TestDiv64Cache checks that alternating between up to 4 divisors does not
// allocate once each has been seen, and that the results stay right when
// more divisors than slots evict each other.
func TestDiv64Cache(t *testing.T) {
	for i := range splats {
		splats[i].Store(nil)
	}
	x := make([]float64, 1000)
	divisors := []float64{2, 4, 8, 16}
	for _, dv := range divisors {
		Div64(x, dv)
	}
	k := 0
	if a := testing.AllocsPerRun(40, func() {
		Div64(x, divisors[k%len(divisors)])
		k++
	}); a != 0 {
		t.Errorf("Div64 cycling over %d divisors: %v allocs per call", len(divisors), a)
	}
	for round := range 3 {
		for dv := 1.0; dv <= 9; dv++ {
			for i := range x {
				x[i] = float64(i*7 + round)
			}
			Div64(x, dv)
			for i := range x {
				if want := float64(i*7+round) / dv; x[i] != want {
					t.Fatalf("round %d: %v / %v = %v, want %v", round, float64(i*7+round), dv, x[i], want)
				}
			}
		}
	}
}
