//===- SpecJson.cpp - ModelSpec as JSON (`decc --emit=spec`) --------------===//

#include "compiler/Config/ConfigLoader.h"

#include <nlohmann/json.hpp>

using nlohmann::ordered_json;

namespace decc {

std::string specToJson(const ModelSpec &s) {
  ordered_json j;
  j["source"] = s.source;
  if (!s.wrapperKey.empty())
    j["wrapper_key"] = s.wrapperKey;
  j["model_type"] = s.modelType;
  j["backbone"] = toString(s.backbone);
  j["vocab_size"] = s.vocabSize;
  j["hidden_size"] = s.hiddenSize;
  j["intermediate_size"] = s.intermediateSize;
  j["num_layers"] = s.numLayers;
  j["num_heads"] = s.numHeads;
  j["num_kv_heads"] = s.numKVHeads;
  j["head_dim"] = s.headDim;
  j["max_positions"] = s.maxPositions;
  j["norm"] = toString(s.norm);
  j["norm_eps"] = s.normEps;
  j["norm_bias"] = s.normBias;
  j["mlp"] = toString(s.mlp);
  j["qkv_bias"] = s.qkvBias;
  j["out_bias"] = s.outBias;
  j["mlp_bias"] = s.mlpBias;
  j["tied_embeddings"] = s.tiedEmbeddings;
  if (s.rope) {
    const RoPESpec &r = *s.rope;
    ordered_json rope;
    rope["kind"] = toString(r.kind);
    rope["theta"] = r.theta;
    rope["rotary_dim"] = r.rotaryDim;
    rope["factor"] = r.factor;
    if (r.maxPositions)
      rope["max_positions"] = r.maxPositions;
    if (r.originalMaxPositions)
      rope["original_max_positions"] = r.originalMaxPositions;
    if (!r.shortFactor.empty()) {
      rope["short_factor"] = r.shortFactor;
      rope["long_factor"] = r.longFactor;
    }
    rope["attention_factor"] = r.attentionFactor;
    if (r.kind == RoPEKind::YaRN) {
      rope["beta_fast"] = r.betaFast;
      rope["beta_slow"] = r.betaSlow;
    }
    if (r.kind == RoPEKind::Llama3) {
      rope["low_freq_factor"] = r.lowFreqFactor;
      rope["high_freq_factor"] = r.highFreqFactor;
    }
    j["rope"] = rope;
  } else {
    j["rope"] = nullptr;
  }
  j["alibi_bias_max"] = s.alibiBiasMax;
  j["softmax_scale"] = s.softmaxScale;
  j["clip_qkv"] = s.clipQKV;
  j["sliding_window"] = s.slidingWindow;
  j["attention_backend"] = contract::spelling(s.backend);
  j["bos_token_id"] = s.bosTokenId;
  j["eos_token_ids"] = s.eosTokenIds;
  if (const auto &v = s.vision) {
    ordered_json vj;
    vj["model_type"] = v->modelType;
    vj["image_size"] = v->imageSize;
    vj["patch_size"] = v->patchSize;
    vj["num_channels"] = v->numChannels;
    vj["hidden_size"] = v->hiddenSize;
    vj["intermediate_size"] = v->intermediateSize;
    vj["num_layers"] = v->numLayers;
    vj["num_heads"] = v->numHeads;
    vj["norm"] = toString(v->norm);
    vj["norm_eps"] = v->normEps;
    vj["qkv_bias"] = v->qkvBias;
    vj["qk_normalization"] = v->qkNormalization;
    vj["downsample_ratio"] = v->downsampleRatio;
    vj["pixel_shuffle"] = v->pixelShuffleV2 ? "v2" : "v1";
    vj["select_layer"] = v->selectLayer;
    vj["tiles"] = {{"min", v->minTiles},
                   {"max", v->maxTiles},
                   {"dynamic", v->dynamicTiles},
                   {"thumbnail", v->useThumbnail}};
    vj["tokens_per_tile"] = v->tokensPerTile();
    vj["template"] = v->chatTemplate;
    j["vision"] = vj;
  }
  if (const auto &q = s.checkpointQuantization)
    j["checkpoint_quantization"] = {
        {"method", q->method}, {"bits", q->bits}, {"group_size", q->groupSize}};
  return j.dump(2) + "\n";
}

} // namespace decc
