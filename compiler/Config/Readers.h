//===- Readers.h - per-backbone config readers (internal) -------*- C++ -*-===//

#ifndef DECC_CONFIG_READERS_H
#define DECC_CONFIG_READERS_H

#include "compiler/Config/JsonObject.h"
#include "compiler/Config/ModelSpec.h"

namespace decc {

// Bounds that no real checkpoint comes near; past them a config is a typo or
// an attack, and must be an error rather than an allocation.
constexpr int64_t kMaxVocab = int64_t(1) << 24;
constexpr int64_t kMaxHidden = int64_t(1) << 17;
constexpr int64_t kMaxIntermediate = int64_t(1) << 20;
constexpr int64_t kMaxLayers = 1024;
constexpr int64_t kMaxHeads = 1024;
constexpr int64_t kMaxHeadDim = 1024;
constexpr int64_t kMaxPositions = int64_t(1) << 24;

/// InternLM2, Phi-3, Llama and Qwen2: the `transformers` key names.
void readLlamaFamily(const JsonObject &config, ModelSpec &spec);

/// MPT: d_model / n_heads / attn_config.
void readMPT(const JsonObject &config, ModelSpec &spec);

/// rope_theta, rope_scaling or rope_parameters, partial_rotary_factor.
/// Needs spec.headDim and spec.maxPositions.
RoPESpec readRoPE(const JsonObject &config, const ModelSpec &spec);

/// An InternVL wrapper's vision_config and its image keys (spec.vision),
/// if it has one.
void readVision(const JsonObject &wrapper, ModelSpec &spec);

/// A norm epsilon in (0, 1).
double readEpsilon(const JsonObject &config, const std::string &key,
                   double fallback);

/// head_dim if the config states it, else hidden / heads, which must divide.
int64_t readHeadDim(const JsonObject &config, const std::string &hiddenKey,
                    int64_t hidden, const std::string &headsKey, int64_t heads);

} // namespace decc

#endif // DECC_CONFIG_READERS_H
