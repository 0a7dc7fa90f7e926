//===- decc-compare.cpp - check a run against a golden reference ----------===//
//
// decc-compare REFERENCE RESULT [--precision=f32|bf16|f16]
// Exit 0: passes; 1: a check failed; 2: bad input.
//
//===----------------------------------------------------------------------===//

#include "tools/decc-compare/Compare.h"

#include "runtime/Error.h"

#include <cstdio>
#include <cstring>
#include <string>

int main(int argc, char **argv) {
  std::string files[2];
  int nfiles = 0;
  decc::Precision precision = decc::Precision::F32;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--precision=", 0) == 0) {
      std::string p = arg.substr(12);
      if (p == "f32")
        precision = decc::Precision::F32;
      else if (p == "bf16" || p == "f16")
        precision = decc::Precision::Reduced;
      else {
        std::fprintf(stderr,
                     "decc-compare: error: unknown precision '%s'; "
                     "accepted: f32, bf16, f16\n",
                     p.c_str());
        return 2;
      }
    } else if (nfiles < 2 && arg.rfind("-", 0) != 0) {
      files[nfiles++] = arg;
    } else {
      std::fprintf(stderr, "decc-compare: error: unexpected argument '%s'\n",
                   arg.c_str());
      return 2;
    }
  }
  if (nfiles != 2) {
    std::fprintf(stderr, "usage: decc-compare REFERENCE RESULT "
                         "[--precision=f32|bf16|f16]\n");
    return 2;
  }
  try {
    decc::RunOutputs reference = decc::loadRunOutputs(files[0]);
    decc::RunOutputs result = decc::loadRunOutputs(files[1]);
    decc::CompareReport report =
        decc::compareOutputs(reference, result, precision);
    for (const std::string &line : report.lines)
      std::printf("%s\n", line.c_str());
    std::printf("%s\n", report.passed ? "PASS" : "FAIL");
    return report.passed ? 0 : 1;
  } catch (const decc::rt::Error &e) {
    std::fprintf(stderr, "decc-compare: error: %s\n", e.what());
    return 2;
  }
}
