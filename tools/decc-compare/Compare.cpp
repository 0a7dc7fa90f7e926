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
constexpr double kMinCosine = 0.999;
constexpr double kMinMargin = 1e-2;

std::string fmt(const char *format, double a, double b = 0, double c = 0) {
  char buf[160];
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

/// Checks the first `rows` rows of `got` against `want` (`got` may hold more
/// unless `exactRows`); returns false on the first failing row and says which.
bool compareLogits(const char *name, const Logits &want, const Logits &got,
                   int64_t rows, bool exactRows, Precision precision,
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
  // f32: the largest error relative to its bound; reduced: the lowest cosine.
  double worst = precision == Precision::F32 ? 0.0 : 1.0;
  for (int64_t r = 0; r < rows; ++r) {
    const float *a = want.row(r), *b = got.row(r);
    if (precision == Precision::F32) {
      double maxRef = 0, maxErr = 0;
      for (int64_t i = 0; i < want.vocab; ++i) {
        maxRef = std::max(maxRef, std::fabs(double(a[i])));
        double err = std::fabs(double(a[i]) - double(b[i]));
        if (std::isnan(err))
          err = INFINITY;
        maxErr = std::max(maxErr, err);
      }
      double bound = kF32Tolerance * std::max(1.0, maxRef);
      worst = std::max(worst, maxErr / bound);
      if (!(maxErr <= bound)) {
        report.lines.push_back(
            std::string(name) + " row " + std::to_string(r) +
            fmt(": max abs error %.3g exceeds %.3g", maxErr, bound));
        return false;
      }
    } else {
      double dot = 0, na = 0, nb = 0;
      for (int64_t i = 0; i < want.vocab; ++i) {
        dot += double(a[i]) * b[i];
        na += double(a[i]) * a[i];
        nb += double(b[i]) * b[i];
      }
      double cosine = dot / std::sqrt(na * nb);
      worst = std::min(worst, cosine);
      if (!(cosine >= kMinCosine)) {
        report.lines.push_back(
            std::string(name) + " row " + std::to_string(r) +
            fmt(": cosine %.6f is below %.3f", cosine, kMinCosine));
        return false;
      }
    }
  }
  report.lines.push_back(std::string(name) + ": " + std::to_string(rows) +
                         " rows ok" +
                         (precision == Precision::F32
                              ? fmt(" (worst error %.3f of the bound)", worst)
                              : fmt(" (lowest cosine %.6f)", worst)));
  return true;
}
} // namespace

CompareReport compareOutputs(const RunOutputs &reference,
                             const RunOutputs &result, Precision precision) {
  CompareReport report;
  if (reference.promptIds != result.promptIds) {
    report.passed = false;
    report.lines.push_back("prompt_ids differ from the reference's");
    return report;
  }
  report.passed &= compareLogits("prefill_logits", reference.prefill,
                                 result.prefill, reference.prefill.rows,
                                 /*exactRows=*/true, precision, report);

  // Greedy tokens: all of them in f32; in reduced precision, up to the first
  // step the reference itself barely decided.
  size_t checked = reference.generatedIds.size();
  if (precision == Precision::Reduced)
    for (size_t i = 0; i < checked && i < size_t(reference.decode.rows); ++i)
      if (topTwoMargin(reference.decode.row(int64_t(i)),
                       reference.decode.vocab) < kMinMargin) {
        checked = i;
        break;
      }
  bool tokensOk = result.generatedIds.size() >= checked;
  size_t mismatch = checked;
  for (size_t i = 0; tokensOk && i < checked; ++i)
    if (reference.generatedIds[i] != result.generatedIds[i]) {
      tokensOk = false;
      mismatch = i;
    }
  if (precision == Precision::F32 &&
      result.generatedIds.size() != reference.generatedIds.size())
    tokensOk = false;
  if (tokensOk) {
    report.lines.push_back(
        "generated_ids: " + std::to_string(checked) + " of " +
        std::to_string(reference.generatedIds.size()) + " greedy tokens match");
  } else if (mismatch < checked && mismatch < result.generatedIds.size()) {
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
  int64_t rows = tokensOk ? reference.decode.rows
                          : std::min<int64_t>(int64_t(mismatch) + 1,
                                              reference.decode.rows);
  report.passed &=
      compareLogits("decode_logits", reference.decode, result.decode, rows,
                    /*exactRows=*/false, precision, report);
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
