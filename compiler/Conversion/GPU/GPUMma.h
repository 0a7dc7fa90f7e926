//===- GPUMma.h - f32-accurate tensor-core steps ----------------*- C++ -*-===//
//
// The prefill kernels run on tensor cores. The goldens hold f32 to 1e-3 and
// bf16 to a 0.999 cosine with f32 references, and rounding activations to
// bf16 (or TF32) alone is not enough (bf16 activations were measured to fail
// three bf16 goldens, docs/PERF.md), so an f32 operand is split into
// hi + lo, both exact in the narrow type, and each product is the sum of 2
// or 3 mma steps (lo.hi + hi.lo + hi.hi), small terms first:
// - flash attention, where Q, K, P and V are all f32: nvgpu.mma.sync
//   m16n8k8 over TF32, about 21 bits (the "3xTF32" of CUTLASS);
// - the projections' matmul: mma.sync m16n8k16 over bf16 (twice TF32's
//   rate), 16 bits; bf16 weights are exact and not split.
//
// TF32 fragment layout, lane = 4 g + t: A (16 x 8) holds (g, t) (g+8, t)
// (g, t+4) (g+8, t+4); B (8 x 8) holds (t, g) (t+4, g); C (16 x 8) holds
// (g, 2t) (g, 2t+1) (g+8, 2t) (g+8, 2t+1). Because a sum over k may visit k
// in any order, the kernels map logical k = t and t + 4 to physical columns
// 2t and 2t + 1 of each group of 8: every lane then loads contiguous pairs,
// and a C fragment of scores is already the A fragment of P.V.
//
//===----------------------------------------------------------------------===//

#ifndef DECC_CONVERSION_GPU_GPUMMA_H
#define DECC_CONVERSION_GPU_GPUMMA_H

#include "compiler/Conversion/Common/KernelBuilder.h"

#include "llvm/ADT/SmallVector.h"

namespace decc::gpulowering {

/// g = lane / 4 (the row in A and C, the column in B), t = lane % 4.
struct MmaLane {
  mlir::Value g, t;
};
MmaLane mmaLane(KernelBuilder &kb, mlir::Value lane);

/// An operand as hi + lo, both exact TF32 (lo empty: hi is exact).
struct SplitTF32 {
  llvm::SmallVector<mlir::Value> hi, lo;
};
/// Splits f32 scalars; `exact` keeps them whole (already TF32 values).
SplitTF32 splitTF32(KernelBuilder &kb, llvm::ArrayRef<mlir::Value> values,
                    bool exact = false);

/// vector<2x2xf32> of zeros: a C fragment.
mlir::Value zeroAccumulator(KernelBuilder &kb);
/// c + a.b to about f32 precision (a: 4 A values, b: 2 B values).
mlir::Value mmaF32(KernelBuilder &kb, const SplitTF32 &a, const SplitTF32 &b,
                   mlir::Value c);
/// Element `i` (0..3, in fragment order) of a C fragment.
mlir::Value accElement(KernelBuilder &kb, mlir::Value c, int64_t i);
/// A C fragment with row r (0: g, 1: g + 8) scaled by `scale[r]`.
mlir::Value scaleRows(KernelBuilder &kb, mlir::Value c, mlir::Value scale0,
                      mlir::Value scale1);

/// c + a.b for one mma.sync m16n8k16 over `element` (bf16 or f16; f32
/// accumulation): `a` is 4 registers of packed pairs (i32), `b` 2, `c` 4 f32
/// scalars in C fragment order; returns the new 4. (nvgpu.mma.sync has no
/// bf16 lowering, so this builds nvvm.mma.sync directly.)
///
/// Fragments, lane = 4 g + t: A register 0 holds row g, columns 2t and
/// 2t + 1; register 1 row g + 8, the same columns; registers 2 and 3 the
/// same rows at columns 2t + 8 and 2t + 9. B register 0 holds rows 2t and
/// 2t + 1 of column g, register 1 rows 2t + 8 and 2t + 9. The matmul maps
/// logical columns {2t, 2t+1, 2t+8, 2t+9} of a 16-column step to physical
/// ones 4t .. 4t + 3, so each register is a pair adjacent in memory.
llvm::SmallVector<mlir::Value> mmaHalf(KernelBuilder &kb,
                                       llvm::ArrayRef<mlir::Value> a,
                                       llvm::ArrayRef<mlir::Value> b,
                                       llvm::ArrayRef<mlir::Value> c,
                                       mlir::Type element);

/// A vector<2 x bf16/f16> as the i32 register mma takes.
mlir::Value pairRegister(KernelBuilder &kb, mlir::Value pair);
/// Two f32 (or `element`) values as one register of `element` pairs, `lo`
/// in the low half (the lower k index).
mlir::Value packPair(KernelBuilder &kb, mlir::Value lo, mlir::Value hi,
                     mlir::Type element);
/// A vector of four values as two registers of `element` pairs (elements
/// 0, 1 and 2, 3), rounded first when wider.
std::pair<mlir::Value, mlir::Value>
packQuad(KernelBuilder &kb, mlir::Value quad, mlir::Type element);
/// Stores a vector<2xf32> at `index` of `memref`, rounded to its element
/// type when that is narrower (a half-precision output or KV cache).
void storePair(KernelBuilder &kb, mlir::Value pair, mlir::Value memref,
               mlir::Value index);
/// Four C-fragment scalars as the vector<2x2xf32> the other helpers take.
mlir::Value accumulatorOf(KernelBuilder &kb, llvm::ArrayRef<mlir::Value> c);

} // namespace decc::gpulowering

#endif // DECC_CONVERSION_GPU_GPUMMA_H
