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

// prodInputs are the inputs of a product: exact in any order.
var prodInputs = [4]float64{1, 2, 0.5, -1}

// input is the check input of element i on rank r.
func input[T float](cfg *config, r int, i int64) T {
	h := mix(r, i)
	switch {
	case !cfg.op.reduces():
		return T(int32(h>>8) - 1<<23) // any float32-exact integer: copies only
	case cfg.redop == collective.Prod:
		return T(prodInputs[h>>30])
	}
	return T(int32(h>>16) - 1<<15) // |x| < 2^15: sums of 64 stay below 2^21
}

// reduced is what the reduction of element i over all n ranks must be.
func reduced[T float](cfg *config, n int, i int64) T {
	acc := input[T](cfg, 0, i)
	for k := 1; k < n; k++ {
		v := input[T](cfg, k, i)
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
	if cfg.redop == collective.Avg {
		acc /= T(n)
	}
	return acc
}

// check runs call once on fresh check inputs in src and dst (this rank's
// slices for the row) and returns how many elements of this rank's result
// and src are wrong.
func check[T float](ctx context.Context, r *rankRun, row rowSpec, src, dst []T, call func() error) (int64, error) {
	cfg, n, rank, root := r.cfg, r.comm.Size(), r.comm.Rank(), r.cfg.root
	c := row.count
	nan := T(math.NaN())
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
