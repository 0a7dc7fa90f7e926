//===- FuseRoPEKVAppend.cpp - RoPE and cache append into the QKV projection
//===//

#include "compiler/Transforms/FusionUtils.h"
#include "compiler/Transforms/Passes.h"

#include "mlir/IR/Dominance.h"

namespace decc {
#define GEN_PASS_DEF_FUSEROPEKVAPPEND
#include "compiler/Transforms/Passes.h.inc"
} // namespace decc

using namespace mlir;
using namespace mlir::decoder;

namespace {

/// Looks through a single-use `decoder.rope` at `positions`; returns the
/// rotated value's source and the rope (null if `v` is not rotated).
std::pair<Value, RoPEOp> peelRoPE(Value v, Value positions) {
  if (auto rope = v.getDefiningOp<RoPEOp>())
    if (rope.getPositions() == positions && rope->hasOneUse())
      return {rope.getInput(), rope};
  return {v, RoPEOp()};
}

LogicalResult fuse(IRRewriter &rewriter, DominanceInfo &dominance,
                   AttentionOp attention) {
  Value positions = attention.getPositions();
  auto [q, qRope] = peelRoPE(attention.getQuery(), positions);
  auto [k, kRope] = peelRoPE(attention.getKey(), positions);
  Value v = attention.getValue();
  Operation *proj = v.getDefiningOp();
  if (!isa_and_nonnull<LinearOp, FusedLinearOp>(proj) ||
      proj->getNumResults() != 3 || q != proj->getResult(0) ||
      k != proj->getResult(1) || v != proj->getResult(2))
    return failure();
  if (bool(qRope) != bool(kRope) ||
      (qRope && qRope.getRope() != kRope.getRope()))
    return failure();
  if (!llvm::all_of(proj->getResults(), [](Value r) { return r.hasOneUse(); }))
    return failure();
  if (auto fused = dyn_cast<FusedLinearOp>(proj);
      fused && !decc::hasFreeEpilogue(fused))
    return failure();
  if (!dominance.properlyDominates(positions, proj) ||
      !dominance.properlyDominates(attention.getCache(), proj))
    return failure();

  FusedLinearOp fused = decc::asFusedLinear(rewriter, proj);
  FusedLinearOp append = decc::cloneFusedLinear(
      rewriter, fused, TypeRange{attention.getQuery().getType()});
  append.getPositionsMutable().assign(positions);
  append.getCacheMutable().assign(attention.getCache());
  append.setLayer(attention.getLayer());
  if (qRope)
    append.setRopeAttr(qRope.getRope());

  rewriter.setInsertionPoint(attention);
  auto cached = CachedAttentionOp::create(
      rewriter, attention.getLoc(), attention.getType(), append.getResult(0),
      positions, attention.getCache(), attention.getLayer(),
      attention.getConfig());
  rewriter.replaceOp(attention, cached.getResult());
  for (RoPEOp rope : {qRope, kRope})
    if (rope)
      rewriter.eraseOp(rope);
  rewriter.eraseOp(fused);
  return success();
}

struct FuseRoPEKVAppendPass
    : decc::impl::FuseRoPEKVAppendBase<FuseRoPEKVAppendPass> {
  void runOnOperation() override {
    DominanceInfo dominance(getOperation());
    IRRewriter rewriter(&getContext());
    SmallVector<AttentionOp> attentions;
    getOperation()->walk([&](AttentionOp op) { attentions.push_back(op); });
    for (AttentionOp op : attentions)
      (void)fuse(rewriter, dominance, op);
  }
};

} // namespace
