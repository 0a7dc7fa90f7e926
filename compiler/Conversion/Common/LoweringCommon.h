//===- LoweringCommon.h - what the CPU and GPU lowerings share --*- C++ -*-===//

#ifndef DECC_CONVERSION_COMMON_LOWERINGCOMMON_H
#define DECC_CONVERSION_COMMON_LOWERINGCOMMON_H

#include "compiler/Conversion/Common/KernelBuilder.h"
#include "compiler/Conversion/Common/ManifestAttr.h"
#include "compiler/Conversion/Common/WeightArena.h"

#include "Decoder/DecoderOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"

namespace decc {

/// Features per token of an activation: every dimension but the first.
inline int64_t featuresPerToken(mlir::Value v) {
  auto type = mlir::cast<mlir::RankedTensorType>(v.getType());
  int64_t n = 1;
  for (int64_t d : type.getShape().drop_front())
    n *= d;
  return n;
}

/// Each value's last reader in `block` (straight-line `@forward`): where a
/// lowering frees the value's buffer.
inline llvm::DenseMap<mlir::Value, mlir::Operation *>
lastUses(mlir::Block &block) {
  llvm::DenseMap<mlir::Value, mlir::Operation *> last;
  for (mlir::Operation &op : block)
    for (mlir::Value operand : op.getOperands())
      last[operand] = &op;
  return last;
}

/// The first key a query whose keys end (exclusive) at `end` sees: 0, or
/// end - window with a sliding window.
inline mlir::Value windowBegin(KernelBuilder &kb,
                               mlir::decoder::AttentionConfigAttr c,
                               mlir::Value end) {
  mlir::Value begin = kb.index(0);
  if (c.getSlidingWindow() > 0) {
    mlir::Value w = kb.index(c.getSlidingWindow());
    mlir::Value far = mlir::arith::CmpIOp::create(
        kb.builder(), mlir::arith::CmpIPredicate::ugt, end, w);
    begin =
        mlir::arith::SelectOp::create(kb.builder(), far, kb.sub(end, w), begin);
  }
  return begin;
}

/// The `@forward` a lowering replaces, or an error on the module.
inline mlir::func::FuncOp findForward(mlir::ModuleOp module) {
  auto forward = module.lookupSymbol<mlir::func::FuncOp>("forward");
  if (!forward) {
    module.emitError() << "no func.func @forward to lower";
    return {};
  }
  if ((forward.getNumArguments() != 3 && forward.getNumArguments() != 4) ||
      forward.getNumResults() != 1 ||
      !mlir::isa<mlir::decoder::KVCacheType>(
          forward.getArgument(2).getType())) {
    forward.emitOpError() << "expected @forward(tokens, positions, cache[, "
                             "image rows]) -> logits";
    return {};
  }
  return forward;
}

/// Records the manifest both backends write on the module: the cache's
/// shape, the vocabulary, when Phi-3 re-encodes, the weight arena, for
/// CUDA the launch plan, and the vision encoder's shape where there is one.
inline void
setManifest(mlir::ModuleOp module, mlir::func::FuncOp forward,
            int64_t reencodeAt, WeightArena &arena, contract::Target target,
            std::optional<contract::Plan> plan = std::nullopt,
            std::optional<contract::VisionShape> vision = std::nullopt,
            std::optional<contract::VisionPlan> visionPlan = std::nullopt) {
  auto cache =
      mlir::cast<mlir::decoder::KVCacheType>(forward.getArgument(2).getType());
  contract::Manifest manifest;
  manifest.target = target;
  manifest.cache = {cache.getLayers(), cache.getKvHeads(), cache.getHeadDim(),
                    dtypeOf(cache.getElement())};
  manifest.vocab =
      mlir::cast<mlir::RankedTensorType>(forward.getResultTypes()[0])
          .getDimSize(1);
  manifest.reencodeAtLength = reencodeAt;
  forward.walk([&](mlir::Operation *op) {
    for (mlir::NamedAttribute a : op->getAttrs()) {
      auto rope = mlir::dyn_cast<mlir::decoder::RoPEAttr>(a.getValue());
      int64_t length = 0;
      if (rope && rope.getKind() == mlir::decoder::RoPEKind::LongRoPE &&
          rope.getShortFactor() != rope.getLongFactor())
        length = rope.getOriginalMaxPositions() + 1;
      else if (rope && rope.getKind() == mlir::decoder::RoPEKind::Dynamic)
        length = rope.getMaxPositions() + 1;
      if (length &&
          (!manifest.batchedLength || length < manifest.batchedLength))
        manifest.batchedLength = length;
    }
  });
  manifest.plan = std::move(plan);
  manifest.vision = vision;
  manifest.visionPlan = std::move(visionPlan);
  arena.addToManifest(manifest);
  setManifestAttr(module, manifest);
}

/// Runs `Lowering(module, forward).run()` on the module's `@forward`.
template <typename Lowering, typename... Options>
mlir::LogicalResult lowerForward(mlir::ModuleOp module, Options... options) {
  mlir::func::FuncOp forward = findForward(module);
  if (!forward)
    return mlir::failure();
  return Lowering(module, forward, options...).run();
}

} // namespace decc

#endif // DECC_CONVERSION_COMMON_LOWERINGCOMMON_H
