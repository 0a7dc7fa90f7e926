//===- SelectAttentionBackend.cpp - eager or flash per attention op -------===//

#include "compiler/Transforms/Passes.h"

#include "Decoder/DecoderOps.h"
#include "contract/Contract.h"

namespace decc {
#define GEN_PASS_DEF_SELECTATTENTIONBACKEND
#include "compiler/Transforms/Passes.h.inc"
} // namespace decc

using namespace mlir;
using namespace mlir::decoder;

namespace {

struct SelectAttentionBackendPass
    : decc::impl::SelectAttentionBackendBase<SelectAttentionBackendPass> {
  using Base::Base;

  void runOnOperation() override {
    if (backend == decc::AttentionChoice::Config)
      return;
    // The option's values are contract's names (attentionChoiceValues).
    AttentionBackend chosen = *symbolizeAttentionBackend(
        decc::contract::spelling(decc::contract::AttentionBackend(
            int(decc::AttentionChoice(backend)))));
    auto select = [&](auto op) {
      AttentionConfigAttr c = op.getConfig();
      op.setConfigAttr(AttentionConfigAttr::get(
          op.getContext(), c.getNumHeads(), c.getNumKvHeads(), c.getHeadDim(),
          c.getSoftmaxScale(), c.getCausal(), c.getSlidingWindow(),
          c.getAlibiBiasMax(), c.getAlibiHeads(), c.getClipQkv(), chosen));
    };
    getOperation()->walk([&](Operation *op) {
      if (auto attention = dyn_cast<AttentionOp>(op))
        select(attention);
      else if (auto cached = dyn_cast<CachedAttentionOp>(op))
        select(cached);
    });
  }
};

} // namespace
