//===- Tokenizer.cpp - text <-> token ids for the emitted executable ------===//

#include "runtime/Tokenizer.h"

#include "runtime/Error.h"
#include "runtime/TokenizerModels.h"
#include "runtime/Utf8.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <sys/stat.h>

namespace decc::rt {

namespace {

bool exists(const std::string &path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::optional<nlohmann::json> readJson(const std::string &path) {
  if (!exists(path))
    return std::nullopt;
  std::ifstream in(path);
  nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded())
    throw Error(path + ": not valid JSON");
  return j;
}

/// "bos_token": "<s>" or {"content": "<s>", ...} or null.
std::optional<std::string> tokenContent(const nlohmann::json &j,
                                        const char *key) {
  if (!j.contains(key))
    return std::nullopt;
  const nlohmann::json &v = j[key];
  if (v.is_string())
    return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  return std::nullopt;
}

std::vector<int64_t> idList(const nlohmann::json &v) {
  if (v.is_number_integer())
    return {v.get<int64_t>()};
  if (v.is_array()) {
    std::vector<int64_t> ids;
    for (const auto &x : v)
      if (x.is_number_integer())
        ids.push_back(x.get<int64_t>());
    return ids;
  }
  return {};
}

} // namespace

Tokenizer::~Tokenizer() = default;

std::unique_ptr<Tokenizer> Tokenizer::load(const std::string &dir) {
  std::unique_ptr<Tokenizer> t;
  if (exists(dir + "/tokenizer.model"))
    t = loadSentencePiece(dir + "/tokenizer.model");
  else if (exists(dir + "/tokenizer.json"))
    t = loadByteLevelBPE(dir + "/tokenizer.json");
  else
    throw Error("no tokenizer in " + dir +
                " (looked for tokenizer.model and tokenizer.json); pass "
                "--prompt-ids, or --tokenizer DIR");
  t->readSpecialTokens(dir);
  return t;
}

void Tokenizer::addToken(const std::string &content, int64_t id) {
  if (content.empty())
    return;
  added[content] = id;
  addedById[id] = content;
  tokenCount = std::max(tokenCount, id + 1);
}

void Tokenizer::readSpecialTokens(const std::string &dir) {
  if (auto j = readJson(dir + "/tokenizer_config.json")) {
    if (j->contains("added_tokens_decoder") &&
        (*j)["added_tokens_decoder"].is_object())
      for (auto &[id, entry] : (*j)["added_tokens_decoder"].items())
        if (entry.contains("content") && entry["content"].is_string())
          addToken(entry["content"].get<std::string>(), std::stoll(id));
  }
  if (auto j = readJson(dir + "/added_tokens.json"))
    if (j->is_object())
      for (auto &[content, id] : j->items())
        if (id.is_number_integer())
          addToken(content, id.get<int64_t>());
  // BOS/EOS: generation_config.json says what generation uses; else the
  // tokenizer's own names for them.
  if (auto j = readJson(dir + "/tokenizer_config.json"))
    if (j->contains("add_bos_token") && (*j)["add_bos_token"].is_boolean())
      addBos = (*j)["add_bos_token"].get<bool>();
  for (const char *file :
       {"/tokenizer_config.json", "/special_tokens_map.json"})
    if (auto j = readJson(dir + file)) {
      if (auto b = tokenContent(*j, "bos_token"))
        if (auto id = addedToken(*b))
          bos = *id;
      if (auto e = tokenContent(*j, "eos_token"))
        if (auto id = addedToken(*e))
          eos = {*id};
    }
  if (auto j = readJson(dir + "/generation_config.json")) {
    if (j->contains("bos_token_id") && idList((*j)["bos_token_id"]).size())
      bos = idList((*j)["bos_token_id"])[0];
    if (j->contains("eos_token_id") && idList((*j)["eos_token_id"]).size())
      eos = idList((*j)["eos_token_id"]);
  }
}

std::optional<int64_t> Tokenizer::addedToken(const std::string &content) const {
  auto it = added.find(content);
  if (it == added.end())
    return std::nullopt;
  return it->second;
}

std::vector<int64_t> Tokenizer::encode(const std::string &text) const {
  size_t bad = firstInvalidUtf8(text);
  if (bad != std::string::npos) {
    char hex[8];
    std::snprintf(hex, sizeof(hex), "0x%02x",
                  static_cast<unsigned char>(text[bad]));
    throw Error("the prompt is not valid UTF-8: byte " + std::string(hex) +
                " at offset " + std::to_string(bad));
  }
  std::vector<int64_t> ids;
  std::string pending;
  bool atStart = true;
  auto flushText = [&] {
    if (pending.empty())
      return;
    std::vector<int64_t> part = encodeText(pending, atStart);
    ids.insert(ids.end(), part.begin(), part.end());
    pending.clear();
    atStart = false;
  };
  for (size_t i = 0; i < text.size();) {
    // The longest added token starting here, if any.
    size_t bestLength = 0;
    int64_t bestId = -1;
    for (const auto &[content, id] : added)
      if (content.size() > bestLength &&
          text.compare(i, content.size(), content) == 0) {
        bestLength = content.size();
        bestId = id;
      }
    if (bestLength) {
      flushText();
      ids.push_back(bestId);
      atStart = false;
      i += bestLength;
    } else {
      pending += text[i++];
    }
  }
  flushText();
  return ids;
}

std::string Tokenizer::decode(const std::vector<int64_t> &ids) const {
  TextStream stream(*this);
  std::string text;
  for (int64_t id : ids)
    text += stream.push(id);
  return text + stream.flush();
}

std::string TextStream::push(int64_t id) {
  std::string bytes = tokenizer.tokenBytes(id, first);
  // The first token that stands for any text ends the start of the text,
  // even if what it stood for there was only the dummy-prefix space.
  if (first && !tokenizer.tokenBytes(id, false).empty())
    first = false;
  pending += bytes;
  return takePrintableUtf8(pending, /*flush=*/false);
}

std::string TextStream::flush() { return takePrintableUtf8(pending, true); }

} // namespace decc::rt
