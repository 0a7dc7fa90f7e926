//===- SafetensorsFuzzer.cpp - libFuzzer: the checkpoint reader -----------===//
//
// Any byte string as a .safetensors file: it opens with every view inside
// the data, or fails with decc's Error; nothing else (ASan/UBSan watch).

#include "fuzz/FuzzInput.h"
#include "runtime/Error.h"
#include "runtime/Safetensors.h"

#include <cstring>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  decc::fuzz::MemoryFile file(data, size);
  if (!file.ok())
    return 0;
  try {
    auto st = decc::rt::SafetensorsFile::open(file.path());
    volatile uint8_t sink = 0;
    for (const auto &[name, view] : st->tensors())
      if (view.bytes)
        sink ^= view.data[0] ^ view.data[view.bytes - 1];
  } catch (const decc::rt::Error &) {
  }
  return 0;
}
