//===- TokenizeFuzzer.cpp - libFuzzer: encoding text with a real tokenizer ===//
//
// Any bytes as a prompt for the tokenizer in $DECC_FUZZ_TOKENIZER (a model
// folder: tokenizer.model or tokenizer.json): ids that decode back, or the
// UTF-8 error; never a crash or an exception of another kind.

#include "runtime/Error.h"
#include "runtime/Tokenizer.h"

#include <cstdio>
#include <cstdlib>
#include <memory>

namespace {
decc::rt::Tokenizer &tokenizer() {
  static std::unique_ptr<decc::rt::Tokenizer> t = [] {
    const char *dir = std::getenv("DECC_FUZZ_TOKENIZER");
    if (!dir) {
      std::fprintf(stderr, "set DECC_FUZZ_TOKENIZER to a model folder\n");
      std::exit(2);
    }
    return decc::rt::Tokenizer::load(dir);
  }();
  return *t;
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string text(reinterpret_cast<const char *>(data), size);
  try {
    tokenizer().decode(tokenizer().encode(text));
  } catch (const decc::rt::Error &) {
  }
  return 0;
}
