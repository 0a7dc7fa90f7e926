//===- decc-compare.cpp - check a run against a golden reference ----------===//
//
// decc-compare REFERENCE RESULT [--precision=f32|bf16|f16] [--hf-reference=F]
// decc-compare REFERENCE RESULT --tensor=NAME [--precision=bf16|f16
//              --hf-reference=F]
// Exit 0: passes; 1: a check failed; 2: bad input.
//
// --tensor compares one tensor of the two files (image embeddings) row by
// row instead of a generation's logits and tokens: with the f32 rule, or in
// half precision against the same tensor of --hf-reference.
//
// bf16/f16 results are held to the reference implementation's own run in
// that precision: F, by default reference-hf-<precision>.safetensors beside
// REFERENCE (Compare.h has the rule).
//
//===----------------------------------------------------------------------===//

#include "tools/decc-compare/Compare.h"

#include "runtime/Error.h"

#include <cstdio>
#include <cstring>
#include <string>
#include <sys/stat.h>

namespace {
bool exists(const std::string &path) {
  struct stat s;
  return ::stat(path.c_str(), &s) == 0;
}

/// reference-hf-<precision>.safetensors in REFERENCE's folder.
std::string besideReference(const std::string &reference,
                            const std::string &precision) {
  size_t slash = reference.rfind('/');
  std::string dir =
      slash == std::string::npos ? "" : reference.substr(0, slash + 1);
  return dir + "reference-hf-" + precision + ".safetensors";
}
/// Prints a report's lines and its verdict; the exit status.
int finish(const decc::CompareReport &report) {
  for (const std::string &line : report.lines)
    std::printf("%s\n", line.c_str());
  std::printf("%s\n", report.passed ? "PASS" : "FAIL");
  return report.passed ? 0 : 1;
}
} // namespace

int main(int argc, char **argv) {
  std::string files[2];
  int nfiles = 0;
  std::string precisionName = "f32", halfRunPath, tensor;
  bool halfRunNamed = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--precision=", 0) == 0) {
      precisionName = arg.substr(12);
      if (precisionName != "f32" && precisionName != "bf16" &&
          precisionName != "f16") {
        std::fprintf(stderr,
                     "decc-compare: error: unknown precision '%s'; "
                     "accepted: f32, bf16, f16\n",
                     precisionName.c_str());
        return 2;
      }
    } else if (arg.rfind("--tensor=", 0) == 0) {
      tensor = arg.substr(9);
    } else if (arg.rfind("--hf-reference=", 0) == 0) {
      halfRunPath = arg.substr(15);
      halfRunNamed = true;
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
                         "[--precision=f32|bf16|f16] [--hf-reference=FILE] "
                         "[--tensor=NAME]\n");
    return 2;
  }
  decc::Precision precision =
      precisionName == "f32" ? decc::Precision::F32 : decc::Precision::Reduced;
  if (halfRunNamed && precision == decc::Precision::F32) {
    std::fprintf(stderr, "decc-compare: error: --hf-reference applies to "
                         "--precision=bf16 or f16\n");
    return 2;
  }
  if (!tensor.empty()) {
    // A tensor's half run is named: the reference-hf-<precision> file of a
    // golden folder holds logits, not the tensors of other files.
    try {
      return finish(
          decc::compareTensor(files[0], files[1], tensor, precision,
                              halfRunNamed ? halfRunPath : std::string()));
    } catch (const decc::rt::Error &e) {
      std::fprintf(stderr, "decc-compare: error: %s\n", e.what());
      return 2;
    }
  }
  try {
    decc::RunOutputs reference = decc::loadRunOutputs(files[0]);
    decc::RunOutputs result = decc::loadRunOutputs(files[1]);
    std::optional<decc::HalfPrecisionCost> cost;
    if (precision == decc::Precision::Reduced) {
      if (!halfRunNamed)
        halfRunPath = besideReference(files[0], precisionName);
      if (halfRunNamed || exists(halfRunPath)) {
        decc::RunOutputs halfRun = decc::loadRunOutputs(halfRunPath);
        try {
          cost = decc::measureHalfPrecisionCost(reference, halfRun);
        } catch (const decc::rt::Error &e) {
          throw decc::rt::Error(halfRunPath + ": " + e.what());
        }
      }
    }
    return finish(decc::compareOutputs(reference, result, precision, cost));
  } catch (const decc::rt::Error &e) {
    std::fprintf(stderr, "decc-compare: error: %s\n", e.what());
    return 2;
  }
}
