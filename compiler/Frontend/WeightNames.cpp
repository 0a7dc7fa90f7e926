//===- WeightNames.cpp - checkpoint tensor names per backbone -------------===//

#include "compiler/Frontend/WeightNames.h"

namespace decc {

ModelWeightNames modelWeightNames(const ModelSpec &spec) {
  ModelWeightNames n;
  switch (spec.backbone) {
  case Backbone::InternLM2:
    n = {"model.tok_embeddings.weight", "model.norm", "output.weight"};
    break;
  case Backbone::MPT:
    n = {"transformer.wte.weight", "transformer.norm_f", ""};
    break;
  case Backbone::Phi3:
  case Backbone::Llama:
  case Backbone::Qwen2:
    n = {"model.embed_tokens.weight", "model.norm", "lm_head.weight"};
    break;
  }
  if (spec.tiedEmbeddings)
    n.lmHead = n.embedding;
  return n;
}

LayerWeightNames layerWeightNames(const ModelSpec &spec, int64_t layer) {
  LayerWeightNames n;
  std::string l = std::to_string(layer);
  switch (spec.backbone) {
  case Backbone::InternLM2: {
    std::string p = "model.layers." + l + ".";
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
    std::string p = "transformer.blocks." + l + ".";
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
    std::string p = "model.layers." + l + ".";
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
