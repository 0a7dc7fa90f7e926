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
  throw Error("this model's backend keeps one sequence's KV cache (batched "
              "decoding has CPU kernels only)");
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
