//===- FuseResidual.cpp - residual add into the projection epilogue -------===//

#include "compiler/Transforms/FusionUtils.h"
#include "compiler/Transforms/Passes.h"

#include "mlir/IR/Dominance.h"

namespace decc {
#define GEN_PASS_DEF_FUSERESIDUAL
#include "compiler/Transforms/Passes.h.inc"
} // namespace decc

using namespace mlir;
using namespace mlir::decoder;

namespace {

struct FuseResidualPass : decc::impl::FuseResidualBase<FuseResidualPass> {
  void runOnOperation() override {
    DominanceInfo dominance(getOperation());
    IRRewriter rewriter(&getContext());
    SmallVector<AddOp> adds;
    getOperation()->walk([&](AddOp op) { adds.push_back(op); });
    for (AddOp add : adds) {
      // Either operand may be the projection; the other is the stream.
      for (auto [proj, stream] : {std::pair(add.getRhs(), add.getLhs()),
                                  std::pair(add.getLhs(), add.getRhs())}) {
        Operation *def = proj.getDefiningOp();
        if (!isa_and_nonnull<LinearOp, FusedLinearOp>(def) ||
            def->getNumResults() != 1 || !proj.hasOneUse() ||
            !dominance.properlyDominates(stream, def))
          continue;
        if (auto linear = dyn_cast<LinearOp>(def);
            linear && linear.getPacking() != Packing::Concat)
          continue;
        if (auto fused = dyn_cast<FusedLinearOp>(def);
            fused && !decc::hasFreeEpilogue(fused))
          continue;
        FusedLinearOp fused = decc::asFusedLinear(rewriter, def);
        Value residual = stream;
        rewriter.modifyOpInPlace(
            fused, [&] { fused.getResidualMutable().assign(residual); });
        rewriter.replaceOp(add, fused.getResult(0));
        break;
      }
    }
  }
};

} // namespace
