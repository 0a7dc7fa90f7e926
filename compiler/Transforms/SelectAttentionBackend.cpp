//===- SelectAttentionBackend.cpp - eager or flash per attention op -------===//

#include "compiler/Transforms/Passes.h"

#include "Decoder/DecoderOps.h"

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
    std::optional<AttentionBackend> chosen;
    if (backend == "eager")
      chosen = AttentionBackend::Eager;
    else if (backend == "flash" || backend == "sdpa" ||
             backend == "flash_attention_2")
      chosen = AttentionBackend::Flash;
    else if (backend != "config") {
      getOperation()->emitError()
          << "unknown attention backend '" << backend
          << "'; accepted: eager, flash, sdpa, flash_attention_2, config";
      return signalPassFailure();
    }
    if (!chosen)
      return;
    auto select = [&](auto op) {
      AttentionConfigAttr c = op.getConfig();
      op.setConfigAttr(AttentionConfigAttr::get(
          op.getContext(), c.getNumHeads(), c.getNumKvHeads(), c.getHeadDim(),
          c.getSoftmaxScale(), c.getCausal(), c.getSlidingWindow(),
          c.getAlibiBiasMax(), c.getClipQkv(), *chosen));
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
