//===- Manifest.h - what decc tells the runtime about a model ---*- C++ -*-===//
//
// decc embeds a JSON manifest in every executable (`decc_manifest()`): the
// layout of the weight arena (for each kernel operand, which checkpoint
// tensors fill it, in which row layout and dtype), the KV-cache shape and
// the model's constants. The runtime executes it once at load.
//
//===----------------------------------------------------------------------===//

#ifndef DECC_RUNTIME_MANIFEST_H
#define DECC_RUNTIME_MANIFEST_H

#include "runtime/Safetensors.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace decc::rt {

/// InternLM2's wqkv: rows grouped per KV head as [q x group | k | v].
struct KVGroupedLayout {
  int64_t qHeads = 0, kvHeads = 0, headDim = 0;
};

struct WeightPart {
  std::string tensor;
  std::vector<int64_t> shape;
  std::optional<KVGroupedLayout> kvGrouped;
};

/// One kernel operand: `parts` stacked along rows, stored at `offset` of the
/// arena as `dtype`.
struct WeightSlot {
  int64_t offset = 0;
  std::vector<int64_t> shape;
  DType dtype = DType::F32;
  std::vector<WeightPart> parts;
  /// A table of constants the compiler computed (RoPE frequencies, ALiBi
  /// slopes), written as is; no checkpoint tensor.
  std::vector<float> values;
  int64_t numElements() const;
};

struct Manifest {
  int64_t arenaBytes = 0;
  /// Weight bytes one decode step streams (all but gathered tables).
  int64_t streamedBytesPerToken = 0;
  std::vector<WeightSlot> weights;
  int64_t layers = 0, kvHeads = 0, headDim = 0;
  /// What the KV cache holds: f32, or the build's half precision.
  DType cacheDType = DType::F32;
  int64_t vocab = 0;
  /// Phi-3 longrope: when the sequence first reaches this length the cache
  /// is dropped and the whole sequence re-encoded (0: never).
  int64_t reencodeAtLength = 0;
  std::string modelType, config, dtype, attention, cpu;
  int64_t maxPositions = 0;
  int64_t bos = -1;
  std::vector<int64_t> eos;
  /// "cpu" or "cuda"; for cuda the launch plan, as JSON text.
  std::string target = "cpu";
  std::string plan;

  /// Parses the embedded manifest; throws Error if it is malformed.
  static Manifest parse(const char *json);
  /// Bytes of K and V for `context` positions.
  int64_t cacheBytes(int64_t context) const;
};

} // namespace decc::rt

#endif // DECC_RUNTIME_MANIFEST_H
