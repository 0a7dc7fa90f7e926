//===- DecoderDialect.h - the decoder dialect -------------------*- C++ -*-===//

#ifndef DECODER_DECODERDIALECT_H
#define DECODER_DECODERDIALECT_H

#include "mlir/IR/Dialect.h"

#include "Decoder/DecoderDialect.h.inc"

#endif // DECODER_DECODERDIALECT_H
