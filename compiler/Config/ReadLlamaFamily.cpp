//===- ReadLlamaFamily.cpp - InternLM2, Phi-3, Llama, Qwen2 ---------------===//
//
// These four share transformers' key names and the pre-norm RMSNorm + RoPE +
// SwiGLU block; they differ in biases, tying and sliding windows. Defaults are
// those of each model's configuration class.
//
//===----------------------------------------------------------------------===//

#include "compiler/Config/Readers.h"

#include <cmath>

namespace decc {

double readEpsilon(const JsonObject &config, const std::string &key,
                   double fallback) {
  double eps = config.number(key, fallback);
  if (!(eps > 0 && eps < 1))
    config.fail(config.keyPath(key) + " must be in (0, 1), got " +
                formatNumber(eps));
  return eps;
}

int64_t readHeadDim(const JsonObject &config, const std::string &hiddenKey,
                    int64_t hidden, const std::string &headsKey,
                    int64_t heads) {
  if (config.has("head_dim"))
    return config.integerIn("head_dim", 1, kMaxHeadDim);
  if (hidden % heads != 0)
    config.fail(config.keyPath(hiddenKey) + " (" + std::to_string(hidden) +
                ") is not divisible by " + config.keyPath(headsKey) + " (" +
                std::to_string(heads) + ")");
  int64_t headDim = hidden / heads;
  if (headDim > kMaxHeadDim)
    config.fail("head_dim " + std::to_string(headDim) + " (" + hiddenKey +
                " / " + headsKey + ") is out of range [1, " +
                std::to_string(kMaxHeadDim) + "]");
  return headDim;
}

void readLlamaFamily(const JsonObject &c, ModelSpec &s) {
  s.hiddenSize = c.integerIn("hidden_size", 1, kMaxHidden);
  s.intermediateSize = c.integerIn("intermediate_size", 1, kMaxIntermediate);
  s.numLayers = c.integerIn("num_hidden_layers", 1, kMaxLayers);
  s.numHeads = c.integerIn("num_attention_heads", 1, kMaxHeads);
  s.numKVHeads = c.integerIn("num_key_value_heads", s.numHeads, 1, kMaxHeads);
  if (s.numHeads % s.numKVHeads != 0)
    c.fail(c.keyPath("num_attention_heads") + " (" +
           std::to_string(s.numHeads) + ") is not divisible by " +
           c.keyPath("num_key_value_heads") + " (" +
           std::to_string(s.numKVHeads) + ")");
  s.vocabSize = c.integerIn("vocab_size", 1, kMaxVocab);
  s.maxPositions = c.integerIn("max_position_embeddings", 1, kMaxPositions);
  s.headDim = readHeadDim(c, "hidden_size", s.hiddenSize, "num_attention_heads",
                          s.numHeads);

  s.norm = NormKind::RMSNorm;
  s.mlp = MLPKind::SwiGLU;
  s.normEps = readEpsilon(c, "rms_norm_eps",
                          s.backbone == Backbone::Phi3 ? 1e-5 : 1e-6);

  std::string act = c.string("hidden_act", "silu");
  if (act != "silu" && act != "swish")
    c.fail("hidden_act '" + act + "' is not supported for " + s.modelType +
           "; accepted: silu (swish)");

  s.tiedEmbeddings = c.boolean("tie_word_embeddings", false);
  switch (s.backbone) {
  case Backbone::InternLM2:
    // `bias` covers wqkv and wo; the MLP never has one.
    s.qkvBias = s.outBias = c.boolean("bias", true);
    break;
  case Backbone::Qwen2:
    // Qwen2 hard-codes biases on q/k/v and none elsewhere.
    s.qkvBias = true;
    if (c.boolean("use_sliding_window", false))
      c.fail(c.keyPath("use_sliding_window") +
             " = true is not supported (per-layer windows)");
    break;
  case Backbone::Phi3:
  case Backbone::Llama:
    s.qkvBias = s.outBias = c.boolean("attention_bias", false);
    s.mlpBias = c.boolean("mlp_bias", false);
    break;
  case Backbone::MPT:
    break;
  }
  if (s.backbone == Backbone::Phi3 && c.has("sliding_window")) {
    int64_t window = c.integerIn("sliding_window", 1, INT64_MAX);
    // A window as long as the context never masks anything.
    s.slidingWindow = window < s.maxPositions ? window : 0;
  }

  s.softmaxScale = std::pow(double(s.headDim), -0.5);
  s.rope = readRoPE(c, s);
}

} // namespace decc
