//===- SentencePieceFuzzer.cpp - libFuzzer: a tokenizer.model -------------===//
//
// Any bytes as a SentencePiece model (tokenizer.model): loaded, then a
// fixed text encoded and decoded, or refused with decc's Error; never a
// crash or an exception of another kind.

#include "fuzz/FuzzInput.h"
#include "runtime/Error.h"
#include "runtime/Tokenizer.h"
#include "runtime/TokenizerModels.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  decc::fuzz::MemoryFile file(data, size);
  if (!file.ok())
    return 0;
  try {
    auto tokenizer = decc::rt::loadSentencePiece(file.path());
    tokenizer->decode(
        tokenizer->encode("Hello, world! 123 \xc3\xa9t\xc3\xa9 \xe4\xbd\xa0"));
  } catch (const decc::rt::Error &) {
  }
  return 0;
}
