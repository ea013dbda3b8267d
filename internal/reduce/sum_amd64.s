//go:build amd64

#include "textflag.h"

// func sumN32AVX2(dst, dst2 []float32, srcs [][]float32, n int)
//
// dst[i] = ((srcs[0][i] + srcs[1][i]) + srcs[2][i]) + ... for i < n, with
// n a multiple of 32 and len(srcs) >= 1: 32 floats (four YMM registers) at
// a time, loaded from srcs[0], each further input added in order, then
// stored once, and into dst2 too unless dst2 is empty. Each element sees
// the additions, in the order, of the scalar loop (the accumulator is the
// first operand of every VADDPS), so the bits are the same. srcs[0] may be
// dst.
TEXT ·sumN32AVX2(SB), NOSPLIT, $0-80
	MOVQ dst_base+0(FP), DI
	MOVQ dst2_base+24(FP), R11
	MOVQ dst2_len+32(FP), R12
	MOVQ srcs_base+48(FP), SI
	MOVQ srcs_len+56(FP), CX
	MOVQ n+72(FP), DX
	SHLQ $2, DX                // bytes
	XORQ AX, AX                // byte offset
	TESTQ DX, DX
	JEQ done32

loop32:
	MOVQ (SI), R8              // srcs[0].ptr
	VMOVUPS (R8)(AX*1), Y0
	VMOVUPS 32(R8)(AX*1), Y1
	VMOVUPS 64(R8)(AX*1), Y2
	VMOVUPS 96(R8)(AX*1), Y3
	MOVQ $1, R9

next32:
	CMPQ R9, CX
	JGE store32
	LEAQ (R9)(R9*2), R10       // 3·k: a slice header is 24 bytes
	MOVQ (SI)(R10*8), R8       // srcs[k].ptr
	VADDPS (R8)(AX*1), Y0, Y0
	VADDPS 32(R8)(AX*1), Y1, Y1
	VADDPS 64(R8)(AX*1), Y2, Y2
	VADDPS 96(R8)(AX*1), Y3, Y3
	INCQ R9
	JMP next32

store32:
	VMOVUPS Y0, (DI)(AX*1)
	VMOVUPS Y1, 32(DI)(AX*1)
	VMOVUPS Y2, 64(DI)(AX*1)
	VMOVUPS Y3, 96(DI)(AX*1)
	TESTQ R12, R12
	JEQ adv32
	VMOVUPS Y0, (R11)(AX*1)
	VMOVUPS Y1, 32(R11)(AX*1)
	VMOVUPS Y2, 64(R11)(AX*1)
	VMOVUPS Y3, 96(R11)(AX*1)

adv32:
	ADDQ $128, AX
	CMPQ AX, DX
	JLT loop32
	VZEROUPPER

done32:
	RET

// func sumN64AVX2(dst, dst2 []float64, srcs [][]float64, n int)
//
// The float64 twin of sumN32AVX2: n a multiple of 16.
TEXT ·sumN64AVX2(SB), NOSPLIT, $0-80
	MOVQ dst_base+0(FP), DI
	MOVQ dst2_base+24(FP), R11
	MOVQ dst2_len+32(FP), R12
	MOVQ srcs_base+48(FP), SI
	MOVQ srcs_len+56(FP), CX
	MOVQ n+72(FP), DX
	SHLQ $3, DX
	XORQ AX, AX
	TESTQ DX, DX
	JEQ done64

loop64:
	MOVQ (SI), R8
	VMOVUPD (R8)(AX*1), Y0
	VMOVUPD 32(R8)(AX*1), Y1
	VMOVUPD 64(R8)(AX*1), Y2
	VMOVUPD 96(R8)(AX*1), Y3
	MOVQ $1, R9

next64:
	CMPQ R9, CX
	JGE store64
	LEAQ (R9)(R9*2), R10
	MOVQ (SI)(R10*8), R8
	VADDPD (R8)(AX*1), Y0, Y0
	VADDPD 32(R8)(AX*1), Y1, Y1
	VADDPD 64(R8)(AX*1), Y2, Y2
	VADDPD 96(R8)(AX*1), Y3, Y3
	INCQ R9
	JMP next64

store64:
	VMOVUPD Y0, (DI)(AX*1)
	VMOVUPD Y1, 32(DI)(AX*1)
	VMOVUPD Y2, 64(DI)(AX*1)
	VMOVUPD Y3, 96(DI)(AX*1)
	TESTQ R12, R12
	JEQ adv64
	VMOVUPD Y0, (R11)(AX*1)
	VMOVUPD Y1, 32(R11)(AX*1)
	VMOVUPD Y2, 64(R11)(AX*1)
	VMOVUPD Y3, 96(R11)(AX*1)

adv64:
	ADDQ $128, AX
	CMPQ AX, DX
	JLT loop64
	VZEROUPPER

done64:
	RET
