package reduce

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// Benchmarks of the kernel sets side by side (BenchmarkKernels: the
// portable kernels and, in the SIMD build, AVX2) and of the n-ary
// reduction against copy-then-passes (BenchmarkReduceN), at sizes per input
// of 16 KiB, 64 KiB (the shared-memory engine's parts), 1 MiB and 16 MiB.
// MB/s counts the bytes of input read: dst and src for a binary kernel,
// the n inputs for an n-ary reduction.

var narySizes = []struct {
	name  string
	bytes int
}{
	{"16K", 16 << 10},
	{"64K", 64 << 10},
	{"1M", 1 << 20},
	{"16M", 16 << 20},
}

const naryMax = 8

// naryPool holds naryMax inputs of the largest size, random in [1, 2),
// and a vector of random signs; smaller sizes use prefixes of them.
var (
	naryPool32  [][]float32
	naryPool64  [][]float64
	naryDst32   []float32
	naryDst64   []float64
	narySigns32 []float32 // random ±1
	narySigns64 []float64
)

func naryData32(n, k int) (dst []float32, srcs [][]float32) {
	if naryPool32 == nil {
		r := rand.New(rand.NewPCG(31, 32))
		m := narySizes[len(narySizes)-1].bytes / 4
		for range naryMax {
			s := make([]float32, m)
			for i := range s {
				s[i] = float32(1 + r.Float64())
			}
			naryPool32 = append(naryPool32, s)
		}
		naryDst32 = make([]float32, m)
		narySigns32 = make([]float32, m)
		for i := range narySigns32 {
			narySigns32[i] = float32(1 - 2*r.IntN(2))
		}
	}
	for _, s := range naryPool32[:k] {
		srcs = append(srcs, s[:n])
	}
	return naryDst32[:n], srcs
}

func naryData64(n, k int) (dst []float64, srcs [][]float64) {
	if naryPool64 == nil {
		r := rand.New(rand.NewPCG(33, 34))
		m := narySizes[len(narySizes)-1].bytes / 8
		for range naryMax {
			s := make([]float64, m)
			for i := range s {
				s[i] = 1 + r.Float64()
			}
			naryPool64 = append(naryPool64, s)
		}
		naryDst64 = make([]float64, m)
		narySigns64 = make([]float64, m)
		for i := range narySigns64 {
			narySigns64[i] = float64(1 - 2*r.IntN(2))
		}
	}
	for _, s := range naryPool64[:k] {
		srcs = append(srcs, s[:n])
	}
	return naryDst64[:n], srcs
}

// kernelSet is a binary kernel set: the portable one, and in the SIMD build
// AVX2 (kernelSets is defined per build).
type kernelSet struct {
	name string
	f32  func(Op, []float32, []float32)
	f64  func(Op, []float64, []float64)
}

// BenchmarkKernels runs each binary kernel set on each op and size, the
// sets side by side. dst starts as a copy of an input; for Prod, src is ±1
// (naryPool's signs), so that dst keeps its magnitude however many times
// the kernel runs (Sum's dst grows by at most 2 per call: no overflow).
func BenchmarkKernels(b *testing.B) {
	for _, op := range benchOps {
		for _, typ := range []string{"f32", "f64"} {
			for _, s := range narySizes {
				for _, ks := range kernelSets() {
					b.Run(fmt.Sprintf("%v/%s/%s/%s", op, typ, s.name, ks.name), func(b *testing.B) {
						b.SetBytes(int64(2 * s.bytes))
						b.ReportAllocs()
						if typ == "f32" {
							dst, srcs := naryData32(s.bytes/4, 2)
							copy(dst, srcs[0])
							src := srcs[1]
							if op == Prod {
								src = narySigns32[:len(dst)]
							}
							b.ResetTimer()
							for range b.N {
								ks.f32(op, dst, src)
							}
						} else {
							dst, srcs := naryData64(s.bytes/8, 2)
							copy(dst, srcs[0])
							src := srcs[1]
							if op == Prod {
								src = narySigns64[:len(dst)]
							}
							b.ResetTimer()
							for range b.N {
								ks.f64(op, dst, src)
							}
						}
					})
				}
			}
		}
	}
}

// naryImpl is an n-ary Sum: "chosen" is Reduce32/64, "passes" what the
// shared-memory engine did before it (copy, then one pass of the build's
// binary kernel per further input), "tiled" the tiled n-ary kernel over the
// build's binary kernel (the default build's choice).
type naryImpl struct {
	name string
	f32  func(dst []float32, srcs [][]float32)
	f64  func(dst []float64, srcs [][]float64)
}

func naryImpls() []naryImpl {
	return []naryImpl{
		{"passes",
			func(dst []float32, srcs [][]float32) {
				copy(dst, srcs[0])
				for _, s := range srcs[1:] {
					Float32(Sum, dst, s)
				}
			},
			func(dst []float64, srcs [][]float64) {
				copy(dst, srcs[0])
				for _, s := range srcs[1:] {
					Float64(Sum, dst, s)
				}
			}},
		{"tiled",
			func(dst []float32, srcs [][]float32) { tiled(Sum, dst, srcs, tileBytes/4, binary32) },
			func(dst []float64, srcs [][]float64) { tiled(Sum, dst, srcs, tileBytes/8, binary64) }},
		{"chosen",
			func(dst []float32, srcs [][]float32) { Reduce32(Sum, dst, srcs) },
			func(dst []float64, srcs [][]float64) { Reduce64(Sum, dst, srcs) }},
	}
}

func BenchmarkReduceN(b *testing.B) {
	for _, typ := range []string{"f32", "f64"} {
		for _, k := range []int{2, 4, 8} {
			for _, s := range narySizes {
				for _, im := range naryImpls() {
					b.Run(fmt.Sprintf("%s/n=%d/%s/%s", typ, k, s.name, im.name), func(b *testing.B) {
						b.SetBytes(int64(k * s.bytes))
						b.ReportAllocs()
						if typ == "f32" {
							dst, srcs := naryData32(s.bytes/4, k)
							b.ResetTimer()
							for range b.N {
								im.f32(dst, srcs)
							}
						} else {
							dst, srcs := naryData64(s.bytes/8, k)
							b.ResetTimer()
							for range b.N {
								im.f64(dst, srcs)
							}
						}
					})
				}
			}
		}
	}
}

// BenchmarkReduceTile places tileBytes: the portable n-ary kernel at
// several tile sizes, float32 Sum of 4 inputs.
func BenchmarkReduceTile(b *testing.B) {
	for _, s := range narySizes {
		for _, tb := range []int{2 << 10, 4 << 10, 8 << 10, 16 << 10, 64 << 10} {
			b.Run(fmt.Sprintf("%s/tile=%dK", s.name, tb>>10), func(b *testing.B) {
				const k = 4
				b.SetBytes(int64(k * s.bytes))
				dst, srcs := naryData32(s.bytes/4, k)
				b.ResetTimer()
				for range b.N {
					tiled(Sum, dst, srcs, tb/4, scalar32)
				}
			})
		}
	}
}
