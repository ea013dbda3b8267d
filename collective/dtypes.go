package collective

import (
	"context"
	"fmt"
	"math"

	"github.com/x448/float16"

	"github.com/ringo-ml/ringo/internal/engine"
	"github.com/ringo-ml/ringo/internal/wire"
)

// Float16 is an IEEE 754 binary16 number, as mixed-precision training
// keeps its gradients; conversions use github.com/x448/float16 (rounding
// to nearest, ties to even).
type Float16 uint16

// Float16From rounds f to the nearest Float16 (ties to even).
func Float16From(f float32) Float16 { return Float16(float16.Fromfloat32(f).Bits()) }

// Float32 is h exactly.
func (h Float16) Float32() float32 { return float16.Frombits(uint16(h)).Float32() }

// BFloat16 is a bfloat16 number: float32's sign and exponent with 7 bits
// of mantissa, as TPUs and most mixed-precision training use.
type BFloat16 uint16

// BFloat16From rounds f to the nearest BFloat16 (ties to even; NaN stays
// a NaN).
func BFloat16From(f float32) BFloat16 {
	b := math.Float32bits(f)
	if f != f { // NaN: keep it one, whatever its low bits
		return BFloat16(b>>16 | 0x40)
	}
	return BFloat16((b + 0x7fff + (b>>16)&1) >> 16)
}

// Float32 is b exactly.
func (b BFloat16) Float32() float32 { return math.Float32frombits(uint32(b) << 16) }

// half reports whether dt is a 16-bit float, whose reductions run in
// float32.
func half(dt wire.DType) bool { return dt == wire.Float16 || dt == wire.BFloat16 }

// widen converts a 16-bit float tensor to float32.
func widen(t tensor) []float32 {
	out := make([]float32, t.n)
	if t.dt == wire.Float16 {
		for i, h := range engine.As[Float16](t.b) {
			out[i] = h.Float32()
		}
	} else {
		for i, h := range engine.As[BFloat16](t.b) {
			out[i] = h.Float32()
		}
	}
	return out
}

// narrow rounds f into the 16-bit float tensor t, once per element.
func narrow(t tensor, f []float32) {
	if t.dt == wire.Float16 {
		for i, h := range f {
			engine.As[Float16](t.b)[i] = Float16From(h)
		}
		return
	}
	for i, h := range f {
		engine.As[BFloat16](t.b)[i] = BFloat16From(h)
	}
}

// reduceHalf runs a reduction of 16-bit floats in float32: the tensors
// are widened (exactly), the float32 operation accumulates every partial
// result in float32, and each element of the result is rounded to 16 bits
// once. Every rank rounds the same float32 bits, so the results are
// identical on every rank. The partials cross the links as float32s:
// twice the bytes of the tensor, where NCCL moves 16-bit partials and
// rounds at every step.
func (c *Communicator) reduceHalf(ctx context.Context, dst, src tensor, run func(dst, src []float32) error) error {
	var d, s []float32
	if src.dt != 0 {
		s = widen(src)
	}
	if dst.dt != 0 {
		d = widen(dst)
	}
	if err := run(d, s); err != nil {
		return err
	}
	if dst.dt != 0 {
		narrow(dst, d)
	}
	return nil
}

// checkAvg refuses Avg on integers, where it is not defined.
func checkAvg(op ReduceOp, dt wire.DType) error {
	if op == Avg && (dt == wire.Int32 || dt == wire.Int64 || dt == wire.Uint8) {
		return fmt.Errorf("%w: Avg of %s: an integer mean is not defined (Sum, then divide as the application needs)", ErrInvalid, dt)
	}
	return nil
}
