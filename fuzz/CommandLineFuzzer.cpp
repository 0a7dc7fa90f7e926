//===- CommandLineFuzzer.cpp - libFuzzer: an executable's command line ----===//
//
// Any bytes as the arguments of an emitted executable (split at NUL bytes):
// parsed into options or refused with decc's Error. `--help` and `-h`
// (print and exit) and `--prompt-file` (reads a file the input names,
// /dev/zero among them) are left out.

#include "host/HostOptions.h"
#include "runtime/Error.h"

#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::vector<std::string> args = {"model"};
  std::string current;
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == 0) {
      args.push_back(current);
      current.clear();
    } else {
      current += char(data[i]);
    }
  }
  args.push_back(current);
  for (const std::string &a : args)
    if (a == "--help" || a == "-h" || a == "--prompt-file")
      return 0;
  std::vector<char *> argv;
  for (std::string &a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  try {
    decc::host::parseOptions(int(args.size()), argv.data());
  } catch (const decc::rt::Error &) {
  }
  return 0;
}
