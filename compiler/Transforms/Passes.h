//===- Passes.h - decoder -> decoder passes ---------------------*- C++ -*-===//

#ifndef DECC_TRANSFORMS_PASSES_H
#define DECC_TRANSFORMS_PASSES_H

#include "Decoder/DecoderDialect.h"
#include "contract/Contract.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

#include <utility>

namespace decc {

/// What decoder-select-attention-backend does: keep each op's backend (the
/// config's), or set one backend for every op.
enum class AttentionChoice {
  Config = -1,
  Eager = int(contract::AttentionBackend::Eager),
  Flash = int(contract::AttentionBackend::Flash)
};

namespace detail {
template <size_t... I>
llvm::cl::ValuesClass attentionChoiceValues(std::index_sequence<I...>) {
  using contract::kAttentionBackendNames;
  return llvm::cl::values(
      llvm::cl::OptionEnumValue{"config", int(AttentionChoice::Config),
                                "each op keeps its config's backend"},
      llvm::cl::OptionEnumValue{kAttentionBackendNames[I].name,
                                int(kAttentionBackendNames[I].backend), ""}...);
}
} // namespace detail

/// The option's values: `config` and every name of contract's list.
inline llvm::cl::ValuesClass attentionChoiceValues() {
  return detail::attentionChoiceValues(
      std::make_index_sequence<std::size(contract::kAttentionBackendNames)>());
}

#define GEN_PASS_DECL
#include "compiler/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "compiler/Transforms/Passes.h.inc"

} // namespace decc

#endif // DECC_TRANSFORMS_PASSES_H
