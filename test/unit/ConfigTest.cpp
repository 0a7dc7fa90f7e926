//===- ConfigTest.cpp - config.json -> ModelSpec --------------------------===//
//
// What lit cannot see from the outside: the numbers the readers derive.
//
//===----------------------------------------------------------------------===//

#include "compiler/Config/ConfigLoader.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace decc;

namespace {

ModelSpec parseOk(const std::string &text) {
  SpecOrError r = parseModelSpec(text, "test.json");
  EXPECT_TRUE(r) << r.error;
  return r ? *r.spec : ModelSpec();
}

std::string parseError(const std::string &text) {
  SpecOrError r = parseModelSpec(text, "test.json");
  EXPECT_FALSE(r);
  return r.error;
}

const char *kLlama = R"({
  "model_type": "llama", "hidden_size": 128, "intermediate_size": 344,
  "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
  "vocab_size": 512, "max_position_embeddings": 256, "rms_norm_eps": 1e-05,
  "rope_theta": 10000.0, "eos_token_id": [2, 7]})";

TEST(Config, LlamaDefaults) {
  ModelSpec s = parseOk(kLlama);
  EXPECT_EQ(s.backbone, Backbone::Llama);
  EXPECT_EQ(s.headDim, 32);
  EXPECT_EQ(s.numHeads / s.numKVHeads, 2);
  EXPECT_DOUBLE_EQ(s.softmaxScale, std::pow(32.0, -0.5));
  ASSERT_TRUE(s.rope);
  EXPECT_EQ(s.rope->kind, RoPEKind::Default);
  EXPECT_EQ(s.rope->rotaryDim, 32);
  EXPECT_FALSE(s.tiedEmbeddings);
  EXPECT_EQ(s.backend, AttentionBackend::Flash);
  EXPECT_EQ(s.eosTokenIds, (std::vector<int64_t>{2, 7}));
}

TEST(Config, KVHeadsDefaultToHeads) {
  std::string text = kLlama;
  text.replace(text.find("\"num_key_value_heads\": 2,"), 25, "");
  EXPECT_EQ(parseOk(text).numKVHeads, 4);
}

TEST(Config, IntegralFloatIsAnInteger) {
  std::string text = kLlama;
  text.replace(text.find("\"hidden_size\": 128"), 18, "\"hidden_size\": 128.0");
  EXPECT_EQ(parseOk(text).hiddenSize, 128);
  text.replace(text.find("128.0"), 5, "128.5");
  EXPECT_EQ(parseError(text), "test.json: key 'hidden_size' must be an "
                              "integer, got number 128.5");
}

TEST(Config, Qwen2HasQKVBiasOnly) {
  std::string text = kLlama;
  text.replace(text.find("llama"), 5, "qwen2");
  ModelSpec s = parseOk(text);
  EXPECT_TRUE(s.qkvBias);
  EXPECT_FALSE(s.outBias);
  EXPECT_FALSE(s.mlpBias);
}

TEST(Config, InternLM2BiasKey) {
  std::string text = kLlama;
  text.replace(text.find("\"llama\""), 7, "\"internlm2\", \"bias\": true");
  ModelSpec s = parseOk(text);
  EXPECT_TRUE(s.qkvBias);
  EXPECT_TRUE(s.outBias);
  EXPECT_FALSE(s.mlpBias);
}

TEST(Config, InternVLWrapperPrefixesKeys) {
  std::string inner = kLlama;
  inner.replace(inner.find("\"hidden_size\": 128"), 18,
                "\"hidden_size\": \"128\"");
  std::string text =
      R"({"model_type": "internvl_chat", "llm_config": )" + inner + "}";
  EXPECT_EQ(parseError(text), "test.json: key 'llm_config.hidden_size' must "
                              "be an integer, got string \"128\"");
}

TEST(Config, MPTGroupedQuery) {
  ModelSpec s = parseOk(R"({"model_type": "mpt", "d_model": 256, "n_heads": 8,
    "n_layers": 2, "vocab_size": 100, "expansion_ratio": 2, "no_bias": false,
    "attn_config": {"alibi": true, "attn_type": "grouped_query_attention",
                    "kv_n_heads": 2, "clip_qkv": 6, "softmax_scale": 0.5}})");
  EXPECT_EQ(s.numKVHeads, 2);
  EXPECT_EQ(s.intermediateSize, 512);
  EXPECT_TRUE(s.normBias);
  EXPECT_TRUE(s.qkvBias);
  EXPECT_DOUBLE_EQ(s.clipQKV, 6.0);
  EXPECT_DOUBLE_EQ(s.softmaxScale, 0.5);
  EXPECT_DOUBLE_EQ(s.alibiBiasMax, 8.0);
  EXPECT_FALSE(s.rope);
  EXPECT_TRUE(s.tiedEmbeddings);
}

TEST(Config, SpecJsonRoundTripsTheNumbers) {
  std::string json = specToJson(parseOk(kLlama));
  EXPECT_NE(json.find("\"softmax_scale\": 0.1767766952966369"),
            std::string::npos)
      << json;
}

} // namespace
