//===- VisionBuilder.cpp - VisionSpec -> decoder IR -----------------------===//
//
// InternVL's extract_feature (modeling_internvl_chat.py) and InternViT
// (modeling_intern_vit.py) as decoder ops. The activations are one row per
// token of every tile, tile after tile (1 + patches rows a tile until the
// pixel shuffle, tokensPerTile after it), so the norms, projections, GELU
// and residual adds are the language model's own ops.
//
//===----------------------------------------------------------------------===//

#include "compiler/Frontend/VisionBuilder.h"

#include "Decoder/DecoderOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

#include <cmath>

using namespace mlir;
using namespace mlir::decoder;

namespace decc {

std::optional<std::string> visionUnsupported(const ModelSpec &spec) {
  if (!spec.vision)
    return "the config has no vision_config";
  return std::nullopt;
}

namespace {

class VisionBuilder {
public:
  VisionBuilder(ModuleOp module, const ModelSpec &spec,
                const FrontendOptions &options)
      : ctx(*module.getContext()), b(module.getContext()), spec(spec),
        v(*spec.vision), options(options), loc(b.getUnknownLoc()) {
    b.setInsertionPointToEnd(module.getBody());
  }

  void build();

private:
  Type weightType();
  RankedTensorType rows(int64_t features);
  Value weight(const std::string &name, ArrayRef<int64_t> shape);
  Value norm(Value x, const std::string &prefix);
  Value linear(Value x, const std::string &prefix, Type result);
  Value encoderLayer(Value h, int64_t layer);

  MLIRContext &ctx;
  OpBuilder b;
  const ModelSpec &spec;
  const VisionSpec &v;
  const FrontendOptions &options;
  Location loc;
};

Type VisionBuilder::weightType() {
  return weightElementType(ctx, options.dtype);
}

RankedTensorType VisionBuilder::rows(int64_t features) {
  return activationType(ctx, features);
}

Value VisionBuilder::weight(const std::string &name, ArrayRef<int64_t> shape) {
  return WeightOp::create(b, loc, RankedTensorType::get(shape, weightType()),
                          b.getStringAttr(name));
}

Value VisionBuilder::norm(Value x, const std::string &prefix) {
  int64_t h = v.hiddenSize;
  FloatAttr eps = b.getF64FloatAttr(v.normEps);
  Value w = weight(prefix + ".weight", {h});
  if (v.norm == NormKind::RMSNorm)
    return RMSNormOp::create(b, loc, x.getType(), x, w, eps);
  return LayerNormOp::create(b, loc, x.getType(), x, w,
                             weight(prefix + ".bias", {h}), eps);
}

Value VisionBuilder::linear(Value x, const std::string &prefix, Type result) {
  int64_t out = featuresOf(result);
  Value w = weight(prefix + ".weight", {out, featuresOf(x.getType())});
  return LinearOp::create(b, loc, TypeRange{result}, x, w,
                          weight(prefix + ".bias", {out}),
                          PackingAttr::get(&ctx, Packing::Concat))
      .getResult(0);
}

Value VisionBuilder::encoderLayer(Value h, int64_t layer) {
  std::string p = "vision_model.encoder.layers." + std::to_string(layer);
  loc = NameLoc::get(b.getStringAttr(p));
  int64_t width = v.hiddenSize, heads = v.numHeads, d = width / heads;
  int64_t sequence = v.patchesPerTile() + 1;
  auto perHead =
      RankedTensorType::get({ShapedType::kDynamic, heads, d}, b.getF32Type());
  // attn.qkv: [q | k | v] rows, every head of q, then of k, then of v.
  Value x = norm(h, p + ".norm1");
  Value w = weight(p + ".attn.qkv.weight", {3 * width, width});
  Value bias = v.qkvBias ? weight(p + ".attn.qkv.bias", {3 * width}) : Value();
  auto qkv = LinearOp::create(b, loc, TypeRange{perHead, perHead, perHead}, x,
                              w, bias, PackingAttr::get(&ctx, Packing::Concat))
                 .getResults();
  Value q = qkv[0], k = qkv[1];
  if (v.qkNormalization) {
    // InternViT-6B: q and k RMS-normalized over all heads of a token
    // (attn.q_norm, attn.k_norm, the encoder's epsilon).
    FloatAttr eps = b.getF64FloatAttr(v.normEps);
    q = RMSNormOp::create(b, loc, perHead, q,
                          weight(p + ".attn.q_norm.weight", {width}), eps);
    k = RMSNormOp::create(b, loc, perHead, k,
                          weight(p + ".attn.k_norm.weight", {width}), eps);
  }
  Value attn = EncoderAttentionOp::create(b, loc, perHead, q, k, qkv[2],
                                          b.getI64IntegerAttr(sequence),
                                          b.getF64FloatAttr(1 / std::sqrt(d)));
  Value out = linear(attn, p + ".attn.proj", rows(width));
  out = LayerScaleOp::create(b, loc, out.getType(), out,
                             weight(p + ".ls1", {width}));
  h = AddOp::create(b, loc, h.getType(), h, out);

  Value up =
      linear(norm(h, p + ".norm2"), p + ".mlp.fc1", rows(v.intermediateSize));
  Value act =
      GeluOp::create(b, loc, up.getType(), up,
                     GeluApproximationAttr::get(&ctx, GeluApproximation::None));
  Value down = linear(act, p + ".mlp.fc2", rows(width));
  down = LayerScaleOp::create(b, loc, down.getType(), down,
                              weight(p + ".ls2", {width}));
  return AddOp::create(b, loc, h.getType(), h, down);
}

void VisionBuilder::build() {
  int64_t size = v.imageSize, patch = v.patchSize, width = v.hiddenSize;
  int64_t sequence = v.patchesPerTile() + 1;
  auto pixelsType = RankedTensorType::get(
      {ShapedType::kDynamic, v.numChannels, size, size}, b.getF32Type());
  auto fn = func::FuncOp::create(
      b, loc, kVisionFunction,
      b.getFunctionType({pixelsType}, {rows(spec.hiddenSize)}));
  b.setInsertionPointToStart(fn.addEntryBlock());

  std::string e = "vision_model.embeddings.";
  Value h = PatchEmbeddingOp::create(
      b, loc, rows(width), fn.getArgument(0),
      weight(e + "patch_embedding.weight",
             {width, v.numChannels, patch, patch}),
      weight(e + "patch_embedding.bias", {width}),
      weight(e + "class_embedding", {1, 1, width}),
      weight(e + "position_embedding", {1, sequence, width}));

  // hidden_states[select_layer]: [0] is the embeddings, [-1] the last
  // layer's output; the layers after it are never run.
  int64_t layers =
      v.selectLayer < 0 ? v.numLayers + 1 + v.selectLayer : v.selectLayer;
  for (int64_t layer = 0; layer < layers; ++layer)
    h = encoderLayer(h, layer);

  // Pixel shuffle without the class token, then mlp1: LayerNorm (torch's
  // default epsilon), Linear, GELU, Linear.
  loc = NameLoc::get(b.getStringAttr("mlp1"));
  int64_t fold = int64_t(std::llround(1 / v.downsampleRatio));
  int64_t shuffled = width * fold * fold;
  Value s = PixelShuffleOp::create(
      b, loc, rows(shuffled), h, b.getI64IntegerAttr(sequence),
      b.getI64IntegerAttr(1), b.getF64FloatAttr(v.downsampleRatio),
      v.pixelShuffleV2 ? UnitAttr() : b.getUnitAttr());
  Value n = LayerNormOp::create(
      b, loc, s.getType(), s, weight("mlp1.0.weight", {shuffled}),
      weight("mlp1.0.bias", {shuffled}), b.getF64FloatAttr(1e-5));
  Value x = linear(n, "mlp1.1", rows(spec.hiddenSize));
  x = GeluOp::create(b, loc, x.getType(), x,
                     GeluApproximationAttr::get(&ctx, GeluApproximation::None));
  x = linear(x, "mlp1.3", rows(spec.hiddenSize));
  func::ReturnOp::create(b, loc, x);
}

} // namespace

void buildVisionFunction(ModuleOp module, const ModelSpec &spec,
                         const FrontendOptions &options) {
  if (visionUnsupported(spec))
    return;
  VisionBuilder(module, spec, options).build();
}

} // namespace decc
