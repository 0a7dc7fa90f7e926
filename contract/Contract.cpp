//===- Contract.cpp - spellings both sides of the contract use ------------===//

#include "contract/Contract.h"

namespace decc::contract {

const char *spelling(DType dtype) {
  switch (dtype) {
  case DType::F32:
    return "f32";
  case DType::BF16:
    return "bf16";
  case DType::F16:
    return "f16";
  }
  return "?";
}

std::optional<DType> parseDType(std::string_view text) {
  for (DType d : {DType::F32, DType::BF16, DType::F16})
    if (text == spelling(d))
      return d;
  return std::nullopt;
}

int64_t byteSize(DType dtype) { return dtype == DType::F32 ? 4 : 2; }

const char *spelling(AttentionBackend backend) {
  return backend == AttentionBackend::Eager ? "eager" : "flash";
}

std::optional<AttentionBackend> parseAttentionBackend(std::string_view text) {
  if (text == "eager")
    return AttentionBackend::Eager;
  if (text == "flash" || text == "sdpa" || text == "flash_attention_2" ||
      text == "flash_attention_3" || text == "flex_attention")
    return AttentionBackend::Flash;
  return std::nullopt;
}

} // namespace decc::contract
