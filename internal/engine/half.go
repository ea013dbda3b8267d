package engine

import (
	"math"

	"github.com/x448/float16"

	"github.com/ringo-ml/ringo/internal/wire"
)

// Float16 is an IEEE 754 binary16 number, as mixed-precision training
// keeps its gradients; conversions use github.com/x448/float16 (rounding
// to nearest, ties to even). collective.Float16 is this type.
type Float16 uint16

// Float16From rounds f to the nearest Float16 (ties to even).
func Float16From(f float32) Float16 { return Float16(float16.Fromfloat32(f).Bits()) }

// Float32 is h exactly.
func (h Float16) Float32() float32 { return float16.Frombits(uint16(h)).Float32() }

// BFloat16 is a bfloat16 number: float32's sign and exponent with 7 bits
// of mantissa, as TPUs and most mixed-precision training use.
// collective.BFloat16 is this type.
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

// Half reports whether dt is a 16-bit float, whose reductions run in
// float32.
func Half(dt wire.DType) bool { return dt == wire.Float16 || dt == wire.BFloat16 }

// Widen converts the n 16-bit floats of type dt in b to float32, exactly.
func Widen(dt wire.DType, b []byte, n int) []float32 {
	out := make([]float32, n)
	if dt == wire.Float16 {
		for i, h := range As[Float16](b) {
			out[i] = h.Float32()
		}
	} else {
		for i, h := range As[BFloat16](b) {
			out[i] = h.Float32()
		}
	}
	return out
}

// Narrow rounds f into the 16-bit floats of type dt in b, once per
// element.
func Narrow(dt wire.DType, b []byte, f []float32) {
	if dt == wire.Float16 {
		for i, h := range f {
			As[Float16](b)[i] = Float16From(h)
		}
		return
	}
	for i, h := range f {
		As[BFloat16](b)[i] = BFloat16From(h)
	}
}
