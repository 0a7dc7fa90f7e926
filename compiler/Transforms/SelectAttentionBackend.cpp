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
    if (backend == "config")
      return;
    // decc's spellings and Hugging Face's, as everywhere (contract/).
    std::optional<decc::contract::AttentionBackend> named =
        decc::contract::parseAttentionBackend(backend);
    if (!named) {
      getOperation()->emitError()
          << "unknown attention backend '" << backend << "'; accepted: "
          << decc::contract::kAttentionBackendSpellings << ", config";
      return signalPassFailure();
    }
    AttentionBackend chosen =
        *symbolizeAttentionBackend(decc::contract::spelling(*named));
    auto select = [&](auto op) {
      AttentionConfigAttr c = op.getConfig();
      op.setConfigAttr(AttentionConfigAttr::get(
          op.getContext(), c.getNumHeads(), c.getNumKvHeads(), c.getHeadDim(),
          c.getSoftmaxScale(), c.getCausal(), c.getSlidingWindow(),
          c.getAlibiBiasMax(), c.getClipQkv(), chosen));
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
