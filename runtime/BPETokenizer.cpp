//===- BPETokenizer.cpp - byte-level BPE from tokenizer.json --------------===//
//
// GPT-2 style byte-level BPE as Hugging Face tokenizers runs it: NFC
// normalization (utf8proc), pre-tokenization by the tokenizer's regex
// (PCRE2, Unicode properties), bytes mapped to printable characters, then
// merges by rank.
//
//===----------------------------------------------------------------------===//

#include "runtime/TokenizerModels.h"

#include "runtime/Error.h"

#include <nlohmann/json.hpp>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include <climits>
#include <fstream>
#include <mutex>
#include <queue>
#include <unordered_map>

namespace decc::rt {

namespace {

/// GPT-2's pattern, what ByteLevel(use_regex=true) splits with.
const char *const kGPT2Pattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|"
    "\\s+(?!\\S)|\\s+";

std::string encodeCodepoint(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += char(cp);
  } else if (cp < 0x800) {
    s += char(0xC0 | (cp >> 6));
    s += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += char(0xE0 | (cp >> 12));
    s += char(0x80 | ((cp >> 6) & 0x3F));
    s += char(0x80 | (cp & 0x3F));
  } else {
    s += char(0xF0 | (cp >> 18));
    s += char(0x80 | ((cp >> 12) & 0x3F));
    s += char(0x80 | ((cp >> 6) & 0x3F));
    s += char(0x80 | (cp & 0x3F));
  }
  return s;
}

/// A compiled pre-tokenizer pattern.
class Regex {
public:
  explicit Regex(const std::string &pattern) {
    int error;
    PCRE2_SIZE offset;
    code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.c_str()),
                         PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &error,
                         &offset, nullptr);
    if (!code) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof(message));
      throw Error("tokenizer.json: cannot compile the pre-tokenizer regex: " +
                  std::string(reinterpret_cast<char *>(message)));
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  }
  ~Regex() { pcre2_code_free(code); }

  /// The pieces of `text`: matches and the gaps between them ("Isolated").
  std::vector<std::string> split(const std::string &text) const {
    std::vector<std::string> pieces;
    pcre2_match_data *match =
        pcre2_match_data_create_from_pattern(code, nullptr);
    size_t start = 0, gap = 0;
    // PCRE2 checks the whole subject's UTF-8 on every call unless told not
    // to: once is enough (per call it made splitting quadratic, 1 MB took
    // two minutes).
    uint32_t options = 0;
    while (start <= text.size()) {
      int rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(text.data()),
                           text.size(), start, options, match, nullptr);
      options = PCRE2_NO_UTF_CHECK;
      if (rc < 0)
        break;
      PCRE2_SIZE *ov = pcre2_get_ovector_pointer(match);
      if (ov[0] > gap)
        pieces.push_back(text.substr(gap, ov[0] - gap));
      if (ov[1] > ov[0])
        pieces.push_back(text.substr(ov[0], ov[1] - ov[0]));
      gap = ov[1];
      // An empty match moves on by one character.
      start = ov[1] > ov[0] ? ov[1] : ov[1] + 1;
      while (start < text.size() && (text[start] & 0xC0) == 0x80)
        ++start;
    }
    if (gap < text.size())
      pieces.push_back(text.substr(gap));
    pcre2_match_data_free(match);
    return pieces;
  }

private:
  pcre2_code *code = nullptr;
};

class ByteLevelBPE : public Tokenizer {
public:
  explicit ByteLevelBPE(const std::string &path) {
    file = path;
    std::ifstream in(path);
    nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.is_object())
      throw Error(path + ": not valid JSON");
    try {
      const auto &model = j.at("model");
      if (model.value("type", "") != "BPE")
        throw Error(path + ": model type '" + model.value("type", "") +
                    "' is not supported (only BPE)");
      // A vocab that is not a non-empty object encoded every prompt to
      // nothing; ids past int32 wrapped where they became model inputs.
      const auto &pieces = model.at("vocab");
      if (!pieces.is_object() || pieces.empty())
        throw Error(path + ": model.vocab must be a non-empty object of " +
                    "piece -> id, got " +
                    (pieces.is_object()
                         ? std::string("an empty object")
                         : "a JSON " + std::string(pieces.type_name())));
      constexpr int64_t kMaxId = (int64_t(1) << 31) - 1;
      for (auto &[piece, id] : pieces.items()) {
        if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
            id.get<int64_t>() > kMaxId)
          throw Error(path + ": model.vocab: the id of '" + piece +
                      "' must be an integer from 0 to " +
                      std::to_string(kMaxId));
        vocab[piece] = id.get<int64_t>();
        tokenCount = std::max(tokenCount, id.get<int64_t>() + 1);
      }
      int rank = 0;
      for (const auto &m : model.at("merges")) {
        std::string a, b;
        if (m.is_string()) {
          std::string s = m.get<std::string>();
          size_t space = s.find(' ');
          a = s.substr(0, space);
          b = s.substr(space + 1);
        } else {
          a = m.at(0).get<std::string>();
          b = m.at(1).get<std::string>();
        }
        ranks[a + " " + b] = rank++;
      }
      nfc = j.contains("normalizer") && j["normalizer"].is_object() &&
            j["normalizer"].value("type", "") == "NFC";
      // By reference: value() copies, and copying is recursive (a
      // pre_tokenizer nested 100k deep overflowed the stack).
      static const nlohmann::json none;
      readPreTokenizer(j.contains("pre_tokenizer") ? j["pre_tokenizer"] : none);
      if (j.contains("added_tokens"))
        for (const auto &t : j["added_tokens"])
          addToken(t.at("content").get<std::string>(),
                   t.at("id").get<int64_t>());
    } catch (const nlohmann::json::exception &e) {
      throw Error(path + ": " + e.what());
    }
    for (int b = 0; b < 256; ++b)
      byteOfChar[charOfByte(b)] = char(b);
    for (const auto &[piece, id] : vocab)
      pieceOf[id] = piece;
  }

  std::string tokenBytes(int64_t id, bool) const override {
    auto a = addedById.find(id);
    if (a != addedById.end())
      return a->second;
    auto it = pieceOf.find(id);
    if (it == pieceOf.end())
      return "";
    // Each character of the piece stands for one byte.
    std::string bytes;
    const std::string &piece = it->second;
    for (size_t i = 0; i < piece.size();) {
      size_t n = 1;
      while (i + n < piece.size() && (piece[i + n] & 0xC0) == 0x80)
        ++n;
      auto b = byteOfChar.find(piece.substr(i, n));
      if (b != byteOfChar.end())
        bytes += b->second;
      i += n;
    }
    return bytes;
  }

protected:
  std::vector<int64_t> encodeText(const std::string &input,
                                  bool) const override {
    std::string text = nfc ? normalize(input) : input;
    std::vector<int64_t> ids;
    for (const std::string &piece : pattern->split(text)) {
      std::string mapped;
      for (unsigned char c : piece)
        mapped += charOfByte(c);
      for (int64_t id : bpe(mapped))
        ids.push_back(id);
    }
    return ids;
  }

private:
  void readPreTokenizer(const nlohmann::json &p) {
    std::string regex = kGPT2Pattern;
    if (p.is_object() && p.value("type", "") == "Sequence") {
      for (const auto &step : p.at("pretokenizers"))
        if (step.value("type", "") == "Split") {
          if (step.value("behavior", "") != "Isolated" ||
              step.value("invert", false))
            throw Error(file + ": Split pre-tokenizer behavior '" +
                        step.value("behavior", "") + "' is not supported");
          regex = step.at("pattern").at("Regex").get<std::string>();
        }
    } else if (!p.is_object() || p.value("type", "") != "ByteLevel") {
      // Named, not dump()ed: printing recurses as deep as the value nests.
      std::string what =
          p.is_object() && p.contains("type") && p["type"].is_string()
              ? "'" + p["type"].get<std::string>() + "'"
              : std::string("that is a JSON ") + p.type_name();
      throw Error(file + ": pre-tokenizer " + what +
                  " is not supported (ByteLevel, or Split + ByteLevel)");
    } else if (p.value("add_prefix_space", false)) {
      throw Error(file + ": ByteLevel add_prefix_space is not supported");
    }
    pattern = std::make_unique<Regex>(regex);
  }

  static std::string normalize(const std::string &s) {
    // With the length, not as a C string: utf8proc_NFC stops at the first
    // NUL, which cut a prompt short.
    utf8proc_uint8_t *out = nullptr;
    utf8proc_ssize_t n =
        utf8proc_map(reinterpret_cast<const utf8proc_uint8_t *>(s.data()),
                     utf8proc_ssize_t(s.size()), &out,
                     utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
    if (n < 0)
      return s;
    std::string r(reinterpret_cast<char *>(out), size_t(n));
    free(out);
    return r;
  }

  /// GPT-2's bytes_to_unicode: printable bytes stand for themselves, the
  /// others for U+0100 upwards.
  static std::string charOfByte(int b) {
    static std::vector<std::string> table = [] {
      std::vector<std::string> t(256);
      int next = 256;
      for (int c = 0; c < 256; ++c) {
        bool printable = (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) ||
                         (c >= 0xAE && c <= 0xFF);
        t[c] = encodeCodepoint(printable ? uint32_t(c) : uint32_t(next++));
      }
      return t;
    }();
    return table[b];
  }

  /// Merges the characters of a pre-token by rank, lowest first.
  std::vector<int64_t> bpe(const std::string &word) const {
    {
      std::lock_guard<std::mutex> lock(cacheMutex);
      auto hit = cache.find(word);
      if (hit != cache.end())
        return hit->second;
    }
    std::vector<std::string> symbols;
    for (size_t i = 0; i < word.size();) {
      size_t n = 1;
      while (i + n < word.size() && (word[i + n] & 0xC0) == 0x80)
        ++n;
      symbols.push_back(word.substr(i, n));
      i += n;
    }
    // Merge the lowest-ranked adjacent pair, the leftmost of equal ranks,
    // until none has a rank: candidates in a heap, symbols in a linked list,
    // a version per symbol to drop stale candidates. n log n in the
    // symbols (rescanning every pair after each merge was quadratic: a
    // 20k-letter word took 11 s).
    size_t n = symbols.size();
    std::vector<size_t> next(n), prev(n);
    std::vector<uint32_t> version(n, 0);
    std::vector<bool> alive(n, true);
    for (size_t i = 0; i < n; ++i) {
      next[i] = i + 1;
      prev[i] = i - 1; // wraps for the first, which is never read
    }
    struct Candidate {
      int rank;
      size_t left, right;
      uint32_t leftVersion, rightVersion;
      bool operator>(const Candidate &o) const {
        return rank != o.rank ? rank > o.rank : left > o.left;
      }
    };
    std::priority_queue<Candidate, std::vector<Candidate>,
                        std::greater<Candidate>>
        heap;
    auto consider = [&](size_t left, size_t right) {
      auto it = ranks.find(symbols[left] + " " + symbols[right]);
      if (it != ranks.end())
        heap.push({it->second, left, right, version[left], version[right]});
    };
    for (size_t i = 0; i + 1 < n; ++i)
      consider(i, i + 1);
    while (!heap.empty()) {
      Candidate c = heap.top();
      heap.pop();
      if (!alive[c.left] || !alive[c.right] || next[c.left] != c.right ||
          version[c.left] != c.leftVersion ||
          version[c.right] != c.rightVersion)
        continue;
      symbols[c.left] += symbols[c.right];
      ++version[c.left];
      alive[c.right] = false;
      next[c.left] = next[c.right];
      if (next[c.left] < n)
        prev[next[c.left]] = c.left;
      if (c.left > 0)
        consider(prev[c.left], c.left);
      if (next[c.left] < n)
        consider(c.left, next[c.left]);
    }
    std::vector<int64_t> ids;
    for (size_t i = 0; i < n; i = next[i]) {
      auto it = vocab.find(symbols[i]);
      if (it != vocab.end())
        ids.push_back(it->second);
    }
    std::lock_guard<std::mutex> lock(cacheMutex);
    cache[word] = ids;
    return ids;
  }

  std::unordered_map<std::string, int64_t> vocab;
  std::unordered_map<int64_t, std::string> pieceOf;
  std::unordered_map<std::string, int> ranks;
  std::unordered_map<std::string, char> byteOfChar;
  std::unique_ptr<Regex> pattern;
  bool nfc = false;
  mutable std::mutex cacheMutex;
  mutable std::unordered_map<std::string, std::vector<int64_t>> cache;
};

} // namespace

std::unique_ptr<Tokenizer> loadByteLevelBPE(const std::string &path) {
  return std::make_unique<ByteLevelBPE>(path);
}

} // namespace decc::rt
