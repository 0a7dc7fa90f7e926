//===- DecoderAttrs.h - decoder dialect attributes --------------*- C++ -*-===//

#ifndef DECODER_DECODERATTRS_H
#define DECODER_DECODERATTRS_H

#include "mlir/IR/Attributes.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/Hashing.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/bit.h"

#include "Decoder/DecoderEnums.h.inc"

namespace mlir::decoder {
/// A double that MLIR's attribute storage can hash and compare bitwise
/// (llvm::hash_value has no overload for double).
struct F64 {
  double value = 0;
  F64() = default;
  F64(double v) : value(v) {}
  operator double() const { return value; }
  bool operator==(F64 other) const {
    return llvm::bit_cast<uint64_t>(value) ==
           llvm::bit_cast<uint64_t>(other.value);
  }
};
inline llvm::hash_code hash_value(F64 f) {
  return llvm::hash_value(llvm::bit_cast<uint64_t>(f.value));
}

// Parameter parsers and printers used by the generated attribute code.
FailureOr<F64> parseF64(AsmParser &parser);
void printF64(AsmPrinter &printer, F64 value);
FailureOr<SmallVector<F64>> parseF64Array(AsmParser &parser);
void printF64Array(AsmPrinter &printer, ArrayRef<F64> values);
FailureOr<bool> parseBool(AsmParser &parser);
} // namespace mlir::decoder

#define GET_ATTRDEF_CLASSES
#include "Decoder/DecoderAttrs.h.inc"

#endif // DECODER_DECODERATTRS_H
