//===- DecoderOps.cpp - decoder dialect ops -------------------------------===//
//
// Verifiers. The first dimension of every activation counts tokens and may be
// dynamic; every other dimension is static and checked here.
//
//===----------------------------------------------------------------------===//

#include "Decoder/DecoderOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"

#include <cmath>

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

/// The input, weight and bias of a projection agree; returns the input
/// features and the weight rows.
FailureOr<std::pair<int64_t, int64_t>>
verifyProjectionOperands(Operation *op, RankedTensorType input,
                         RankedTensorType weight, Value bias) {
  if (input.getRank() != 2 && input.getRank() != 3)
    return op->emitOpError() << "input must be tokens x features or tokens x "
                                "heads x head_dim, got "
                             << input;
  if (failed(verifyFeatureDims(op, "input", input)))
    return failure();
  if (weight.getRank() != 2)
    return op->emitOpError() << "weight must be out x in, got " << weight;
  int64_t in = featuresPerToken(input);
  int64_t rows = weight.getDimSize(0);
  if (weight.getDimSize(1) != in)
    return op->emitOpError() << "weight has " << weight.getDimSize(1)
                             << " input features but the input has " << in;
  if (bias && failed(verifyVector(
                  op, "bias", cast<RankedTensorType>(bias.getType()), rows)))
    return failure();
  return std::make_pair(in, rows);
}

LogicalResult verifyNorm(Operation *op, RankedTensorType input,
                         RankedTensorType weight, Value bias, double epsilon,
                         bool heads = false) {
  if (input.getRank() != 2 && !(heads && input.getRank() == 3))
    return op->emitOpError()
           << (heads ? "input must be tokens x features or tokens x heads x "
                       "head_dim, got "
                     : "input must be tokens x features, got ")
           << input;
  if (failed(verifyFeatureDims(op, "input", input)))
    return failure();
  int64_t h = 1;
  for (int64_t d : input.getShape().drop_front())
    h *= d;
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
  if (bool(getShardDim()) != bool(getShardRanges()))
    return emitOpError() << "weight '" << getName()
                         << "': shard_dim and shard_ranges go together";
  if (!getShardDim())
    return success();
  int64_t dim = *getShardDim();
  if (dim < 0 || dim >= type.getRank())
    return emitOpError() << "weight '" << getName() << "': shard_dim " << dim
                         << " is not a dimension of " << type;
  ArrayRef<int64_t> ranges = *getShardRanges();
  if (ranges.empty() || ranges.size() % 2)
    return emitOpError() << "weight '" << getName()
                         << "': shard_ranges must be [begin, end) pairs";
  // Each rank's pairs add up to the dimension; ranks have as many pairs.
  int64_t size = type.getDimSize(dim), sum = 0, pairs = 0, perRank = 0;
  for (size_t i = 0; i < ranges.size(); i += 2) {
    if (ranges[i] < 0 || ranges[i] >= ranges[i + 1])
      return emitOpError() << "weight '" << getName() << "': shard range ["
                           << ranges[i] << ", " << ranges[i + 1]
                           << ") is empty or negative";
    sum += ranges[i + 1] - ranges[i];
    ++pairs;
    if (sum == size) {
      if (perRank && pairs != perRank)
        return emitOpError()
               << "weight '" << getName() << "': every rank needs " << perRank
               << " shard ranges";
      perRank = pairs;
      sum = pairs = 0;
    } else if (sum > size) {
      return emitOpError() << "weight '" << getName()
                           << "': a rank's shard ranges hold more than the "
                           << size << " of dimension " << dim;
    }
  }
  if (pairs)
    return emitOpError() << "weight '" << getName()
                         << "': the last rank's shard ranges hold " << sum
                         << " of the " << size << " of dimension " << dim;
  return success();
}

//===----------------------------------------------------------------------===//
// Collectives
//===----------------------------------------------------------------------===//

LogicalResult AllReduceOp::verify() {
  if (getRanks() < 2)
    return emitOpError() << "needs 2 ranks or more, got " << getRanks();
  return success();
}

LogicalResult AllGatherOp::verify() {
  if (getRanks() < 2)
    return emitOpError() << "needs 2 ranks or more, got " << getRanks();
  auto in = cast<RankedTensorType>(getInput().getType());
  auto out = cast<RankedTensorType>(getResult().getType());
  int64_t last = in.getRank() - 1;
  if (in.getRank() != out.getRank() || in.isDynamicDim(last) ||
      out.getDimSize(last) != int64_t(getRanks()) * in.getDimSize(last))
    return emitOpError() << "result must be the input with its last "
                            "dimension times "
                         << getRanks() << ", got " << in << " -> " << out;
  for (int64_t d = 0; d < last; ++d)
    if (in.getDimSize(d) != out.getDimSize(d))
      return emitOpError() << "result must be the input with its last "
                              "dimension times "
                           << getRanks() << ", got " << in << " -> " << out;
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
  if (Value extra = getExtra()) {
    auto type = cast<RankedTensorType>(extra.getType());
    if (type.getRank() != 2 || type.getDimSize(1) != table.getDimSize(1))
      return emitOpError() << "extra rows must be rows x "
                           << table.getDimSize(1) << ", got " << type;
  }
  return success();
}

//===----------------------------------------------------------------------===//
// Norms
//===----------------------------------------------------------------------===//

LogicalResult RMSNormOp::verify() {
  return verifyNorm(*this, getInput().getType(), getWeight().getType(), Value(),
                    getEpsilon().convertToDouble(), /*heads=*/true);
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
  FailureOr<std::pair<int64_t, int64_t>> sizes =
      verifyProjectionOperands(*this, input, getWeight().getType(), getBias());
  if (failed(sizes))
    return failure();
  int64_t out = sizes->second;
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

namespace {
/// Checks `type` is tokens x `heads` x head_dim of the attention config.
LogicalResult verifyHeads(Operation *op, AttentionConfigAttr config,
                          StringRef what, RankedTensorType type, int64_t heads,
                          RankedTensorType query) {
  if (type.getRank() != 3 || type.isDynamicDim(1) || type.isDynamicDim(2))
    return op->emitOpError()
           << what << " must be tokens x heads x head_dim, got " << type;
  if (type.getDimSize(1) != heads || type.getDimSize(2) != config.getHeadDim())
    return op->emitOpError()
           << what << " must have " << heads << " heads of "
           << config.getHeadDim() << " features, got " << type;
  if (!tokensAgree(type.getDimSize(0), query.getDimSize(0)))
    return op->emitOpError()
           << what << " has " << dimStr(type.getDimSize(0))
           << " tokens but query has " << dimStr(query.getDimSize(0));
  return success();
}

/// Checks that `layer` exists in `cache`.
LogicalResult verifyCacheLayer(Operation *op, KVCacheType cache,
                               int64_t layer) {
  if (layer < 0 || layer >= cache.getLayers())
    return op->emitOpError() << "layer " << layer << " is outside the cache's "
                             << cache.getLayers() << " layers";
  return success();
}

/// What both attention ops check: query heads, positions, result, and that
/// the cache holds the config's kv heads.
LogicalResult verifyAttention(Operation *op, AttentionConfigAttr config,
                              RankedTensorType q, RankedTensorType positions,
                              Type result, KVCacheType cache, int64_t layer) {
  if (failed(verifyHeads(op, config, "query", q, config.getNumHeads(), q)))
    return failure();
  if (!tokensAgree(q.getDimSize(0), positions.getDimSize(0)))
    return op->emitOpError()
           << "query has " << dimStr(q.getDimSize(0))
           << " tokens but positions has " << dimStr(positions.getDimSize(0));
  if (result != q)
    return op->emitOpError()
           << "result type " << result << " differs from the query type " << q;
  if (cache.getKvHeads() != config.getNumKvHeads() ||
      cache.getHeadDim() != config.getHeadDim())
    return op->emitOpError()
           << "cache holds " << cache.getKvHeads() << " kv heads of "
           << cache.getHeadDim() << " features but attention uses "
           << config.getNumKvHeads() << " of " << config.getHeadDim();
  return verifyCacheLayer(op, cache, layer);
}
} // namespace

LogicalResult AttentionOp::verify() {
  AttentionConfigAttr config = getConfig();
  RankedTensorType q = getQuery().getType();
  if (failed(verifyHeads(*this, config, "key", getKey().getType(),
                         config.getNumKvHeads(), q)) ||
      failed(verifyHeads(*this, config, "value", getValue().getType(),
                         config.getNumKvHeads(), q)))
    return failure();
  return verifyAttention(*this, config, q, getPositions().getType(),
                         getResult().getType(), getCache().getType(),
                         getLayer());
}

//===----------------------------------------------------------------------===//
// Kernel-level ops
//===----------------------------------------------------------------------===//

LogicalResult ConcatWeightsOp::verify() {
  RankedTensorType result = getResult().getType();
  if (getParts().empty())
    return emitOpError() << "needs at least one part";
  int64_t rows = 0;
  for (Value part : getParts()) {
    auto type = cast<RankedTensorType>(part.getType());
    if (type.getRank() != result.getRank() ||
        type.getShape().drop_front() != result.getShape().drop_front() ||
        type.getElementType() != result.getElementType() ||
        type.getEncoding() != result.getEncoding())
      return emitOpError() << "part " << type << " does not stack into "
                           << result;
    rows += type.getDimSize(0);
  }
  if (rows != result.getDimSize(0))
    return emitOpError() << "parts have " << rows << " rows but the result has "
                         << result.getDimSize(0);
  return success();
}

LogicalResult FusedLinearOp::verify() {
  FailureOr<std::pair<int64_t, int64_t>> sizes = verifyProjectionOperands(
      *this, getInput().getType(), getWeight().getType(), getBias());
  if (failed(sizes))
    return failure();
  auto [in, rows] = *sizes;

  // Prologue.
  if (getNorm().has_value() != bool(getNormWeight()) ||
      getNorm().has_value() != getNormEpsilon().has_value())
    return emitOpError() << "norm, norm_epsilon and norm_weight go together";
  if (getNormWeight() &&
      failed(verifyVector(*this, "norm weight", getNormWeight().getType(), in)))
    return failure();
  if (getNormBias() && getNorm() != NormKind::Layer)
    return emitOpError() << "only a layer norm has a bias";

  // Epilogue.
  bool append = bool(getCache());
  if (bool(getPositions()) != append || getLayer().has_value() != append)
    return emitOpError() << "append needs positions, cache and layer together";
  if (getRope() && !append)
    return emitOpError() << "rope is applied only where k and v are appended";
  if (int(bool(getActivation())) + int(bool(getResidual())) + int(append) > 1)
    return emitOpError() << "takes at most one epilogue (activation, residual "
                            "or append)";
  if (getResults().empty())
    return emitOpError() << "needs at least one result";
  int64_t width = 0;
  for (Value result : getResults())
    width += featuresPerToken(cast<RankedTensorType>(result.getType()));

  if (append) {
    KVCacheType cache = cast<KVCacheType>(getCache().getType());
    auto q = cast<RankedTensorType>(getResult(0).getType());
    if (getResults().size() != 1 || q.getRank() != 3)
      return emitOpError() << "with append the only result is the query, "
                              "tokens x heads x head_dim";
    if (q.getDimSize(2) != cache.getHeadDim())
      return emitOpError() << "query head_dim " << q.getDimSize(2)
                           << " differs from the cache's "
                           << cache.getHeadDim();
    int64_t expected =
        (q.getDimSize(1) + 2 * cache.getKvHeads()) * cache.getHeadDim();
    if (rows != expected)
      return emitOpError() << "weight has " << rows << " rows but q, k and v "
                           << "need " << expected;
    if (getRope() && getRope()->getRotaryDim() > cache.getHeadDim())
      return emitOpError() << "rotary_dim " << getRope()->getRotaryDim()
                           << " exceeds head_dim " << cache.getHeadDim();
    return verifyCacheLayer(*this, cache, *getLayer());
  }
  if (getPacking() != Packing::Concat)
    return emitOpError() << "kv_grouped packing needs append";
  int64_t expected = getActivation() == Activation::SwiGLU ? 2 * width : width;
  if (rows != expected)
    return emitOpError() << "weight has " << rows << " rows but the results "
                         << "need " << expected;
  if (getResidual() && (getResults().size() != 1 ||
                        getResidual().getType() != getResult(0).getType()))
    return emitOpError() << "residual " << getResidual().getType()
                         << " must have the type of the single result";
  return success();
}

LogicalResult CachedAttentionOp::verify() {
  return verifyAttention(*this, getConfig(), getQuery().getType(),
                         getPositions().getType(), getResult().getType(),
                         getCache().getType(), getLayer());
}

//===----------------------------------------------------------------------===//
// Vision encoder
//===----------------------------------------------------------------------===//

LogicalResult PatchEmbeddingOp::verify() {
  RankedTensorType pixels = getPixels().getType();
  if (pixels.getRank() != 4)
    return emitOpError() << "pixels must be tiles x channels x size x size, "
                            "got "
                         << pixels;
  if (failed(verifyFeatureDims(*this, "pixels", pixels)))
    return failure();
  if (pixels.getDimSize(2) != pixels.getDimSize(3))
    return emitOpError() << "tiles must be square, got " << pixels;
  RankedTensorType weight = getWeight().getType();
  if (weight.getRank() != 4 || weight.getDimSize(1) != pixels.getDimSize(1) ||
      weight.getDimSize(2) != weight.getDimSize(3))
    return emitOpError() << "weight must be features x " << pixels.getDimSize(1)
                         << " x patch x patch, got " << weight;
  int64_t features = weight.getDimSize(0), patch = weight.getDimSize(2);
  int64_t size = pixels.getDimSize(2);
  if (size % patch != 0)
    return emitOpError() << "the tile's " << size << " pixels are not a whole "
                         << "number of " << patch << "-pixel patches";
  int64_t rows = 1 + (size / patch) * (size / patch);
  if (failed(verifyVector(*this, "bias", getBias().getType(), features)))
    return failure();
  RankedTensorType cls = getClassEmbedding().getType();
  if (cls.getNumElements() != features || cls.getRank() != 3)
    return emitOpError() << "class_embedding must be tensor<1x1x" << features
                         << "x...>, got " << cls;
  RankedTensorType position = getPosition().getType();
  if (position.getRank() != 3 || position.getDimSize(0) != 1 ||
      position.getDimSize(1) != rows || position.getDimSize(2) != features)
    return emitOpError() << "position must be tensor<1x" << rows << "x"
                         << features << "x...> (the class token and "
                         << rows - 1 << " patches), got " << position;
  RankedTensorType result = getResult().getType();
  if (result.getRank() != 2 || result.getDimSize(1) != features)
    return emitOpError() << "result must be tokens x " << features << ", got "
                         << result;
  return success();
}

LogicalResult EncoderAttentionOp::verify() {
  RankedTensorType q = getQuery().getType();
  if (q.getRank() != 3)
    return emitOpError() << "query must be tokens x heads x head_dim, got "
                         << q;
  if (failed(verifyFeatureDims(*this, "query", q)))
    return failure();
  if (getSequence() < 1)
    return emitOpError() << "sequence must be at least 1, got "
                         << getSequence();
  if (!(getSoftmaxScale().convertToDouble() > 0))
    return emitOpError() << "softmax_scale must be positive, got "
                         << getSoftmaxScale().convertToDouble();
  return success();
}

LogicalResult LayerScaleOp::verify() {
  RankedTensorType input = getInput().getType();
  if (input.getRank() != 2)
    return emitOpError() << "input must be tokens x features, got " << input;
  if (failed(verifyFeatureDims(*this, "input", input)))
    return failure();
  return verifyVector(*this, "gamma", getGamma().getType(),
                      input.getDimSize(1));
}

int64_t PixelShuffleOp::getGridSide() {
  return int64_t(std::llround(std::sqrt(double(getSequence() - getSkip()))));
}

int64_t PixelShuffleOp::getFold() {
  return int64_t(std::llround(1 / getRatio().convertToDouble()));
}

int64_t PixelShuffleOp::getRowsPerTileAfter() {
  int64_t side = getGridSide() / getFold();
  return side * side;
}

LogicalResult PixelShuffleOp::verify() {
  RankedTensorType input = getInput().getType();
  if (input.getRank() != 2)
    return emitOpError() << "input must be tokens x features, got " << input;
  if (failed(verifyFeatureDims(*this, "input", input)))
    return failure();
  int64_t sequence = getSequence(), skip = getSkip();
  if (skip < 0 || sequence <= skip)
    return emitOpError() << "sequence (" << sequence << ") must exceed skip ("
                         << skip << ") and skip must not be negative";
  int64_t cells = sequence - skip, side = getGridSide();
  if (side * side != cells)
    return emitOpError() << "the " << cells << " rows a tile after the first "
                         << skip << " are not a square grid";
  double ratio = getRatio().convertToDouble();
  int64_t fold = ratio > 0 && ratio <= 1 ? getFold() : 0;
  if (!fold || std::abs(fold * ratio - 1) > 1e-9 || side % fold != 0)
    return emitOpError() << "ratio " << ratio << " must be 1 / f for an f "
                         << "dividing the grid's side " << side;
  int64_t width = input.getDimSize(1) * fold * fold;
  RankedTensorType result = getResult().getType();
  if (result.getRank() != 2 || result.getDimSize(1) != width)
    return emitOpError() << "result must be tokens x " << width << ", got "
                         << result;
  return success();
}

//===----------------------------------------------------------------------===//
// SSA names for printing
//===----------------------------------------------------------------------===//

void WeightOp::getAsmResultNames(OpAsmSetValueNameFn setNameFn) {
  // "model.layers.0.attention.wqkv.weight" -> %layers.0.attention.wqkv
  // (InternVL's checkpoints put "language_model." before it).
  StringRef name = getName();
  name.consume_front("language_model.");
  for (StringRef prefix : {"model.", "transformer."})
    if (name.consume_front(prefix))
      break;
  name.consume_back(".weight");
  setNameFn(getResult(), name);
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

void FusedLinearOp::getAsmResultNames(OpAsmSetValueNameFn setNameFn) {
  if (getCache()) {
    setNameFn(getResult(0), "q");
    return;
  }
  if (getActivation()) {
    setNameFn(getResult(0), "act");
    return;
  }
  for (Value result : getResults())
    setNameFn(result, getResidual() ? "residual" : "proj");
}
