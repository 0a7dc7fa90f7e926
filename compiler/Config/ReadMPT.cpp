//===- ReadMPT.cpp - MosaicML MPT -----------------------------------------===//
//
// MPT names its sizes d_model / n_heads / n_layers and nests attention in
// attn_config; positions come from ALiBi. Anything MPT can be configured to do
// that decc does not compile (learned positions, qk LayerNorm, logit scaling)
// is an error naming the key.
//
//===----------------------------------------------------------------------===//

#include "compiler/Config/Readers.h"

#include <cmath>

namespace decc {

void readMPT(const JsonObject &c, ModelSpec &s) {
  s.hiddenSize = c.integerIn("d_model", 1, kMaxHidden);
  s.numHeads = c.integerIn("n_heads", 1, kMaxHeads);
  s.numLayers = c.integerIn("n_layers", 1, kMaxLayers);
  s.vocabSize = c.integerIn("vocab_size", 1, kMaxVocab);
  s.maxPositions = c.integerIn("max_seq_len", 2048, 1, kMaxPositions);
  s.headDim = readHeadDim(c, "d_model", s.hiddenSize, "n_heads", s.numHeads);

  int64_t expansion = c.integerIn("expansion_ratio", 4, 1, 64);
  s.intermediateSize = s.hiddenSize * expansion;
  if (std::optional<JsonObject> ffn = c.object("ffn_config")) {
    std::string type = ffn->string("ffn_type", "mptmlp");
    if (type != "mptmlp")
      ffn->fail(ffn->keyPath("ffn_type") + " '" + type +
                "' is not supported; accepted: mptmlp");
    s.intermediateSize = ffn->integerIn("ffn_hidden_size", s.intermediateSize,
                                        1, kMaxIntermediate);
  }
  if (s.intermediateSize > kMaxIntermediate)
    c.fail("MPT FFN width " + std::to_string(s.intermediateSize) +
           " (expansion_ratio x d_model) is out of range [1, " +
           std::to_string(kMaxIntermediate) + "]");

  std::string normType = c.string("norm_type", "low_precision_layernorm");
  if (normType != "low_precision_layernorm" && normType != "layernorm")
    c.fail("norm_type '" + normType +
           "' is not supported; accepted: layernorm, low_precision_layernorm");
  s.norm = NormKind::LayerNorm;
  s.normEps = readEpsilon(c, "layer_norm_epsilon", 1e-5);
  bool noBias = c.boolean("no_bias", false);
  s.normBias = s.qkvBias = s.outBias = s.mlpBias = !noBias;
  s.mlp = MLPKind::GELU;
  // MPT's lm head is always its token embedding.
  s.tiedEmbeddings = true;
  if (c.has("logit_scale"))
    c.fail(c.keyPath("logit_scale") + " is not supported (must be null)");

  std::optional<JsonObject> attn = c.object("attn_config");
  if (!attn)
    c.fail("missing required key '" + c.keyPath("attn_config") + "'");
  std::string type = attn->string("attn_type", "multihead_attention");
  if (type == "multihead_attention")
    s.numKVHeads = s.numHeads;
  else if (type == "multiquery_attention")
    s.numKVHeads = 1;
  else if (type == "grouped_query_attention")
    s.numKVHeads = attn->integerIn("kv_n_heads", 1, kMaxHeads);
  else
    attn->fail("unknown " + attn->keyPath("attn_type") + " '" + type +
               "'; accepted: multihead_attention, multiquery_attention, "
               "grouped_query_attention");

  if (s.numHeads % s.numKVHeads != 0)
    attn->fail(c.keyPath("n_heads") + " (" + std::to_string(s.numHeads) +
               ") is not divisible by " + attn->keyPath("kv_n_heads") + " (" +
               std::to_string(s.numKVHeads) + ")");

  for (const char *unsupported :
       {"qk_ln", "qk_gn", "prefix_lm", "rope", "attn_uses_sequence_id"})
    if (attn->boolean(unsupported, false))
      attn->fail(attn->keyPath(unsupported) + " = true is not supported");

  if (!attn->boolean("alibi", false)) {
    // Without ALiBi MPT adds a learned position table, which decc lacks.
    attn->fail(attn->keyPath("alibi") +
               " = false (learned position embeddings) is not supported");
  }
  s.alibiBiasMax = attn->number("alibi_bias_max", 8.0);
  if (!(s.alibiBiasMax > 0))
    attn->fail(attn->keyPath("alibi_bias_max") + " must be positive, got " +
               formatNumber(s.alibiBiasMax));
  s.softmaxScale = attn->has("softmax_scale")
                       ? attn->number("softmax_scale")
                       : std::pow(double(s.headDim), -0.5);
  if (!(s.softmaxScale > 0))
    attn->fail(attn->keyPath("softmax_scale") + " must be positive");
  s.clipQKV = attn->number("clip_qkv", 0.0);
  if (s.clipQKV < 0)
    attn->fail(attn->keyPath("clip_qkv") + " must be positive");

  if (attn->has("attn_impl")) {
    std::string impl = attn->string("attn_impl");
    if (impl == "torch")
      s.backend = AttentionBackend::Eager;
    else if (impl == "flash" || impl == "triton")
      s.backend = AttentionBackend::Flash;
    else
      attn->fail("unknown " + attn->keyPath("attn_impl") + " '" + impl +
                 "'; accepted: torch, flash, triton");
  }
}

} // namespace decc
