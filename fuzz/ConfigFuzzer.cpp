//===- ConfigFuzzer.cpp - libFuzzer: the config.json reader ---------------===//
//
// Any text as a Hugging Face config: a ModelSpec or a message, never a
// crash, an abort or an exception out of the reader.

#include "compiler/Config/ConfigLoader.h"

#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  decc::SpecOrError result = decc::parseModelSpec(
      std::string(reinterpret_cast<const char *>(data), size), "fuzz.json");
  // Either one or the other.
  if (result.spec.has_value() == !result.error.empty())
    __builtin_trap();
  return 0;
}
