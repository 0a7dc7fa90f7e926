//===- FlashFragments.cpp - online softmax on mma fragments ---------------===//

#include "compiler/Conversion/GPU/FlashFragments.h"

#include "compiler/Conversion/GPU/GPULowering.h"
#include "compiler/Conversion/GPU/GPUMma.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

#include <cmath>

namespace decc::gpulowering {

using namespace mlir;

Value latestFirstBlockRow(KernelBuilder &kb, int64_t rows) {
  ImplicitLocOpBuilder &b = kb.builder();
  Value yBlocks = gpu::GridDimOp::create(b, gpu::Dimension::y);
  Value yBlock = kb.sub(kb.sub(yBlocks, kb.index(1)),
                        gpu::BlockIdOp::create(b, gpu::Dimension::y));
  return kb.mul(yBlock, kb.index(rows));
}

Value tokenPosition(KernelBuilder &kb, Value positions, Value token) {
  return kb.toIndex(
      memref::LoadOp::create(kb.builder(), positions, ValueRange{token}));
}

Value flashExp2(KernelBuilder &kb, Value x) {
  // Inline PTX without side effects, so it schedules like arithmetic:
  // math.exp2 goes through libdevice's exp2f and its denormal handling.
  return LLVM::InlineAsmOp::create(
             kb.builder(), kb.builder().getF32Type(), ValueRange{x},
             "ex2.approx.ftz.f32 $0, $1;", "=f,f", /*has_side_effects=*/false,
             /*is_align_stack=*/false, LLVM::tailcallkind::TailCallKind::None,
             LLVM::AsmDialectAttr(), ArrayAttr())
      .getResult(0);
}

Value flashScore(KernelBuilder &kb, const FlashRows &rows, int r, Value s,
                 Value key, bool bounded) {
  ImplicitLocOpBuilder &b = kb.builder();
  Value v = kb.mul(s, kb.f32(rows.scale * M_LOG2E));
  if (rows.slope)
    v = kb.add(v,
               kb.mul(kb.mul(rows.slope, kb.f32(M_LOG2E)),
                      kb.sub(kb.indexToF32(key), kb.indexToF32(rows.pos[r]))));
  if (!bounded)
    return v;
  Value valid = arith::AndIOp::create(
      b, arith::CmpIOp::create(b, arith::CmpIPredicate::ule, key, rows.pos[r]),
      arith::CmpIOp::create(b, arith::CmpIPredicate::uge, key, rows.begin[r]));
  return arith::SelectOp::create(b, valid, v, kb.f32(-INFINITY));
}

FlashStep flashSoftmaxStep(KernelBuilder &kb, ValueRange stats,
                           ArrayRef<Value> scores0, ArrayRef<Value> scores1) {
  ImplicitLocOpBuilder &b = kb.builder();
  FlashStep step;
  step.stats.resize(4);
  ArrayRef<Value> scores[2] = {scores0, scores1};
  for (int r = 0; r < 2; ++r) {
    Value mx = stats[r];
    for (Value v : scores[r])
      mx = kb.fmax(mx, v);
    step.stats[r] = shuffleReduce(kb, mx, kQuad, /*isMax=*/true);
    // A row with no key yet keeps max -inf: exponents against 0.
    Value safe = arith::SelectOp::create(
        b,
        arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, step.stats[r],
                              kb.f32(-INFINITY)),
        kb.f32(0.0), step.stats[r]);
    step.correction[r] = flashExp2(kb, kb.sub(stats[r], safe));
    Value sum = kb.mul(stats[2 + r], step.correction[r]);
    for (Value v : scores[r]) {
      Value e = flashExp2(kb, kb.sub(v, safe));
      step.p[r].push_back(e);
      sum = kb.add(sum, e);
    }
    step.stats[2 + r] = sum;
  }
  return step;
}

SmallVector<Value> flashPFragment(KernelBuilder &kb, const FlashStep &step,
                                  int64_t m, Type element) {
  const SmallVector<Value> *p = step.p;
  return {packPair(kb, p[0][4 * m], p[0][4 * m + 1], element),
          packPair(kb, p[1][4 * m], p[1][4 * m + 1], element),
          packPair(kb, p[0][4 * m + 2], p[0][4 * m + 3], element),
          packPair(kb, p[1][4 * m + 2], p[1][4 * m + 3], element)};
}

} // namespace decc::gpulowering
