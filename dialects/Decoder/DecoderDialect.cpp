//===- DecoderDialect.cpp - the decoder dialect ---------------------------===//

#include "Decoder/DecoderDialect.h"
#include "Decoder/DecoderOps.h"

using namespace mlir;
using namespace mlir::decoder;

#include "Decoder/DecoderDialect.cpp.inc"

void DecoderDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "Decoder/DecoderOps.cpp.inc"
      >();
  registerAttributes();
  registerTypes();
}
