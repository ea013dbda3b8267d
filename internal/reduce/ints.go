package reduce

// Integer is an integer element type the collectives reduce.
type Integer interface{ ~int32 | ~int64 | ~uint8 }

// Ints sets dst[i] = dst[i] ⊕ src[i] for integers. Sums and products
// wrap on overflow as Go's integer arithmetic does (two's complement for
// int32 and int64, modulo 256 for uint8). It panics if the lengths differ
// or op is invalid.
func Ints[T Integer](op Operator, dst, src []T) {
	if len(dst) != len(src) {
		panic("reduce: Ints: slice lengths do not match")
	}
	src = src[:len(dst)]
	switch op {
	case Sum:
		for i, v := range src {
			dst[i] += v
		}
	case Prod:
		for i, v := range src {
			dst[i] *= v
		}
	case Min:
		for i, v := range src {
			dst[i] = min(dst[i], v)
		}
	case Max:
		for i, v := range src {
			dst[i] = max(dst[i], v)
		}
	default:
		panic("reduce: Ints: invalid operator " + op.String())
	}
}

// ReduceInts sets dst to srcs[0] ⊕ srcs[1] ⊕ ... element by element, in
// that order (the same result as copying srcs[0] and applying Ints with
// each further one). Every src must be as long as dst; dst may be one of
// them only if it is srcs[0].
func ReduceInts[T Integer](op Operator, dst []T, srcs [][]T) {
	if len(srcs) == 0 {
		panic("reduce: ReduceInts: no inputs")
	}
	for _, s := range srcs {
		if len(s) != len(dst) {
			panic("reduce: ReduceInts: slice lengths do not match")
		}
	}
	copy(dst, srcs[0])
	for _, s := range srcs[1:] {
		Ints(op, dst, s)
	}
}
