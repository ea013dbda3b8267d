package collective

import (
	"context"
	"fmt"

	"github.com/ringo-ml/ringo/internal/engine"
	"github.com/ringo-ml/ringo/internal/wire"
)

// Float16 is an IEEE 754 binary16 number, as mixed-precision training
// keeps its gradients (conversions round to nearest, ties to even);
// BFloat16 is float32's sign and exponent with 7 bits of mantissa, as
// TPUs and most mixed-precision training use. Their Float32 methods
// convert exactly.
type (
	Float16  = engine.Float16
	BFloat16 = engine.BFloat16
)

// Float16From rounds f to the nearest Float16 (ties to even).
func Float16From(f float32) Float16 { return engine.Float16From(f) }

// BFloat16From rounds f to the nearest BFloat16 (ties to even; NaN stays
// a NaN).
func BFloat16From(f float32) BFloat16 { return engine.BFloat16From(f) }

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
		s = engine.Widen(src.dt, src.b, src.n)
	}
	if dst.dt != 0 {
		d = engine.Widen(dst.dt, dst.b, dst.n)
	}
	if err := run(d, s); err != nil {
		return err
	}
	if dst.dt != 0 {
		engine.Narrow(dst.dt, dst.b, d)
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
