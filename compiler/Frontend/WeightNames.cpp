//===- WeightNames.cpp - checkpoint tensor names per backbone -------------===//

#include "compiler/Frontend/WeightNames.h"

namespace decc {

namespace {

/// What the checkpoint puts before the language model's names: InternVL
/// publishes one checkpoint for the whole model, the language model's
/// tensors under `language_model.` beside `vision_model.` and `mlp1.`.
std::string checkpointRoot(const ModelSpec &spec) {
  return spec.wrapperKey.empty() ? "" : "language_model.";
}

} // namespace

ModelWeightNames modelWeightNames(const ModelSpec &spec) {
  ModelWeightNames n;
  std::string root = checkpointRoot(spec);
  switch (spec.backbone) {
  case Backbone::InternLM2:
    n = {root + "model.tok_embeddings.weight", root + "model.norm",
         root + "output.weight"};
    break;
  case Backbone::MPT:
    n = {root + "transformer.wte.weight", root + "transformer.norm_f", ""};
    break;
  case Backbone::Phi3:
  case Backbone::Llama:
  case Backbone::Qwen2:
    n = {root + "model.embed_tokens.weight", root + "model.norm",
         root + "lm_head.weight"};
    break;
  }
  if (spec.tiedEmbeddings)
    n.lmHead = n.embedding;
  return n;
}

LayerWeightNames layerWeightNames(const ModelSpec &spec, int64_t layer) {
  LayerWeightNames n;
  std::string l = std::to_string(layer);
  std::string root = checkpointRoot(spec);
  switch (spec.backbone) {
  case Backbone::InternLM2: {
    std::string p = root + "model.layers." + l + ".";
    n.attnNorm = p + "attention_norm";
    n.mlpNorm = p + "ffn_norm";
    n.qkvPacking = QKVPacking::KVGrouped;
    n.qkv = p + "attention.wqkv";
    n.out = p + "attention.wo";
    n.gate = p + "feed_forward.w1";
    n.up = p + "feed_forward.w3";
    n.down = p + "feed_forward.w2";
    break;
  }
  case Backbone::MPT: {
    std::string p = root + "transformer.blocks." + l + ".";
    n.attnNorm = p + "norm_1";
    n.mlpNorm = p + "norm_2";
    n.qkvPacking = QKVPacking::Concat;
    n.qkv = p + "attn.Wqkv";
    n.out = p + "attn.out_proj";
    n.up = p + "ffn.up_proj";
    n.down = p + "ffn.down_proj";
    break;
  }
  case Backbone::Phi3:
  case Backbone::Llama:
  case Backbone::Qwen2: {
    std::string p = root + "model.layers." + l + ".";
    n.attnNorm = p + "input_layernorm";
    n.mlpNorm = p + "post_attention_layernorm";
    if (spec.backbone == Backbone::Phi3) {
      n.qkvPacking = QKVPacking::Concat;
      n.qkv = p + "self_attn.qkv_proj";
      n.gateUpPacked = true;
      n.gateUp = p + "mlp.gate_up_proj";
    } else {
      n.q = p + "self_attn.q_proj";
      n.k = p + "self_attn.k_proj";
      n.v = p + "self_attn.v_proj";
      n.gate = p + "mlp.gate_proj";
      n.up = p + "mlp.up_proj";
    }
    n.out = p + "self_attn.o_proj";
    n.down = p + "mlp.down_proj";
    break;
  }
  }
  return n;
}

} // namespace decc
