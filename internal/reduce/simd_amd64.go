//go:build goexperiment.simd && amd64

package reduce

import "simd/archsimd"

// The SIMD build (GOEXPERIMENT=simd on amd64): 256-bit AVX2 kernels,
// used when the CPU has AVX2 and the portable kernels of kernels.go
// otherwise. Every kernel computes, element by element, exactly the
// operation of the portable kernel (dst ⊕ src, no reassociation), and Min
// and Max reproduce the compiler's lowering of the builtins bit for bit
// (see minV32 and maxV32).
//
// The float32 kernels, and the functions that choose them, are written by
// hand in simd32_amd64.go; the float64 ones in simd64_amd64.go are
// generated from them by gen_simd.go (go generate), which changes the
// types, the lane counts and the names' suffixes and nothing else. Edit
// simd32_amd64.go and regenerate; never edit simd64_amd64.go.
//
// A kernel processes blocks of 4 vectors, then single vectors, clears the
// upper halves of the vector registers (VZEROUPPER: the rest of the
// program, gonum's assembly included, is SSE code, which would otherwise
// pay for the dirty upper state) and returns how many elements it did; the
// caller finishes the last few with the portable kernel.

// useAVX2 selects the AVX2 kernels (AVX2 implies AVX). Tests clear it to
// check the fallback.
var useAVX2 = archsimd.X86.AVX2()

// maxStreams is how many inputs a fused n-ary pass reads at once; more
// inputs are folded into dst in further passes (dst is then the first
// input), which keeps the number of concurrent memory streams within what
// the hardware prefetchers track.
const maxStreams = 16
