//===- GPUVision.cpp - InternVL's vision encoder as CUDA kernels ----------===//
//
// `@vision` (compiler/Frontend/VisionBuilder.cpp) becomes a second launch
// plan beside the forward pass's (contract::VisionPlan), its kernels in the
// same gpu.module, its weights in the same arena. The rows are every tile's
// tokens, tile after tile, as on the CPU: the projections (LayerNorm, bias,
// GELU) are the forward pass's prefill kernels over them (the step record's
// tokens are the rows), so they run on the tensor cores with the same
// accuracy rules; the four ops of the encoder's own (patch embedding,
// attention within a tile, layer scale, pixel shuffle) and the residual add
// are here. From the pixel shuffle on a tile has fewer rows: the runtime
// gives the launches from there a second step record.
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/GPU/GPULowering.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <limits>

namespace decc::gpulowering {

namespace {
/// Queries a block of the encoder's attention (a thread each), and keys a
/// step of its scan (staged in shared memory, their scores in registers).
constexpr int64_t kEncoderQueries = 64;
constexpr int64_t kEncoderKeys = 16;
} // namespace

std::string GPULowering::defineBuffer(Value result) {
  int64_t width = featuresOf(result);
  std::string name = newBuffer(width);
  bufferOf[result] = name;
  widthOf[result] = width;
  return name;
}

void GPULowering::lowerPatchEmbedding(PatchEmbeddingOp op) {
  Type f32 = Float32Type::get(ctx), i8 = IntegerType::get(ctx, 8),
       i64 = IntegerType::get(ctx, 64);
  auto weightType = op.getWeight().getType();
  int64_t features = weightType.getDimSize(0),
          channels = weightType.getDimSize(1), patch = weightType.getDimSize(2);
  int64_t size = op.getPixels().getType().getDimSize(2);
  int64_t side = size / patch, sequence = 1 + side * side;
  int64_t wOffset = arena.offsetOf(op.getWeight()),
          bOffset = arena.offsetOf(op.getBias()),
          cOffset = arena.offsetOf(op.getClassEmbedding()),
          pOffset = arena.offsetOf(op.getPosition());
  std::string pixels = bufferOf[op.getPixels()];
  std::string out = defineBuffer(op.getResult());
  // A block: kPatchRows rows x kThreads features, a thread a feature of
  // every row. The convolution goes over one row of a channel's patch (a
  // step: `patch` pixels of each row, `patch` weights of each feature,
  // staged in shared memory), each weight loaded once a block where a
  // thread a row and feature loaded all of its own: 16x fewer weight loads
  // (InternViT's 13 tiles: 12.5 ms on an H100 before, docs/PERF.md).
  constexpr int64_t kPatchRows = 16;
  int64_t pixelStride = llvm::alignTo(patch, 4), weightStride = patch + 1;
  Kernel &k =
      beginKernel("patch_embedding",
                  {{"arena", i8}, {"step", i64}, {pixels, f32}, {out, f32}});
  KernelBuilder &kb = *k.kb;
  ImplicitLocOpBuilder &b = *k.b;
  Value pixelTile = sharedFloats(k, kPatchRows * pixelStride);
  // Odd rows of weights: a thread's row is in banks of its own.
  Value weightTile = sharedFloats(k, kThreads * weightStride);
  Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  Value row0 = kb.mul(gpu::BlockIdOp::create(b, gpu::Dimension::x),
                      kb.index(kPatchRows));
  Value f0 =
      kb.mul(gpu::BlockIdOp::create(b, gpu::Dimension::y), kb.index(kThreads));
  Value rows = step(k, kStepTokens);
  QuantizedWeight quant;
  Value w = weightView(kb, k, op.getWeight(), wOffset, quant);
  // Where the pixels of row `r`'s patch start (the class token's: the
  // first patch's, computed and dropped).
  auto patchOrigin = [&](KernelBuilder &ib, Value r) {
    Value row = ib.umin(r, ib.sub(rows, ib.index(1)));
    Value tile = ib.div(row, ib.index(sequence));
    Value at = arith::RemUIOp::create(ib.builder(), row, ib.index(sequence));
    Value p = ib.sub(ib.umax(at, ib.index(1)), ib.index(1));
    Value y0 = ib.mul(ib.div(p, ib.index(side)), ib.index(patch));
    Value x0 = ib.mul(arith::RemUIOp::create(ib.builder(), p, ib.index(side)),
                      ib.index(patch));
    return std::array<Value, 3>{tile, y0, x0};
  };
  SmallVector<Value> init(kPatchRows, kb.f32(0.0));
  SmallVector<Value> sums = kb.forLoop(
      kb.index(0), kb.index(channels * patch), 1, init,
      [&](KernelBuilder &lb, Value ci, ValueRange acc) {
        Value c = lb.div(ci, lb.index(patch));
        Value i = arith::RemUIOp::create(lb.builder(), ci, lb.index(patch));
        gpu::BarrierOp::create(lb.builder());
        // The step's pixels (row i of channel c of each row's patch) and
        // weights (`patch` of each of the block's features), a thread an
        // element of `count` x patch at a time.
        auto stage =
            [&](int64_t count,
                llvm::function_ref<void(KernelBuilder &, Value, Value)> copy) {
              lb.forLoop(tid, lb.index(count * patch), kThreads,
                         [&](KernelBuilder &cb, ValueRange iv) {
                           copy(cb, cb.div(iv[0], cb.index(patch)),
                                arith::RemUIOp::create(cb.builder(), iv[0],
                                                       cb.index(patch)));
                         });
            };
        stage(kPatchRows, [&](KernelBuilder &cb, Value r, Value j) {
          auto [tile, y0, x0] = patchOrigin(cb, cb.add(row0, r));
          Value at = cb.add(
              cb.mul(cb.add(cb.mul(cb.add(cb.mul(tile, cb.index(channels)), c),
                                   cb.index(size)),
                            cb.add(y0, i)),
                     cb.index(size)),
              cb.add(x0, j));
          cb.store(cb.loadF32(k.args[pixels], {at}), pixelTile,
                   {cb.add(cb.mul(r, cb.index(pixelStride)), j)});
        });
        stage(kThreads, [&](KernelBuilder &cb, Value f, Value j) {
          Value feature = cb.umin(cb.add(f0, f), cb.index(features - 1));
          Value at = cb.add(
              cb.mul(cb.add(cb.mul(feature, cb.index(channels * patch)), ci),
                     cb.index(patch)),
              j);
          cb.store(cb.loadF32(w, {at}), weightTile,
                   {cb.add(cb.mul(f, cb.index(weightStride)), j)});
        });
        gpu::BarrierOp::create(lb.builder());
        SmallVector<Value> wv;
        for (int64_t j = 0; j < patch; ++j)
          wv.push_back(lb.loadF32(
              weightTile,
              {lb.add(lb.mul(tid, lb.index(weightStride)), lb.index(j))}));
        SmallVector<Value> next;
        for (int64_t r = 0; r < kPatchRows; ++r) {
          Value s = acc[r];
          for (int64_t j0 = 0; j0 < patch; j0 += 4) {
            Value px = lb.loadVector(pixelTile,
                                     {lb.index(r * pixelStride + j0)}, 4, 16);
            for (int64_t j = j0; j < std::min(j0 + 4, patch); ++j)
              s = math::FmaOp::create(
                  lb.builder(),
                  vector::ExtractOp::create(lb.builder(), px, j - j0), wv[j],
                  s);
          }
          next.push_back(s);
        }
        return next;
      });
  Value f = kb.add(f0, tid);
  kb.ifThen(less(kb, f, kb.index(features)), [&](KernelBuilder &ib) {
    Value bias = weightView(ib, k, op.getBias(), bOffset, quant);
    Value cls = weightView(ib, k, op.getClassEmbedding(), cOffset, quant);
    Value pos = weightView(ib, k, op.getPosition(), pOffset, quant);
    Value conv0 = ib.loadF32(bias, {f}), class0 = ib.loadF32(cls, {f});
    for (int64_t r = 0; r < kPatchRows; ++r) {
      Value row = ib.add(row0, ib.index(r));
      ib.ifThen(less(ib, row, rows), [&](KernelBuilder &sb) {
        Value at =
            arith::RemUIOp::create(sb.builder(), row, sb.index(sequence));
        Value first = arith::SelectOp::create(sb.builder(), isZero(sb, at),
                                              class0, sb.add(sums[r], conv0));
        Value v = sb.add(
            first,
            sb.loadF32(pos, {sb.add(sb.mul(at, sb.index(features)), f)}));
        sb.store(v, k.args[out], {sb.add(sb.mul(row, sb.index(features)), f)});
      });
    }
  });
  endKernel(k, grid(1, kPatchRows, GridScale::Tokens,
                    llvm::divideCeil(features, kThreads)));
}

void GPULowering::lowerEncoderAttention(EncoderAttentionOp op) {
  Type f32 = Float32Type::get(ctx);
  auto type = op.getQuery().getType();
  int64_t heads = type.getDimSize(1), d = type.getDimSize(2);
  int64_t width = heads * d, sequence = op.getSequence();
  float scale = float(op.getSoftmaxScale().convertToDouble());
  std::string q = bufferOf[op.getQuery()], kName = bufferOf[op.getKey()],
              vName = bufferOf[op.getValue()];
  std::string out = defineBuffer(op.getResult());
  // On tensor cores where the heads allow: half precision's in blocks of
  // 64 queries over shared K/V tiles, else mma's 8-feature tiles.
  if (canTileEncoderAttention(d)) {
    encoderAttentionTiled(op, q, kName, vName, out);
    return;
  }
  if (tensorCores && d % 8 == 0) {
    encoderAttentionMma(op, q, kName, vName, out);
    return;
  }
  int64_t chunks = llvm::divideCeil(sequence, kEncoderQueries);
  Kernel &k = beginKernel("encoder_attention",
                          {{q, f32}, {kName, f32}, {vName, f32}, {out, f32}});
  k.threads = kEncoderQueries;
  KernelBuilder &kb = *k.kb;
  ImplicitLocOpBuilder &b = *k.b;
  Value keys = sharedFloats(k, kEncoderKeys * d);
  Value values = sharedFloats(k, kEncoderKeys * d);
  Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  Value block = gpu::BlockIdOp::create(b, gpu::Dimension::x);
  Value h = gpu::BlockIdOp::create(b, gpu::Dimension::y);
  Value tile = kb.div(block, kb.index(chunks));
  Value chunk = arith::RemUIOp::create(b, block, kb.index(chunks));
  Value first = kb.mul(tile, kb.index(sequence));
  Value local = kb.add(kb.mul(chunk, kb.index(kEncoderQueries)), tid);
  Value valid = less(kb, local, kb.index(sequence));
  // A thread past the tile's queries reads its last one and stores nothing;
  // it still loads its share of every key step.
  Value t = kb.add(first, kb.umin(local, kb.index(sequence - 1)));
  Value featureBase = kb.mul(h, kb.index(d));
  auto rowAt = [&](KernelBuilder &ib, Value row) {
    return ib.add(ib.mul(row, ib.index(width)), featureBase);
  };
  Value query = kb.mul(kb.loadVector(k.args[q], {rowAt(kb, t)}, d),
                       kb.splat(kb.f32(scale), d));
  Value negInf = kb.f32(-std::numeric_limits<float>::infinity());
  int64_t steps = llvm::divideCeil(sequence, kEncoderKeys);
  SmallVector<Value> state = kb.forLoop(
      kb.index(0), kb.index(steps), 1,
      {negInf, kb.f32(0.0), kb.splat(kb.f32(0.0), d)},
      [&](KernelBuilder &lb, Value s, ValueRange carried) {
        ImplicitLocOpBuilder &lbb = lb.builder();
        Value key0 = lb.mul(s, lb.index(kEncoderKeys));
        // The step's keys and values into shared memory, a float a thread
        // at a time (clamped to the tile's last key).
        gpu::BarrierOp::create(lbb);
        lb.forLoop(tid, lb.index(kEncoderKeys * d), kEncoderQueries,
                   [&](KernelBuilder &cb, ValueRange iv) {
                     Value j = cb.div(iv[0], cb.index(d));
                     Value i = arith::RemUIOp::create(cb.builder(), iv[0],
                                                      cb.index(d));
                     Value key =
                         cb.umin(cb.add(key0, j), cb.index(sequence - 1));
                     Value at = cb.add(rowAt(cb, cb.add(first, key)), i);
                     cb.store(cb.loadF32(k.args[kName], {at}), keys, {iv[0]});
                     cb.store(cb.loadF32(k.args[vName], {at}), values, {iv[0]});
                   });
        gpu::BarrierOp::create(lbb);
        Value m = carried[0], l = carried[1], o = carried[2];
        SmallVector<Value> scores;
        Value stepMax = m;
        for (int64_t j = 0; j < kEncoderKeys; ++j) {
          Value kv = lb.loadVector(keys, {lb.index(j * d)}, d, 16);
          Value sc = vector::ReductionOp::create(
              lbb, vector::CombiningKind::ADD, lb.mul(query, kv));
          Value inTile =
              less(lb, lb.add(key0, lb.index(j)), lb.index(sequence));
          sc = arith::SelectOp::create(lbb, inTile, sc, negInf);
          scores.push_back(sc);
          stepMax = lb.fmax(stepMax, sc);
        }
        // The first step always has a key, so stepMax is finite from there.
        Value correction = lb.exp(lb.sub(m, stepMax));
        l = lb.mul(l, correction);
        o = lb.mul(o, lb.splat(correction, d));
        for (int64_t j = 0; j < kEncoderKeys; ++j) {
          Value p = lb.exp(lb.sub(scores[j], stepMax));
          l = lb.add(l, p);
          Value vv = lb.loadVector(values, {lb.index(j * d)}, d, 16);
          o = math::FmaOp::create(lbb, lb.splat(p, d), vv, o);
        }
        return SmallVector<Value>{stepMax, l, o};
      });
  kb.ifThen(valid, [&](KernelBuilder &ib) {
    Value o = ib.mul(state[2], ib.splat(ib.div(ib.f32(1.0), state[1]), d));
    Value at = rowAt(ib, t);
    for (int64_t i = 0; i < d; ++i)
      ib.store(vector::ExtractOp::create(ib.builder(), o, i), k.args[out],
               {ib.add(at, ib.index(i))});
  });
  // Blocks in x: chunks a tile (the tokens are tiles x sequence).
  endKernel(k, grid(chunks, sequence, GridScale::Tokens, heads));
}

void GPULowering::lowerRMSNorm(RMSNormOp op) {
  Type f32 = Float32Type::get(ctx), i8 = IntegerType::get(ctx, 8),
       i64 = IntegerType::get(ctx, 64);
  int64_t width = featuresOf(op.getResult());
  int64_t gOffset = arena.offsetOf(op.getWeight());
  std::string x = bufferOf[op.getInput()];
  std::string out = defineBuffer(op.getResult());
  // A warp a row (InternViT-6B's queries and keys, every head together).
  Kernel &k = beginKernel("rms_norm",
                          {{"arena", i8}, {"step", i64}, {x, f32}, {out, f32}});
  KernelBuilder &kb = *k.kb;
  WarpIds w = warpIds(kb);
  Value t = w.warp;
  kb.ifThen(less(kb, t, step(k, kStepTokens)), [&](KernelBuilder &ib) {
    QuantizedWeight quant;
    Value gamma = weightView(ib, k, op.getWeight(), gOffset, quant);
    Value base = ib.mul(t, ib.index(width));
    SmallVector<Value> sum =
        ib.forLoop(w.lane, ib.index(width), 32, {ib.f32(0.0)},
                   [&](KernelBuilder &lb, Value c, ValueRange acc) {
                     Value v = lb.loadF32(k.args[x], {lb.add(base, c)});
                     return SmallVector<Value>{
                         math::FmaOp::create(lb.builder(), v, v, acc[0])};
                   });
    Value mean = ib.div(warpSum(ib, sum[0]), ib.f32(double(width)));
    Value inv = math::RsqrtOp::create(
        ib.builder(), ib.add(mean, ib.f32(op.getEpsilon().convertToDouble())));
    ib.forLoop(w.lane, ib.index(width), 32,
               [&](KernelBuilder &lb, ValueRange c) {
                 Value at = lb.add(base, c[0]);
                 lb.store(lb.mul(lb.mul(lb.loadF32(k.args[x], {at}), inv),
                                 lb.loadF32(gamma, {c[0]})),
                          k.args[out], {at});
               });
  });
  endKernel(k, grid(1, kWarpsPerBlock, GridScale::Tokens));
}

void GPULowering::lowerLayerScale(LayerScaleOp op) {
  // InternViT's blocks add the scaled branch to the residual at once: the
  // add scales it, one pass over the rows where there were two (the two
  // took 6.4 ms of a 13-tile encode on an H100, docs/PERF.md). The input
  // lives until the add.
  if (op->hasOneUse() && isa<AddOp>(*op->getUsers().begin())) {
    scaleInAdd[op.getResult()] = op;
    lastUse[op.getInput()] = *op->getUsers().begin();
    return;
  }
  Type f32 = Float32Type::get(ctx), i8 = IntegerType::get(ctx, 8);
  int64_t width = featuresOf(op.getResult());
  int64_t gOffset = arena.offsetOf(op.getGamma());
  std::string x = bufferOf[op.getInput()];
  std::string out = defineBuffer(op.getResult());
  elementwiseKernel(
      "layer_scale", {{"arena", i8}, {x, f32}, {out, f32}}, width,
      [&](KernelBuilder &ib, Kernel &k, Value row, Value col) {
        QuantizedWeight quant;
        Value gamma = weightView(ib, k, op.getGamma(), gOffset, quant);
        return ib.mul(
            ib.loadF32(k.args[x], {ib.add(ib.mul(row, ib.index(width)), col)}),
            ib.loadF32(gamma, {col}));
      },
      out);
}

void GPULowering::lowerAdd(AddOp op) {
  Type f32 = Float32Type::get(ctx), i8 = IntegerType::get(ctx, 8);
  int64_t width = featuresOf(op.getResult());
  Value lhs = op.getLhs(), rhs = op.getRhs();
  LayerScaleOp scale = scaleInAdd.lookup(rhs);
  if (!scale && (scale = scaleInAdd.lookup(lhs)))
    std::swap(lhs, rhs);
  if (!scale) {
    std::string a = bufferOf[lhs], c = bufferOf[rhs];
    std::string out = defineBuffer(op.getResult());
    elementwiseKernel(
        "add", {{a, f32}, {c, f32}, {out, f32}}, width,
        [&](KernelBuilder &ib, Kernel &k, Value row, Value col) {
          Value at = ib.add(ib.mul(row, ib.index(width)), col);
          return ib.add(ib.loadF32(k.args[a], {at}),
                        ib.loadF32(k.args[c], {at}));
        },
        out);
    return;
  }
  // lhs + gamma * x, x the layer scale's input.
  int64_t gOffset = arena.offsetOf(scale.getGamma());
  std::string a = bufferOf[lhs], x = bufferOf[scale.getInput()];
  std::string out = defineBuffer(op.getResult());
  elementwiseKernel(
      "scaled_add", {{"arena", i8}, {a, f32}, {x, f32}, {out, f32}}, width,
      [&](KernelBuilder &ib, Kernel &k, Value row, Value col) {
        QuantizedWeight quant;
        Value gamma = weightView(ib, k, scale.getGamma(), gOffset, quant);
        Value at = ib.add(ib.mul(row, ib.index(width)), col);
        return math::FmaOp::create(ib.builder(), ib.loadF32(gamma, {col}),
                                   ib.loadF32(k.args[x], {at}),
                                   ib.loadF32(k.args[a], {at}));
      },
      out);
  release(scale.getInput());
}

void GPULowering::lowerPixelShuffle(PixelShuffleOp op) {
  Type f32 = Float32Type::get(ctx);
  int64_t channels = featuresOf(op.getInput());
  int64_t sequence = op.getSequence(), skip = op.getSkip();
  int64_t side = op.getGridSide(), fold = op.getFold();
  int64_t outSide = side / fold, perTile = op.getRowsPerTileAfter();
  int64_t width = channels * fold * fold;
  bool transposed = op.getTransposed();
  std::string x = bufferOf[op.getInput()];
  std::string out = defineBuffer(op.getResult());
  // InternVL's pixel_shuffle read backwards (as the CPU's): feature block j
  // of output cell (a2, b2) is grid cell (f a2 + j / f, f b2 + j % f).
  elementwiseKernel(
      "pixel_shuffle", {{x, f32}, {out, f32}}, width,
      [&](KernelBuilder &ib, Kernel &k, Value row, Value col) {
        ImplicitLocOpBuilder &b = ib.builder();
        Value tile = ib.div(row, ib.index(perTile));
        Value o = arith::RemUIOp::create(b, row, ib.index(perTile));
        Value o1 = ib.div(o, ib.index(outSide));
        Value o2 = arith::RemUIOp::create(b, o, ib.index(outSide));
        Value a2 = transposed ? o2 : o1, b2 = transposed ? o1 : o2;
        Value j = ib.div(col, ib.index(channels));
        Value c = arith::RemUIOp::create(b, col, ib.index(channels));
        Value a = ib.add(ib.mul(a2, ib.index(fold)), ib.div(j, ib.index(fold)));
        Value bb = ib.add(ib.mul(b2, ib.index(fold)),
                          arith::RemUIOp::create(b, j, ib.index(fold)));
        Value src =
            ib.add(ib.add(ib.mul(tile, ib.index(sequence)), ib.index(skip)),
                   ib.add(ib.mul(a, ib.index(side)), bb));
        return ib.loadF32(k.args[x],
                          {ib.add(ib.mul(src, ib.index(channels)), c)});
      },
      out);
}

LogicalResult GPULowering::lowerVision(func::FuncOp vision) {
  PatchEmbeddingOp embedding;
  PixelShuffleOp shuffle;
  vision.walk([&](PatchEmbeddingOp op) { embedding = op; });
  vision.walk([&](PixelShuffleOp op) { shuffle = op; });
  if (!embedding || !shuffle)
    return vision.emitOpError()
           << "has no decoder.patch_embedding to start from or no "
              "decoder.pixel_shuffle";
  // Its plain projections (attn.proj, fc2, mlp1.3).
  linearsAsProjections(vision.getBody().front());

  // The encoder's own state: its buffers, its TMA descriptors (over its
  // buffers, encoded when they are allocated), no logits, and kernels
  // launched one after another without traces.
  bufferOf.clear();
  tensorMapNames.clear();
  widthOf.clear();
  halfPrefillBufferOf.clear();
  freeBuffers.clear();
  plan = contract::Plan();
  bool keepTrace = trace, keepProgrammatic = programmaticLaunch;
  trace = programmaticLaunch = false;
  Value output = cast<func::ReturnOp>(vision.getBody().front().getTerminator())
                     .getOperand(0);
  returned = Value();
  lastUse = lastUses(vision.getBody().front());
  bufferOf[vision.getArgument(0)] = "pixels";

  contract::VisionPlan vp;
  int64_t side = embedding.getPixels().getType().getDimSize(2) /
                 embedding.getWeight().getType().getDimSize(2);
  vp.sequence = 1 + side * side;
  for (Operation &op : vision.getBody().front()) {
    // (The decode launches are dropped below: not counted.)
    if (&op == shuffle.getOperation())
      vp.projectorFrom = llvm::count_if(plan.launches, [](const auto &l) {
        return l.when != LaunchWhen::Decode;
      });
    if (failed(lower(&op)))
      return failure();
  }
  // Rows are never one token: the decode step's launches never run.
  llvm::erase_if(plan.launches, [](const contract::Launch &l) {
    return l.when == LaunchWhen::Decode;
  });
  vp.output = bufferOf[output];
  vp.plan = std::move(plan);
  visionPlan = std::move(vp);
  auto resultType = cast<RankedTensorType>(vision.getResultTypes()[0]);
  auto pixelsType = embedding.getPixels().getType();
  visionShape = contract::VisionShape{
      pixelsType.getDimSize(1), pixelsType.getDimSize(2),
      shuffle.getRowsPerTileAfter(), resultType.getDimSize(1)};
  trace = keepTrace;
  programmaticLaunch = keepProgrammatic;
  vision.erase();
  return success();
}

} // namespace decc::gpulowering
