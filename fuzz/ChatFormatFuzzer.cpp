//===- ChatFormatFuzzer.cpp - libFuzzer: a tokenizer_config.json ----------===//
//
// Any text as a model folder's tokenizer_config.json: its chat format
// recognized and a conversation rendered, or refused with decc's Error.

#include "runtime/ChatFormat.h"
#include "runtime/Error.h"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <unistd.h>

namespace {
/// A folder of this process's own, holding the input as its config;
/// removed when the process ends.
struct Folder {
  std::string dir;
  Folder() {
    char name[] = "/tmp/decc-fuzz-chat-XXXXXX";
    if (!mkdtemp(name)) {
      std::perror("mkdtemp");
      std::exit(2);
    }
    dir = name;
  }
  ~Folder() {
    std::remove((dir + "/tokenizer_config.json").c_str());
    rmdir(dir.c_str());
  }
};
const std::string &folder() {
  static const Folder f;
  return f.dir;
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string path = folder() + "/tokenizer_config.json";
  FILE *f = std::fopen(path.c_str(), "wb");
  if (!f)
    return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  try {
    auto format = decc::rt::ChatFormat::load(folder());
    format.render({{"system", "Be brief."}, {"user", "Hi"}});
    format.render({{"user", std::string(reinterpret_cast<const char *>(data),
                                        size < 64 ? size : 64)}});
  } catch (const decc::rt::Error &) {
  }
  return 0;
}
