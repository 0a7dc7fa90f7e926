//===- Manifest.cpp - what decc tells the runtime about a model -----------===//

#include "runtime/Manifest.h"

#include "runtime/Error.h"

#include <nlohmann/json.hpp>

namespace decc::rt {

int64_t WeightSlot::numElements() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

static DType parseDType(const std::string &s) {
  if (s == "f32")
    return DType::F32;
  if (s == "bf16")
    return DType::BF16;
  if (s == "f16")
    return DType::F16;
  throw Error("manifest: unknown weight dtype '" + s + "'");
}

Manifest Manifest::parse(const char *text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    throw Error("manifest: not a JSON object");
  try {
    Manifest m;
    m.arenaBytes = j.at("arena_bytes");
    m.streamedBytesPerToken = j.at("streamed_bytes_per_token");
    for (const auto &w : j.at("weights")) {
      WeightSlot slot;
      slot.offset = w.at("offset");
      slot.shape = w.at("shape").get<std::vector<int64_t>>();
      slot.dtype = parseDType(w.at("dtype"));
      if (w.contains("values"))
        slot.values = w["values"].get<std::vector<float>>();
      for (const auto &p : w.at("parts")) {
        WeightPart part;
        part.tensor = p.at("tensor");
        part.shape = p.at("shape").get<std::vector<int64_t>>();
        if (p.contains("layout"))
          part.kvGrouped = KVGroupedLayout{p["layout"].at("q_heads"),
                                           p["layout"].at("kv_heads"),
                                           p["layout"].at("head_dim")};
        slot.parts.push_back(std::move(part));
      }
      m.weights.push_back(std::move(slot));
    }
    m.layers = j.at("cache").at("layers");
    m.kvHeads = j.at("cache").at("kv_heads");
    m.headDim = j.at("cache").at("head_dim");
    m.cacheDType = parseDType(j.at("cache").value("dtype", "f32"));
    m.vocab = j.at("vocab");
    m.reencodeAtLength = j.at("reencode_at_length");
    const auto &model = j.at("model");
    m.modelType = model.at("model_type");
    m.config = model.at("config");
    m.dtype = model.at("dtype");
    m.attention = model.at("attention");
    m.cpu = model.at("cpu");
    m.maxPositions = model.at("max_positions");
    m.bos = model.at("bos");
    m.eos = model.at("eos").get<std::vector<int64_t>>();
    m.target = model.value("target", "cpu");
    if (j.contains("plan"))
      m.plan = j["plan"].dump();
    return m;
  } catch (const nlohmann::json::exception &e) {
    throw Error(std::string("manifest: ") + e.what());
  }
}

int64_t Manifest::cacheBytes(int64_t context) const {
  return 2 * layers * kvHeads * context * headDim *
         int64_t(byteSize(cacheDType));
}

} // namespace decc::rt
