//===- RoPEConfigTest.cpp - derived RoPE constants ------------------------===//
//
// The expected values are the ones the goldens' case.json files state for the
// Hugging Face implementations (phi3-longrope, qwen2-yarn).
//
//===----------------------------------------------------------------------===//

#include "compiler/Config/ConfigLoader.h"

#include <gtest/gtest.h>

using namespace decc;

namespace {

RoPESpec rope(const std::string &scaling, const std::string &extra = "") {
  std::string text = R"({"model_type": "llama", "hidden_size": 128,
    "intermediate_size": 256, "num_hidden_layers": 1,
    "num_attention_heads": 4, "vocab_size": 64,
    "max_position_embeddings": 128, "rope_theta": 10000.0)" +
                     extra + ", \"rope_scaling\": " + scaling + "}";
  SpecOrError r = parseModelSpec(text, "t.json");
  EXPECT_TRUE(r) << r.error;
  return r && r.spec->rope ? *r.spec->rope : RoPESpec();
}

std::string factors(int n, double v) {
  std::string s = "[";
  for (int i = 0; i < n; ++i)
    s += (i ? ", " : "") + std::to_string(v);
  return s + "]";
}

TEST(RoPEConfig, YaRNAttentionFactor) {
  // qwen2-yarn: factor 4, original 32 -> attention_factor 0.1 ln 4 + 1.
  RoPESpec r = rope(
      R"({"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32})");
  EXPECT_EQ(r.kind, RoPEKind::YaRN);
  EXPECT_DOUBLE_EQ(r.factor, 4.0);
  EXPECT_EQ(r.originalMaxPositions, 32);
  EXPECT_NEAR(r.attentionFactor, 1.1386294361, 1e-10);
  EXPECT_DOUBLE_EQ(r.betaFast, 32.0);
  EXPECT_DOUBLE_EQ(r.betaSlow, 1.0);
}

TEST(RoPEConfig, YaRNStatedOriginalRedefinesFactor) {
  // transformers: factor = max_position_embeddings / original.
  RoPESpec r = rope(
      R"({"type": "yarn", "factor": 2.0, "original_max_position_embeddings": 16})");
  EXPECT_DOUBLE_EQ(r.factor, 8.0);
}

TEST(RoPEConfig, LongRoPEAttentionFactorFromTopLevelOriginal) {
  // phi3-longrope: max 256, original 32 -> sqrt(1 + ln 8 / ln 32).
  std::string s = R"({"type": "longrope", "short_factor": )" +
                  factors(16, 1.5) + R"(, "long_factor": )" + factors(16, 2.5) +
                  "}";
  RoPESpec r = rope(s, R"(, "original_max_position_embeddings": 32,
                          "max_position_embeddings": 256)");
  EXPECT_EQ(r.kind, RoPEKind::LongRoPE);
  EXPECT_NEAR(r.attentionFactor, 1.2649110641, 1e-10);
  EXPECT_EQ(r.shortFactor.size(), 16u);
}

TEST(RoPEConfig, SuIsLongRoPE) {
  std::string s = R"({"type": "su", "short_factor": )" + factors(16, 1.0) +
                  R"(, "long_factor": )" + factors(16, 1.0) + "}";
  EXPECT_EQ(rope(s, R"(, "original_max_position_embeddings": 64)").kind,
            RoPEKind::LongRoPE);
}

TEST(RoPEConfig, DynamicUsesMaxPositions) {
  RoPESpec r = rope(R"({"type": "dynamic", "factor": 2.0})");
  EXPECT_EQ(r.kind, RoPEKind::Dynamic);
  EXPECT_EQ(r.maxPositions, 128);
}

TEST(RoPEConfig, RopeParametersCarryTheta) {
  RoPESpec r = rope("null", R"(, "rope_parameters": {"rope_type": "linear",
                                   "factor": 4.0, "rope_theta": 500000.0})");
  EXPECT_EQ(r.kind, RoPEKind::Linear);
  EXPECT_DOUBLE_EQ(r.theta, 500000.0);
  EXPECT_DOUBLE_EQ(r.factor, 4.0);
}

TEST(RoPEConfig, PartialRotary) {
  RoPESpec r = rope("null", R"(, "partial_rotary_factor": 0.5)");
  EXPECT_EQ(r.rotaryDim, 16);
}

TEST(RoPEConfig, Llama3) {
  RoPESpec r = rope(R"({"rope_type": "llama3", "factor": 8.0,
    "low_freq_factor": 1.0, "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192})");
  EXPECT_EQ(r.kind, RoPEKind::Llama3);
  EXPECT_EQ(r.originalMaxPositions, 8192);
}

} // namespace
