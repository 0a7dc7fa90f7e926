//===- ConfigLoader.h - config.json -> ModelSpec ----------------*- C++ -*-===//

#ifndef DECC_CONFIG_CONFIGLOADER_H
#define DECC_CONFIG_CONFIGLOADER_H

#include "compiler/Config/ModelSpec.h"

#include <optional>
#include <string>

namespace decc {

/// Either a spec or the one error that stopped reading it. Messages name the
/// key (with its path inside wrapper configs), the value and what is accepted.
struct SpecOrError {
  std::optional<ModelSpec> spec;
  std::string error;
  explicit operator bool() const { return spec.has_value(); }
};

/// Reads and validates a Hugging Face config.json.
SpecOrError loadModelSpec(const std::string &path);

/// Same, from text already in memory; `name` is used in messages.
SpecOrError parseModelSpec(const std::string &text, const std::string &name);

/// The normalized spec as pretty-printed JSON (`decc --emit=spec`).
std::string specToJson(const ModelSpec &spec);

} // namespace decc

#endif // DECC_CONFIG_CONFIGLOADER_H
