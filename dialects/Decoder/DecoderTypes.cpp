//===- DecoderTypes.cpp - decoder dialect types ---------------------------===//

#include "Decoder/DecoderTypes.h"
#include "Decoder/DecoderDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::decoder;

#define GET_TYPEDEF_CLASSES
#include "Decoder/DecoderTypes.cpp.inc"

LogicalResult KVCacheType::verify(function_ref<InFlightDiagnostic()> emitError,
                                  int64_t layers, int64_t kvHeads,
                                  int64_t headDim, Type element) {
  if (layers <= 0)
    return emitError() << "kv_cache layers must be positive, got " << layers;
  if (kvHeads <= 0)
    return emitError() << "kv_cache kv_heads must be positive, got " << kvHeads;
  if (headDim <= 0)
    return emitError() << "kv_cache head_dim must be positive, got " << headDim;
  if (!isa<FloatType>(element))
    return emitError() << "kv_cache element must be a float type, got "
                       << element;
  return success();
}

void DecoderDialect::registerTypes() {
  addTypes<
#define GET_TYPEDEF_LIST
#include "Decoder/DecoderTypes.cpp.inc"
      >();
}
