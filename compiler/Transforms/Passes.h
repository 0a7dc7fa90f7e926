//===- Passes.h - decoder -> decoder passes ---------------------*- C++ -*-===//

#ifndef DECC_TRANSFORMS_PASSES_H
#define DECC_TRANSFORMS_PASSES_H

#include "Decoder/DecoderDialect.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace decc {

#define GEN_PASS_DECL
#include "compiler/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "compiler/Transforms/Passes.h.inc"

} // namespace decc

#endif // DECC_TRANSFORMS_PASSES_H
