//===- Backend.cpp - what every backend shares ----------------------------===//

#include "runtime/Backend.h"

#include "runtime/Error.h"

namespace decc::rt {

Backend::~Backend() = default;

void Backend::setImageRows(const float *, int64_t) {
  throw Error("this model's backend takes no image (its vision encoder has "
              "CPU kernels only)");
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
