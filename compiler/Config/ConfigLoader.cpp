//===- ConfigLoader.cpp - config.json -> ModelSpec ------------------------===//
//
// Parses the file, unwraps InternVL-style wrappers, dispatches on model_type
// and checks what must hold across keys. The first problem found stops
// reading: one precise message beats a cascade.
//
//===----------------------------------------------------------------------===//

#include "compiler/Config/ConfigLoader.h"
#include "compiler/Config/Readers.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>

using nlohmann::json;

namespace decc {

const char *toString(Backbone b) {
  switch (b) {
  case Backbone::InternLM2:
    return "internlm2";
  case Backbone::Phi3:
    return "phi3";
  case Backbone::MPT:
    return "mpt";
  case Backbone::Llama:
    return "llama";
  case Backbone::Qwen2:
    return "qwen2";
  }
  return "?";
}

const char *toString(NormKind k) {
  return k == NormKind::RMSNorm ? "rms_norm" : "layer_norm";
}

const char *toString(MLPKind k) {
  return k == MLPKind::SwiGLU ? "swiglu" : "gelu";
}

const char *toString(RoPEKind k) {
  switch (k) {
  case RoPEKind::Default:
    return "default";
  case RoPEKind::Linear:
    return "linear";
  case RoPEKind::Dynamic:
    return "dynamic";
  case RoPEKind::LongRoPE:
    return "longrope";
  case RoPEKind::YaRN:
    return "yarn";
  case RoPEKind::Llama3:
    return "llama3";
  }
  return "?";
}

namespace {
constexpr const char *kAcceptedTypes =
    "internlm2, phi3, mpt, llama, qwen2, internvl_chat";

void readBackend(const JsonObject &c, ModelSpec &s) {
  std::optional<std::string> key =
      c.firstOf({"attn_implementation", "_attn_implementation"});
  if (!key)
    return;
  std::string name = c.string(*key);
  std::optional<AttentionBackend> backend =
      contract::parseAttentionBackend(name);
  if (!backend)
    c.fail("unknown " + c.keyPath(*key) + " '" + name +
           "'; accepted: " + contract::attentionBackendSpellings());
  s.backend = *backend;
}

void readTokens(const JsonObject &c, ModelSpec &s) {
  if (c.has("bos_token_id"))
    s.bosTokenId = c.integerIn("bos_token_id", 0, s.vocabSize - 1);
  if (c.has("eos_token_id")) {
    s.eosTokenIds = c.integers("eos_token_id");
    for (int64_t id : s.eosTokenIds)
      if (id < 0 || id >= s.vocabSize)
        c.fail(c.keyPath("eos_token_id") + " " + std::to_string(id) +
               " is outside the vocabulary [0, " + std::to_string(s.vocabSize) +
               ")");
  }
}

/// `quantization_config`, as AutoAWQ and lmdeploy write it: the only
/// format read is AWQ's 4-bit GEMM packing with zero points.
void readQuantization(const JsonObject &c, ModelSpec &s) {
  std::optional<JsonObject> q = c.object("quantization_config");
  if (!q)
    return;
  CheckpointQuantization cq;
  cq.method = q->string("quant_method");
  if (cq.method != "awq")
    q->fail(q->keyPath("quant_method") + " '" + cq.method +
            "' is not read; accepted: awq");
  cq.bits = q->integer("bits");
  if (cq.bits != 4)
    q->fail(q->keyPath("bits") + " " + std::to_string(cq.bits) +
            ": AWQ checkpoints are read with 4 bits");
  cq.groupSize = q->integer("group_size");
  if (cq.groupSize <= 0)
    q->fail(q->keyPath("group_size") + " " + std::to_string(cq.groupSize) +
            " must be positive (a group of input columns)");
  std::string version = q->string("version", "gemm");
  std::transform(version.begin(), version.end(), version.begin(),
                 [](unsigned char ch) { return std::tolower(ch); });
  if (version != "gemm")
    q->fail(q->keyPath("version") + " '" + version +
            "' is not read; accepted: gemm (AutoAWQ's packing)");
  if (!q->boolean("zero_point", true))
    q->fail(q->keyPath("zero_point") +
            " false is not read; AWQ checkpoints have zero points");
  if (s.checkpointQuantization &&
      (s.checkpointQuantization->bits != cq.bits ||
       s.checkpointQuantization->groupSize != cq.groupSize))
    q->fail(q->keyPath("group_size") +
            " disagrees with the wrapper's quantization_config");
  s.checkpointQuantization = cq;
}

void readModel(const JsonObject &c, ModelSpec &s) {
  std::string type = c.string("model_type");
  if (type == "internvl_chat" || type == "internvl") {
    if (!s.wrapperKey.empty())
      c.fail("nested wrapper config '" + type + "' in " + c.prefix());
    std::optional<std::string> key = c.firstOf({"llm_config", "text_config"});
    if (!key)
      c.fail("missing required key '" + c.keyPath("llm_config") +
             "' (the language model of " + type + ")");
    s.wrapperKey = *key;
    std::optional<JsonObject> llm = c.object(*key);
    readBackend(c, s);
    readQuantization(c, s);
    readModel(*llm, s);
    readVision(c, s);
    return;
  }
  s.modelType = type;
  if (type == "internlm2")
    s.backbone = Backbone::InternLM2;
  else if (type == "phi3")
    s.backbone = Backbone::Phi3;
  else if (type == "mpt")
    s.backbone = Backbone::MPT;
  else if (type == "llama")
    s.backbone = Backbone::Llama;
  else if (type == "qwen2")
    s.backbone = Backbone::Qwen2;
  else
    c.fail("unknown " + c.keyPath("model_type") + " '" + type +
           "'; accepted: " + kAcceptedTypes);

  if (s.backbone == Backbone::MPT)
    readMPT(c, s);
  else
    readLlamaFamily(c, s);
  readBackend(c, s);
  readTokens(c, s);
  readQuantization(c, s);
}
} // namespace

SpecOrError parseModelSpec(const std::string &text, const std::string &name) {
  json root;
  try {
    root = json::parse(text);
  } catch (const json::exception &e) {
    // e.what() is "[json.exception.parse_error.101] parse error at line ...",
    // or out_of_range.406 for a number beyond a double (1e400).
    std::string what = e.what();
    size_t pos = what.find("] ");
    return {std::nullopt,
            name + ": not valid JSON: " +
                (pos == std::string::npos ? what : what.substr(pos + 2))};
  }
  if (!root.is_object())
    return {std::nullopt, name + ": the top level must be a JSON object, got " +
                              describe(root)};
  try {
    ModelSpec spec;
    spec.source = name;
    readModel(JsonObject(root, ""), spec);
    return {std::move(spec), ""};
  } catch (const ConfigError &e) {
    return {std::nullopt, name + ": " + e.what()};
  } catch (const json::exception &e) {
    // Every access is type-checked first; this is a last line of defence.
    return {std::nullopt, name + ": malformed config: " + e.what()};
  }
}

SpecOrError loadModelSpec(const std::string &path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    return {std::nullopt,
            "config '" + path + "' is a directory; pass its config.json"};
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return {std::nullopt, "cannot open config '" + path + "'"};
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad())
    return {std::nullopt, "cannot read config '" + path + "'"};
  return parseModelSpec(text.str(), path);
}

} // namespace decc
