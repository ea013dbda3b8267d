package reduce

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// Benchmark sizes are the size in bytes of ONE vector (dst, and src has the
// same size). b.SetBytes counts dst+src, i.e. 2*size per operation, so the
// reported MB/s is the bytes the kernel reads (src and dst) per second.
var benchSizes = []struct {
	name  string
	bytes int
}{
	{"Small", 1 << 10},
	{"Medium", 256 << 10},
	{"Large", 4 << 20},
	{"Huge", 64 << 20},
}

type benchData[F float] struct {
	pristine []F // random in [1, 2): the starting dst of every benchmark
	dst      []F
	rnd      []F // random in [-1, 1), length n + rotSpan
	sign     []F // random ±1: keeps Prod free of overflow and subnormals
}

// rotations and rotStride define the windows rnd[k*rotStride:][:n] used by
// the "random" min/max benchmarks so that dst never settles.
const (
	rotations = 8
	rotStride = 13
	rotSpan   = rotations * rotStride
)

var (
	bench32 = map[int]*benchData[float32]{}
	bench64 = map[int]*benchData[float64]{}
)

func newBenchData[F float](n int) *benchData[F] {
	r := rand.New(rand.NewPCG(uint64(n), 42))
	d := &benchData[F]{
		pristine: make([]F, n),
		dst:      make([]F, n),
		rnd:      make([]F, n+rotSpan),
		sign:     make([]F, n),
	}
	for i := range d.pristine {
		d.pristine[i] = F(1 + r.Float64())
		d.sign[i] = F(1 - 2*float64(r.IntN(2)))
	}
	for i := range d.rnd {
		d.rnd[i] = F(2*r.Float64() - 1)
	}
	return d
}

func getBench32(bytes int) *benchData[float32] { return getBench(bench32, bytes) }

func getBench64(bytes int) *benchData[float64] { return getBench(bench64, bytes) }

// getBench returns the data for vectors of the given size in bytes, made
// on first use, with dst reset to pristine.
func getBench[F float](cache map[int]*benchData[F], bytes int) *benchData[F] {
	n := bytes / sizeOf[F]()
	if cache[n] == nil {
		cache[n] = newBenchData[F](n)
	}
	d := cache[n]
	copy(d.dst, d.pristine)
	return d
}

// divisor for the Div benchmarks: exactly representable in float32 and close
// enough to 1 that dst stays far from the subnormal range for any b.N.
const benchDivisor = 1 + 1.0/(1<<20)

func benchBinary[F float](b *testing.B, d *benchData[F], src []F, f func(dst, src []F)) {
	b.SetBytes(int64(2 * len(d.dst) * sizeOf[F]()))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		f(d.dst, src)
	}
}

func benchDiv[F float](b *testing.B, d *benchData[F], f func(dst []F, n F)) {
	b.SetBytes(int64(2 * len(d.dst) * sizeOf[F]()))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		f(d.dst, benchDivisor)
	}
}

func sizeOf[F float]() int {
	var z F
	switch any(z).(type) {
	case float32:
		return 4
	}
	return 8
}

var benchOps = []Operator{Sum, Prod, Min, Max}

func BenchmarkFloat32(b *testing.B) {
	for _, op := range benchOps {
		for _, s := range benchSizes {
			b.Run(fmt.Sprintf("%v/%s", op, s.name), func(b *testing.B) {
				d := getBench32(s.bytes)
				src := d.rnd[:len(d.dst)]
				if op == Prod {
					src = d.sign
				}
				benchBinary(b, d, src, func(dst, src []float32) { Float32(op, dst, src) })
			})
		}
	}
}

func BenchmarkFloat64(b *testing.B) {
	for _, op := range benchOps {
		for _, s := range benchSizes {
			b.Run(fmt.Sprintf("%v/%s", op, s.name), func(b *testing.B) {
				d := getBench64(s.bytes)
				src := d.rnd[:len(d.dst)]
				if op == Prod {
					src = d.sign
				}
				benchBinary(b, d, src, func(dst, src []float64) { Float64(op, dst, src) })
			})
		}
	}
}

func BenchmarkDiv32(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) { benchDiv(b, getBench32(s.bytes), Div32) })
	}
}

func BenchmarkDiv64(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) { benchDiv(b, getBench64(s.bytes), Div64) })
	}
}

// ---- Alternatives, benchmarked side by side ----

type impl[F float] struct {
	name string
	f    func(dst, src []F)
}

func benchImpls[F float](b *testing.B, impls []impl[F], prod bool, get func(int) *benchData[F]) {
	for _, im := range impls {
		for _, s := range benchSizes {
			b.Run(im.name+"/"+s.name, func(b *testing.B) {
				d := get(s.bytes)
				src := d.rnd[:len(d.dst)]
				if prod {
					src = d.sign
				}
				benchBinary(b, d, src, im.f)
			})
		}
	}
}

func BenchmarkSumImpl32(b *testing.B) {
	benchImpls(b, []impl[float32]{
		{"loop", sumLoop[float32]},
		{"unroll4", sumUnroll4[float32]},
		{"blas32", sumBlas32},
		{"saxpy", sumSaxpy32},
		{"chosen", sum32},
	}, false, getBench32)
}

func BenchmarkSumImpl64(b *testing.B) {
	benchImpls(b, []impl[float64]{
		{"loop", sumLoop[float64]},
		{"unroll4", sumUnroll4[float64]},
		{"floatsAdd", sumFloatsAdd64},
		{"daxpy", sumDaxpy64},
		{"chosen", sum64},
	}, false, getBench64)
}

func BenchmarkProdImpl32(b *testing.B) {
	benchImpls(b, []impl[float32]{
		{"loop", prodLoop[float32]},
		{"unroll4", prodUnroll4[float32]},
		{"unroll8", prodUnroll8[float32]},
	}, true, getBench32)
}

func BenchmarkProdImpl64(b *testing.B) {
	benchImpls(b, []impl[float64]{
		{"loop", prodLoop[float64]},
		{"unroll4", prodUnroll4[float64]},
		{"unroll8", prodUnroll8[float64]},
	}, true, getBench64)
}

type divImpl[F float] struct {
	name string
	f    func([]F, F)
}

func BenchmarkDivImpl32(b *testing.B) {
	for _, im := range []divImpl[float32]{
		{"loop", divLoop[float32]},
		{"unroll4", divUnroll4[float32]},
	} {
		for _, s := range benchSizes {
			b.Run(im.name+"/"+s.name, func(b *testing.B) { benchDiv(b, getBench32(s.bytes), im.f) })
		}
	}
}

func BenchmarkDivImpl64(b *testing.B) {
	for _, im := range []divImpl[float64]{
		{"loop", divLoop[float64]},
		{"unroll4", divUnroll4[float64]},
		{"floatsDiv", divFloatsDiv64},
		{"chosen", div64},
	} {
		for _, s := range benchSizes {
			b.Run(im.name+"/"+s.name, func(b *testing.B) { benchDiv(b, getBench64(s.bytes), im.f) })
		}
	}
}

// minMaxImpl is a (max, min) kernel pair.
type minMaxImpl[F float] struct {
	name     string
	max, min func(dst, src []F)
}

// benchMinMax runs the max kernel in "steady" mode (same src every
// iteration: after the first pass dst[i] >= src[i] everywhere, so a branchy
// kernel's branch is perfectly predicted: its best case) and max/min
// alternately in "random" mode, each call with a different window of random
// data, so the comparison outcomes stay unpredictable (worst case for a
// branchy kernel; the branch-free builtin does not care). Bytes are per call.
func benchMinMax[F float](b *testing.B, impls []minMaxImpl[F], get func(int) *benchData[F]) {
	for _, im := range impls {
		for _, mode := range []string{"steady", "random"} {
			for _, s := range benchSizes {
				b.Run(im.name+"/"+mode+"/"+s.name, func(b *testing.B) {
					d := get(s.bytes)
					n := len(d.dst)
					if mode == "steady" {
						benchBinary(b, d, d.rnd[:n], im.max)
						return
					}
					var k int
					benchBinary(b, d, nil, func(dst, _ []F) {
						src := d.rnd[k*rotStride:][:n]
						if k&1 == 0 {
							im.max(dst, src)
						} else {
							im.min(dst, src)
						}
						if k++; k == rotations {
							k = 0
						}
					})
				})
			}
		}
	}
}

func BenchmarkMinMaxImpl32(b *testing.B) {
	benchMinMax(b, []minMaxImpl[float32]{
		{"builtin", maxLoop[float32], minLoop[float32]},
		{"builtin4", maxUnroll4[float32], minUnroll4[float32]},
		{"branch", maxBranch32, minBranch32},
	}, getBench32)
}

func BenchmarkMinMaxImpl64(b *testing.B) {
	benchMinMax(b, []minMaxImpl[float64]{
		{"builtin", maxLoop[float64], minLoop[float64]},
		{"builtin4", maxUnroll4[float64], minUnroll4[float64]},
		{"branch", maxBranch64, minBranch64},
	}, getBench64)
}

// BenchmarkCutoff measures short slices (element counts, not bytes) to place
// the loop/assembly cutoffs sumAsmMin32, sumAsmMin64 and divAsmMin64.
func BenchmarkCutoff(b *testing.B) {
	for _, n := range []int{8, 16, 32, 64, 128} {
		d32, s32 := make([]float32, n), make([]float32, n)
		d64, s64 := make([]float64, n), make([]float64, n)
		for i := range n {
			d32[i], s32[i], d64[i], s64[i] = 1, 0.5, 1, 0.5
		}
		run := func(name string, f func()) {
			b.Run(fmt.Sprintf("%s/n=%d", name, n), func(b *testing.B) {
				for range b.N {
					f()
				}
			})
		}
		run("sum32/unroll4", func() { sumUnroll4(d32, s32) })
		run("sum32/saxpy", func() { sumSaxpy32(d32, s32) })
		run("sum64/unroll4", func() { sumUnroll4(d64, s64) })
		run("sum64/floatsAdd", func() { sumFloatsAdd64(d64, s64) })
		run("div64/unroll4", func() { divUnroll4(d64, benchDivisor) })
		run("div64/floatsDiv", func() { divFloatsDiv64(d64, benchDivisor) })
	}
}
