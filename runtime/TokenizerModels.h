//===- TokenizerModels.h - the tokenizer models behind Tokenizer -*- C++
//-*-===//

#ifndef DECC_RUNTIME_TOKENIZERMODELS_H
#define DECC_RUNTIME_TOKENIZERMODELS_H

#include "runtime/Tokenizer.h"

namespace decc::rt {

/// SentencePiece `tokenizer.model`, through the sentencepiece library.
std::unique_ptr<Tokenizer> loadSentencePiece(const std::string &path);

/// Byte-level BPE from a Hugging Face `tokenizer.json`.
std::unique_ptr<Tokenizer> loadByteLevelBPE(const std::string &path);

} // namespace decc::rt

#endif // DECC_RUNTIME_TOKENIZERMODELS_H
