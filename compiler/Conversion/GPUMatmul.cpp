//===- GPUMatmul.cpp - prefill projections on tensor cores ----------------===//
//
// A prefill call has many tokens, and the decode GEMV (a warp per output
// feature, tokens in a loop) rereads each weight row once a token and does
// its arithmetic on the CUDA cores. For prefill a projection is instead
// three kernels: the norm statistics of each token (when a norm is fused),
// the raw products G = norm(x) . W^T of every weight row on tensor cores
// (split TF32, GPUMma.h), and the projection's epilogue reading G
// (GPUProjection.cpp). Decode keeps the GEMV.
//
// Matmul tiling: a block owns 32 tokens x 32 weight rows (2 x 4 mma tiles)
// and its 4 warps split the columns (split-K inside the block, summed
// through shared memory): a prefill has few tokens, and a block per
// 32 x 32 tile with the reduction spread over 4 warps gives the card enough
// independent loads in flight. Loads come straight from global memory, each
// lane a contiguous 32-byte run of its activation rows and 16 bytes of each
// weight row per 32 columns (the permuted k of GPUMma.h).
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/GPULowering.h"

#include "compiler/Conversion/GPUMma.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

namespace decc::gpulowering {

namespace {
constexpr int64_t kTileTokens = 32, kTileRows = 32;
constexpr int64_t kMTiles = kTileTokens / 16, kNTiles = kTileRows / 8;
} // namespace

bool GPULowering::hasPrefillMatmul(FusedLinearOp op) const {
  return tensorCores && featuresOf(op.getInput()) % 8 == 0;
}

std::string GPULowering::prefillProducts(FusedLinearOp op, int64_t wOffset,
                                         int64_t rows) {
  Type f32 = Float32Type::get(ctx), i8 = IntegerType::get(ctx, 8),
       i64 = IntegerType::get(ctx, 64);
  int64_t width = featuresOf(op.getInput());
  std::string x = bufferOf[op.getInput()];
  Type welt = cast<RankedTensorType>(op.getWeight().getType()).getElementType();
  std::optional<NormKind> norm = op.getNorm();
  bool layer = norm && *norm == NormKind::Layer;

  // Per token: 1/sqrt(var + eps) and (LayerNorm) the mean, a warp a token.
  std::string stats;
  if (norm) {
    stats = newBuffer(2);
    Kernel &k =
        beginKernel("norm_stats", {{"step", i64}, {x, f32}, {stats, f32}});
    KernelBuilder &kb = *k.kb;
    WarpIds w = warpIds(kb);
    Value t = w.warp;
    kb.ifThen(less(kb, t, step(k, kTokens)), [&](KernelBuilder &ib) {
      Value base = ib.mul(t, ib.index(width));
      SmallVector<Value> sums =
          ib.forLoop(w.lane, ib.index(width), 32, {ib.f32(0.0), ib.f32(0.0)},
                     [&](KernelBuilder &lb, Value c, ValueRange acc) {
                       Value v = lb.loadF32(k.args[x], {lb.add(base, c)});
                       return SmallVector<Value>{lb.add(acc[0], v),
                                                 lb.add(acc[1], lb.mul(v, v))};
                     });
      Value n = ib.f32(double(width));
      Value mean = layer ? ib.div(warpSum(ib, sums[0]), n) : ib.f32(0.0);
      Value var = ib.div(warpSum(ib, sums[1]), n);
      if (layer)
        var = ib.sub(var, ib.mul(mean, mean));
      Value eps = ib.f32(op.getNormEpsilon()->convertToDouble());
      Value inv = math::RsqrtOp::create(ib.builder(), ib.add(var, eps));
      ib.ifThen(isZero(ib, w.lane), [&](KernelBuilder &sb) {
        Value at = sb.mul(t, sb.index(2));
        sb.store(inv, k.args[stats], {at});
        sb.store(mean, k.args[stats], {sb.add(at, sb.index(1))});
      });
    });
    endKernel(k, grid(1, kWarpsPerBlock, "tokens"), "prefill");
  }

  std::string products = newBuffer(rows);
  SmallVector<Binding> binds = {{"arena", i8}, {"step", i64}, {x, f32}};
  if (norm)
    binds.push_back({stats, f32});
  binds.push_back({products, f32});
  Kernel &k = beginKernel("matmul", binds);
  KernelBuilder &kb = *k.kb;
  // The partial tiles of the block's warps, summed at the end.
  constexpr int64_t kTileFloats = kMTiles * kNTiles * 4 * 32;
  Value partials = k.func.addWorkgroupAttribution(
      MemRefType::get({kWarpsPerBlock * kTileFloats}, f32, AffineMap(),
                      gpu::AddressSpaceAttr::get(
                          ctx, gpu::GPUDialect::getWorkgroupAddressSpace())),
      k.func.getLoc());
  Value tid = gpu::ThreadIdOp::create(*k.b, gpu::Dimension::x);
  Value lane = arith::RemUIOp::create(*k.b, tid, kb.index(32));
  Value warp = kb.div(tid, kb.index(32));
  MmaLane ml = mmaLane(kb, lane);
  Value nTokens = step(k, kTokens);
  Value m0 = kb.mul(gpu::BlockIdOp::create(*k.b, gpu::Dimension::y),
                    kb.index(kTileTokens));
  Value n0 = kb.mul(gpu::BlockIdOp::create(*k.b, gpu::Dimension::x),
                    kb.index(kTileRows));
  Value weight = arenaView(kb, k, welt, wOffset);
  Value gamma, beta;
  int64_t gBytes = 0;
  if (norm) {
    Type gelt =
        cast<RankedTensorType>(op.getNormWeight().getType()).getElementType();
    gamma = arenaView(kb, k, gelt, arena.offsetOf(op.getNormWeight()));
    if (op.getNormBias())
      beta = arenaView(kb, k, gelt, arena.offsetOf(op.getNormBias()));
    gBytes = gelt.getIntOrFloatBitWidth() / 8;
  }

  // Columns a lane reads per step: 32 columns a step (8 a lane) when the
  // width allows, else 8 (2 a lane).
  int64_t columns = width % 32 == 0 ? 32 : 8, perLane = columns / 4;
  int64_t wBytes = welt.getIntOrFloatBitWidth() / 8;
  auto minIndex = [&](Value a, Value b) {
    return arith::MinUIOp::create(kb.builder(), a, b);
  };
  // This lane's activation rows (A rows g and g + 8 of each m tile, clamped
  // to real tokens) and weight rows (B column g of each n tile).
  Value lastToken = kb.sub(nTokens, kb.index(1));
  SmallVector<Value> tokenBase, inv, mean;
  for (int64_t r = 0; r < 2 * kMTiles; ++r) {
    Value token =
        minIndex(kb.add(m0, kb.add(ml.g, kb.index(8 * r))), lastToken);
    tokenBase.push_back(kb.mul(token, kb.index(width)));
    if (norm) {
      Value at = kb.mul(token, kb.index(2));
      inv.push_back(kb.loadF32(k.args[stats], {at}));
      mean.push_back(kb.loadF32(k.args[stats], {kb.add(at, kb.index(1))}));
    }
  }
  SmallVector<Value> rowBase;
  for (int64_t n = 0; n < kNTiles; ++n)
    rowBase.push_back(kb.mul(
        minIndex(kb.add(n0, kb.add(ml.g, kb.index(8 * n))), kb.index(rows - 1)),
        kb.index(width)));
  Value laneColumn = kb.mul(ml.t, kb.index(perLane));

  // One step's operands: the A rows (norm applied: (x - mean) * inv *
  // gamma + beta) and the weight rows, as f32 vectors of `perLane`.
  struct Operands {
    SmallVector<Value> a, b;
  };
  auto load = [&](KernelBuilder &lb, Value c0) {
    Operands o;
    Value c = lb.add(c0, laneColumn);
    Value g =
        norm ? lb.loadVector(gamma, {c}, perLane, gBytes * perLane) : Value();
    Value bt =
        beta ? lb.loadVector(beta, {c}, perLane, gBytes * perLane) : Value();
    for (int64_t r = 0; r < 2 * kMTiles; ++r) {
      Value v = lb.loadVector(k.args[x], {lb.add(tokenBase[r], c)}, perLane,
                              4 * perLane);
      if (norm) {
        if (layer)
          v = lb.sub(v, lb.splat(mean[r], perLane));
        v = lb.mul(lb.mul(v, lb.splat(inv[r], perLane)), g);
        if (bt)
          v = lb.add(v, bt);
      }
      o.a.push_back(v);
    }
    for (int64_t n = 0; n < kNTiles; ++n)
      o.b.push_back(lb.loadVector(weight, {lb.add(rowBase[n], c)}, perLane,
                                  wBytes * perLane));
    return o;
  };
  auto multiply = [&](KernelBuilder &lb, const Operands &o,
                      SmallVector<Value> &acc) {
    auto at = [&](Value v, int64_t i) {
      return vector::ExtractOp::create(lb.builder(), v, ArrayRef<int64_t>{i});
    };
    for (int64_t j = 0; j < perLane / 2; ++j) {
      SmallVector<SplitTF32> as, bs;
      for (int64_t m = 0; m < kMTiles; ++m) {
        Value top = o.a[2 * m], bottom = o.a[2 * m + 1];
        as.push_back(
            splitTF32(lb, {at(top, 2 * j), at(bottom, 2 * j),
                           at(top, 2 * j + 1), at(bottom, 2 * j + 1)}));
      }
      for (int64_t n = 0; n < kNTiles; ++n)
        bs.push_back(splitTF32(lb, {at(o.b[n], 2 * j), at(o.b[n], 2 * j + 1)},
                               /*exact=*/!welt.isF32()));
      for (int64_t m = 0; m < kMTiles; ++m)
        for (int64_t n = 0; n < kNTiles; ++n)
          acc[m * kNTiles + n] = mmaF32(lb, as[m], bs[n], acc[m * kNTiles + n]);
    }
  };

  // The block's warps split the columns (warp w takes steps w, w + 4, ...),
  // two steps at a time when they divide evenly, both steps' loads issued
  // before either's mma so that their latencies overlap.
  int64_t steps = width / columns;
  int64_t unroll = steps % (2 * kWarpsPerBlock) == 0 ? 2 : 1;
  int64_t stride = kWarpsPerBlock * columns;
  SmallVector<Value> inits(kMTiles * kNTiles, zeroAccumulator(kb));
  SmallVector<Value> acc = kb.forLoop(
      kb.mul(warp, kb.index(columns)), kb.index(width), stride * unroll, inits,
      [&](KernelBuilder &lb, Value c0, ValueRange accIn) {
        SmallVector<Operands> ops;
        for (int64_t u = 0; u < unroll; ++u)
          ops.push_back(load(lb, lb.add(c0, lb.index(u * stride))));
        SmallVector<Value> next(accIn);
        for (const Operands &o : ops)
          multiply(lb, o, next);
        return next;
      });

  // Sum the warps' tiles through shared memory; warp w then stores tiles
  // 2w and 2w + 1 of the 8.
  for (int64_t t = 0; t < kMTiles * kNTiles; ++t)
    for (int64_t i = 0; i < 4; ++i) {
      Value at =
          kb.add(kb.mul(kb.add(kb.mul(warp, kb.index(kMTiles * kNTiles * 4)),
                               kb.index(t * 4 + i)),
                        kb.index(32)),
                 lane);
      kb.store(accElement(kb, acc[t], i), partials, {at});
    }
  gpu::BarrierOp::create(*k.b);
  constexpr int64_t kTilesPerWarp = kMTiles * kNTiles / kWarpsPerBlock;
  for (int64_t tw = 0; tw < kTilesPerWarp; ++tw) {
    Value tile = kb.add(kb.mul(warp, kb.index(kTilesPerWarp)), kb.index(tw));
    Value m = kb.div(tile, kb.index(kNTiles));
    Value n = arith::RemUIOp::create(kb.builder(), tile, kb.index(kNTiles));
    for (int64_t i = 0; i < 4; ++i) {
      Value sum = kb.f32(0.0);
      for (int64_t w = 0; w < kWarpsPerBlock; ++w)
        sum = kb.add(
            sum,
            kb.loadF32(
                partials,
                {kb.add(kb.mul(kb.add(kb.mul(tile, kb.index(4)),
                                      kb.index(w * kMTiles * kNTiles * 4 + i)),
                               kb.index(32)),
                        lane)}));
      Value token = kb.add(m0, kb.add(ml.g, kb.add(kb.mul(m, kb.index(16)),
                                                   kb.index(8 * (i / 2)))));
      Value row =
          kb.add(n0, kb.add(kb.mul(ml.t, kb.index(2)),
                            kb.add(kb.mul(n, kb.index(8)), kb.index(i % 2))));
      Value inside =
          arith::AndIOp::create(kb.builder(), less(kb, token, nTokens),
                                less(kb, row, kb.index(rows)));
      kb.ifThen(inside, [&](KernelBuilder &sb) {
        sb.store(sum, k.args[products],
                 {sb.add(sb.mul(token, sb.index(rows)), row)});
      });
    }
  }
  endKernel(k,
            grid((rows + kTileRows - 1) / kTileRows, 1, "one", 1, "tokens",
                 kTileTokens),
            "prefill");
  if (norm)
    freeBuffers.push_back({stats, 2});
  return products;
}

} // namespace decc::gpulowering
