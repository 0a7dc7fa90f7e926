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

std::optional<int64_t> checkedProduct(std::initializer_list<int64_t> factors) {
  int64_t product = 1;
  for (int64_t f : factors)
    if (f < 0 || __builtin_mul_overflow(product, f, &product))
      return std::nullopt;
  return product;
}

const char *spelling(AttentionBackend backend) {
  return backend == AttentionBackend::Eager ? "eager" : "flash";
}

std::optional<AttentionBackend> parseAttentionBackend(std::string_view text) {
  for (const AttentionBackendName &n : kAttentionBackendNames)
    if (text == n.name)
      return n.backend;
  return std::nullopt;
}

std::string attentionBackendSpellings() {
  std::string list;
  for (const AttentionBackendName &n : kAttentionBackendNames)
    list += (list.empty() ? "" : ", ") + std::string(n.name);
  return list;
}

} // namespace decc::contract
