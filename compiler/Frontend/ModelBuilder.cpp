//===- ModelBuilder.cpp - ModelSpec -> decoder IR -------------------------===//
//
// One builder for every backbone: the block structure is shared, and where
// backbones differ (packing, norms, MLP, positions) the spec and WeightNames
// decide. Each layer's ops carry the layer's checkpoint prefix as location.
//
//===----------------------------------------------------------------------===//

#include "compiler/Frontend/ModelBuilder.h"
#include "compiler/Frontend/VisionBuilder.h"
#include "compiler/Frontend/WeightNames.h"

#include "Decoder/DecoderOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

using namespace mlir;
using namespace mlir::decoder;

namespace decc {

static_assert(int(decc::RoPEKind::Llama3) ==
                      int(mlir::decoder::RoPEKind::Llama3) &&
                  int(decc::RoPEKind::Default) ==
                      int(mlir::decoder::RoPEKind::Default),
              "decc::RoPEKind and the dialect's RoPEKind must stay in step");

namespace {

class ModelBuilder {
public:
  ModelBuilder(MLIRContext &context, const ModelSpec &spec,
               const FrontendOptions &options)
      : ctx(context), b(&context), spec(spec), options(options),
        loc(b.getUnknownLoc()) {}

  OwningOpRef<ModuleOp> build();

private:
  Type weightElementType();
  RankedTensorType activation(int64_t features);
  RankedTensorType perHead(int64_t heads);

  Value weight(const std::string &name, ArrayRef<int64_t> shape);
  /// A projection's (or the LM head's) weights: quantized when the build is.
  Value projectionWeight(const std::string &name, ArrayRef<int64_t> shape);
  Value optionalWeight(bool present, const std::string &name,
                       ArrayRef<int64_t> shape);
  Value norm(Value x, const std::string &prefix);
  /// One projection of the checkpoint tensor `prefix`.weight (and .bias):
  /// its row count is the sum of the results' widths.
  Operation::result_range linear(Value x, const std::string &prefix,
                                 TypeRange results, bool bias,
                                 Packing packing = Packing::Concat);

  RoPEAttr ropeAttr() const;
  AttentionConfigAttr attentionAttr() const;

  Value attentionBlock(Value x, int64_t layer, const LayerWeightNames &n,
                       Value positions, Value cache);
  Value mlpBlock(Value x, const LayerWeightNames &n);

  MLIRContext &ctx;
  OpBuilder b;
  const ModelSpec &spec;
  const FrontendOptions &options;
  Location loc;
};

Type ModelBuilder::weightElementType() {
  return decc::weightElementType(ctx, options.dtype);
}

RankedTensorType ModelBuilder::activation(int64_t features) {
  return activationType(ctx, features);
}

RankedTensorType ModelBuilder::perHead(int64_t heads) {
  return RankedTensorType::get({ShapedType::kDynamic, heads, spec.headDim},
                               b.getF32Type());
}

Value ModelBuilder::weight(const std::string &name, ArrayRef<int64_t> shape) {
  auto type = RankedTensorType::get(shape, weightElementType());
  return WeightOp::create(b, loc, type, b.getStringAttr(name));
}

Value ModelBuilder::projectionWeight(const std::string &name,
                                     ArrayRef<int64_t> shape) {
  if (!options.quantBits)
    return weight(name, shape);
  auto type = RankedTensorType::get(
      shape, b.getIntegerType(options.quantBits),
      QuantizedAttr::get(&ctx, options.quantBits, options.groupSize));
  return WeightOp::create(b, loc, type, b.getStringAttr(name));
}

Value ModelBuilder::optionalWeight(bool present, const std::string &name,
                                   ArrayRef<int64_t> shape) {
  return present ? weight(name, shape) : Value();
}

Value ModelBuilder::norm(Value x, const std::string &prefix) {
  int64_t h = spec.hiddenSize;
  Value w = weight(prefix + ".weight", {h});
  FloatAttr eps = b.getF64FloatAttr(spec.normEps);
  if (spec.norm == NormKind::RMSNorm)
    return RMSNormOp::create(b, loc, x.getType(), x, w, eps);
  Value bias = optionalWeight(spec.normBias, prefix + ".bias", {h});
  return LayerNormOp::create(b, loc, x.getType(), x, w, bias, eps);
}

Operation::result_range ModelBuilder::linear(Value x, const std::string &prefix,
                                             TypeRange results, bool bias,
                                             Packing packing) {
  int64_t rows = 0;
  for (Type t : results)
    rows += featuresOf(t);
  Value w =
      projectionWeight(prefix + ".weight", {rows, featuresOf(x.getType())});
  Value bv = optionalWeight(bias, prefix + ".bias", {rows});
  return LinearOp::create(b, loc, results, x, w, bv,
                          PackingAttr::get(&ctx, packing))
      .getResults();
}

RoPEAttr ModelBuilder::ropeAttr() const {
  const RoPESpec &r = *spec.rope;
  // The spec's kinds are spelled as the dialect's.
  std::optional<mlir::decoder::RoPEKind> kind =
      mlir::decoder::symbolizeRoPEKind(toString(r.kind));
  assert(kind && "a RoPE kind the dialect does not spell");
  SmallVector<F64> shortFactor(r.shortFactor.begin(), r.shortFactor.end());
  SmallVector<F64> longFactor(r.longFactor.begin(), r.longFactor.end());
  return RoPEAttr::get(&ctx, *kind, r.theta, r.rotaryDim, r.factor,
                       r.maxPositions, r.originalMaxPositions, shortFactor,
                       longFactor, r.attentionFactor, r.betaFast, r.betaSlow,
                       r.lowFreqFactor, r.highFreqFactor);
}

AttentionConfigAttr ModelBuilder::attentionAttr() const {
  // The config's choice; decoder-select-attention-backend applies overrides.
  mlir::decoder::AttentionBackend backend =
      *mlir::decoder::symbolizeAttentionBackend(
          contract::spelling(spec.backend));
  return AttentionConfigAttr::get(
      &ctx, spec.numHeads, spec.numKVHeads, spec.headDim, spec.softmaxScale,
      /*causal=*/true, spec.slidingWindow, spec.alibiBiasMax, /*alibiHeads=*/0,
      spec.clipQKV, backend);
}

Value ModelBuilder::attentionBlock(Value x, int64_t layer,
                                   const LayerWeightNames &n, Value positions,
                                   Value cache) {
  Type qType = perHead(spec.numHeads), kvType = perHead(spec.numKVHeads);
  Value q, k, v;
  if (n.qkvPacking == QKVPacking::Separate) {
    q = linear(x, n.q, qType, spec.qkvBias)[0];
    k = linear(x, n.k, kvType, spec.qkvBias)[0];
    v = linear(x, n.v, kvType, spec.qkvBias)[0];
  } else {
    Packing packing = n.qkvPacking == QKVPacking::KVGrouped ? Packing::KVGrouped
                                                            : Packing::Concat;
    auto qkv = linear(x, n.qkv, {qType, kvType, kvType}, spec.qkvBias, packing);
    q = qkv[0];
    k = qkv[1];
    v = qkv[2];
  }
  if (spec.rope) {
    RoPEAttr rope = ropeAttr();
    q = RoPEOp::create(b, loc, q.getType(), q, positions, rope);
    k = RoPEOp::create(b, loc, k.getType(), k, positions, rope);
  }
  Value attn =
      AttentionOp::create(b, loc, q.getType(), q, k, v, positions, cache,
                          b.getI64IntegerAttr(layer), attentionAttr());
  return linear(attn, n.out, activation(spec.hiddenSize), spec.outBias)[0];
}

Value ModelBuilder::mlpBlock(Value x, const LayerWeightNames &n) {
  Type inter = activation(spec.intermediateSize);
  Value act;
  if (spec.mlp == MLPKind::GELU) {
    Value up = linear(x, n.up, inter, spec.mlpBias)[0];
    act = GeluOp::create(
        b, loc, up.getType(), up,
        GeluApproximationAttr::get(&ctx, GeluApproximation::None));
  } else {
    Value gate, up;
    if (n.gateUpPacked) {
      auto gateUp = linear(x, n.gateUp, {inter, inter}, spec.mlpBias);
      gate = gateUp[0];
      up = gateUp[1];
    } else {
      gate = linear(x, n.gate, inter, spec.mlpBias)[0];
      up = linear(x, n.up, inter, spec.mlpBias)[0];
    }
    act = SwiGLUOp::create(b, loc, gate.getType(), gate, up);
  }
  return linear(act, n.down, activation(spec.hiddenSize), spec.mlpBias)[0];
}

OwningOpRef<ModuleOp> ModelBuilder::build() {
  ctx.loadDialect<DecoderDialect, func::FuncDialect>();
  OwningOpRef<ModuleOp> module = ModuleOp::create(loc);
  (*module)->setAttr("decoder.model_type", b.getStringAttr(spec.modelType));
  b.setInsertionPointToEnd(module->getBody());

  auto ids = RankedTensorType::get({ShapedType::kDynamic}, b.getI64Type());
  // The cache keeps keys and values in the build's precision, as the
  // reference implementation does in half precision (half the bytes a
  // decode step reads at long contexts); the kernels compute in f32.
  auto cacheType = KVCacheType::get(&ctx, spec.numLayers, spec.numKVHeads,
                                    spec.headDim, weightElementType());
  auto logitsType = activation(spec.vocabSize);
  // With a vision encoder, its output rows are a fourth argument that the
  // embedding reads for ids past the vocabulary.
  SmallVector<Type> args = {ids, ids, cacheType};
  bool images = options.vision && !visionUnsupported(spec);
  if (images)
    args.push_back(activation(spec.hiddenSize));
  auto fn = func::FuncOp::create(b, loc, "forward",
                                 b.getFunctionType(args, {logitsType}));
  b.setInsertionPointToStart(fn.addEntryBlock());
  Value tokens = fn.getArgument(0);
  Value positions = fn.getArgument(1);
  Value cache = fn.getArgument(2);
  Value imageRows = images ? fn.getArgument(3) : Value();

  ModelWeightNames names = modelWeightNames(spec);
  bool tied = names.lmHead == names.embedding;
  // A quantized build keeps an untied table in bf16 (a gather reads a few
  // rows); a table the head is tied to is quantized like the head, since
  // the head streams it every step (Qwen2.5-0.5B: 272 MiB of bf16 of a
  // step's 439 MiB in int4), and the gather dequantizes its rows.
  SmallVector<int64_t> tableShape{spec.vocabSize, spec.hiddenSize};
  Value table;
  if (!options.quantBits)
    table = weight(names.embedding, tableShape);
  else if (tied)
    table = projectionWeight(names.embedding, tableShape);
  else
    table = WeightOp::create(b, loc,
                             RankedTensorType::get(tableShape, b.getBF16Type()),
                             b.getStringAttr(names.embedding));
  Value h = EmbeddingOp::create(b, loc, activation(spec.hiddenSize), tokens,
                                table, imageRows);

  for (int64_t layer = 0; layer < spec.numLayers; ++layer) {
    LayerWeightNames n = layerWeightNames(spec, layer);
    std::string prefix = n.attnNorm.substr(0, n.attnNorm.rfind('.'));
    loc = NameLoc::get(b.getStringAttr(prefix));
    Value attn =
        attentionBlock(norm(h, n.attnNorm), layer, n, positions, cache);
    h = AddOp::create(b, loc, h.getType(), h, attn);
    Value mlp = mlpBlock(norm(h, n.mlpNorm), n);
    h = AddOp::create(b, loc, h.getType(), h, mlp);
  }

  loc = b.getUnknownLoc();
  Value final = norm(h, names.finalNorm);
  Value head = tied ? table : projectionWeight(names.lmHead, tableShape);
  Value logits = LMHeadOp::create(b, loc, logitsType, final, head);
  func::ReturnOp::create(b, loc, logits);
  return module;
}

} // namespace

Type weightElementType(MLIRContext &context, contract::DType dtype) {
  Builder b(&context);
  switch (dtype) {
  case contract::DType::F32:
    return b.getF32Type();
  case contract::DType::BF16:
    return b.getBF16Type();
  case contract::DType::F16:
    return b.getF16Type();
  }
  return {};
}

RankedTensorType activationType(MLIRContext &context, int64_t features) {
  return RankedTensorType::get({ShapedType::kDynamic, features},
                               Float32Type::get(&context));
}

int64_t featuresOf(Type activation) {
  auto type = cast<RankedTensorType>(activation);
  return type.getRank() == 3 ? type.getDimSize(1) * type.getDimSize(2)
                             : type.getDimSize(1);
}

OwningOpRef<ModuleOp> buildDecoderModule(MLIRContext &context,
                                         const ModelSpec &spec,
                                         const FrontendOptions &options) {
  OwningOpRef<ModuleOp> module = ModelBuilder(context, spec, options).build();
  if (options.vision)
    buildVisionFunction(*module, spec, options);
  return module;
}

} // namespace decc
