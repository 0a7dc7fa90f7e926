//===- FuseActivation.cpp - activation into the projection epilogue -------===//

#include "compiler/Transforms/FusionUtils.h"
#include "compiler/Transforms/Passes.h"

#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace decc {
#define GEN_PASS_DEF_FUSEACTIVATION
#include "compiler/Transforms/Passes.h.inc"
} // namespace decc

using namespace mlir;
using namespace mlir::decoder;

namespace {

/// The projection defining `v`, if its epilogue is free and `v` is its only
/// used value besides `others`.
Operation *freeProjection(Value v) {
  Operation *def = v.getDefiningOp();
  if (!isa_and_nonnull<LinearOp, FusedLinearOp>(def))
    return nullptr;
  if (auto fused = dyn_cast<FusedLinearOp>(def))
    if (!decc::hasFreeEpilogue(fused))
      return nullptr;
  if (auto linear = dyn_cast<LinearOp>(def))
    if (linear.getPacking() != Packing::Concat)
      return nullptr;
  return def;
}

/// swiglu(gate, up) of one packed projection `[gate | up]`.
struct FuseSwiGLU : OpRewritePattern<SwiGLUOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(SwiGLUOp op,
                                PatternRewriter &rewriter) const override {
    Operation *def = freeProjection(op.getGate());
    if (!def || def != op.getUp().getDefiningOp() ||
        def->getNumResults() != 2 || op.getGate() != def->getResult(0) ||
        op.getUp() != def->getResult(1) || !op.getGate().hasOneUse() ||
        !op.getUp().hasOneUse())
      return rewriter.notifyMatchFailure(op, "not silu(gate) * up of one "
                                             "packed projection");
    FusedLinearOp fused = decc::asFusedLinear(rewriter, def);
    FusedLinearOp act =
        decc::cloneFusedLinear(rewriter, fused, TypeRange{op.getType()});
    act.setActivation(Activation::SwiGLU);
    rewriter.replaceOp(op, act.getResult(0));
    rewriter.eraseOp(fused);
    return success();
  }
};

/// gelu(x W^T).
struct FuseGelu : OpRewritePattern<GeluOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(GeluOp op,
                                PatternRewriter &rewriter) const override {
    Operation *def = freeProjection(op.getInput());
    if (!def || def->getNumResults() != 1 || !op.getInput().hasOneUse())
      return rewriter.notifyMatchFailure(op, "input is not a projection");
    FusedLinearOp fused = decc::asFusedLinear(rewriter, def);
    fused.setActivation(op.getApproximate() == GeluApproximation::Tanh
                            ? Activation::GeluTanh
                            : Activation::Gelu);
    rewriter.replaceOp(op, fused.getResult(0));
    return success();
  }
};

struct FuseActivationPass : decc::impl::FuseActivationBase<FuseActivationPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<FuseSwiGLU, FuseGelu>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};

} // namespace
