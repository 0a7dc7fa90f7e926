//===- DecoderOps.cpp - decoder dialect ops -------------------------------===//
//
// Verifiers. The first dimension of every activation counts tokens and may be
// dynamic; every other dimension is static and checked here.
//
//===----------------------------------------------------------------------===//

#include "Decoder/DecoderOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"

using namespace mlir;
using namespace mlir::decoder;

#define GET_OP_CLASSES
#include "Decoder/DecoderOps.cpp.inc"

namespace {
/// Prints a dimension as the IR spells it.
std::string dimStr(int64_t d) {
  return ShapedType::isDynamic(d) ? "?" : std::to_string(d);
}

/// Two token counts agree when they are equal or one is not known statically.
bool tokensAgree(int64_t a, int64_t b) {
  return ShapedType::isDynamic(a) || ShapedType::isDynamic(b) || a == b;
}

/// Every dimension but the first (tokens) must be static.
LogicalResult verifyFeatureDims(Operation *op, StringRef what,
                                RankedTensorType type) {
  for (int64_t i = 1; i < type.getRank(); ++i)
    if (type.isDynamicDim(i))
      return op->emitOpError()
             << what << " dimension " << i << " must be static, got " << type;
  return success();
}

/// Checks a 1-D parameter (norm weight, bias) of `size` features.
LogicalResult verifyVector(Operation *op, StringRef what, RankedTensorType type,
                           int64_t size) {
  if (type.getRank() != 1 || type.getDimSize(0) != size)
    return op->emitOpError()
           << what << " must be tensor<" << size << "x...>, got " << type;
  return success();
}

/// Features per token: the product of the non-token dimensions.
int64_t featuresPerToken(RankedTensorType type) {
  int64_t n = 1;
  for (int64_t i = 1; i < type.getRank(); ++i)
    n *= type.getDimSize(i);
  return n;
}

LogicalResult verifyNorm(Operation *op, RankedTensorType input,
                         RankedTensorType weight, Value bias, double epsilon) {
  if (input.getRank() != 2)
    return op->emitOpError()
           << "input must be tokens x features, got " << input;
  if (failed(verifyFeatureDims(op, "input", input)))
    return failure();
  int64_t h = input.getDimSize(1);
  if (failed(verifyVector(op, "weight", weight, h)))
    return failure();
  if (bias && failed(verifyVector(op, "bias",
                                  cast<RankedTensorType>(bias.getType()), h)))
    return failure();
  if (!(epsilon > 0))
    return op->emitOpError() << "epsilon must be positive, got " << epsilon;
  return success();
}
} // namespace

//===----------------------------------------------------------------------===//
// WeightOp
//===----------------------------------------------------------------------===//

LogicalResult WeightOp::verify() {
  if (getName().empty())
    return emitOpError() << "needs a checkpoint tensor name";
  RankedTensorType type = getResult().getType();
  if (!type.hasStaticShape())
    return emitOpError() << "weight '" << getName()
                         << "' must have a static shape, got " << type;
  for (int64_t d : type.getShape())
    if (d <= 0)
      return emitOpError() << "weight '" << getName()
                           << "' has an empty dimension: " << type;
  return success();
}

//===----------------------------------------------------------------------===//
// EmbeddingOp
//===----------------------------------------------------------------------===//

LogicalResult EmbeddingOp::verify() {
  RankedTensorType table = getTable().getType();
  RankedTensorType result = getResult().getType();
  if (table.getRank() != 2)
    return emitOpError() << "table must be vocab x hidden, got " << table;
  if (result.getRank() != 2 || result.getDimSize(1) != table.getDimSize(1))
    return emitOpError() << "result must be tokens x " << table.getDimSize(1)
                         << ", got " << result;
  if (!tokensAgree(result.getDimSize(0), getIds().getType().getDimSize(0)))
    return emitOpError() << "result has " << dimStr(result.getDimSize(0))
                         << " tokens but ids has "
                         << dimStr(getIds().getType().getDimSize(0));
  return success();
}

//===----------------------------------------------------------------------===//
// Norms
//===----------------------------------------------------------------------===//

LogicalResult RMSNormOp::verify() {
  return verifyNorm(*this, getInput().getType(), getWeight().getType(), Value(),
                    getEpsilon().convertToDouble());
}

LogicalResult LayerNormOp::verify() {
  return verifyNorm(*this, getInput().getType(), getWeight().getType(),
                    getBias(), getEpsilon().convertToDouble());
}

//===----------------------------------------------------------------------===//
// LinearOp
//===----------------------------------------------------------------------===//

LogicalResult LinearOp::verify() {
  RankedTensorType input = getInput().getType();
  RankedTensorType weight = getWeight().getType();
  if (input.getRank() != 2 && input.getRank() != 3)
    return emitOpError() << "input must be tokens x features or tokens x "
                            "heads x head_dim, got "
                         << input;
  if (failed(verifyFeatureDims(*this, "input", input)))
    return failure();
  if (weight.getRank() != 2)
    return emitOpError() << "weight must be out x in, got " << weight;
  int64_t in = featuresPerToken(input);
  int64_t out = weight.getDimSize(0);
  if (weight.getDimSize(1) != in)
    return emitOpError() << "weight has " << weight.getDimSize(1)
                         << " input features but the input has " << in;
  if (getBias() &&
      failed(verifyVector(*this, "bias", getBias().getType(), out)))
    return failure();
  if (getResults().empty())
    return emitOpError() << "needs at least one result";

  int64_t total = 0;
  for (auto [i, value] : llvm::enumerate(getResults())) {
    auto type = cast<RankedTensorType>(value.getType());
    if (type.getRank() != 2 && type.getRank() != 3)
      return emitOpError() << "result " << i << " must be tokens x features "
                           << "or tokens x heads x head_dim, got " << type;
    if (failed(verifyFeatureDims(*this, "result", type)))
      return failure();
    if (!tokensAgree(type.getDimSize(0), input.getDimSize(0)))
      return emitOpError() << "result " << i << " has "
                           << dimStr(type.getDimSize(0))
                           << " tokens but the input has "
                           << dimStr(input.getDimSize(0));
    total += featuresPerToken(type);
  }
  if (total != out)
    return emitOpError() << "result widths add up to " << total
                         << " but the weight has " << out << " rows";

  if (getPacking() == Packing::KVGrouped) {
    if (getResults().size() != 3)
      return emitOpError() << "kv_grouped packing needs 3 results (q, k, v), "
                           << "got " << getResults().size();
    auto q = cast<RankedTensorType>(getResult(0).getType());
    auto k = cast<RankedTensorType>(getResult(1).getType());
    auto v = cast<RankedTensorType>(getResult(2).getType());
    if (q.getRank() != 3 || k.getRank() != 3 || v.getRank() != 3)
      return emitOpError() << "kv_grouped packing needs per-head results";
    if (k.getShape().drop_front() != v.getShape().drop_front() ||
        q.getDimSize(2) != k.getDimSize(2))
      return emitOpError() << "kv_grouped q, k, v must share head_dim and k, "
                           << "v their head count, got " << q << ", " << k
                           << ", " << v;
    if (q.getDimSize(1) % k.getDimSize(1) != 0)
      return emitOpError() << "kv_grouped: " << q.getDimSize(1)
                           << " query heads are not divisible by "
                           << k.getDimSize(1) << " kv heads";
  }
  return success();
}

//===----------------------------------------------------------------------===//
// LMHeadOp
//===----------------------------------------------------------------------===//

LogicalResult LMHeadOp::verify() {
  RankedTensorType input = getInput().getType();
  RankedTensorType weight = getWeight().getType();
  RankedTensorType result = getResult().getType();
  if (input.getRank() != 2 || weight.getRank() != 2 || result.getRank() != 2)
    return emitOpError() << "expects tokens x hidden, vocab x hidden and "
                         << "tokens x vocab";
  if (weight.getDimSize(1) != input.getDimSize(1))
    return emitOpError() << "weight hidden size " << weight.getDimSize(1)
                         << " differs from the input's "
                         << dimStr(input.getDimSize(1));
  if (result.getDimSize(1) != weight.getDimSize(0))
    return emitOpError() << "result has " << dimStr(result.getDimSize(1))
                         << " logits per token but the vocabulary is "
                         << weight.getDimSize(0);
  if (!tokensAgree(result.getDimSize(0), input.getDimSize(0)))
    return emitOpError() << "result has " << dimStr(result.getDimSize(0))
                         << " tokens but the input has "
                         << dimStr(input.getDimSize(0));
  return success();
}

//===----------------------------------------------------------------------===//
// RoPEOp
//===----------------------------------------------------------------------===//

LogicalResult RoPEOp::verify() {
  RankedTensorType input = getInput().getType();
  if (input.getRank() != 3)
    return emitOpError() << "input must be tokens x heads x head_dim, got "
                         << input;
  if (failed(verifyFeatureDims(*this, "input", input)))
    return failure();
  int64_t headDim = input.getDimSize(2);
  if (getRope().getRotaryDim() > headDim)
    return emitOpError() << "rotary_dim " << getRope().getRotaryDim()
                         << " exceeds head_dim " << headDim;
  if (!tokensAgree(input.getDimSize(0), getPositions().getType().getDimSize(0)))
    return emitOpError() << "input has " << dimStr(input.getDimSize(0))
                         << " tokens but positions has "
                         << dimStr(getPositions().getType().getDimSize(0));
  return success();
}

//===----------------------------------------------------------------------===//
// AttentionOp
//===----------------------------------------------------------------------===//

LogicalResult AttentionOp::verify() {
  AttentionConfigAttr config = getConfig();
  KVCacheType cache = getCache().getType();
  RankedTensorType q = getQuery().getType();
  auto checkHeads = [&](StringRef what, RankedTensorType type,
                        int64_t heads) -> LogicalResult {
    if (type.getRank() != 3 || type.isDynamicDim(1) || type.isDynamicDim(2))
      return emitOpError() << what << " must be tokens x heads x head_dim, got "
                           << type;
    if (type.getDimSize(1) != heads ||
        type.getDimSize(2) != config.getHeadDim())
      return emitOpError() << what << " must have " << heads << " heads of "
                           << config.getHeadDim() << " features, got " << type;
    if (!tokensAgree(type.getDimSize(0), q.getDimSize(0)))
      return emitOpError() << what << " has " << dimStr(type.getDimSize(0))
                           << " tokens but query has "
                           << dimStr(q.getDimSize(0));
    return success();
  };
  if (failed(checkHeads("query", q, config.getNumHeads())) ||
      failed(checkHeads("key", getKey().getType(), config.getNumKvHeads())) ||
      failed(checkHeads("value", getValue().getType(), config.getNumKvHeads())))
    return failure();
  if (!tokensAgree(q.getDimSize(0), getPositions().getType().getDimSize(0)))
    return emitOpError() << "query has " << dimStr(q.getDimSize(0))
                         << " tokens but positions has "
                         << dimStr(getPositions().getType().getDimSize(0));
  if (getResult().getType() != q)
    return emitOpError() << "result type " << getResult().getType()
                         << " differs from the query type " << q;
  if (cache.getKvHeads() != config.getNumKvHeads() ||
      cache.getHeadDim() != config.getHeadDim())
    return emitOpError() << "cache holds " << cache.getKvHeads()
                         << " kv heads of " << cache.getHeadDim()
                         << " features but attention uses "
                         << config.getNumKvHeads() << " of "
                         << config.getHeadDim();
  int64_t layer = getLayer();
  if (layer < 0 || layer >= cache.getLayers())
    return emitOpError() << "layer " << layer << " is outside the cache's "
                         << cache.getLayers() << " layers";
  return success();
}

//===----------------------------------------------------------------------===//
// SSA names for printing
//===----------------------------------------------------------------------===//

void WeightOp::getAsmResultNames(OpAsmSetValueNameFn setNameFn) {
  // "model.layers.0.attention.wqkv.weight" -> %layers.0.attention.wqkv
  StringRef name = getName();
  for (StringRef prefix : {"model.", "transformer."})
    if (name.consume_front(prefix))
      break;
  name.consume_back(".weight");
  setNameFn(getResult(), name);
}

void EmbeddingOp::getAsmResultNames(OpAsmSetValueNameFn setNameFn) {
  setNameFn(getResult(), "embed");
}

void RMSNormOp::getAsmResultNames(OpAsmSetValueNameFn setNameFn) {
  setNameFn(getResult(), "norm");
}

void LayerNormOp::getAsmResultNames(OpAsmSetValueNameFn setNameFn) {
  setNameFn(getResult(), "norm");
}

void LinearOp::getAsmResultNames(OpAsmSetValueNameFn setNameFn) {
  static const char *const qkv[] = {"q", "k", "v"};
  static const char *const gateUp[] = {"gate", "up"};
  size_t n = getResults().size();
  if (n == 1) {
    // Name a plain projection after its weight: %wo, %down_proj.
    StringRef name = "proj";
    if (auto weight = getWeight().getDefiningOp<WeightOp>()) {
      StringRef full = weight.getName();
      full.consume_back(".weight");
      name = full.rsplit('.').second.empty() ? full : full.rsplit('.').second;
    }
    setNameFn(getResult(0), name);
    return;
  }
  for (auto [i, result] : llvm::enumerate(getResults()))
    setNameFn(result, n == 3 ? qkv[i] : gateUp[i]);
}

void LMHeadOp::getAsmResultNames(OpAsmSetValueNameFn setNameFn) {
  setNameFn(getResult(), "logits");
}

void RoPEOp::getAsmResultNames(OpAsmSetValueNameFn setNameFn) {
  setNameFn(getResult(), "rotated");
}

void AttentionOp::getAsmResultNames(OpAsmSetValueNameFn setNameFn) {
  setNameFn(getResult(), "attn");
}

void SwiGLUOp::getAsmResultNames(OpAsmSetValueNameFn setNameFn) {
  setNameFn(getResult(), "act");
}

void GeluOp::getAsmResultNames(OpAsmSetValueNameFn setNameFn) {
  setNameFn(getResult(), "act");
}

void AddOp::getAsmResultNames(OpAsmSetValueNameFn setNameFn) {
  setNameFn(getResult(), "residual");
}
