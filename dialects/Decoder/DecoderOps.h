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

#define GET_OP_CLASSES
#include "Decoder/DecoderOps.h.inc"

#endif // DECODER_DECODEROPS_H
