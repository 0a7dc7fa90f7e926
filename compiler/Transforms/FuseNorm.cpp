//===- FuseNorm.cpp - normalization into the following projections --------===//

#include "compiler/Transforms/FusionUtils.h"
#include "compiler/Transforms/Passes.h"

#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace decc {
#define GEN_PASS_DEF_FUSENORM
#include "compiler/Transforms/Passes.h.inc"
} // namespace decc

using namespace mlir;
using namespace mlir::decoder;

namespace {

/// Every user reads `norm` as the input of a projection without a prologue.
bool onlyProjectionsRead(Value norm) {
  return !norm.use_empty() && llvm::all_of(norm.getUses(), [](OpOperand &use) {
    Operation *user = use.getOwner();
    if (use.getOperandNumber() != 0)
      return false;
    if (auto fused = dyn_cast<FusedLinearOp>(user))
      return !fused.getNorm();
    return isa<LinearOp, LMHeadOp>(user);
  });
}

template <typename NormOp> struct FuseNormPattern : OpRewritePattern<NormOp> {
  using OpRewritePattern<NormOp>::OpRewritePattern;
  LogicalResult matchAndRewrite(NormOp op,
                                PatternRewriter &rewriter) const override {
    if (!onlyProjectionsRead(op.getResult()))
      return rewriter.notifyMatchFailure(op, "a user is not a projection");
    NormKind kind =
        std::is_same_v<NormOp, RMSNormOp> ? NormKind::RMS : NormKind::Layer;
    Value bias;
    if constexpr (std::is_same_v<NormOp, LayerNormOp>)
      bias = op.getBias();
    SmallVector<Operation *> users(op->getUsers());
    for (Operation *user : users) {
      FusedLinearOp fused = decc::asFusedLinear(rewriter, user);
      rewriter.modifyOpInPlace(fused, [&] {
        fused.getInputMutable().assign(op.getInput());
        fused.getNormWeightMutable().assign(op.getWeight());
        if (bias)
          fused.getNormBiasMutable().assign(bias);
        fused.setNorm(kind);
        fused.setNormEpsilonAttr(op.getEpsilonAttr());
      });
    }
    rewriter.eraseOp(op);
    return success();
  }
};

struct FuseNormPass : decc::impl::FuseNormBase<FuseNormPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<FuseNormPattern<RMSNormOp>, FuseNormPattern<LayerNormOp>>(
        &getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};

} // namespace
