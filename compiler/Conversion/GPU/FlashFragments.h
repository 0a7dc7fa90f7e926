//===- FlashFragments.h - online softmax on mma fragments ------*- C++ -*-===//
//
// What the two prompt attention kernels (GPUAttention.cpp's 16-query block,
// GPUAttentionTiled.cpp's 64-query block) do alike on a warp's S fragments:
// a lane holds two query rows (g and g + 8 of the warp's 16) and, of each
// 8-key tile, keys 2t and 2t + 1 (GPUMma.h's C layout).
//
//===----------------------------------------------------------------------===//

#ifndef DECC_CONVERSION_GPU_FLASHFRAGMENTS_H
#define DECC_CONVERSION_GPU_FLASHFRAGMENTS_H

#include "compiler/Conversion/Common/KernelBuilder.h"

#include "llvm/ADT/SmallVector.h"

namespace decc::gpulowering {

/// This lane's two query rows: their positions, the first key each sees
/// (sliding window), ALiBi's slope of the head (null without ALiBi) and the
/// softmax scale.
struct FlashRows {
  mlir::Value pos[2], begin[2];
  mlir::Value slope;
  double scale = 1.0;
};

/// The first query row of this block, `rows` a block along y, the blocks
/// of the latest queries (the most keys) first.
mlir::Value latestFirstBlockRow(KernelBuilder &kb, int64_t rows);
/// The position of prompt token `token` (index) from `positions` (i64).
mlir::Value tokenPosition(KernelBuilder &kb, mlir::Value positions,
                          mlir::Value token);

/// 2^x to about 2 ulp (ex2.approx.ftz; a subnormal result is 0): the
/// kernels keep scores in base 2, so each exponential is one MUFU op.
mlir::Value flashExp2(KernelBuilder &kb, mlir::Value x);

/// Row r's score of `key` from the product `s` in base 2 (times log2 e):
/// scaled, ALiBi's bias added, -inf outside [begin, pos] (unless not
/// `bounded`: a tile known to lie inside every row's window).
mlir::Value flashScore(KernelBuilder &kb, const FlashRows &rows, int r,
                       mlir::Value s, mlir::Value key, bool bounded = true);

/// One online-softmax step of both rows over a tile's scores.
struct FlashStep {
  /// New max of row 0 and 1 (over the quad; base 2), this lane's part of
  /// the sums.
  llvm::SmallVector<mlir::Value> stats;
  /// 2^(score - max), in the order of the scores.
  llvm::SmallVector<mlir::Value> p[2];
  /// 2^(old max - new max): what the output so far is scaled by.
  mlir::Value correction[2];
};
/// `stats`: max 0, max 1, sum 0, sum 1 before the tile; `scores[r]`: row
/// r's scores, two per 8-key tile.
FlashStep flashSoftmaxStep(KernelBuilder &kb, mlir::ValueRange stats,
                           llvm::ArrayRef<mlir::Value> scores0,
                           llvm::ArrayRef<mlir::Value> scores1);

/// P's A fragment of keys 16m .. 16m + 15 (S tiles 2m and 2m + 1) in
/// `element` pairs, for P.V on m16n8k16.
llvm::SmallVector<mlir::Value> flashPFragment(KernelBuilder &kb,
                                              const FlashStep &step, int64_t m,
                                              mlir::Type element);

} // namespace decc::gpulowering

#endif // DECC_CONVERSION_GPU_FLASHFRAGMENTS_H
