//===- CPUVision.cpp - InternVL's vision encoder on the CPU ---------------===//
//
// `@vision` (compiler/Frontend/VisionBuilder.cpp) becomes a second entry
// point beside decc_forward:
//
//   decc_vision(%weights : memref<?xi8>,             the same weight arena
//               %pixels  : memref<? x C x S x S x f32>, normalized tiles
//               %out     : memref<? x H x f32>)      image embeddings
//
// Its projections, norms, GELU and residual adds are the forward pass's
// kernels, over `tiles x rows a tile` rows; the four ops of its own (patch
// embedding, attention within a tile, layer scale, pixel shuffle) are
// here. The rows a tile change once, at the pixel shuffle.
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/CPU/CPULowering.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

namespace decc::cpulowering {

namespace {
/// `buffer` ([rows, heads x d]) seen as [rows, heads, d].
Value perHead(ImplicitLocOpBuilder &b, Value buffer, int64_t heads, int64_t d) {
  auto type = MemRefType::get({ShapedType::kDynamic, heads, d}, b.getF32Type());
  Value rows = memref::DimOp::create(b, buffer, 0);
  return memref::ExpandShapeOp::create(
      b, type, buffer, ArrayRef<ReassociationIndices>{{0}, {1, 2}},
      ArrayRef<OpFoldResult>{rows, b.getIndexAttr(heads), b.getIndexAttr(d)});
}
} // namespace

void ForwardLowering::lowerPatchEmbedding(PatchEmbeddingOp op) {
  auto weightType = op.getWeight().getType();
  int64_t features = weightType.getDimSize(0),
          channels = weightType.getDimSize(1), patch = weightType.getDimSize(2);
  int64_t side = op.getPixels().getType().getDimSize(2) / patch;
  int64_t sequence = 1 + side * side;
  Value pixels = bufferOf(op.getPixels());
  Value w = weightView(op.getWeight()), bias = weightView(op.getBias());
  Value cls = weightView(op.getClassEmbedding());
  Value pos = weightView(op.getPosition());
  Value out = define(op.getResult(), features);
  // Features a step: each 14-pixel run of the patch is loaded once for
  // all of them.
  int64_t group = features % 4 == 0 ? 4 : 1;
  KernelBuilder kb(*b);
  kb.parallel({numTokens}, [&](KernelBuilder &lb, ValueRange iv) {
    Value row = iv[0];
    Value tile = lb.div(row, lb.index(sequence));
    Value r = arith::RemUIOp::create(lb.builder(), row, lb.index(sequence));
    Value zero = lb.index(0);
    Value isClass =
        arith::CmpIOp::create(lb.builder(), arith::CmpIPredicate::eq, r, zero);
    lb.ifThen(isClass, [&](KernelBuilder &cb) {
      cb.forEachChunk(features, [&](KernelBuilder &eb, Value k, int64_t n) {
        eb.store(eb.add(eb.loadN(cls, {zero, zero, k}, n),
                        eb.loadN(pos, {zero, zero, k}, n)),
                 out, {row, k});
      });
    });
    Value isPatch =
        arith::CmpIOp::create(lb.builder(), arith::CmpIPredicate::ne, r, zero);
    lb.ifThen(isPatch, [&](KernelBuilder &pb) {
      Value p = pb.sub(r, pb.index(1));
      Value y0 = pb.mul(pb.div(p, pb.index(side)), pb.index(patch));
      Value x0 = pb.mul(arith::RemUIOp::create(pb.builder(), p, pb.index(side)),
                        pb.index(patch));
      pb.forLoop(pb.index(0), pb.index(features), group,
                 [&](KernelBuilder &fb, ValueRange f) {
                   SmallVector<Value> zeros(group, fb.f32(0.0));
                   SmallVector<Value> sums = fb.forLoop(
                       fb.index(0), fb.index(channels * patch), 1, zeros,
                       [&](KernelBuilder &sb, Value ci, ValueRange acc) {
                         Value c = sb.div(ci, sb.index(patch));
                         Value i = arith::RemUIOp::create(sb.builder(), ci,
                                                          sb.index(patch));
                         SmallVector<SmallVector<Value>> rows;
                         for (int64_t g = 0; g < group; ++g)
                           rows.push_back({sb.add(f[0], sb.index(g)), c, i});
                         SmallVector<Value> d =
                             sb.dots(pixels, {tile, c, sb.add(y0, i)}, w, rows,
                                     patch, x0);
                         SmallVector<Value> next;
                         for (int64_t g = 0; g < group; ++g)
                           next.push_back(sb.add(acc[g], d[g]));
                         return next;
                       });
                   for (int64_t g = 0; g < group; ++g) {
                     Value k = fb.add(f[0], fb.index(g));
                     Value y = fb.add(sums[g], fb.loadF32(bias, {k}));
                     y = fb.add(y, fb.loadF32(pos, {zero, r, k}));
                     fb.store(y, out, {row, k});
                   }
                 });
    });
  });
}

void ForwardLowering::lowerEncoderAttention(EncoderAttentionOp op) {
  auto type = op.getQuery().getType();
  int64_t heads = type.getDimSize(1), d = type.getDimSize(2);
  int64_t sequence = op.getSequence();
  Value q = bufferOf(op.getQuery());
  Value k = perHead(*b, bufferOf(op.getKey()), heads, d);
  Value v = perHead(*b, bufferOf(op.getValue()), heads, d);
  Value out = define(op.getResult(), heads * d);
  double scale = op.getSoftmaxScale().convertToDouble();
  KernelBuilder kb(*b);
  // A query row and head attend to the keys of their tile with the
  // language model's blocked online softmax (8 keys a step, their exps one
  // vector).
  kb.parallel(
      {numTokens, kb.index(heads)}, [&](KernelBuilder &lb, ValueRange iv) {
        Value t = iv[0], h = iv[1];
        Value first = lb.mul(lb.div(t, lb.index(sequence)), lb.index(sequence));
        emitEncoderHead(lb, q, k, v, out, t, h, first,
                        lb.add(first, lb.index(sequence)), d, scale);
      });
}

void ForwardLowering::lowerLayerScale(LayerScaleOp op) {
  int64_t width = widthOf(op.getResult());
  Value x = bufferOf(op.getInput());
  Value gamma = weightView(op.getGamma());
  Value out = define(op.getResult(), width);
  KernelBuilder kb(*b);
  kb.parallel({numTokens}, [&](KernelBuilder &lb, ValueRange t) {
    lb.forEachChunk(width, [&](KernelBuilder &cb, Value k, int64_t n) {
      cb.store(cb.mul(cb.loadN(x, {t[0], k}, n), cb.loadN(gamma, {k}, n)), out,
               {t[0], k});
    });
  });
}

void ForwardLowering::lowerPixelShuffle(PixelShuffleOp op) {
  int64_t channels = widthOf(op.getInput());
  int64_t sequence = op.getSequence(), skip = op.getSkip();
  int64_t side = op.getGridSide(), fold = op.getFold();
  int64_t outSide = side / fold, perTile = op.getRowsPerTileAfter();
  Value x = bufferOf(op.getInput());
  Value out = define(op.getResult(), channels * fold * fold);
  bool transposed = op.getTransposed();
  KernelBuilder kb(*b);
  // InternVL's pixel_shuffle, read backwards: feature block j of output
  // cell (a2, b2) is the grid cell (f a2 + j / f, f b2 + j % f); v2 lays the
  // output cells out row by row over a2, v1 over b2.
  kb.parallel({numTokens}, [&](KernelBuilder &lb, ValueRange iv) {
    Value row = iv[0];
    Value tile = lb.div(row, lb.index(perTile));
    Value o = arith::RemUIOp::create(lb.builder(), row, lb.index(perTile));
    Value o1 = lb.div(o, lb.index(outSide));
    Value o2 = arith::RemUIOp::create(lb.builder(), o, lb.index(outSide));
    Value a2 = transposed ? o2 : o1, b2 = transposed ? o1 : o2;
    Value base = lb.add(lb.mul(tile, lb.index(sequence)), lb.index(skip));
    for (int64_t j = 0; j < fold * fold; ++j) {
      Value a = lb.add(lb.mul(a2, lb.index(fold)), lb.index(j / fold));
      Value c = lb.add(lb.mul(b2, lb.index(fold)), lb.index(j % fold));
      Value src = lb.add(base, lb.add(lb.mul(a, lb.index(side)), c));
      lb.forEachChunk(channels, [&](KernelBuilder &cb, Value k, int64_t n) {
        cb.store(cb.loadN(x, {src, k}, n), out,
                 {row, cb.add(cb.index(j * channels), k)});
      });
    }
  });
}

LogicalResult ForwardLowering::lowerVision(func::FuncOp vision) {
  source = vision;
  buffers.clear();
  owned.clear();
  weightViews.clear();
  layerIndices.clear();
  outputAllocs.clear();
  keysSeenValue = Value();
  auto pixelsType = cast<RankedTensorType>(vision.getArgument(0).getType());
  auto resultType = cast<RankedTensorType>(vision.getResultTypes()[0]);
  PatchEmbeddingOp embedding;
  vision.walk([&](PatchEmbeddingOp op) { embedding = op; });
  if (!embedding)
    return vision.emitOpError() << "has no decoder.patch_embedding to start "
                                   "from";

  OpBuilder top(ctx);
  top.setInsertionPoint(vision);
  int64_t dyn = ShapedType::kDynamic;
  Type f32 = top.getF32Type();
  SmallVector<Type> args = {
      MemRefType::get({dyn}, top.getI8Type()),
      MemRefType::get(pixelsType.getShape(), f32),
      MemRefType::get({dyn, resultType.getDimSize(1)}, f32)};
  Block *block = beginEntry(vision, contract::kVisionFunction, args);
  arenaArg = block->getArgument(0);
  logits = block->getArgument(2);
  tiles = memref::DimOp::create(*b, block->getArgument(1), 0);
  int64_t side =
      pixelsType.getDimSize(2) / embedding.getWeight().getType().getDimSize(2);
  numTokens = arith::MulIOp::create(
      *b, tiles, arith::ConstantIndexOp::create(*b, 1 + side * side));
  buffers[vision.getArgument(0)] = block->getArgument(1);

  int64_t tokensPerTile = 0;
  vision.walk(
      [&](PixelShuffleOp op) { tokensPerTile = op.getRowsPerTileAfter(); });
  if (!tokensPerTile)
    return vision.emitOpError() << "has no decoder.pixel_shuffle";
  visionShape =
      contract::VisionShape{pixelsType.getDimSize(1), pixelsType.getDimSize(2),
                            tokensPerTile, resultType.getDimSize(1)};

  auto ret = cast<func::ReturnOp>(vision.getBody().front().getTerminator());
  returned = ret.getOperand(0);
  gatheredPart = Value();
  lastUse = lastUses(vision.getBody().front());
  for (Operation &op : vision.getBody().front()) {
    // From the pixel shuffle on, a tile has fewer rows; the count is made
    // here, outside the kernel lower() outlines.
    if (auto shuffle = dyn_cast<PixelShuffleOp>(op))
      numTokens = arith::MulIOp::create(
          *b, tiles,
          arith::ConstantIndexOp::create(*b, shuffle.getRowsPerTileAfter()));
    if (failed(lower(&op)))
      return failure();
  }
  vision.erase();
  return success();
}

} // namespace decc::cpulowering
