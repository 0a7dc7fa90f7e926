//===- ReadRoPE.cpp - RoPE scaling in every spelling ----------------------===//
//
// Hub configs spell RoPE scaling as `rope_scaling: {type | rope_type, ...}`
// (transformers 4) or `rope_parameters: {rope_type, rope_theta, ...}`
// (transformers 5); Phi-3's first release called longrope `su`. Defaults and
// derived constants follow transformers' _compute_*_parameters.
//
//===----------------------------------------------------------------------===//

#include "compiler/Config/Readers.h"

#include <cmath>

namespace decc {

namespace {
RoPEKind parseKind(const JsonObject &scaling, const std::string &key) {
  std::string name = scaling.string(key);
  if (name == "default")
    return RoPEKind::Default;
  if (name == "linear")
    return RoPEKind::Linear;
  if (name == "dynamic")
    return RoPEKind::Dynamic;
  if (name == "longrope" || name == "su")
    return RoPEKind::LongRoPE;
  if (name == "yarn")
    return RoPEKind::YaRN;
  if (name == "llama3")
    return RoPEKind::Llama3;
  scaling.fail("unknown rope type '" + name + "' in " + scaling.keyPath(key) +
               "; accepted: default, linear, dynamic, longrope (or su), yarn, "
               "llama3");
}

double positiveNumber(const JsonObject &o, const std::string &key) {
  double v = o.number(key);
  if (!(v > 0))
    o.fail(o.keyPath(key) + " must be positive, got " + formatNumber(v));
  return v;
}

std::vector<double> factorList(const JsonObject &o, const std::string &key,
                               int64_t rotaryDim) {
  std::vector<double> v = o.numbers(key);
  size_t expected = size_t(rotaryDim / 2);
  if (v.size() != expected)
    o.fail(o.keyPath(key) + " has " + std::to_string(v.size()) +
           " entries, expected " + std::to_string(expected) + " (rotary_dim " +
           std::to_string(rotaryDim) + " / 2)");
  for (double f : v)
    if (!(f > 0))
      o.fail(o.keyPath(key) + " must hold positive factors, got " +
             formatNumber(f));
  return v;
}

/// transformers' get_mscale for YaRN.
double yarnMscale(double scale, double mscale) {
  return scale <= 1 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
}

void rejectKeys(const JsonObject &o, std::initializer_list<const char *> keys,
                const char *kind) {
  for (const char *k : keys)
    if (o.has(k))
      o.fail(o.keyPath(k) + " is not supported for rope type '" + kind + "'");
}
} // namespace

RoPESpec readRoPE(const JsonObject &config, const ModelSpec &spec) {
  std::optional<JsonObject> params = config.object("rope_parameters");
  std::optional<JsonObject> scaling =
      params ? params : config.object("rope_scaling");

  RoPESpec rope;
  rope.theta = params && params->has("rope_theta")
                   ? positiveNumber(*params, "rope_theta")
               : config.has("rope_theta") ? positiveNumber(config, "rope_theta")
                                          : 10000.0;

  const JsonObject &partialFrom =
      params && params->has("partial_rotary_factor") ? *params : config;
  double partial = partialFrom.number("partial_rotary_factor", 1.0);
  if (!(partial > 0 && partial <= 1))
    config.fail(partialFrom.keyPath("partial_rotary_factor") +
                " must be in (0, 1], got " + formatNumber(partial));
  double rotary = spec.headDim * partial;
  rope.rotaryDim = int64_t(rotary);
  if (rotary != double(rope.rotaryDim) || rope.rotaryDim % 2 != 0 ||
      rope.rotaryDim == 0)
    config.fail("partial_rotary_factor " + formatNumber(partial) +
                " of head_dim " + std::to_string(spec.headDim) +
                " does not give an even number of rotary features");

  if (!scaling)
    return rope;
  std::optional<std::string> typeKey = scaling->firstOf({"rope_type", "type"});
  if (!typeKey) {
    if (params)
      return rope; // rope_parameters with only rope_theta
    scaling->fail("missing required key '" + scaling->keyPath("type") +
                  "' (or 'rope_type')");
  }
  rope.kind = parseKind(*scaling, *typeKey);
  const JsonObject &s = *scaling;

  switch (rope.kind) {
  case RoPEKind::Default:
    break;
  case RoPEKind::Linear:
    rope.factor = positiveNumber(s, "factor");
    break;
  case RoPEKind::Dynamic:
    rope.factor = positiveNumber(s, "factor");
    rope.maxPositions = spec.maxPositions;
    break;
  case RoPEKind::LongRoPE: {
    rejectKeys(s, {"short_mscale", "long_mscale"}, "longrope");
    rope.shortFactor = factorList(s, "short_factor", rope.rotaryDim);
    rope.longFactor = factorList(s, "long_factor", rope.rotaryDim);
    // Phi-3 keeps the pre-extension length at the top level; the factor is
    // then the extension ratio (transformers' _compute_longrope_parameters).
    if (config.has("original_max_position_embeddings")) {
      rope.originalMaxPositions = config.integerIn(
          "original_max_position_embeddings", 1, kMaxPositions);
      rope.factor = double(spec.maxPositions) / rope.originalMaxPositions;
    } else {
      rope.originalMaxPositions =
          s.integerIn("original_max_position_embeddings", spec.maxPositions, 1,
                      kMaxPositions);
      rope.factor = s.has("factor") ? positiveNumber(s, "factor") : 1.0;
    }
    double fallback =
        rope.factor <= 1
            ? 1.0
            : std::sqrt(1 + std::log(rope.factor) /
                                std::log(double(rope.originalMaxPositions)));
    rope.attentionFactor = s.has("attention_factor")
                               ? positiveNumber(s, "attention_factor")
                               : fallback;
    break;
  }
  case RoPEKind::YaRN: {
    if (s.has("truncate") && !s.boolean("truncate", true))
      s.fail(s.keyPath("truncate") + " = false is not supported");
    rope.factor = positiveNumber(s, "factor");
    // As transformers: a stated original length redefines the factor as the
    // extension ratio.
    if (s.has("original_max_position_embeddings")) {
      rope.originalMaxPositions =
          s.integerIn("original_max_position_embeddings", 1, kMaxPositions);
      rope.factor = double(spec.maxPositions) / rope.originalMaxPositions;
    } else {
      rope.originalMaxPositions = spec.maxPositions;
    }
    rope.betaFast = s.number("beta_fast", 32.0);
    rope.betaSlow = s.number("beta_slow", 1.0);
    if (!(rope.betaFast > rope.betaSlow))
      s.fail(s.keyPath("beta_fast") + " (" + formatNumber(rope.betaFast) +
             ") must exceed beta_slow (" + formatNumber(rope.betaSlow) + ")");
    if (s.has("attention_factor")) {
      rope.attentionFactor = positiveNumber(s, "attention_factor");
    } else if (s.has("mscale") && s.has("mscale_all_dim")) {
      rope.attentionFactor =
          yarnMscale(rope.factor, s.number("mscale")) /
          yarnMscale(rope.factor, s.number("mscale_all_dim"));
    } else {
      rope.attentionFactor = yarnMscale(rope.factor, 1.0);
    }
    break;
  }
  case RoPEKind::Llama3:
    rope.factor = positiveNumber(s, "factor");
    rope.lowFreqFactor = positiveNumber(s, "low_freq_factor");
    rope.highFreqFactor = positiveNumber(s, "high_freq_factor");
    rope.originalMaxPositions =
        s.integerIn("original_max_position_embeddings", 1, kMaxPositions);
    if (!(rope.highFreqFactor > rope.lowFreqFactor))
      s.fail(s.keyPath("high_freq_factor") + " (" +
             formatNumber(rope.highFreqFactor) +
             ") must exceed low_freq_factor (" +
             formatNumber(rope.lowFreqFactor) + ")");
    break;
  }
  if (rope.kind != RoPEKind::LongRoPE)
    rejectKeys(s, {"short_factor", "long_factor"}, toString(rope.kind));
  // Derived, not read: original_max_position_embeddings 1 (ln 1 = 0) or a
  // negative mscale make it infinite or negative, and every logit NaN.
  if (!(std::isfinite(rope.attentionFactor) && rope.attentionFactor > 0))
    s.fail(s.keyPath("attention_factor") + " comes out as " +
           formatNumber(rope.attentionFactor) +
           " for this rope_scaling; it must be positive and finite");
  return rope;
}

} // namespace decc
