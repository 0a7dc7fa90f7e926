//===- ApproximateVectorExp.cpp - polynomial exp for f32 vectors ----------===//
//
// Only vector exps are rewritten (applyOpPatternsGreedily on those ops
// alone): a scalar exp stays a libm call.
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/Passes.h"

#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace decc {
#define GEN_PASS_DEF_APPROXIMATEVECTOREXP
#include "compiler/Conversion/Passes.h.inc"
} // namespace decc

namespace decc {
namespace {

struct ApproximateVectorExpPass
    : impl::ApproximateVectorExpBase<ApproximateVectorExpPass> {
  void runOnOperation() override {
    llvm::SmallVector<mlir::Operation *> exps;
    getOperation()->walk([&](mlir::math::ExpOp op) {
      auto type = llvm::dyn_cast<mlir::VectorType>(op.getType());
      if (type && type.getElementType().isF32())
        exps.push_back(op);
    });
    if (exps.empty())
      return;
    mlir::RewritePatternSet patterns(&getContext());
    mlir::populateMathPolynomialApproximationPatterns(
        patterns, [](llvm::StringRef name) { return name == "math.exp"; });
    mlir::GreedyRewriteConfig config;
    config.setStrictness(mlir::GreedyRewriteStrictness::ExistingOps);
    if (failed(
            mlir::applyOpPatternsGreedily(exps, std::move(patterns), config)))
      signalPassFailure();
  }
};

} // namespace
} // namespace decc
