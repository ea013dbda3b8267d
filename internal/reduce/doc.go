// Package reduce implements the elementwise reduction kernels of the
// collective operations: dst[i] = dst[i] ⊕ src[i] for ⊕ in Sum, Prod, Min
// and Max over float32 and float64 slices (Float32, Float64), the n-ary
// form dst[i] = ((srcs[0][i] ⊕ srcs[1][i]) ⊕ srcs[2][i]) ⊕ ... computed in
// one pass over memory (Reduce32, Reduce64), and the division by the world
// size that turns a Sum into an average.
//
// # Semantics
//
// All arithmetic is IEEE 754 binary32/binary64 with round-to-nearest-even,
// exactly what the Go expressions below compute (no fused multiply-add, no
// flush-to-zero: subnormal operands and results behave as IEEE specifies,
// in the Go loops and in gonum's SSE code alike):
//
//	Sum   dst[i] + src[i]
//	Prod  dst[i] * src[i]
//	Min   min(dst[i], src[i])   (the Go builtin)
//	Max   max(dst[i], src[i])   (the Go builtin)
//	Div   dst[i] / n            (Div32, Div64)
//
// Every op is commutative bit for bit: Float32(op, a, b) leaves in a
// exactly the bits Float32(op, b, a) leaves in b, except that when the
// result is NaN its sign and payload are unspecified (any NaN may come back,
// and a signalling NaN may come back quieted or not).
//
// NaN: Sum and Prod follow IEEE (NaN in, NaN out; Inf-Inf and 0*Inf give
// NaN). Min and Max propagate NaN: if either operand is NaN the result is
// NaN, like numpy.maximum and torch.maximum, and unlike C's fmax or IEEE
// 754-2008 maxNum, which return the non-NaN operand. (Returning the other
// operand would also be commutative but would silently hide a diverged
// rank.)
//
// Signed zero: Sum and Prod follow IEEE: -0 + +0 = +0, -0 + -0 = -0, and
// the sign of a product is the xor of the signs. Min and Max order -0
// below +0: max(-0, +0) = +0 and min(-0, +0) = -0 whichever operand is
// which. So Min and Max are not only commutative but associative bit for
// bit, and a Min or Max all-reduce gives the same bits whatever the
// reduction order; Sum and Prod are commutative but not associative, so
// their result depends on the order in which ranks' contributions are
// combined (the caller fixes that order when it needs reproducible bits).
// This ±0 handling costs nothing here: the compiler lowers the builtins to
// a branch-free MINSS/MINSD sequence that already implements it, and that
// sequence is faster than a compare-and-branch kernel even when the
// branches are perfectly predicted (see the table).
//
// Div divides, rather than multiplying by 1/n, so that Sum followed by
// Div32/Div64 with the world size gives exactly the bits of a serial sum
// divided by n (x * (1/n) differs from x / n in the last bit for 20-55% of
// inputs when n is not a power of two: measured for n = 3, 5, 6, 7, 12, 24).
// Division by zero gives ±Inf or NaN as IEEE specifies.
//
// Reduce32 and Reduce64 combine their inputs strictly left to right, so
// they leave exactly the bits of copy(dst, srcs[0]) followed by one
// Float32/Float64 pass per further input (for Sum and Prod, any NaN where
// that gives a NaN, as above; Min and Max every bit).
//
// dst and src may be the same slice (x ⊕ x) but must not otherwise
// overlap; Reduce's dst may be srcs[0] but must not otherwise overlap an
// input. The functions do not allocate, except that Div64 allocates
// 4 KiB when it meets a divisor that is not in its 4-entry cache (see
// below): the first call with each world size.
//
// # Implementation
//
// The Go compiler does not vectorise, so the plain loops run one scalar
// SSE instruction per element; gonum's assembly is 128-bit SSE2 (4 float32
// or 2 float64 per instruction). Chosen by the measurements below:
//
//	Float32 Sum   gonum Saxpy, alpha = 1 (x*1 is exact, then ADDPS; checked
//	              bit-identical to dst[i] += src[i], subnormals, infinities
//	              and NaNs included), called as gonum.Implementation{}.Saxpy
//	              (blas32.Axpy adds an interface call, ~12 ns); below 64
//	              elements a 4x unrolled loop, which beats Saxpy's ~18 ns
//	              fixed cost there. 1.7-2.4x the Go loops in cache, 1.2x at
//	              Huge (memory bound).
//	Float64 Sum   gonum floats.Add (AxpyUnitaryTo, alpha = 1; Daxpy ties),
//	              a 4x unrolled loop below 32 elements. 1.5-1.7x the Go loops
//	              in L1/L2, 1.1-1.2x beyond.
//	Prod          4x unrolled loop (gonum has no elementwise product in
//	              assembly; plain, 4x and 8x loops measure the same within
//	              noise).
//	Min, Max      4x unrolled loop of the builtins (branch-free), ~15% ahead
//	              of the plain loop; a compare-and-branch kernel with the
//	              same semantics is slower even when perfectly predicted and
//	              up to 6x slower on unpredictable data (mispredictions).
//	Div32         4x unrolled loop (ties with the plain loop: bound by the
//	              scalar divider, ~1 element per ns).
//	Div64         gonum floats.Div (packed DIVPD, two correctly rounded
//	              quotients per instruction) against a read-only 512-element
//	              vector filled with n, 1.5-1.9x the scalar loop; below 64
//	              elements a 4x unrolled loop. The divisor vectors live in a
//	              4-slot cache of immutable vectors (atomic pointers), so a
//	              steady state of up to 4 distinct divisors (world sizes)
//	              neither allocates nor refills.
//
// Reduce32 and Reduce64 (the default build) work in tiles of 8 KiB of
// dst: copy the tile of srcs[0], fold the matching tile of every further
// input into it with the kernels above, so that dst is read and written in
// L1 instead of once per input from memory. Tiles of 8 and 16 KiB measure
// the same; 2 KiB is up to 33% slower, 4 KiB up to 13%, 64 KiB 14% slower
// at 16 KiB per input (BenchmarkReduceTile, 4 inputs).
//
// On amd64 the default build runs the n-ary Sum, when the CPU has AVX2,
// in assembly of its own (sum_amd64.s): each block of 32 float32s (16
// float64s) is loaded from srcs[0] into four YMM registers, every further
// input added in order with VADDPS/VADDPD (the accumulator first, as in
// the scalar loop), and stored once; the last few elements take a scalar
// loop. Same bits, one pass. It is what the shared-memory engine reduces
// with. BenchmarkReduceN, 4 inputs, "chosen" (the assembly) against
// "tiled" (the portable path), 26 November 2026: float32 at 64 KiB per
// input 43.5 against 11.6 GB/s, at 16 MiB 7.7 against 5.2; float64 29.1
// against 22.9 and 7.4 against 5.8. A 4-rank 64 MiB AllReduce over shared
// memory went from 1.44 to 1.72 GB/s bus bandwidth (medians of 3).
//
// gonum.org/v1/gonum has amd64 assembly only; on other architectures (and
// with its noasm tag) it falls back to Go loops, which give the same bits
// (an FMA of x*1+y, which the compiler may form on arm64, rounds once,
// exactly as x+y).
//
// # The SIMD build
//
// Built with GOEXPERIMENT=simd on amd64 (Go 1.26's experimental
// simd/archsimd; the build constraint is goexperiment.simd && amd64), the
// package adds 256-bit AVX2 kernels for every op and type, used when
// archsimd.X86.AVX2() reports AVX2 at start-up and the kernels above
// otherwise; every other build is the default build described above.
// Float32/Float64 run a 4-vector loop (32 float32 or 16 float64 per
// iteration), then single vectors, then the portable kernel for the last
// few elements. Reduce32/Reduce64 fuse instead of tiling: each block of 4
// vectors is loaded from srcs[0], combined in registers with the same
// block of every further input in order, and stored once; beyond 16 inputs
// further passes fold the next 16 into dst. Every kernel ends with
// VZEROUPPER, since the rest of the program (gonum included) is SSE code.
//
// The results are those of the default build: the same IEEE operation per
// element, in the same order. Min and Max need care: VMINPS/VMAXPS return
// their second operand when either is NaN or both are zero, and the
// compiler treats them as commutative (it may swap operands or merge
// a.Min(b) with b.Min(a)), so the kernels take VMINPS only where the
// operands are ordered and distinct and OR in a|b elsewhere (a NaN, or -0
// if either zero was -0), which is bit for bit what the scalar lowering of
// the builtin min leaves, NaN payloads included; Max is -min(-a, -b), as
// the compiler does it. TestAVXSpecialPairs checks every pair of special
// values in every lane against the builtins.
//
// The float32 kernels (simd32_amd64.go) are written by hand; the float64
// kernels (simd64_amd64.go) are generated from them by gen_simd.go, which
// changes only the types, lane counts and name suffixes. After editing
// simd32_amd64.go, regenerate with go generate ./internal/reduce.
//
// Measured on an otherwise idle 16-vCPU Intel Xeon (AVX-512, 2 MiB L2 per
// core; Go 1.26, GOAMD64=v1), one core, 5 interleaved rounds of both
// builds' test binaries, medians; GB/s of input read (dst and src for the
// binary kernels, the n inputs for Reduce), sizes per input:
//
//	go test -c -o default.test ./internal/reduce
//	GOEXPERIMENT=simd go test -c -o simd.test ./internal/reduce
//	for r in 1 2 3 4 5; do for b in simd default; do
//	  ./$b.test -test.run '^$' -test.bench '^Benchmark(Kernels|ReduceN)$' \
//	    -test.benchtime 50ms -test.cpu 1
//	done; done
//
// Binary kernels, AVX2 (SIMD build) against the default build's kernels
// (gonum for Sum, Go loops otherwise), GB/s and ratio:
//
//	              16 KiB            64 KiB            1 MiB             16 MiB
//	Sum f32    68.2/39.3 1.73    57.9/40.0 1.45    42.5/38.4 1.11    24.2/25.4 0.95
//	Sum f64    61.6/89.2 0.69    58.4/60.4 0.97    41.6/56.4 0.74    24.0/24.8 0.97
//	Prod f32   64.0/25.4 2.52    58.4/19.6 2.98    45.8/19.8 2.31    23.8/18.5 1.29
//	Prod f64   66.9/51.9 1.29    58.5/35.9 1.63    38.7/34.4 1.12    24.3/24.7 0.98
//	Min f32    36.2/13.9 2.61    34.5/14.0 2.47    29.1/13.6 2.14    23.6/13.3 1.78
//	Min f64    40.2/27.1 1.48    35.2/27.6 1.27    30.1/26.4 1.14    24.9/23.4 1.06
//	Max f32    50.8/10.5 4.83    47.2/10.4 4.53    36.4/10.0 3.64    24.9/10.2 2.44
//	Max f64    51.6/20.9 2.47    46.9/20.6 2.28    44.4/17.9 2.48    24.9/17.5 1.43
//
// So Min and Max were far from memory speed and AVX2 brings every op to it
// (~24 GB/s at 16 MiB). Sum f64 is the exception: gonum's SSE2 is as fast,
// and the SIMD binary ran bimodally in cache (AVX2 Sum f64 at 16 KiB: 58-61
// GB/s in three rounds, 115-121 in two). Within the SIMD binary the
// portable kernels (BenchmarkKernels/.../portable) are also 0.6-0.8x their
// speed in the default build: in that build the runtime's asynchronous
// preemption saves and restores the full YMM/ZMM registers on AVX2 and
// AVX-512 CPUs, which leaves the upper register state dirty, and legacy-SSE
// code after it (Go's scalar float code, gonum) slows down until the next
// VZEROUPPER. That cost falls on the whole program, not only on this
// package, and is a reason to measure an application before shipping the
// experiment.
//
// Reduce (Sum) against copy then one pass per input (what the
// shared-memory engine did), default build tiled and SIMD build fused:
//
//	                        16 KiB  64 KiB  1 MiB  16 MiB
//	default: tiled/passes  f32 n=2   1.0     1.0    0.9    1.2
//	                           n=4   1.0     0.9    0.8    1.2
//	                           n=8   1.0     1.0    0.9    1.1
//	                       f64 n=2   1.1     1.2    0.8    1.2
//	                           n=4   1.2     1.2    0.9    1.1
//	                           n=8   1.1     1.0    1.2    1.0
//	SIMD: fused/passes     f32 n=2   1.2     1.3    1.1    1.3
//	      (both AVX2)          n=4   1.2     1.9    1.1    2.2
//	                           n=8   0.8     2.2    1.3    2.0
//	                       f64 n=2   1.0     1.7    0.8    1.3
//	                           n=4   1.1     2.2    1.0    2.0
//	                           n=8   1.2     1.8    1.1    2.0
//	SIMD fused / default   f32 n=2   1.52    1.69   1.00   1.31
//	build's passes             n=4   2.83    3.35   1.19   2.54
//	                           n=8   2.31    3.29   1.26   2.06
//	                       f64 n=2   1.35    2.10   0.83   1.36
//	                           n=4   2.08    2.45   1.04   2.47
//	                           n=8   2.68    2.72   1.51   2.30
//
// (The default build's "tiled" and "chosen" benchmarks run the same code;
// their ratios differ by up to 0.2, which is the noise.) In GB/s, float32
// n=8 at 64 KiB per input: passes 21.2, tiled 20.6
// (default build), fused 69.8 (SIMD build); at 16 MiB: 8.3, 9.2 and 17.0.
// Tiling in plain Go is a small win at best (the kernels, not memory, bound
// it in cache); the fused AVX2 kernel is 2-3.4x the engine's old approach
// at its 64 KiB parts and ~2-2.5x at memory-bound sizes for n >= 4. The
// 1 MiB column (inputs and dst spill out of L2 into L3) is the noisiest
// and the least favourable.
//
// # Measurements
//
// The tables below are the kernels of the default build. Intel Xeon @ 2.5 GHz (2 shared vCPUs, AVX-512 capable, Go 1.26,
// GOAMD64=v1), GB/s counting the bytes of dst and src (2 × vector size per
// call); vector sizes Small 1 KiB, Medium 256 KiB, Large 4 MiB, Huge
// 64 MiB. Median of 9 interleaved rounds, best round in parentheses; the
// machine is shared with other builds, so medians are noisy and the best
// round shows the uncontended speed. Produced by
//
//	cd internal/reduce && go test -c -o /tmp/reduce.test . &&
//	for r in 1 2 3 4 5 6 7 8 9; do
//	  /tmp/reduce.test -test.run '^$' -test.bench '^Benchmark(Float|Div)(32|64)$' \
//	    -test.benchtime 100ms -test.cpu 1
//	done > /tmp/bench.txt && benchstat /tmp/bench.txt  # golang.org/x/perf/cmd/benchstat
//
// (-test.bench Impl runs the alternatives, BenchmarkCutoff the short-slice
// cutoffs.) The chosen kernels:
//
//	                 Small        Medium       Large        Huge
//	Float32 sum      18.9 (23.7)  20.1 (36.7)  16.1 (19.5)   8.0 ( 9.8)
//	Float32 prod     12.0 (14.5)  11.2 (15.7)   9.8 (12.4)   7.7 ( 7.9)
//	Float32 min       8.6 ( 9.2)   9.4 (10.0)   4.9 ( 8.2)   5.6 ( 6.9)
//	Float32 max       5.2 ( 7.1)   4.3 ( 7.7)   4.0 ( 6.6)   4.7 ( 6.1)
//	Float64 sum      30.1 (35.5)  28.4 (38.8)  17.6 (22.4)   9.2 ( 9.8)
//	Float64 prod     25.4 (26.7)  24.0 (27.1)  17.0 (18.6)   8.6 ( 9.2)
//	Float64 min      16.5 (17.1)  17.9 (19.9)  11.7 (15.2)   7.8 ( 8.4)
//	Float64 max      12.8 (13.3)  13.4 (14.7)  10.5 (12.6)   7.7 ( 8.1)
//	Div32             8.0 ( 8.1)   8.0 ( 8.2)   7.8 ( 8.0)   7.3 ( 7.5)
//	Div64            20.1 (21.6)  23.7 (24.0)  22.1 (23.4)  14.6 (15.7)
//
// Max is slower than Min because the compiler implements max(a, b) as
// -min(-a, -b) (three extra sign flips per element).
//
// The alternatives, same format, 7 rounds (Impl32/64 = float32/float64;
// "chosen" is the kernel in use, which for these sizes takes the same path as
// saxpy / floatsAdd / floatsDiv; MinMax "steady" is max with a src that
// dst already dominates, the best case for branches, "random" alternates
// max and min over fresh windows of random data, the worst case):
//
//	                                 Small        Medium       Large        Huge
//	SumImpl32/loop                    11.6 (13.8)  10.8 (15.4)   8.3 (12.9)   7.2 ( 8.2)
//	SumImpl32/unroll4                 13.3 (14.8)  12.9 (15.8)   8.4 (11.8)   7.0 ( 8.1)
//	SumImpl32/blas32                  19.9 (22.9)  19.0 (38.0)  16.1 (22.8)   9.5 ( 9.8)
//	SumImpl32/saxpy                   26.8 (27.9)  35.0 (38.2)  17.5 (20.2)   8.5 ( 9.7)
//	SumImpl32/chosen                  19.3 (27.4)  20.1 (36.6)  16.7 (22.0)   8.4 ( 9.9)
//	SumImpl64/loop                    18.6 (25.1)  19.6 (26.5)  14.1 (19.0)   8.1 ( 9.4)
//	SumImpl64/unroll4                 22.7 (23.5)  24.5 (26.5)  15.6 (18.6)   8.0 ( 9.9)
//	SumImpl64/floatsAdd               39.3 (43.0)  33.4 (40.3)  20.7 (22.9)   9.7 (11.1)
//	SumImpl64/daxpy                   38.9 (40.7)  36.9 (40.2)  20.4 (22.2)   8.8 (11.0)
//	SumImpl64/chosen                  33.8 (43.7)  34.4 (39.8)  21.7 (23.0)   9.4 (10.2)
//	ProdImpl32/loop                   13.7 (14.0)  15.2 (16.0)  10.9 (13.0)   7.6 ( 8.0)
//	ProdImpl32/unroll4                13.6 (14.8)  14.6 (16.1)  11.9 (13.0)   7.8 ( 8.1)
//	ProdImpl32/unroll8                11.9 (13.6)  12.1 (15.7)  10.0 (12.3)   7.2 ( 8.1)
//	ProdImpl64/loop                   20.2 (25.0)  21.6 (25.7)  14.6 (19.1)   8.6 ( 9.0)
//	ProdImpl64/unroll4                22.5 (23.7)  25.1 (27.1)  17.0 (19.7)   8.8 ( 9.2)
//	ProdImpl64/unroll8                24.9 (27.0)  23.9 (25.0)  15.2 (18.0)   8.4 ( 9.4)
//	DivImpl32/loop                     7.8 ( 8.0)   7.6 ( 8.1)   7.6 ( 8.0)   6.9 ( 7.3)
//	DivImpl32/unroll4                  7.9 ( 8.1)   7.8 ( 8.1)   7.3 ( 7.8)   7.0 ( 7.4)
//	DivImpl64/loop                    11.8 (12.1)  11.8 (12.2)  11.1 (11.9)   9.7 (10.5)
//	DivImpl64/unroll4                 12.0 (12.1)  11.7 (12.0)  11.4 (11.6)   9.8 (10.3)
//	DivImpl64/floatsDiv               17.3 (22.1)  20.4 (23.6)  20.0 (22.2)  12.5 (15.6)
//	DivImpl64/chosen                  17.0 (20.8)  20.3 (23.0)  20.6 (22.7)  12.3 (16.0)
//	MinMaxImpl32/builtin/steady        3.8 ( 6.1)   3.5 ( 6.5)   3.6 ( 6.1)   3.6 ( 6.1)
//	MinMaxImpl32/builtin/random        4.0 ( 6.4)   4.1 ( 7.4)   3.7 ( 6.5)   3.7 ( 5.8)
//	MinMaxImpl32/builtin4/steady       4.3 ( 7.1)   3.9 ( 7.4)   3.6 ( 6.5)   3.8 ( 6.1)
//	MinMaxImpl32/builtin4/random       5.1 ( 7.5)   4.8 ( 8.6)   4.6 ( 7.6)   4.3 ( 6.9)
//	MinMaxImpl32/branch/steady         2.7 ( 4.5)   2.6 ( 4.5)   2.8 ( 4.2)   2.3 ( 4.1)
//	MinMaxImpl32/branch/random         2.5 ( 4.1)   1.2 ( 1.4)   1.1 ( 1.3)   1.9 ( 2.4)
//	MinMaxImpl64/builtin/steady       10.2 (12.0)  13.2 (13.5)  10.9 (12.5)   6.3 ( 7.9)
//	MinMaxImpl64/builtin/random        8.8 (10.8)  13.1 (14.9)  12.9 (13.0)   7.7 ( 8.6)
//	MinMaxImpl64/builtin4/steady      12.1 (12.9)  14.3 (15.2)   9.2 (12.1)   7.7 ( 8.4)
//	MinMaxImpl64/builtin4/random       9.0 (13.3)   9.3 (17.4)  10.0 (15.0)   6.9 ( 8.8)
//	MinMaxImpl64/branch/steady         6.0 ( 8.7)   6.3 ( 9.7)   5.0 ( 8.1)   5.9 ( 7.1)
//	MinMaxImpl64/branch/random         7.8 ( 8.3)   2.8 ( 2.9)   2.3 ( 2.6)   3.3 ( 3.9)
package reduce

//go:generate go run gen_simd.go
