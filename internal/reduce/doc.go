// Package reduce implements the elementwise reduction kernels of the
// collective operations: dst[i] = dst[i] ⊕ src[i] for ⊕ in Sum, Prod, Min
// and Max over float32 and float64 slices, and the division by the world
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
// dst and src may be the same slice (x ⊕ x) but must not otherwise
// overlap. The functions do not allocate, except that Div64 allocates
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
// gonum.org/v1/gonum has amd64 assembly only; on other architectures (and
// with its noasm tag) it falls back to Go loops, which give the same bits
// (an FMA of x*1+y, which the compiler may form on arm64, rounds once,
// exactly as x+y).
//
// # Measurements
//
// Intel Xeon @ 2.5 GHz (2 shared vCPUs, AVX-512 capable, Go 1.26,
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
