//===- DecoderOps.h - decoder dialect ops -----------------------*- C++ -*-===//

#ifndef DECODER_DECODEROPS_H
#define DECODER_DECODEROPS_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "Decoder/DecoderAttrs.h"
#include "Decoder/DecoderDialect.h"
#include "Decoder/DecoderTypes.h"

namespace mlir::decoder {
/// Whether `type` is an integer tensor whose #decoder.quantized encoding
/// has as many bits a value as its elements (i8: 8, i4: 4).
inline bool isQuantizedWeightType(RankedTensorType type) {
  auto quantized = llvm::dyn_cast_or_null<QuantizedAttr>(type.getEncoding());
  return quantized &&
         int64_t(type.getElementTypeBitWidth()) == quantized.getBits();
}
} // namespace mlir::decoder

#define GET_OP_CLASSES
#include "Decoder/DecoderOps.h.inc"

#endif // DECODER_DECODEROPS_H
