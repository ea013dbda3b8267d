package main

import (
	"context"
	"math"

	"github.com/ringo-ml/ringo/collective"
)

// The -c check runs the row's collective once more, untimed, on inputs
// whose results are known exactly: every input is an integer or a signed
// power of two, so that sums and products are exact in float32 in any
// order for up to maxRanks ranks, min and max pick an input, and avg is a
// correctly rounded division of an exact sum by the number of ranks, which
// is how collective computes it. Every element of this rank's result (and
// of its src, which the collectives promise to leave alone) is compared
// with the value computed locally.

// mix is a small integer hash of (rank, index): inputs that differ from
// rank to rank and element to element, so a block landing in the wrong
// place is caught.
func mix(rank int, i int64) uint32 {
	h := uint32(i)*0x9E3779B1 ^ uint32(i>>32)*0x85EBCA77 ^ uint32(rank+1)*0xC2B2AE3D
	h ^= h >> 15
	h *= 0x2C1B3C6D
	h ^= h >> 12
	h *= 0x297A2D39
	h ^= h >> 15
	return h
}

// family is how an element type's check values are computed.
type family int

const (
	floats family = iota // float32, float64: in T
	ints                 // int32, int64, uint8: in int64, wrapping as T does
	halves               // Float16, BFloat16: in float32, rounded once
)

func familyOf[T elem]() family {
	var z T
	switch any(z).(type) {
	case int32, int64, uint8:
		return ints
	case collective.Float16, collective.BFloat16:
		return halves
	}
	return floats
}

// prodInputs are the inputs of a product: exact in any order (for
// integers, exact modulo the type's range; for 16-bit floats ±1 alone,
// whose products stay exact for any number of ranks).
var (
	prodInputs = [4]float64{1, 2, 0.5, -1}
	prodInts   = [4]float64{1, 2, 3, -1}
)

// base is the check input of element i on rank r, as a float64 that every
// element type holds exactly (integers wrap into uint8).
func base(cfg *config, f family, r int, i int64) float64 {
	h := mix(r, i)
	switch {
	case !cfg.op.reduces() && f == halves:
		return float64(int32(h>>24) - 128) // exact in both 16-bit types
	case !cfg.op.reduces():
		return float64(int32(h>>8) - 1<<23) // any float32-exact integer: copies only
	case cfg.redop == collective.Prod && f == halves:
		return [2]float64{1, -1}[h>>31]
	case cfg.redop == collective.Prod && f == ints:
		return prodInts[h>>30]
	case cfg.redop == collective.Prod:
		return prodInputs[h>>30]
	case f == halves:
		return float64(int32(h>>29) - 4) // |x| <= 4: sums of 64 stay exact in bfloat16's 8 bits
	}
	return float64(int32(h>>16) - 1<<15) // |x| < 2^15: sums of 64 stay below 2^21
}

// value is v as a T: integers converted through int64 (wrapping), 16-bit
// floats rounded (to nearest, ties to even).
func value[T elem](v float64) T {
	var z T
	switch any(z).(type) {
	case collective.Float16:
		return T(collective.Float16From(float32(v)))
	case collective.BFloat16:
		return T(collective.BFloat16From(float32(v)))
	case int32, int64, uint8:
		return intValue[T](int64(v))
	}
	return T(v)
}

// intValue is an int64 as the integer type T, wrapping.
func intValue[T elem](v int64) T {
	var z T
	switch any(z).(type) {
	case int32:
		return T(int32(v))
	case uint8:
		return T(uint8(v))
	}
	return T(v)
}

// input is the check input of element i on rank r.
func input[T elem](cfg *config, r int, i int64) T {
	return value[T](base(cfg, familyOf[T](), r, i))
}

// reduced is what the reduction of element i over all n ranks must be:
// in T for float32 and float64 (inputs whose sums and products are exact
// in any order), in int64 for the integers (wrapping as T does), and in
// float32 for the 16-bit floats, rounded once, as collective computes
// them.
func reduced[T elem](cfg *config, n int, i int64) T {
	f := familyOf[T]()
	if f != floats {
		acc := base(cfg, f, 0, i)
		iacc, facc := int64(acc), float32(acc)
		for k := 1; k < n; k++ {
			v := base(cfg, f, k, i)
			iacc = combine(cfg.redop, iacc, int64(v))
			facc = combine(cfg.redop, facc, float32(v))
		}
		if f == ints && (cfg.redop == collective.Min || cfg.redop == collective.Max) {
			// Ordered as T orders them (uint8 wraps negatives to the top).
			acc := intValue[T](int64(base(cfg, f, 0, i)))
			for k := 1; k < n; k++ {
				if v := intValue[T](int64(base(cfg, f, k, i))); (cfg.redop == collective.Min) == (v < acc) {
					acc = v
				}
			}
			return acc
		}
		if f == ints {
			return intValue[T](iacc) // sums and products wrap alike in int64 and in T
		}
		if cfg.redop == collective.Avg {
			facc /= float32(n)
		}
		return value[T](float64(facc))
	}
	acc := base(cfg, f, 0, i)
	for k := 1; k < n; k++ {
		v := base(cfg, f, k, i)
		switch cfg.redop {
		case collective.Prod:
			acc *= v
		case collective.Min:
			acc = min(acc, v)
		case collective.Max:
			acc = max(acc, v)
		default: // Sum, Avg
			acc += v
		}
	}
	r := value[T](acc) // exact: the inputs' sums and products are
	if cfg.redop == collective.Avg {
		return divide(r, n)
	}
	return r
}

// divide is x/n rounded as T's arithmetic rounds it, which is how
// collective computes Avg.
func divide[T elem](x T, n int) T {
	switch v := any(x).(type) {
	case float32:
		return T(v / float32(n))
	case float64:
		return T(v / float64(n))
	}
	panic("divide: not a float")
}

// combine is a ⊕ b for the check's arithmetic: int64 (wrapping as the
// integer types do) and float32 (as 16-bit floats accumulate).
func combine[N int64 | float32](op collective.ReduceOp, a, b N) N {
	switch op {
	case collective.Prod:
		return a * b
	case collective.Min:
		return min(a, b)
	case collective.Max:
		return max(a, b)
	}
	return a + b
}

// unwritten is what a result element is set to before the call: NaN for
// the floats (never equal to anything), an integer the check's inputs do
// not produce for int32 and int64; uint8 has none, so an element left
// unwritten there is caught only when its expected value differs (255
// times in 256).
func unwritten[T elem]() T {
	var z T
	switch any(z).(type) {
	case collective.Float16:
		return value[T](math.NaN())
	case collective.BFloat16:
		return value[T](math.NaN())
	case int32:
		return intValue[T](math.MinInt32)
	case int64:
		return intValue[T](math.MinInt64)
	case uint8:
		return T(0xab)
	}
	return T(math.NaN())
}

// check runs call once on fresh check inputs in src and dst (this rank's
// slices for the row) and returns how many elements of this rank's result
// and src are wrong.
func check[T elem](ctx context.Context, r *rankRun, row rowSpec, src, dst []T, call func() error) (int64, error) {
	cfg, n, rank, root := r.cfg, r.comm.Size(), r.comm.Rank(), r.cfg.root
	c := row.count
	nan := unwritten[T]()
	for i := range src {
		src[i] = input[T](cfg, rank, int64(i))
	}
	switch cfg.op {
	case opAllReduce, opBroadcast: // in place
		for i := range dst {
			dst[i] = input[T](cfg, rank, int64(i))
		}
	default:
		fill(dst, nan) // a result element never written stays NaN: wrong
	}
	if err := call(); err != nil {
		return 0, err
	}
	if cfg.corruptRank == rank && len(dst) > 0 {
		dst[len(dst)/2] = flipLowBit(dst[len(dst)/2]) // test hook
	}
	var wrong int64
	expect := func(got, want T) {
		if got != want {
			wrong++
		}
	}
	for i := range src {
		expect(src[i], input[T](cfg, rank, int64(i)))
	}
	switch cfg.op {
	case opAllReduce, opReduce:
		for i := range dst {
			expect(dst[i], reduced[T](cfg, n, int64(i)))
		}
	case opReduceScatter:
		for i := range dst {
			expect(dst[i], reduced[T](cfg, n, int64(rank)*c+int64(i)))
		}
	case opBroadcast:
		for i := range dst {
			expect(dst[i], input[T](cfg, root, int64(i)))
		}
	case opGather, opAllGather:
		for i := range dst {
			expect(dst[i], input[T](cfg, int(int64(i)/c), int64(i)%c))
		}
	case opSendRecv:
		prev := (rank + n - 1) % n
		for i := range dst {
			expect(dst[i], input[T](cfg, prev, int64(i)))
		}
	}
	return wrong, nil
}
