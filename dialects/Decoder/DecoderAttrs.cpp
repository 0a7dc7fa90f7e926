//===- DecoderAttrs.cpp - decoder dialect attributes ----------------------===//

#include "Decoder/DecoderAttrs.h"
#include "Decoder/DecoderDialect.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/APFloat.h"
#include "llvm/ADT/TypeSwitch.h"

#include <charconv>
#include <cmath>
#include <string>

using namespace mlir;
using namespace mlir::decoder;

/// The shortest text that reads back as `v`, for messages ("0.1", "-8").
static std::string num(double v) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, r.ptr);
}

#include "Decoder/DecoderEnums.cpp.inc"
#define GET_ATTRDEF_CLASSES
#include "Decoder/DecoderAttrs.cpp.inc"

//===----------------------------------------------------------------------===//
// Parameter syntax
//===----------------------------------------------------------------------===//

FailureOr<F64> mlir::decoder::parseF64(AsmParser &parser) {
  double value;
  if (parser.parseFloat(value))
    return failure();
  return F64(value);
}

void mlir::decoder::printF64(AsmPrinter &printer, F64 value) {
  // Shortest round-trip text, so config values read as written (1.392243,
  // not 1.3922429999999999), spelled as an MLIR float literal (needs a '.').
  std::string text = num(value);
  if (!std::isfinite(double(value))) {
    printer.printFloat(llvm::APFloat(double(value)));
    return;
  }
  if (text.find('.') == std::string::npos) {
    size_t e = text.find('e');
    text.insert(e == std::string::npos ? text.size() : e, ".0");
  }
  printer << text;
}

FailureOr<SmallVector<F64>> mlir::decoder::parseF64Array(AsmParser &parser) {
  SmallVector<F64> values;
  if (parser.parseCommaSeparatedList(AsmParser::Delimiter::Square, [&] {
        double v;
        if (parser.parseFloat(v))
          return failure();
        values.push_back(v);
        return success();
      }))
    return failure();
  return values;
}

void mlir::decoder::printF64Array(AsmPrinter &printer, ArrayRef<F64> values) {
  printer << '[';
  llvm::interleaveComma(values, printer, [&](F64 v) { printF64(printer, v); });
  printer << ']';
}

FailureOr<bool> mlir::decoder::parseBool(AsmParser &parser) {
  if (succeeded(parser.parseOptionalKeyword("true")))
    return true;
  if (succeeded(parser.parseOptionalKeyword("false")))
    return false;
  return parser.emitError(parser.getCurrentLocation(),
                          "expected 'true' or 'false'");
}

//===----------------------------------------------------------------------===//
// RoPEAttr
//===----------------------------------------------------------------------===//

LogicalResult
RoPEAttr::verify(function_ref<InFlightDiagnostic()> emitError, RoPEKind kind,
                 F64 theta, int64_t rotaryDim, F64 factor, int64_t maxPositions,
                 int64_t originalMaxPositions, ArrayRef<F64> shortFactor,
                 ArrayRef<F64> longFactor, F64 attentionFactor, F64 betaFast,
                 F64 betaSlow, F64 lowFreqFactor, F64 highFreqFactor) {
  StringRef name = stringifyRoPEKind(kind);
  if (!(theta > 0) || !std::isfinite(theta))
    return emitError() << "rope theta must be positive, got " << num(theta);
  if (rotaryDim <= 0 || rotaryDim % 2 != 0)
    return emitError() << "rope rotary_dim must be positive and even, got "
                       << rotaryDim;
  if (!(factor > 0) || !std::isfinite(factor))
    return emitError() << "rope factor must be positive, got " << num(factor);
  if (!(attentionFactor > 0) || !std::isfinite(attentionFactor))
    return emitError() << "rope attention_factor must be positive, got "
                       << num(attentionFactor);
  if (maxPositions < 0 || originalMaxPositions < 0)
    return emitError() << "rope max_positions (" << maxPositions
                       << ") and original_max_positions ("
                       << originalMaxPositions << ") must not be negative";

  bool isLongRoPE = kind == RoPEKind::LongRoPE;
  if (!isLongRoPE && (!shortFactor.empty() || !longFactor.empty()))
    return emitError() << "rope kind '" << name
                       << "' takes no short_factor/long_factor";
  if (isLongRoPE) {
    size_t expected = rotaryDim / 2;
    if (shortFactor.size() != expected || longFactor.size() != expected)
      return emitError() << "longrope short_factor has " << shortFactor.size()
                         << " and long_factor " << longFactor.size()
                         << " entries; rotary_dim " << rotaryDim << " needs "
                         << expected;
    for (double f : llvm::concat<const F64>(shortFactor, longFactor))
      if (!(f > 0) || !std::isfinite(f))
        return emitError() << "longrope factors must be positive, got "
                           << num(f);
  }
  if ((kind == RoPEKind::LongRoPE || kind == RoPEKind::YaRN ||
       kind == RoPEKind::Llama3) &&
      originalMaxPositions == 0)
    return emitError() << "rope kind '" << name
                       << "' needs original_max_positions";
  if (kind == RoPEKind::Dynamic && maxPositions == 0)
    return emitError() << "rope kind 'dynamic' needs max_positions";
  if (kind == RoPEKind::YaRN && !(betaFast > betaSlow))
    return emitError() << "yarn beta_fast (" << num(betaFast)
                       << ") must exceed beta_slow (" << num(betaSlow) << ")";
  if (kind == RoPEKind::Llama3 &&
      !(highFreqFactor > lowFreqFactor && lowFreqFactor > 0))
    return emitError() << "llama3 high_freq_factor (" << num(highFreqFactor)
                       << ") must exceed low_freq_factor ("
                       << num(lowFreqFactor) << ") > 0";
  return success();
}

//===----------------------------------------------------------------------===//
// AttentionConfigAttr
//===----------------------------------------------------------------------===//

LogicalResult AttentionConfigAttr::verify(
    function_ref<InFlightDiagnostic()> emitError, int64_t numHeads,
    int64_t numKVHeads, int64_t headDim, F64 softmaxScale, bool causal,
    int64_t slidingWindow, F64 alibiBiasMax, int64_t alibiHeads, F64 clipQKV,
    AttentionBackend backend) {
  if (numHeads <= 0 || numKVHeads <= 0 || headDim <= 0)
    return emitError() << "attention num_heads (" << numHeads
                       << "), num_kv_heads (" << numKVHeads
                       << ") and head_dim (" << headDim << ") must be positive";
  if (numHeads % numKVHeads != 0)
    return emitError() << "attention num_heads " << numHeads
                       << " is not divisible by num_kv_heads " << numKVHeads;
  if (!(softmaxScale > 0) || !std::isfinite(softmaxScale))
    return emitError() << "attention softmax_scale must be positive, got "
                       << num(softmaxScale);
  if (slidingWindow < 0)
    return emitError() << "attention sliding_window must not be negative, got "
                       << slidingWindow;
  if (!(alibiBiasMax >= 0) || !(clipQKV >= 0))
    return emitError() << "attention alibi_bias_max (" << num(alibiBiasMax)
                       << ") and clip_qkv (" << num(clipQKV)
                       << ") must not be negative";
  if (alibiHeads &&
      (!(alibiBiasMax > 0) || alibiHeads < numHeads || alibiHeads % numHeads))
    return emitError() << "attention alibi_heads " << alibiHeads
                       << " must be a multiple of num_heads " << numHeads
                       << ", with ALiBi";
  return success();
}

void DecoderDialect::registerAttributes() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "Decoder/DecoderAttrs.cpp.inc"
      >();
}

namespace mlir::decoder {
LogicalResult
QuantizedAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                      int64_t bits, int64_t groupSize) {
  if (bits != 8 && bits != 4)
    return emitError() << "quantized weights have 8 or 4 bits a value, got "
                       << bits;
  if (groupSize <= 0)
    return emitError() << "quantization group_size must be positive, got "
                       << groupSize;
  return success();
}
} // namespace mlir::decoder
