//===- DecoderTypes.h - decoder dialect types -------------------*- C++ -*-===//

#ifndef DECODER_DECODERTYPES_H
#define DECODER_DECODERTYPES_H

#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Types.h"

#define GET_TYPEDEF_CLASSES
#include "Decoder/DecoderTypes.h.inc"

#endif // DECODER_DECODERTYPES_H
