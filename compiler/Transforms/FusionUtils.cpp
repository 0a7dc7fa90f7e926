//===- FusionUtils.cpp - shared helpers of the fusion passes --------------===//

#include "compiler/Transforms/FusionUtils.h"

using namespace mlir;
using namespace mlir::decoder;

namespace decc {

FusedLinearOp asFusedLinear(RewriterBase &rewriter, Operation *op) {
  if (auto fused = dyn_cast<FusedLinearOp>(op))
    return fused;
  OpBuilder::InsertionGuard guard(rewriter);
  rewriter.setInsertionPoint(op);
  if (auto linear = dyn_cast<LinearOp>(op)) {
    auto fused = FusedLinearOp::create(
        rewriter, linear.getLoc(), linear.getResultTypes(), linear.getInput(),
        linear.getWeight(), linear.getBias(), Value(), Value(), Value(),
        Value(), Value(), linear.getPacking(), {}, {}, {}, {}, {});
    rewriter.replaceOp(linear, fused.getResults());
    return fused;
  }
  if (auto head = dyn_cast<LMHeadOp>(op)) {
    auto fused = FusedLinearOp::create(
        rewriter, head.getLoc(), TypeRange{head.getType()}, head.getInput(),
        head.getWeight(), Value(), Value(), Value(), Value(), Value(), Value(),
        Packing::Concat, {}, {}, {}, {}, {});
    rewriter.replaceOp(head, fused.getResults());
    return fused;
  }
  return {};
}

bool hasFreeEpilogue(FusedLinearOp op) {
  return !op.getActivation() && !op.getResidual() && !op.getCache();
}

FusedLinearOp cloneFusedLinear(RewriterBase &rewriter, FusedLinearOp op,
                               TypeRange results) {
  OperationState state(op.getLoc(), op->getName());
  state.addOperands(op->getOperands());
  state.addAttributes(op->getAttrs());
  state.addTypes(results);
  OpBuilder::InsertionGuard guard(rewriter);
  rewriter.setInsertionPoint(op);
  return cast<FusedLinearOp>(rewriter.create(state));
}

} // namespace decc
