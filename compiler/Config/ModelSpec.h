//===- ModelSpec.h - the validated, normalized model config -----*- C++ -*-===//
//
// What decc needs to know about a model, independent of how its config.json
// spells it. Every reader produces one; every later stage reads only this.
//
//===----------------------------------------------------------------------===//

#ifndef DECC_CONFIG_MODELSPEC_H
#define DECC_CONFIG_MODELSPEC_H

#include "contract/Contract.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace decc {

enum class Backbone { InternLM2, Phi3, MPT, Llama, Qwen2 };
enum class NormKind { RMSNorm, LayerNorm };
enum class MLPKind { SwiGLU, GELU };
// Spelled as the decoder dialect's RoPEKind (toString), which the frontend
// maps it through.
enum class RoPEKind { Default, Linear, Dynamic, LongRoPE, YaRN, Llama3 };
// One vocabulary from the config to the executable (contract/Contract.h).
using contract::AttentionBackend;

const char *toString(Backbone b);
const char *toString(NormKind k);
const char *toString(MLPKind k);
const char *toString(RoPEKind k);

/// Rotary embedding with every constant resolved (attention factors computed,
/// defaults filled in), so lowering never looks at the config again.
struct RoPESpec {
  RoPEKind kind = RoPEKind::Default;
  double theta = 10000.0;
  int64_t rotaryDim = 0;
  double factor = 1.0;
  /// dynamic: the length past which the base grows.
  int64_t maxPositions = 0;
  /// longrope / yarn / llama3: the pre-extension context length.
  int64_t originalMaxPositions = 0;
  std::vector<double> shortFactor, longFactor;
  double attentionFactor = 1.0;
  double betaFast = 32.0, betaSlow = 1.0;
  double lowFreqFactor = 1.0, highFreqFactor = 4.0;
};

/// A checkpoint published quantized (the config's `quantization_config`):
/// AWQ's GEMM format, `bits` a weight in groups of `groupSize` input
/// columns, an f16 scale and a zero point a group.
struct CheckpointQuantization {
  std::string method;
  int64_t bits = 0, groupSize = 0;
};

/// InternVL's vision encoder (InternViT) and how a picture becomes the
/// language model's tokens: `imageSize` tiles (the wrapper's
/// force_image_size) of `patchSize` patches, `minTiles`..`maxTiles` of
/// them plus a thumbnail, each tile's patch features pixel-shuffled by
/// `downsampleRatio` into the tokens that replace <IMG_CONTEXT>.
struct VisionSpec {
  std::string modelType;
  int64_t imageSize = 0, patchSize = 0, numChannels = 3;
  int64_t hiddenSize = 0, intermediateSize = 0, numLayers = 0, numHeads = 0;
  NormKind norm = NormKind::LayerNorm;
  double normEps = 1e-6;
  bool qkvBias = false, qkNormalization = false;
  double downsampleRatio = 0.5;
  int64_t minTiles = 1, maxTiles = 12, selectLayer = -1;
  bool dynamicTiles = true, useThumbnail = true, pixelShuffleV2 = true;
  std::string chatTemplate;
  /// Patches a tile is cut into: (imageSize / patchSize)^2.
  int64_t patchesPerTile() const {
    return (imageSize / patchSize) * (imageSize / patchSize);
  }
  /// Tokens a tile becomes: (imageSize / patchSize x downsampleRatio)^2.
  int64_t tokensPerTile() const {
    int64_t side = int64_t(imageSize / patchSize * downsampleRatio);
    return side * side;
  }
};

struct ModelSpec {
  /// The config file it came from and, for wrappers such as InternVL, the
  /// key holding the language model ("llm_config").
  std::string source;
  std::string wrapperKey;
  std::string modelType;
  Backbone backbone = Backbone::Llama;

  int64_t vocabSize = 0;
  int64_t hiddenSize = 0;
  int64_t intermediateSize = 0;
  int64_t numLayers = 0;
  int64_t numHeads = 0;
  int64_t numKVHeads = 0;
  int64_t headDim = 0;
  int64_t maxPositions = 0;

  NormKind norm = NormKind::RMSNorm;
  double normEps = 1e-5;
  bool normBias = false;
  MLPKind mlp = MLPKind::SwiGLU;

  bool qkvBias = false;
  bool outBias = false;
  bool mlpBias = false;
  bool tiedEmbeddings = false;

  /// Absent for models that encode positions with ALiBi.
  std::optional<RoPESpec> rope;
  double alibiBiasMax = 0.0;
  double softmaxScale = 0.0;
  double clipQKV = 0.0;
  /// 0: every earlier key is visible.
  int64_t slidingWindow = 0;
  AttentionBackend backend = AttentionBackend::Flash;

  int64_t bosTokenId = -1;
  std::vector<int64_t> eosTokenIds;

  /// InternVL's vision encoder, from a wrapper's vision_config.
  std::optional<VisionSpec> vision;

  /// Set when the checkpoint's projections are stored quantized.
  std::optional<CheckpointQuantization> checkpointQuantization;
};

} // namespace decc

#endif // DECC_CONFIG_MODELSPEC_H
