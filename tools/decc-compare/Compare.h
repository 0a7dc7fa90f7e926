//===- Compare.h - logits against a golden reference ------------*- C++ -*-===//
//
// The acceptance rule of DESIGN.md, on the tensors of a golden
// reference.safetensors and of a `--dump-logits` file:
//  - f32: every logits row within 1e-3 * max(1, max|ref row|) in max-abs
//    error, and the greedy tokens equal;
//  - bf16/f16: held to the reference implementation's own run in the same
//    precision (reference-hf-<dtype>.safetensors). With E its max-abs error
//    and C its lowest cosine against the f32 reference (over its comparable
//    rows), every comparable row of the build is within 2E in max-abs error
//    and has cosine >= 1 - max(2(1 - C), 1e-5), and the greedy tokens match
//    up to the first step whose reference top-2 margin is under 2E.
//  - bf16/f16 without such a run: the earlier rule, cosine >= 0.999 and
//    tokens up to a 1e-2 margin.
// A row is comparable while the run's tokens agree with the reference's:
// every prefill row, and decode rows up to and including the first step
// that chose another token (later rows continue another sequence).
//
//===----------------------------------------------------------------------===//

#ifndef DECC_TOOLS_COMPARE_H
#define DECC_TOOLS_COMPARE_H

#include <cstdint>
#include <optional>
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

/// What half precision costs the reference implementation itself: its own
/// bf16/f16 run measured against the f32 reference.
struct HalfPrecisionCost {
  double maxAbsError = 0; // E
  double minCosine = 1;   // C
  int64_t rows = 0;       // the comparable rows E and C are over
};

struct CompareReport {
  bool passed = true;
  /// One line per check, failures first explained.
  std::vector<std::string> lines;
};

/// E and C of `halfRun` (the reference implementation in half precision)
/// against the f32 `reference`; throws rt::Error when the two runs are not
/// of the same prompt and vocabulary.
HalfPrecisionCost measureHalfPrecisionCost(const RunOutputs &reference,
                                           const RunOutputs &halfRun);

/// `cost` is used for Precision::Reduced: the rule against the reference
/// implementation's own half-precision run; without it, the earlier rule.
CompareReport compareOutputs(const RunOutputs &reference,
                             const RunOutputs &result, Precision precision,
                             const std::optional<HalfPrecisionCost> &cost = {});

/// Loads the four tensors; throws rt::Error for a missing or malformed one.
RunOutputs loadRunOutputs(const std::string &path);

/// Tensor `name` of two files (image embeddings, hidden states), its rows
/// (the last dimension) held to the rule of logits rows in `precision`:
/// half precision against the same tensor of `halfRun`, the reference
/// implementation's run in that precision, when one is named (E and C over
/// all its rows), else the earlier rule; throws rt::Error for a missing
/// tensor or a half run of another shape.
CompareReport compareTensor(const std::string &reference,
                            const std::string &result, const std::string &name,
                            Precision precision = Precision::F32,
                            const std::string &halfRun = "");

} // namespace decc

#endif // DECC_TOOLS_COMPARE_H
