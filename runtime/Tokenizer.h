//===- Tokenizer.h - text <-> token ids for the emitted executable -*- C++
//-*-===//
//
// A model folder brings its own tokenizer: SentencePiece `tokenizer.model`
// (InternLM2, Phi-3, Llama, stories260K) through the sentencepiece library,
// or byte-level BPE `tokenizer.json` (MPT's gpt-neox, Qwen2). Added and
// special tokens (tokenizer_config.json, added_tokens.json, tokenizer.json)
// are split out of the text before either model sees it.
//
//===----------------------------------------------------------------------===//

#ifndef DECC_RUNTIME_TOKENIZER_H
#define DECC_RUNTIME_TOKENIZER_H

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace decc::rt {

class Tokenizer {
public:
  virtual ~Tokenizer();

  /// The tokenizer of model folder `dir`: tokenizer.model if present, else
  /// tokenizer.json. Throws Error naming the files looked for.
  static std::unique_ptr<Tokenizer> load(const std::string &dir);

  /// Text to ids (no BOS): added tokens are matched first, the rest goes to
  /// the tokenizer model. Throws Error for text that is not UTF-8.
  std::vector<int64_t> encode(const std::string &text) const;

  /// The bytes token `id` contributes to decoded text ("" for control
  /// tokens); `first` is true for the first token of a text.
  virtual std::string tokenBytes(int64_t id, bool first) const = 0;

  /// Ids back to text.
  std::string decode(const std::vector<int64_t> &ids) const;

  /// One more than the largest id the tokenizer can produce.
  int64_t size() const { return tokenCount; }
  /// The id of an added token spelled `content`, if any.
  std::optional<int64_t> addedToken(const std::string &content) const;
  /// Which file it was read from, for messages.
  const std::string &source() const { return file; }

  /// BOS/EOS ids as the tokenizer files name them (-1 if none).
  int64_t bos = -1;
  /// Whether a prompt starts with BOS (tokenizer_config's add_bos_token;
  /// SentencePiece models default to yes).
  bool addBos = false;
  std::vector<int64_t> eos;

protected:
  /// Ids of a text that contains no added token.
  virtual std::vector<int64_t> encodeText(const std::string &text,
                                          bool atStart) const = 0;
  /// Reads added tokens and BOS/EOS from the folder's JSON files.
  void readSpecialTokens(const std::string &dir);
  void addToken(const std::string &content, int64_t id);

  int64_t tokenCount = 0;
  std::string file;
  std::map<std::string, int64_t> added;
  std::map<int64_t, std::string> addedById;
};

/// Turns generated ids into printable text as they arrive: bytes of a
/// character split over several tokens are held back until complete, so
/// every write is valid UTF-8.
class TextStream {
public:
  explicit TextStream(const Tokenizer &tokenizer) : tokenizer(tokenizer) {}
  /// The text that can be printed after `id`.
  std::string push(int64_t id);
  /// Whatever is held back, at the end.
  std::string flush();

private:
  const Tokenizer &tokenizer;
  std::string pending;
  bool first = true;
};

} // namespace decc::rt

#endif // DECC_RUNTIME_TOKENIZER_H
