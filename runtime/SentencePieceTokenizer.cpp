//===- SentencePieceTokenizer.cpp - tokenizer.model via sentencepiece -----===//

#include "runtime/TokenizerModels.h"

#include "runtime/Error.h"

#include <sentencepiece_processor.h>

namespace decc::rt {

namespace {

class SentencePieceTokenizer : public Tokenizer {
public:
  explicit SentencePieceTokenizer(const std::string &path) {
    auto status = processor.Load(path);
    if (!status.ok())
      throw Error(path + ": not a SentencePiece model (" +
                  std::string(status.message()) + ")");
    file = path;
    tokenCount = processor.GetPieceSize();
    bos = processor.bos_id();
    addBos = bos >= 0;
    // Whether the encoder prepends a space ("dummy prefix"); the decoder
    // then drops it again. The model proto says so, but its header is not
    // part of the library's interface: ask the encoder instead.
    std::vector<std::string> pieces;
    if (processor.Encode("a", &pieces).ok() && !pieces.empty())
      dummyPrefix = pieces[0].rfind("\xE2\x96\x81", 0) == 0;
    if (processor.eos_id() >= 0)
      eos = {processor.eos_id()};
  }

  std::string tokenBytes(int64_t id, bool first) const override {
    if (id < 0 || id >= processor.GetPieceSize()) {
      auto it = addedById.find(id);
      return it == addedById.end() ? "" : it->second;
    }
    if (processor.IsControl(int(id)))
      return "";
    const std::string &piece = processor.IdToPiece(int(id));
    if (processor.IsByte(int(id)))
      return std::string(1, char(std::stoi(piece.substr(3, 2), nullptr, 16)));
    std::string text;
    // U+2581 stands for a space; the first piece's space is the dummy
    // prefix the encoder added, as SentencePiece's own decoder drops it.
    for (size_t i = 0; i < piece.size();) {
      if (piece.compare(i, 3, "\xE2\x96\x81") == 0) {
        text += ' ';
        i += 3;
      } else {
        text += piece[i++];
      }
    }
    if (first && dummyPrefix && !text.empty() && text[0] == ' ')
      text.erase(0, 1);
    return text;
  }

protected:
  std::vector<int64_t> encodeText(const std::string &text,
                                  bool atStart) const override {
    std::vector<int> ids;
    auto status = processor.Encode(text, &ids);
    if (!status.ok())
      throw Error("SentencePiece could not encode the text: " +
                  std::string(status.message()));
    return std::vector<int64_t>(ids.begin(), ids.end());
  }

private:
  sentencepiece::SentencePieceProcessor processor;
  bool dummyPrefix = false;
};

} // namespace

std::unique_ptr<Tokenizer> loadSentencePiece(const std::string &path) {
  return std::make_unique<SentencePieceTokenizer>(path);
}

} // namespace decc::rt
