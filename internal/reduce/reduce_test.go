package reduce

import (
	"math"
	"math/rand/v2"
	"sync"
	"testing"
)

var testLengths = []int{0, 1, 2, 3, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 511, 512, 513, 1000, 1025, 4097}

var allOps = []Operator{Sum, Prod, Min, Max}

func TestOpStringValid(t *testing.T) {
	want := map[Operator]string{Sum: "sum", Prod: "prod", Min: "min", Max: "max"}
	for op := range Operator(255) {
		s, ok := want[op]
		if op.Valid() != ok {
			t.Errorf("Operator(%d).Valid() = %v, want %v", op, op.Valid(), ok)
		}
		if ok && op.String() != s {
			t.Errorf("Operator(%d).String() = %q, want %q", op, op.String(), s)
		}
	}
	if got := Operator(0).String(); got != "Operator(0)" {
		t.Errorf("Operator(0).String() = %q", got)
	}
	if got := Operator(200).String(); got != "Operator(200)" {
		t.Errorf("Operator(200).String() = %q", got)
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

// ref is a ⊕ b by the reference semantics (Min and Max computed in
// float64, which represents every float32 exactly).
func ref[F float](op Operator, a, b F) F {
	switch op {
	case Sum:
		return a + b
	case Prod:
		return a * b
	case Min:
		return F(refMin(float64(a), float64(b)))
	case Max:
		return F(refMax(float64(a), float64(b)))
	}
	panic("bad op")
}

// bits returns the bits of x (a float32's in the low 32).
func bits[F float](x F) uint64 {
	if f, ok := any(x).(float32); ok {
		return uint64(math.Float32bits(f))
	}
	return math.Float64bits(float64(x))
}

// same reports whether a and b are bit-identical or both NaN.
func same[F float](a, b F) bool {
	return bits(a) == bits(b) || (a != a && b != b)
}

// typed is what the tests written once for both element types need to
// know about one of them: the package's functions for it, its portable
// kernel and its test data.
type typed[F float] struct {
	w        string                                       // "32", "64": the suffix of the names
	binary   func(op Operator, dst, src []F)              // Float32, Float64
	reduce   func(op Operator, dst []F, srcs [][]F)       // Reduce32, Reduce64
	to2      func(op Operator, dst, dst2 []F, srcs [][]F) // Reduce32To2, Reduce64To2
	div      func(dst []F, n F)                           // Div32, Div64
	scalar   func(op Operator, dst, src []F)              // scalar32, scalar64
	fill     func(r *rand.Rand, x []F)                    // fill32, fill64
	specials []F                                          // specials32, specials64
	sentinel F                                            // a NaN that shows any write
}

var (
	f32 = typed[float32]{"32", Float32, Reduce32, Reduce32To2, Div32, scalar32, fill32, specials32, math.Float32frombits(0x7fc0beef)}
	f64 = typed[float64]{"64", Float64, Reduce64, Reduce64To2, Div64, scalar64, fill64, specials64, math.Float64frombits(0x7ff8deadbeefbeef)}
)

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

func TestFloat32(t *testing.T) { testBinary(t, f32, rand.New(rand.NewPCG(1, 2))) }

func TestFloat64(t *testing.T) { testBinary(t, f64, rand.New(rand.NewPCG(3, 4))) }

// testBinary checks Float32 or Float64 against the reference semantics,
// and that the result does not depend on the operand order.
func testBinary[F float](t *testing.T, ty typed[F], r *rand.Rand) {
	for _, op := range allOps {
		for _, n := range testLengths {
			for trial := range 3 {
				a, b := make([]F, n), make([]F, n)
				ty.fill(r, a)
				ty.fill(r, b)
				ab, ba := append([]F(nil), a...), append([]F(nil), b...)
				ty.binary(op, ab, b)
				ty.binary(op, ba, a)
				for i := range n {
					want := ref(op, a[i], b[i])
					if !same(ab[i], want) {
						t.Fatalf("%v n=%d trial=%d i=%d: %v ⊕ %v = %v (%#x), want %v (%#x)",
							op, n, trial, i, a[i], b[i], ab[i], bits(ab[i]), want, bits(want))
					}
					if !same(ab[i], ba[i]) {
						t.Fatalf("%v n=%d i=%d not commutative: %v ⊕ %v = %#x, reversed %#x",
							op, n, i, a[i], b[i], bits(ab[i]), bits(ba[i]))
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
		op         Operator
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
		checkCase(t, f64, c.op, c.a, c.b, c.want)
		checkCase(t, f32, c.op, float32(c.a), float32(c.b), float32(c.want))
	}
}

func checkCase[F float](t *testing.T, ty typed[F], op Operator, a, b, want F) {
	t.Helper()
	d := []F{a}
	ty.binary(op, d, []F{b})
	if !same(d[0], want) {
		t.Errorf("Float%s(%v, %v, %v) = %v (sign %v), want %v (sign %v)",
			ty.w, op, a, b, d[0], math.Signbit(float64(d[0])), want, math.Signbit(float64(want)))
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
			checkDiv(t, "Div64", a64, got64, dv)
			checkDiv(t, "Div32", a32, got32, float32(dv))
		}
	}
}

// checkDiv checks that got is a / dv element by element.
func checkDiv[F float](t *testing.T, name string, a, got []F, dv F) {
	t.Helper()
	for i := range a {
		if want := a[i] / dv; !same(got[i], want) {
			t.Fatalf("%s n=%d i=%d: %v / %v = %v, want %v", name, len(a), i, a[i], dv, got[i], want)
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
	k32 := map[string]altKernel[float32]{
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
	k64 := map[string]altKernel[float64]{
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
		checkAlts(t, k32, a32, b32)
		checkAlts(t, k64, a64, b64)
		for name, f := range d64 {
			for _, dv := range []float64{3, 0x1p-1074, math.Inf(-1)} {
				got := append([]float64(nil), a64...)
				f(got, dv)
				checkDiv(t, name, a64, got, dv)
			}
		}
		for name, f := range d32 {
			got := append([]float32(nil), a32...)
			f(got, 3)
			checkDiv(t, name, a32, got, 3)
		}
	}
}

// altKernel is a binary kernel of one op.
type altKernel[F float] struct {
	op Operator
	f  func(dst, src []F)
}

// checkAlts runs each kernel on a copy of a and b and checks the result
// against the reference.
func checkAlts[F float](t *testing.T, kernels map[string]altKernel[F], a, b []F) {
	t.Helper()
	for name, k := range kernels {
		got := append([]F(nil), a...)
		k.f(got, b)
		for i := range a {
			if want := ref(k.op, a[i], b[i]); !same(got[i], want) {
				t.Fatalf("%s n=%d i=%d: %v, %v -> %#x, want %#x", name, len(a), i, a[i], b[i], bits(got[i]), bits(want))
			}
		}
	}
}

// TestGuardBands runs every op on sub-slices at several offsets (so the
// assembly paths see every alignment) of larger slices filled with a
// sentinel, and checks that nothing outside the sub-slice changed.
func TestGuardBands(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, n := range testLengths {
		for off := 1; off <= 4; off++ { // 1..4 elements: misaligned and aligned starts
			guardBands(t, f32, r, n, off)
			guardBands(t, f64, r, n, off)
		}
	}
}

func guardBands[F float](t *testing.T, ty typed[F], r *rand.Rand, n, off int) {
	t.Helper()
	const guard = 19
	d, s := make([]F, n+2*guard), make([]F, n+2*guard)
	for _, op := range allOps {
		for i := range d {
			d[i], s[i] = ty.sentinel, ty.sentinel
		}
		ty.fill(r, d[off:off+n])
		ty.fill(r, s[off:off+n])
		ty.binary(op, d[off:off+n], s[off:off+n])
		checkGuard(t, "Float"+ty.w+" "+op.String()+" dst", d, ty.sentinel, off, n)
		checkGuard(t, "Float"+ty.w+" "+op.String()+" src", s, ty.sentinel, off, n)
	}
	ty.div(d[off:off+n], 3)
	checkGuard(t, "Div"+ty.w, d, ty.sentinel, off, n)
}

// checkGuard checks that buf holds sentinel outside buf[off:off+n].
func checkGuard[F float](t *testing.T, name string, buf []F, sentinel F, off, n int) {
	t.Helper()
	for i, v := range buf {
		if (i < off || i >= off+n) && bits(v) != bits(sentinel) {
			t.Fatalf("%s off=%d n=%d: wrote outside at %d", name, off, n, i-off)
		}
	}
}

// TestAliased checks dst and src being the same slice.
func TestAliased(t *testing.T) {
	for _, n := range []int{5, 100, 1000} {
		aliased(t, f32, n)
		aliased(t, f64, n)
	}
}

func aliased[F float](t *testing.T, ty typed[F], n int) {
	t.Helper()
	x := make([]F, n)
	for i := range n {
		x[i] = F(i) - 50.5
	}
	for _, op := range allOps {
		g := append([]F(nil), x...)
		ty.binary(op, g, g)
		for i := range n {
			if w := ref(op, x[i], x[i]); !same(g[i], w) {
				t.Fatalf("Float%s %v aliased n=%d i=%d: %v, want %v", ty.w, op, n, i, g[i], w)
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
	panics(t, f32)
	panics(t, f64)
}

func panics[F float](t *testing.T, ty typed[F]) {
	t.Helper()
	const lenMsg = "reduce: slice lengths do not match"
	name := "Float" + ty.w
	for _, op := range allOps {
		for _, l := range [][2]int{{0, 1}, {1, 0}, {3, 4}, {100, 99}} {
			wantPanic(t, name+" "+op.String(), lenMsg, func() { ty.binary(op, make([]F, l[0]), make([]F, l[1])) })
		}
	}
	for _, op := range []Operator{0, 5, 255} {
		msg := "reduce: invalid Operator " + op.String()
		wantPanic(t, name+" invalid", msg, func() { ty.binary(op, make([]F, 2), make([]F, 2)) })
		wantPanic(t, name+" invalid, empty", msg, func() { ty.binary(op, nil, nil) })
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
