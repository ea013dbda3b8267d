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
type naryPool[F float] struct {
	seed  uint64
	srcs  [][]F
	dst   []F
	signs []F // random ±1
}

var (
	naryPool32 = &naryPool[float32]{seed: 31}
	naryPool64 = &naryPool[float64]{seed: 33}
)

// data returns dst and k inputs of n elements, filling the pool on first
// use.
func (p *naryPool[F]) data(n, k int) (dst []F, srcs [][]F) {
	if p.srcs == nil {
		r := rand.New(rand.NewPCG(p.seed, p.seed+1))
		m := narySizes[len(narySizes)-1].bytes / sizeOf[F]()
		for range naryMax {
			s := make([]F, m)
			for i := range s {
				s[i] = F(1 + r.Float64())
			}
			p.srcs = append(p.srcs, s)
		}
		p.dst = make([]F, m)
		p.signs = make([]F, m)
		for i := range p.signs {
			p.signs[i] = F(1 - 2*r.IntN(2))
		}
	}
	for _, s := range p.srcs[:k] {
		srcs = append(srcs, s[:n])
	}
	return p.dst[:n], srcs
}

// kernelSet is a binary kernel set: the portable one, and in the SIMD build
// AVX2 (kernelSets is defined per build).
type kernelSet struct {
	name string
	f32  func(Operator, []float32, []float32)
	f64  func(Operator, []float64, []float64)
}

// BenchmarkKernels runs each binary kernel set on each op and size, the
// sets side by side. dst starts as a copy of an input; for Prod, src is ±1
// (naryPool's signs), so that dst keeps its magnitude however many times
// the kernel runs (Sum's dst grows by at most 2 per call: no overflow).
func BenchmarkKernels(b *testing.B) {
	for _, op := range benchOps {
		benchKernels(b, op, "f32", naryPool32, func(ks kernelSet) func(Operator, []float32, []float32) { return ks.f32 })
		benchKernels(b, op, "f64", naryPool64, func(ks kernelSet) func(Operator, []float64, []float64) { return ks.f64 })
	}
}

func benchKernels[F float](b *testing.B, op Operator, typ string, pool *naryPool[F], kernel func(kernelSet) func(Operator, []F, []F)) {
	for _, s := range narySizes {
		for _, ks := range kernelSets() {
			f := kernel(ks)
			b.Run(fmt.Sprintf("%v/%s/%s/%s", op, typ, s.name, ks.name), func(b *testing.B) {
				b.SetBytes(int64(2 * s.bytes))
				b.ReportAllocs()
				dst, srcs := pool.data(s.bytes/sizeOf[F](), 2)
				copy(dst, srcs[0])
				src := srcs[1]
				if op == Prod {
					src = pool.signs[:len(dst)]
				}
				b.ResetTimer()
				for range b.N {
					f(op, dst, src)
				}
			})
		}
	}
}

// naryImpl is an n-ary Sum: "chosen" is Reduce32/64, "passes" what the
// shared-memory engine did before it (copy, then one pass of the build's
// binary kernel per further input), "tiled" the tiled n-ary kernel over the
// build's binary kernel (the default build's choice).
type naryImpl[F float] struct {
	name string
	f    func(dst []F, srcs [][]F)
}

// naryImpls returns them for the element type of binary (Float32 or
// Float64, with the build's kernel binaryKernel, tile elements per tile and
// reduce Reduce32 or Reduce64).
func naryImpls[F float](binary, binaryKernel func(Operator, []F, []F), tile int, reduce func(Operator, []F, [][]F)) []naryImpl[F] {
	return []naryImpl[F]{
		{"passes", func(dst []F, srcs [][]F) {
			copy(dst, srcs[0])
			for _, s := range srcs[1:] {
				binary(Sum, dst, s)
			}
		}},
		{"tiled", func(dst []F, srcs [][]F) { tiled(Sum, dst, srcs, tile, binaryKernel) }},
		{"chosen", func(dst []F, srcs [][]F) { reduce(Sum, dst, srcs) }},
	}
}

func BenchmarkReduceN(b *testing.B) {
	benchReduceN(b, "f32", naryPool32, naryImpls(Float32, binary32, tile32, Reduce32))
	benchReduceN(b, "f64", naryPool64, naryImpls(Float64, binary64, tile64, Reduce64))
}

func benchReduceN[F float](b *testing.B, typ string, pool *naryPool[F], impls []naryImpl[F]) {
	for _, k := range []int{2, 4, 8} {
		for _, s := range narySizes {
			for _, im := range impls {
				b.Run(fmt.Sprintf("%s/n=%d/%s/%s", typ, k, s.name, im.name), func(b *testing.B) {
					b.SetBytes(int64(k * s.bytes))
					b.ReportAllocs()
					dst, srcs := pool.data(s.bytes/sizeOf[F](), k)
					b.ResetTimer()
					for range b.N {
						im.f(dst, srcs)
					}
				})
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
				dst, srcs := naryPool32.data(s.bytes/4, k)
				b.ResetTimer()
				for range b.N {
					tiled(Sum, dst, srcs, tb/4, scalar32)
				}
			})
		}
	}
}
