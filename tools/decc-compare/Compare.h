//===- Compare.h - logits against a golden reference ------------*- C++ -*-===//
//
// The acceptance rule of DESIGN.md, on the tensors of a golden
// reference.safetensors and of a `--dump-logits` file:
//  - f32: every logits row within 1e-3 * max(1, max|ref row|) in max-abs
//    error, and the greedy tokens equal;
//  - bf16/f16: every row's cosine similarity >= 0.999, and greedy tokens equal
//    up to the first step whose reference top-2 margin is under 1e-2.
//
//===----------------------------------------------------------------------===//

#ifndef DECC_TOOLS_COMPARE_H
#define DECC_TOOLS_COMPARE_H

#include <cstdint>
#include <string>
#include <vector>

namespace decc {

enum class Precision { F32, Reduced };

struct Logits {
  int64_t rows = 0, vocab = 0;
  std::vector<float> values;
  const float *row(int64_t r) const { return values.data() + r * vocab; }
};

struct RunOutputs {
  std::vector<int64_t> promptIds;
  Logits prefill;
  std::vector<int64_t> generatedIds;
  Logits decode;
};

struct CompareReport {
  bool passed = true;
  /// One line per check, failures first explained.
  std::vector<std::string> lines;
};

CompareReport compareOutputs(const RunOutputs &reference,
                             const RunOutputs &result, Precision precision);

/// Loads the four tensors; throws rt::Error for a missing or malformed one.
RunOutputs loadRunOutputs(const std::string &path);

} // namespace decc

#endif // DECC_TOOLS_COMPARE_H
