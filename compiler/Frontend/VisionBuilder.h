//===- VisionBuilder.h - VisionSpec -> decoder IR ---------------*- C++ -*-===//
//
// InternVL's image path as a second function of the model's module:
// InternViT (patch embedding, pre-norm blocks of bidirectional attention
// and GELU MLP with layer scale) up to the layer the projector reads, the
// pixel shuffle, and the mlp1 projector into the language model's width.
//
//===----------------------------------------------------------------------===//

#ifndef DECC_FRONTEND_VISIONBUILDER_H
#define DECC_FRONTEND_VISIONBUILDER_H

#include "compiler/Config/ModelSpec.h"
#include "compiler/Frontend/ModelBuilder.h"

#include "mlir/IR/BuiltinOps.h"

#include <optional>
#include <string>

namespace decc {

/// Name of the vision function: `@vision(%pixels: tensor<?x C x S x S x f32>)
/// -> tensor<? x hidden x f32>`, one result row per image token, tile by
/// tile.
inline constexpr const char *kVisionFunction = "vision";

/// Why `spec`'s vision encoder cannot be built yet, or nothing.
std::optional<std::string> visionUnsupported(const ModelSpec &spec);

/// Appends `@vision` to `module` when `spec` has a vision encoder that
/// visionUnsupported accepts; weights in `options.dtype`, never quantized.
void buildVisionFunction(mlir::ModuleOp module, const ModelSpec &spec,
                         const FrontendOptions &options);

} // namespace decc

#endif // DECC_FRONTEND_VISIONBUILDER_H
