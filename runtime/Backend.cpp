//===- Backend.cpp - what every backend shares ----------------------------===//

#include "runtime/Backend.h"

#include "runtime/Error.h"

namespace decc::rt {

Backend::~Backend() = default;

void Backend::setImageRows(const float *, int64_t) {
  throw Error("this model has no vision encoder: it takes no image");
}

std::vector<float> Backend::encodeTiles(const std::vector<float> &, int64_t) {
  throw Error("this model's backend has no vision encoder of its own");
}

void Backend::forwardPaged(const PagedCall &, float *) {
  throw Error("this model's backend keeps one sequence's KV cache (it has "
              "no paged cache for batched decoding)");
}

int64_t pagedTableRows(const PagedCall &call) {
  int64_t n = int64_t(call.tokens.size());
  int64_t rows = call.width > 0 ? int64_t(call.table.size()) / call.width : 0;
  if (int64_t(call.positions.size()) != n || call.width < 1 ||
      (rows != 1 && rows != n) ||
      int64_t(call.table.size()) != rows * call.width || call.rows > n)
    throw Error("a paged forward call's tokens, positions and block table "
                "disagree");
  return rows;
}

Manifest readManifest(const char *json) {
  Manifest m;
  std::string error;
  if (!contract::parseManifest(json ? json : "", m, error))
    throw Error(error);
  if (!m.model)
    throw Error("manifest: the model section is missing");
  return m;
}

} // namespace decc::rt
