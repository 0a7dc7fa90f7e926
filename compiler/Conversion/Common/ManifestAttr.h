//===- ManifestAttr.h - the manifest as an attribute of the IR --*- C++ -*-===//
//
// A lowering records the manifest (contract/Manifest.h) on the module as
// `decc.manifest`, a dictionary of typed attributes mirroring its JSON, so
// that it prints, round-trips and can be checked with FileCheck at every
// stage; the driver reads it back when it writes the object.
//
//===----------------------------------------------------------------------===//

#ifndef DECC_CONVERSION_COMMON_MANIFESTATTR_H
#define DECC_CONVERSION_COMMON_MANIFESTATTR_H

#include "contract/Manifest.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Support/LLVM.h"

namespace decc {

constexpr llvm::StringLiteral kManifestAttrName = "decc.manifest";

/// Stores `manifest` as the module's `decc.manifest`.
void setManifestAttr(mlir::ModuleOp module, const contract::Manifest &manifest);

/// The module's manifest; an error on the module when it has none or it
/// does not read as one.
mlir::FailureOr<contract::Manifest> getManifestAttr(mlir::ModuleOp module);

} // namespace decc

#endif // DECC_CONVERSION_COMMON_MANIFESTATTR_H
