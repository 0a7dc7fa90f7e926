//===- FuseProjections.cpp - pack sibling projections ---------------------===//
//
// q, k and v (or gate and up) stored as separate checkpoint tensors are read
// by separate `decoder.linear`s of one input. Packing them gives the later
// fusions one projection to work on and the kernel one pass over the input.
//
//===----------------------------------------------------------------------===//

#include "compiler/Transforms/Passes.h"

#include "Decoder/DecoderOps.h"

#include "mlir/IR/PatternMatch.h"

namespace decc {
#define GEN_PASS_DEF_FUSEPROJECTIONS
#include "compiler/Transforms/Passes.h.inc"
} // namespace decc

using namespace mlir;
using namespace mlir::decoder;

namespace {

/// A weight op with no operands can move up to where the packed weight is
/// built; anything else stays and blocks the packing.
bool canHoist(Value v) { return v && v.getDefiningOp<WeightOp>(); }

/// Packs the single-result `decoder.linear`s reading `input` in `block`, in
/// program order. Returns true if it changed the IR.
bool packSiblings(IRRewriter &rewriter, Value input) {
  SmallVector<LinearOp> siblings;
  for (Operation *user : input.getUsers())
    if (auto linear = dyn_cast<LinearOp>(user))
      if (linear.getInput() == input && linear.getNumResults() == 1 &&
          linear.getPacking() == Packing::Concat &&
          canHoist(linear.getWeight()) &&
          (!linear.getBias() || canHoist(linear.getBias())))
        siblings.push_back(linear);
  if (siblings.size() < 2)
    return false;
  Block *block = siblings.front()->getBlock();
  if (llvm::any_of(siblings, [&](LinearOp op) {
        return op->getBlock() != block ||
               op.getWeight().getType().getElementType() !=
                   siblings.front().getWeight().getType().getElementType() ||
               bool(op.getBias()) != bool(siblings.front().getBias());
      }))
    return false;
  llvm::sort(siblings,
             [](LinearOp a, LinearOp b) { return a->isBeforeInBlock(b); });

  LinearOp first = siblings.front();
  SmallVector<Value> weights, biases;
  SmallVector<Type> resultTypes;
  int64_t rows = 0;
  for (LinearOp op : siblings) {
    for (Value v : {op.getWeight(), op.getBias()})
      if (v && !v.getDefiningOp()->isBeforeInBlock(first))
        v.getDefiningOp()->moveBefore(first);
    weights.push_back(op.getWeight());
    if (op.getBias())
      biases.push_back(op.getBias());
    resultTypes.push_back(op.getResult(0).getType());
    rows += op.getWeight().getType().getDimSize(0);
  }

  rewriter.setInsertionPoint(first);
  auto pack = [&](ArrayRef<Value> parts) -> Value {
    auto type = cast<RankedTensorType>(parts.front().getType());
    SmallVector<int64_t> shape(type.getShape());
    shape[0] = rows;
    return ConcatWeightsOp::create(rewriter, first.getLoc(), type.clone(shape),
                                   parts);
  };
  Value weight = pack(weights);
  Value bias = biases.empty() ? Value() : pack(biases);
  auto packed = LinearOp::create(rewriter, first.getLoc(), resultTypes, input,
                                 weight, bias, Packing::Concat);
  for (auto [op, result] : llvm::zip(siblings, packed.getResults()))
    rewriter.replaceOp(op, result);
  return true;
}

struct FuseProjectionsPass
    : decc::impl::FuseProjectionsBase<FuseProjectionsPass> {
  void runOnOperation() override {
    IRRewriter rewriter(&getContext());
    SmallVector<Value> inputs;
    getOperation()->walk([&](LinearOp op) {
      if (!llvm::is_contained(inputs, op.getInput()))
        inputs.push_back(op.getInput());
    });
    for (Value input : inputs)
      packSiblings(rewriter, input);
  }
};

} // namespace
