package reduce

// Operator is an elementwise reduction operator.
type Operator uint8

// The reduction operators. The zero Operator is invalid.
const (
	Sum  Operator = iota + 1 // dst + src
	Prod                     // dst * src
	Min                      // min(dst, src), NaN-propagating, -0 < +0
	Max                      // max(dst, src), NaN-propagating, -0 < +0
)

// Valid reports whether o is one of Sum, Prod, Min or Max.
func (o Operator) Valid() bool { return o >= Sum && o <= Max }

// String returns "sum", "prod", "min" or "max", or "Operator(N)" for an invalid Operator.
func (o Operator) String() string {
	switch o {
	case Sum:
		return "sum"
	case Prod:
		return "prod"
	case Min:
		return "min"
	case Max:
		return "max"
	}
	return "Operator(" + itoa(uint8(o)) + ")"
}

func itoa(v uint8) string {
	var buf [3]byte
	i := len(buf)
	for {
		i--
		buf[i] = '0' + v%10
		v /= 10
		if v == 0 {
			return string(buf[i:])
		}
	}
}

const errLength = "reduce: slice lengths do not match"

func invalidOp(op Operator) string { return "reduce: invalid Operator " + op.String() }

// Float32 sets dst[i] = dst[i] ⊕ src[i] for all i, where ⊕ is op.
// It panics if len(dst) != len(src) ("reduce: slice lengths do not match")
// or if op is not Valid. dst and src may be the same slice but must not
// otherwise overlap.
func Float32(op Operator, dst, src []float32) {
	if len(dst) != len(src) {
		panic(errLength)
	}
	binary32(op, dst, src)
}

// Float64 sets dst[i] = dst[i] ⊕ src[i] for all i, where ⊕ is op.
// It panics if len(dst) != len(src) ("reduce: slice lengths do not match")
// or if op is not Valid. dst and src may be the same slice but must not
// otherwise overlap.
func Float64(op Operator, dst, src []float64) {
	if len(dst) != len(src) {
		panic(errLength)
	}
	binary64(op, dst, src)
}

// Div32 sets dst[i] = dst[i] / n for all i. It divides (rather than
// multiplying by 1/n) so that Sum followed by Div32 with the world size is
// bit-identical to a serial sum divided by n.
func Div32(dst []float32, n float32) { divUnroll4(dst, n) }

// Div64 sets dst[i] = dst[i] / n for all i. See Div32.
func Div64(dst []float64, n float64) { div64(dst, n) }

const errNoInputs = "reduce: no inputs"

// Reduce32 sets dst[i] = ((srcs[0][i] ⊕ srcs[1][i]) ⊕ srcs[2][i]) ⊕ ...
// for all i, where ⊕ is op: exactly the bits that copy(dst, srcs[0])
// followed by Float32(op, dst, srcs[k]) for k = 1, 2, ... in turn would
// leave, but in one pass over memory that reads each input once and writes
// dst once. It panics if srcs is empty ("reduce: no inputs"), if any input's
// length differs from len(dst) ("reduce: slice lengths do not match") or if
// op is not Valid. dst may be the same slice as srcs[0] but must not
// otherwise overlap any input; the inputs may overlap each other.
func Reduce32(op Operator, dst []float32, srcs [][]float32) {
	checkN(op, len(dst), srcs)
	reduceN32(op, dst, nil, srcs)
}

// Reduce32To2 is Reduce32 that also leaves the result in dst2 (as long as
// dst, overlapping nothing): stored twice from registers where the kernel
// allows, instead of a copy afterwards.
func Reduce32To2(op Operator, dst, dst2 []float32, srcs [][]float32) {
	checkN(op, len(dst), srcs)
	if len(dst2) != len(dst) {
		panic(errLength)
	}
	reduceN32(op, dst, dst2, srcs)
}

// Reduce64 sets dst[i] = ((srcs[0][i] ⊕ srcs[1][i]) ⊕ srcs[2][i]) ⊕ ...
// for all i, where ⊕ is op. See Reduce32.
func Reduce64(op Operator, dst []float64, srcs [][]float64) {
	checkN(op, len(dst), srcs)
	reduceN64(op, dst, nil, srcs)
}

// Reduce64To2 is Reduce64 that also leaves the result in dst2. See
// Reduce32To2.
func Reduce64To2(op Operator, dst, dst2 []float64, srcs [][]float64) {
	checkN(op, len(dst), srcs)
	if len(dst2) != len(dst) {
		panic(errLength)
	}
	reduceN64(op, dst, dst2, srcs)
}

func checkN[F float](op Operator, n int, srcs [][]F) {
	if len(srcs) == 0 {
		panic(errNoInputs)
	}
	for _, s := range srcs {
		if len(s) != n {
			panic(errLength)
		}
	}
	if !op.Valid() {
		panic(invalidOp(op))
	}
}
