//===- Compare.cpp - logits against a golden reference --------------------===//

#include "tools/decc-compare/Compare.h"

#include "runtime/Error.h"
#include "runtime/Safetensors.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace decc {

namespace {
constexpr double kF32Tolerance = 1e-3;
// The half-precision rule when no run of the reference implementation in
// that precision is at hand (the rule before DESIGN.md held builds to it).
constexpr double kFallbackMinCosine = 0.999;
constexpr double kFallbackMinMargin = 1e-2;
// The cosine bound is never tighter than this below 1.
constexpr double kCosineFloor = 1e-5;

std::string fmt(const char *format, double a, double b = 0, double c = 0) {
  char buf[200];
  std::snprintf(buf, sizeof(buf), format, a, b, c);
  return buf;
}

double topTwoMargin(const float *row, int64_t n) {
  double first = -INFINITY, second = -INFINITY;
  for (int64_t i = 0; i < n; ++i) {
    if (row[i] > first) {
      second = first;
      first = row[i];
    } else if (row[i] > second) {
      second = row[i];
    }
  }
  return first - second;
}

/// One row of a run against the same row of the reference.
struct RowError {
  double maxAbs = 0; // infinite where a value is NaN
  double maxRef = 0; // max |reference|
  double cosine = 1;
};

RowError rowError(const float *want, const float *got, int64_t n) {
  RowError e;
  double dot = 0, na = 0, nb = 0;
  for (int64_t i = 0; i < n; ++i) {
    double a = want[i], b = got[i];
    e.maxRef = std::max(e.maxRef, std::fabs(a));
    double err = std::fabs(a - b);
    e.maxAbs = std::max(e.maxAbs, std::isnan(err) ? INFINITY : err);
    dot += a * b;
    na += a * a;
    nb += b * b;
  }
  e.cosine = dot / std::sqrt(na * nb);
  if (std::isnan(e.cosine))
    e.cosine = -1;
  return e;
}

/// The first step at which `got` chose another token than `want` (or the
/// end of the shorter of the two).
size_t firstMismatch(const std::vector<int64_t> &want,
                     const std::vector<int64_t> &got) {
  size_t n = std::min(want.size(), got.size());
  for (size_t i = 0; i < n; ++i)
    if (want[i] != got[i])
      return i;
  return n;
}

/// What a row must satisfy.
struct RowRule {
  Precision precision;
  double maxAbs = INFINITY; // Reduced: the absolute bound
  double minCosine = -1;    // Reduced
  double minMargin = 0;     // Reduced: tokens are checked up to this margin
};

/// Checks the first `rows` rows of `got` against `want` (`got` may hold more
/// unless `exactRows`); returns false on the first failing row and says which.
bool compareLogits(const char *name, const Logits &want, const Logits &got,
                   int64_t rows, bool exactRows, const RowRule &rule,
                   CompareReport &report) {
  if (want.vocab != got.vocab || got.rows < rows ||
      (exactRows && got.rows != want.rows)) {
    report.lines.push_back(
        std::string(name) + ": shape [" + std::to_string(got.rows) + ", " +
        std::to_string(got.vocab) +
        "] differs from the "
        "reference's [" +
        std::to_string(want.rows) + ", " + std::to_string(want.vocab) + "]");
    return false;
  }
  bool f32 = rule.precision == Precision::F32;
  // f32: the largest error relative to its bound; reduced: the largest
  // error and the lowest cosine.
  double worst = 0, lowestCosine = 1;
  for (int64_t r = 0; r < rows; ++r) {
    RowError e = rowError(want.row(r), got.row(r), want.vocab);
    std::string where = std::string(name) + " row " + std::to_string(r);
    if (f32) {
      double bound = kF32Tolerance * std::max(1.0, e.maxRef);
      worst = std::max(worst, e.maxAbs / bound);
      if (!(e.maxAbs <= bound)) {
        report.lines.push_back(
            where + fmt(": max abs error %.3g exceeds %.3g", e.maxAbs, bound));
        return false;
      }
      continue;
    }
    worst = std::max(worst, e.maxAbs);
    lowestCosine = std::min(lowestCosine, e.cosine);
    if (!(e.maxAbs <= rule.maxAbs)) {
      report.lines.push_back(where + fmt(": max abs error %.4g exceeds %.4g",
                                         e.maxAbs, rule.maxAbs));
      return false;
    }
    if (!(e.cosine >= rule.minCosine)) {
      report.lines.push_back(
          where + fmt(": cosine %.6f is below %.6f", e.cosine, rule.minCosine));
      return false;
    }
  }
  std::string ok = std::string(name) + ": " + std::to_string(rows) + " rows ok";
  if (f32)
    ok += fmt(" (worst error %.3f of the bound)", worst);
  else if (std::isinf(rule.maxAbs))
    ok += fmt(" (lowest cosine %.6f)", lowestCosine);
  else
    ok += fmt(" (max abs error %.4g of %.4g, lowest cosine %.6f)", worst,
              rule.maxAbs, lowestCosine);
  report.lines.push_back(ok);
  return true;
}
/// The rows' rule in `precision`: for half precision against the
/// reference implementation's own run (`cost`), or the earlier rule.
RowRule ruleFor(Precision precision,
                const std::optional<HalfPrecisionCost> &cost,
                CompareReport &report) {
  RowRule rule{precision};
  if (precision != Precision::Reduced)
    return rule;
  if (cost) {
    rule.maxAbs = 2 * cost->maxAbsError;
    rule.minCosine = 1 - std::max(2 * (1 - cost->minCosine), kCosineFloor);
    rule.minMargin = 2 * cost->maxAbsError;
    report.lines.push_back(
        fmt("half-precision rule: the reference implementation's own run "
            "has E = %.4g, C = %.6f",
            cost->maxAbsError, cost->minCosine) +
        " over " + std::to_string(cost->rows) + " rows");
  } else {
    rule.minCosine = kFallbackMinCosine;
    rule.minMargin = kFallbackMinMargin;
    report.lines.push_back("half-precision rule: no run of the reference "
                           "implementation in this precision; cosine >= "
                           "0.999, tokens up to a 0.01 margin");
  }
  return rule;
}

/// Adds rows [0, rows) of `got` against `want` to E and C.
void addCost(HalfPrecisionCost &cost, const Logits &want, const Logits &got,
             int64_t rows) {
  for (int64_t r = 0; r < rows; ++r) {
    RowError e = rowError(want.row(r), got.row(r), want.vocab);
    cost.maxAbsError = std::max(cost.maxAbsError, e.maxAbs);
    cost.minCosine = std::min(cost.minCosine, e.cosine);
    ++cost.rows;
  }
}

/// Tensor `name` of `path` as rows of its last dimension, and its shape.
Logits tensorRows(const std::string &path, const std::string &name,
                  std::vector<int64_t> &shape) {
  auto file = rt::SafetensorsFile::open(path);
  const rt::TensorView &t = file->get(name);
  if (t.shape.empty())
    throw rt::Error(path + ": tensor '" + name + "' is a scalar");
  shape = t.shape;
  Logits l;
  l.vocab = t.shape.back();
  l.rows = l.vocab ? t.numElements() / l.vocab : 0;
  l.values.resize(size_t(t.numElements()));
  rt::convertToF32(t, l.values.data());
  return l;
}
} // namespace

HalfPrecisionCost measureHalfPrecisionCost(const RunOutputs &reference,
                                           const RunOutputs &halfRun) {
  if (reference.promptIds != halfRun.promptIds)
    throw rt::Error("the half-precision run has another prompt than the "
                    "reference");
  if (reference.prefill.vocab != halfRun.prefill.vocab ||
      reference.prefill.rows != halfRun.prefill.rows ||
      reference.decode.vocab != halfRun.decode.vocab)
    throw rt::Error("the half-precision run's logits are not shaped like the "
                    "reference's");
  HalfPrecisionCost cost;
  addCost(cost, reference.prefill, halfRun.prefill, reference.prefill.rows);
  size_t mismatch = firstMismatch(reference.generatedIds, halfRun.generatedIds);
  addCost(cost, reference.decode, halfRun.decode,
          std::min({int64_t(mismatch) + 1, reference.decode.rows,
                    halfRun.decode.rows}));
  return cost;
}

CompareReport compareOutputs(const RunOutputs &reference,
                             const RunOutputs &result, Precision precision,
                             const std::optional<HalfPrecisionCost> &cost) {
  CompareReport report;
  if (reference.promptIds != result.promptIds) {
    report.passed = false;
    report.lines.push_back("prompt_ids differ from the reference's");
    return report;
  }
  RowRule rule = ruleFor(precision, cost, report);
  report.passed &= compareLogits("prefill_logits", reference.prefill,
                                 result.prefill, reference.prefill.rows,
                                 /*exactRows=*/true, rule, report);

  // Greedy tokens: all of them in f32; in half precision, up to the first
  // step the reference itself barely decided.
  size_t checked = reference.generatedIds.size();
  std::string why;
  if (precision == Precision::Reduced)
    for (size_t i = 0; i < checked && i < size_t(reference.decode.rows); ++i) {
      double margin = topTwoMargin(reference.decode.row(int64_t(i)),
                                   reference.decode.vocab);
      if (margin < rule.minMargin) {
        checked = i;
        why = fmt(" (the reference's top-2 margin at step %.0f, %.3g, is "
                  "under %.3g)",
                  double(i), margin, rule.minMargin);
        break;
      }
    }
  size_t mismatch = firstMismatch(reference.generatedIds, result.generatedIds);
  bool tokensOk = mismatch >= checked;
  if (precision == Precision::F32 &&
      result.generatedIds.size() != reference.generatedIds.size())
    tokensOk = false;
  if (tokensOk) {
    report.lines.push_back("generated_ids: " + std::to_string(checked) +
                           " of " +
                           std::to_string(reference.generatedIds.size()) +
                           " greedy tokens match" + why);
  } else if (mismatch < result.generatedIds.size() &&
             mismatch < reference.generatedIds.size()) {
    report.lines.push_back(
        "generated_ids: step " + std::to_string(mismatch) + " chose " +
        std::to_string(result.generatedIds[mismatch]) + ", the reference " +
        std::to_string(reference.generatedIds[mismatch]));
  } else {
    report.lines.push_back(
        "generated_ids: " + std::to_string(result.generatedIds.size()) +
        " tokens, the reference has " +
        std::to_string(reference.generatedIds.size()));
  }
  report.passed &= tokensOk;

  // Decode rows are only comparable while the token streams agree.
  int64_t rows =
      std::min<int64_t>(int64_t(mismatch) + 1, reference.decode.rows);
  report.passed &=
      compareLogits("decode_logits", reference.decode, result.decode, rows,
                    /*exactRows=*/false, rule, report);
  return report;
}

CompareReport compareTensor(const std::string &reference,
                            const std::string &result, const std::string &name,
                            Precision precision, const std::string &halfRun) {
  std::vector<int64_t> wantShape, gotShape;
  Logits want = tensorRows(reference, name, wantShape),
         got = tensorRows(result, name, gotShape);
  CompareReport report;
  if (wantShape != gotShape) {
    report.passed = false;
    report.lines.push_back(name + ": shape " + rt::shapeString(gotShape) +
                           " differs from the reference's " +
                           rt::shapeString(wantShape));
    return report;
  }
  std::optional<HalfPrecisionCost> cost;
  if (precision == Precision::Reduced && !halfRun.empty()) {
    std::vector<int64_t> halfShape;
    Logits half = tensorRows(halfRun, name, halfShape);
    if (halfShape != wantShape)
      throw rt::Error(halfRun + ": tensor '" + name + "' is " +
                      rt::shapeString(halfShape) + ", the reference's " +
                      rt::shapeString(wantShape));
    cost.emplace();
    addCost(*cost, want, half, want.rows);
  }
  report.passed =
      compareLogits(name.c_str(), want, got, want.rows, /*exactRows=*/true,
                    ruleFor(precision, cost, report), report);
  return report;
}

RunOutputs loadRunOutputs(const std::string &path) {
  auto file = rt::SafetensorsFile::open(path);
  RunOutputs out;
  auto logits = [&](const char *name, Logits &l) {
    const rt::TensorView &t = file->get(name);
    if (t.shape.size() != 2)
      throw rt::Error(path + ": tensor '" + name + "' must be 2-D, got " +
                      t.shapeString());
    l.rows = t.shape[0];
    l.vocab = t.shape[1];
    l.values.resize(size_t(t.numElements()));
    rt::convertToF32(t, l.values.data());
  };
  out.promptIds = rt::readIntegers(file->get("prompt_ids"));
  out.generatedIds = rt::readIntegers(file->get("generated_ids"));
  logits("prefill_logits", out.prefill);
  logits("decode_logits", out.decode);
  return out;
}

} // namespace decc
