//===- GPUAttention.cpp - attention kernels of the GPU lowering -----------===//
//
// A warp per (token, head): eager (scores materialized), flash (online
// softmax over blocks of 32 keys, a lane a key), and for a decode step the
// keys split over blocks with a merge of the partial softmaxes.
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/GPU/GPULowering.h"

#include "compiler/Conversion/Common/PositionTables.h"
#include "compiler/Conversion/GPU/FlashFragments.h"
#include "compiler/Conversion/GPU/GPUMma.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <functional>

namespace decc::gpulowering {

Value shuffleFrom(KernelBuilder &kb, Value v, Value lane) {
  ImplicitLocOpBuilder &b = kb.builder();
  Value pick = arith::IndexCastOp::create(b, b.getI32Type(), lane);
  Value width = arith::ConstantOp::create(b, b.getI32IntegerAttr(32));
  return gpu::ShuffleOp::create(b, v, pick, width, gpu::ShuffleMode::IDX)
      .getShuffleResult();
}

SmallVector<Value> sumWeightedByLane(
    KernelBuilder &kb, ValueRange weights, Value count, ValueRange acc,
    llvm::function_ref<Value(KernelBuilder &, Value)> rowOf,
    llvm::function_ref<Value(KernelBuilder &, Value, int64_t)> element) {
  size_t perSet = acc.size() / weights.size();
  return kb.forLoop(kb.index(0), count, 8, acc,
                    [&](KernelBuilder &lb, Value i0, ValueRange a) {
                      SmallVector<Value> out(a);
                      for (int64_t u = 0; u < 8; ++u) {
                        Value i = lb.add(i0, lb.index(u));
                        SmallVector<Value> w;
                        for (Value set : weights)
                          w.push_back(shuffleFrom(lb, set, i));
                        Value row = rowOf(lb, i);
                        for (size_t j = 0; j < perSet; ++j) {
                          Value e = element(lb, row, int64_t(j));
                          for (size_t s = 0; s < w.size(); ++s)
                            out[s * perSet + j] =
                                lb.add(out[s * perSet + j], lb.mul(w[s], e));
                        }
                      }
                      return out;
                    });
}

namespace {

/// One warp attending for one query head: the lanes split head_dim, each
/// holding `d / 32` (rounded up) features of q and of the accumulator.
struct WarpAttention {
  KernelBuilder &kb;
  AttentionConfigAttr c;
  Value lane, q, kCache, vCache, qBase, slope, pos;
  int64_t d;
  SmallVector<Value> qv; // this lane's q features (0 past head_dim)
  /// Where the features of key position `key` begin in kCache and vCache
  /// (through the block table).
  std::function<Value(KernelBuilder &, Value)> keyRow;

  int64_t perLane() const { return (d + 31) / 32; }
  Value feature(KernelBuilder &lb, int64_t j) const {
    return lb.add(lane, lb.index(32 * j));
  }
  Value inHead(KernelBuilder &lb, int64_t j) const {
    return arith::CmpIOp::create(lb.builder(), arith::CmpIPredicate::ult,
                                 feature(lb, j), lb.index(d));
  }
  /// Loads feature j of row `base` (0 past head_dim).
  Value load(KernelBuilder &lb, Value memref, Value base, int64_t j) const {
    if (d % 32 == 0)
      return lb.loadF32(memref, {lb.add(base, feature(lb, j))});
    Value i = lb.umin(feature(lb, j), lb.index(d - 1));
    Value v = lb.loadF32(memref, {lb.add(base, i)});
    return arith::SelectOp::create(lb.builder(), inHead(lb, j), v, lb.f32(0.0));
  }
  void loadQuery(KernelBuilder &lb) {
    for (int64_t j = 0; j < perLane(); ++j)
      qv.push_back(load(lb, q, qBase, j));
  }
  /// q . k_key * scale (+ ALiBi), the same in every lane.
  Value
  score(KernelBuilder &lb, Value key,
        const std::function<Value(KernelBuilder &, Value)> &warpSum) const {
    Value row = keyRow(lb, key);
    Value partial = lb.f32(0.0);
    for (int64_t j = 0; j < perLane(); ++j)
      partial = lb.add(partial, lb.mul(qv[j], load(lb, kCache, row, j)));
    Value s = lb.mul(warpSum(lb, partial), lb.f32(c.getSoftmaxScale()));
    if (slope)
      s = lb.add(s,
                 lb.mul(slope, lb.sub(lb.indexToF32(key), lb.indexToF32(pos))));
    return s;
  }
  /// Online softmax over keys [lo, hi) for one query, 32 keys at a time:
  /// lane L scores key lo + 32b + L on its own (the whole q . k, no shuffle
  /// tree per key), one max and one sum reduce the block, and the value rows
  /// are then read coalesced, lane L accumulating features L, L+32, ...
  /// with each key's weight broadcast by a shuffle. The result is that of the
  /// softmax over the range, unnormalized: {max, sum, acc...}.
  SmallVector<Value> keyParallel(
      KernelBuilder &lb, Value lo, Value hi,
      const std::function<Value(KernelBuilder &, Value)> &warpSum,
      const std::function<Value(KernelBuilder &, Value)> &warpMax) const {
    Type f32 = lb.builder().getF32Type();
    int64_t width = d % 4 == 0 ? 4 : 1;
    SmallVector<Value> init = {lb.f32(-INFINITY), lb.f32(0.0)};
    for (int64_t j = 0; j < perLane(); ++j)
      init.push_back(lb.f32(0.0));
    return lb.forLoop(
        lo, hi, 32, init, [&](KernelBuilder &ib, Value base, ValueRange st) {
          Value key = ib.add(base, lane);
          Value valid = arith::CmpIOp::create(
              ib.builder(), arith::CmpIPredicate::ult, key, hi);
          Value safeKey =
              arith::SelectOp::create(ib.builder(), valid, key, base);
          Value row = keyRow(ib, safeKey);
          // Unrolled, with independent partial sums, so that all the loads
          // of a key row are in flight at once (a decode step is bound by
          // their latency).
          Value dot;
          if (width == 4) {
            auto v4 = VectorType::get({4}, f32);
            Value zero = arith::ConstantOp::create(
                ib.builder(),
                DenseElementsAttr::get(v4, ib.builder().getF32FloatAttr(0.0)));
            SmallVector<Value> partial(std::min<int64_t>(4, d / 4), zero);
            for (int64_t i = 0; i < d / 4; ++i) {
              Value qv4 =
                  ib.loadVector(q, {ib.add(qBase, ib.index(4 * i))}, 4, 16);
              Value kv4 =
                  ib.loadVector(kCache, {ib.add(row, ib.index(4 * i))}, 4,
                                4 *
                                    cast<MemRefType>(kCache.getType())
                                        .getElementTypeBitWidth() /
                                    8);
              Value &acc = partial[i % partial.size()];
              acc = vector::FMAOp::create(ib.builder(), qv4, kv4, acc);
            }
            for (size_t i = 1; i < partial.size(); ++i)
              partial[0] = ib.add(partial[0], partial[i]);
            dot = vector::ReductionOp::create(
                ib.builder(), vector::CombiningKind::ADD, partial[0]);
          } else {
            dot = ib.f32(0.0);
            for (int64_t i = 0; i < d; ++i)
              dot = ib.add(
                  dot, ib.mul(ib.loadF32(q, {ib.add(qBase, ib.index(i))}),
                              ib.loadF32(kCache, {ib.add(row, ib.index(i))})));
          }
          Value s = ib.mul(dot, ib.f32(c.getSoftmaxScale()));
          if (slope)
            s = ib.add(s, ib.mul(slope, ib.sub(ib.indexToF32(key),
                                               ib.indexToF32(pos))));
          s = arith::SelectOp::create(ib.builder(), valid, s,
                                      ib.f32(-INFINITY));
          Value m = ib.fmax(st[0], warpMax(ib, s));
          Value correction = ib.exp(ib.sub(st[0], m));
          Value p = ib.exp(ib.sub(s, m)); // 0 for keys past the range
          SmallVector<Value> next = {
              m, ib.add(ib.mul(st[1], correction), warpSum(ib, p))};
          SmallVector<Value> acc;
          for (int64_t j = 0; j < perLane(); ++j)
            acc.push_back(ib.mul(st[2 + j], correction));
          // Value rows 8 keys at a time, unrolled so their loads overlap;
          // keys past the range weigh 0 (their rows clamped to a real one).
          Value count = ib.umin(ib.index(32), ib.sub(hi, base));
          Value lastKey = ib.sub(hi, ib.index(1));
          acc = sumWeightedByLane(
              ib, p, count, acc,
              [&](KernelBuilder &vb, Value k) {
                return keyRow(vb, vb.umin(vb.add(base, k), lastKey));
              },
              [&](KernelBuilder &vb, Value vrow, int64_t j) {
                return load(vb, vCache, vrow, j);
              });
          next.append(acc.begin(), acc.end());
          return next;
        });
  }

  /// Stores acc / sum into `out` at `base` (the features this lane holds).
  void store(KernelBuilder &lb, Value out, Value base, ValueRange acc,
             Value sum) const {
    Value inv = lb.div(lb.f32(1.0), sum);
    for (int64_t j = 0; j < perLane(); ++j) {
      Value v = lb.mul(acc[j], inv);
      if (d % 32 == 0) {
        lb.store(v, out, {lb.add(base, feature(lb, j))});
        continue;
      }
      lb.ifThen(inHead(lb, j), [&](KernelBuilder &ib) {
        ib.store(v, out, {ib.add(base, feature(ib, j))});
      });
    }
  }
};

} // namespace

LogicalResult GPULowering::lowerAttention(CachedAttentionOp op) {
  AttentionConfigAttr c = op.getConfig();
  if (c.getAlibiHeads() && c.getAlibiHeads() != c.getNumHeads())
    return op.emitOpError()
           << "is a tensor-parallel rank's share of ALiBi heads, which the "
              "CUDA lowering has no rank for yet";
  Type f32 = Float32Type::get(ctx), i8 = IntegerType::get(ctx, 8),
       i64 = IntegerType::get(ctx, 64);
  int64_t heads = c.getNumHeads(), d = c.getHeadDim();
  int64_t group = heads / c.getNumKvHeads();
  bool eager = c.getBackend() == AttentionBackend::Eager;
  std::string q = bufferOf[op.getQuery()];
  std::string out = newBuffer(heads * d);
  bufferOf[op.getResult()] = out;
  widthOf[op.getResult()] = heads * d;
  int64_t slopesOffset =
      c.getAlibiBiasMax() > 0
          ? arena.constantOffset(decc::alibiSlopes(heads, c.getAlibiBiasMax()))
          : -1;
  auto sum = [&](KernelBuilder &lb, Value v) { return warpSum(lb, v); };
  auto max = [&](KernelBuilder &lb, Value v) {
    return shuffleReduce(lb, v, kWholeWarp, /*isMax=*/true);
  };
  auto setup = [&](Kernel &k, Value t, Value h, Value pos) {
    KernelBuilder &kb = *k.kb;
    Value g = kb.div(h, kb.index(group));
    Value cacheRow0 =
        kvHeadRow0(kb, k, op.getLayer(), g, step(k, kStepContext));
    Value slope;
    if (slopesOffset >= 0) {
      Value slopes = arenaView(kb, k, f32, slopesOffset);
      slope = kb.loadF32(slopes, {h});
    }
    Value pages = pageRow(kb, k, t);
    WarpAttention wa{
        kb,
        c,
        warpIds(kb).lane,
        k.args[q],
        k.args["k_cache"],
        k.args["v_cache"],
        kb.mul(kb.add(kb.mul(t, kb.index(heads)), h), kb.index(d)),
        slope,
        pos,
        d,
        {},
        [this, &k, cacheRow0, pages, d](KernelBuilder &lb, Value key) {
          return lb.mul(lb.add(cacheRow0, cacheRowOf(lb, k, pages, key)),
                        lb.index(d));
        }};
    return wa;
  };
  auto window = [&](KernelBuilder &kb, Value end) {
    return windowBegin(kb, c, end);
  };

  SmallVector<Binding> binds = {{"arena", i8},
                                {"step", i64},
                                {"positions", i64},
                                {q, f32},
                                {"k_cache", cacheElement},
                                {"v_cache", cacheElement},
                                {"block_table", IntegerType::get(ctx, 32)},
                                {out, f32}};
  bool mma = tensorCores && !eager && d % 8 == 0;
  // A prompt's output goes to the O projection in half precision when that
  // is how it multiplies it (decode steps keep f32).
  std::string prefillOut = mma ? halfPrefillBufferFor(op.getResult()) : "";
  SmallVector<Binding> prefillBinds(binds);
  if (!prefillOut.empty())
    prefillBinds.back() = {prefillOut, halfElement};
  else
    prefillOut = out;
  if (mma && (canWgmmaAttention(d) || canTileAttention(d))) {
    flashPrefillMma(op, prefillBinds, q, prefillOut, slopesOffset,
                    LaunchWhen::PrefillSmall);
    if (canWgmmaAttention(d))
      flashPrefillWgmma(op, prefillBinds, q, prefillOut, slopesOffset);
    else
      flashPrefillTiled(op, prefillBinds, q, prefillOut, slopesOffset);
  } else if (mma) {
    flashPrefillMma(op, prefillBinds, q, prefillOut, slopesOffset,
                    LaunchWhen::Prefill);
  }

  // Row kernel: one warp per (token, head). Eager materializes the scores
  // ([tokens, heads, cache length]) and makes three passes; flash one.
  // One scores buffer for every layer: each attention is done with it
  // before the next begins.
  std::string &scores = scoresBuffer;
  if (eager) {
    if (scores.empty()) {
      scores = "scores:" + std::to_string(plan.buffers.size());
      plan.buffers.push_back(
          {scores, contract::PlanBuffer::Size::PerTokenKey, heads});
    }
    binds.push_back({scores, f32});
  }
  if (!mma) {
    Kernel &k =
        beginKernel(eager ? "attention_eager" : "attention_flash", binds);
    // Eager attention has no other kernel: it also serves batched steps
    // (each warp finds its token's keys); flash leaves them to the decode
    // attention's batched variant, which splits long contexts.
    k.skipInBatched = !eager;
    KernelBuilder &kb = *k.kb;
    WarpIds w = warpIds(kb);
    Value h = w.warp;
    Value t = gpu::BlockIdOp::create(*k.b, gpu::Dimension::y);
    kb.ifThen(less(kb, h, kb.index(heads)), [&](KernelBuilder &ib) {
      Value pos = ib.toIndex(memref::LoadOp::create(
          ib.builder(), k.args["positions"], ValueRange{t}));
      WarpAttention wa = setup(k, t, h, pos);
      wa.loadQuery(ib);
      Value end = ib.add(pos, ib.index(1));
      Value begin = window(ib, end);
      if (!eager) {
        SmallVector<Value> st = wa.keyParallel(ib, begin, end, sum, max);
        wa.store(ib, k.args[out], wa.qBase, ValueRange(st).drop_front(2),
                 st[1]);
        return;
      }
      // A score row a (token, head) as long as the call's keys (at most a
      // context: the cache's pool may hold more positions).
      Value scoreRow =
          ib.mul(ib.add(ib.mul(t, ib.index(heads)), h), step(k, kStepKeys));
      Value sc = k.args[scores];
      // Every lane stores the same score and reads back its own store.
      Value max = ib.forLoop(begin, end, 1, {ib.f32(-INFINITY)},
                             [&](KernelBuilder &lb, Value key, ValueRange m) {
                               Value s = wa.score(lb, key, sum);
                               lb.store(s, sc, {lb.add(scoreRow, key)});
                               return SmallVector<Value>{lb.fmax(m[0], s)};
                             })[0];
      SmallVector<Value> init = {ib.f32(0.0)};
      for (int64_t j = 0; j < wa.perLane(); ++j)
        init.push_back(ib.f32(0.0));
      SmallVector<Value> st = ib.forLoop(
          begin, end, 1, init,
          [&](KernelBuilder &lb, Value key, ValueRange acc) {
            Value p =
                lb.exp(lb.sub(lb.loadF32(sc, {lb.add(scoreRow, key)}), max));
            SmallVector<Value> next = {lb.add(acc[0], p)};
            Value row = wa.keyRow(lb, key);
            for (int64_t j = 0; j < wa.perLane(); ++j)
              next.push_back(
                  lb.add(acc[1 + j],
                         lb.mul(p, wa.load(lb, k.args["v_cache"], row, j))));
            return next;
          });
      wa.store(ib, k.args[out], wa.qBase, ValueRange(st).drop_front(1), st[0]);
    });
    endKernel(k,
              grid(heads, kWarpsPerBlock, GridScale::One, 1, GridScale::Tokens),
              eager ? LaunchWhen::Always : LaunchWhen::Prefill);
  }
  if (eager)
    return success();

  decodeAttention(op, q, out, prefillOut, prefillOut == out ? f32 : halfElement,
                  slopesOffset);
  return success();
}

namespace {

/// What the steps of flashPrefillMma share: how a warp multiplies (half
/// precision: one m16n8k16 a product; else split TF32), where its K and V
/// rows are, and the shared memory the block's warps merge through.
struct FlashMmaWarp {
  static constexpr int64_t kKeyTiles = 4; // 8-key tiles of a step
  bool half, roundOnce;
  Type element, cacheElement;
  int64_t d, featureTiles, chunkTiles, statsFloats;
  MmaLane ml;
  Value lane, warp, twoT, fourT, cacheRow0, kCache, vCache, exchange;
  /// Elements from one key's row to the next (0: d, a cache's rows) and
  /// from a row's start to the head's features (null: none).
  int64_t rowStride = 0;
  Value rowOffset;
  /// The cache row of key position `key` (the block table's); null: the
  /// keys' own rows (an encoder's q/k/v buffers).
  std::function<Value(KernelBuilder &, Value)> cacheRowOf;

  static Value at(KernelBuilder &lb, Value v, int64_t i) {
    return vector::ExtractOp::create(lb.builder(), v, ArrayRef<int64_t>{i});
  }

  /// Where key `key`'s features begin in kCache and vCache.
  Value keyRow(KernelBuilder &lb, Value key) const {
    if (cacheRowOf)
      key = cacheRowOf(lb, key);
    Value row =
        lb.mul(lb.add(cacheRow0, key), lb.index(rowStride ? rowStride : d));
    return rowOffset ? lb.add(row, rowOffset) : row;
  }

  /// The query fragments of rows token[0] and token[1] of head h from `q`
  /// (tokens x heads x d): split-TF32 pairs (qv) or, in half precision, the
  /// A fragments of 16 features a step (qa; logical columns {2t, 2t+1,
  /// 2t+8, 2t+9} from physical features 4t .. 4t+3, GPUMma.h).
  void loadQueries(KernelBuilder &ib, Value q, const Value (&token)[2],
                   int64_t heads, Value h, SmallVector<Value> (&qv)[2],
                   SmallVector<SmallVector<Value>> &qa) const {
    for (int r = 0; r < 2; ++r) {
      Value base =
          ib.mul(ib.add(ib.mul(token[r], ib.index(heads)), h), ib.index(d));
      for (int64_t j = 0; j < featureTiles && !half; ++j)
        qv[r].push_back(ib.loadVector(
            q, {ib.add(base, ib.add(twoT, ib.index(8 * j)))}, 2, 8));
      for (int64_t s = 0; s < d / 16 && half; ++s) {
        auto [lo2, hi2] = packQuad(
            ib,
            ib.loadVector(q, {ib.add(base, ib.add(fourT, ib.index(16 * s)))}, 4,
                          16),
            element);
        if (r == 0)
          qa.push_back({lo2, Value(), hi2, Value()});
        else {
          qa[s][1] = lo2;
          qa[s][3] = hi2;
        }
      }
    }
  }

  /// The warp's online softmax over keys [lo, hi) (warp w takes the steps
  /// of kKeys keys w, w + 4, ...): the running max and sum of both rows,
  /// then the output fragments.
  SmallVector<Value> scan(KernelBuilder &ib, const FlashRows &rows,
                          ArrayRef<SmallVector<Value>> qa,
                          const SmallVector<Value> (&qv)[2], Value lo,
                          Value hi) const {
    constexpr int64_t kKeys = 8 * kKeyTiles;
    SmallVector<Value> init = {ib.f32(-INFINITY), ib.f32(-INFINITY),
                               ib.f32(0.0), ib.f32(0.0)};
    for (int64_t f = 0; f < featureTiles; ++f)
      init.push_back(zeroAccumulator(ib));
    return ib.forLoop(
        ib.add(lo, ib.mul(warp, ib.index(kKeys))), hi, kKeys * kWarpsPerBlock,
        init, [&](KernelBuilder &lb, Value k0, ValueRange in) {
          Value lastKey = lb.sub(hi, lb.index(1));
          // S = Q.K^T, four tiles of 8 keys (key g of each as B column).
          SmallVector<Value> s = scores(lb, qa, qv, k0, lastKey);
          // Scores, masked: element i of tile n is row i / 2, key
          // k0 + 8n + 2t + i % 2.
          SmallVector<Value> score[2];
          for (int64_t n = 0; n < kKeyTiles; ++n)
            for (int64_t i = 0; i < 4; ++i) {
              Value key = lb.add(k0, lb.add(twoT, lb.index(8 * n + i % 2)));
              Value product = accElement(lb, s[n], i);
              score[i / 2].push_back(
                  flashScore(lb, rows, int(i / 2), product, key));
            }
          FlashStep fs =
              flashSoftmaxStep(lb, in.take_front(4), score[0], score[1]);
          SmallVector<Value> next = fs.stats;
          Value *correction = fs.correction;
          // O = O * correction + P.V.
          SmallVector<Value> o;
          for (int64_t f = 0; f < featureTiles; ++f)
            o.push_back(scaleRows(lb, in[4 + f], correction[0], correction[1]));
          addPV(lb, fs, k0, lastKey, o);
          next.append(o.begin(), o.end());
          return next;
        });
  }

  /// S = Q.K^T for the step's tiles of 8 keys from k0 (key g of each as
  /// the B column): C fragments of rows g and g + 8.
  SmallVector<Value> scores(KernelBuilder &lb, ArrayRef<SmallVector<Value>> qa,
                            const SmallVector<Value> (&qv)[2], Value k0,
                            Value lastKey) const {
    SmallVector<SplitTF32> qs;
    for (int64_t j = 0; j < featureTiles && !half; ++j)
      qs.push_back(splitTF32(lb,
                             {at(lb, qv[0][j], 0), at(lb, qv[1][j], 0),
                              at(lb, qv[0][j], 1), at(lb, qv[1][j], 1)},
                             roundOnce));
    SmallVector<Value> s;
    for (int64_t n = 0; n < kKeyTiles; ++n) {
      Value key = lb.umin(lb.add(k0, lb.add(ml.g, lb.index(8 * n))), lastKey);
      Value row = keyRow(lb, key);
      Value acc = zeroAccumulator(lb);
      if (half) {
        // Key row g's features 4t .. 4t+3 of each 16: one 8-byte load.
        SmallVector<Value> c4(4, lb.f32(0.0));
        for (int64_t fs = 0; fs < d / 16; ++fs) {
          Value quad = vector::LoadOp::create(
              lb.builder(), VectorType::get({4}, cacheElement), kCache,
              ValueRange{lb.add(row, lb.add(fourT, lb.index(16 * fs)))}, false,
              llvm::MaybeAlign(4 * cacheElement.getIntOrFloatBitWidth() / 8));
          auto [b0, b1] = packQuad(lb, quad, element);
          c4 = mmaHalf(lb, qa[fs], {b0, b1}, c4, element);
        }
        s.push_back(accumulatorOf(lb, c4));
        continue;
      }
      for (int64_t j = 0; j < featureTiles; ++j) {
        Value kv =
            lb.loadVector(kCache, {lb.add(row, lb.add(twoT, lb.index(8 * j)))},
                          2, 2 * cacheElement.getIntOrFloatBitWidth() / 8);
        acc = mmaF32(lb, qs[j],
                     splitTF32(lb, {at(lb, kv, 0), at(lb, kv, 1)}, roundOnce),
                     acc);
      }
      s.push_back(acc);
    }
    return s;
  }

  /// o += P.V over the step's keys; P's C fragment (g, 2t) (g, 2t+1)
  /// (g+8, 2t) (g+8, 2t+1) is the A fragment of keys 2t, 2t+1.
  void addPV(KernelBuilder &lb, const FlashStep &fs, Value k0, Value lastKey,
             SmallVector<Value> &o) const {
    const SmallVector<Value> *p = fs.p;
    // Half precision: 16 keys a step, S tiles 2m and 2m + 1 as the A
    // fragment; B is keys 2t, 2t+1 (tile 2m) and 2t+8, 2t+9 (tile
    // 2m + 1) of feature g, four scalar loads.
    for (int64_t m = 0; m < kKeyTiles / 2 && half; ++m) {
      SmallVector<Value> a = flashPFragment(lb, fs, m, element);
      Value key0 = lb.add(k0, lb.add(lb.index(16 * m), twoT));
      Value rows[4];
      for (int e = 0; e < 4; ++e)
        rows[e] = keyRow(
            lb, lb.umin(lb.add(key0, lb.index((e / 2) * 8 + e % 2)), lastKey));
      for (int64_t f = 0; f < featureTiles; ++f) {
        Value feature = lb.add(ml.g, lb.index(8 * f));
        Value v[4];
        for (int e = 0; e < 4; ++e)
          v[e] = memref::LoadOp::create(lb.builder(), vCache,
                                        ValueRange{lb.add(rows[e], feature)});
        SmallVector<Value> c4;
        for (int64_t i = 0; i < 4; ++i)
          c4.push_back(accElement(lb, o[f], i));
        o[f] = accumulatorOf(lb, mmaHalf(lb, a,
                                         {packPair(lb, v[0], v[1], element),
                                          packPair(lb, v[2], v[3], element)},
                                         c4, element));
      }
    }
    for (int64_t n = 0; n < kKeyTiles && !half; ++n) {
      SplitTF32 pa = splitTF32(
          lb, {p[0][2 * n], p[1][2 * n], p[0][2 * n + 1], p[1][2 * n + 1]},
          roundOnce);
      Value keyBase = lb.add(k0, lb.add(twoT, lb.index(8 * n)));
      Value rows[2];
      for (int e = 0; e < 2; ++e)
        rows[e] = keyRow(lb, lb.umin(lb.add(keyBase, lb.index(e)), lastKey));
      for (int64_t f = 0; f < featureTiles; ++f) {
        Value feature = lb.add(ml.g, lb.index(8 * f));
        SplitTF32 vb =
            splitTF32(lb,
                      {lb.loadF32(vCache, {lb.add(rows[0], feature)}),
                       lb.loadF32(vCache, {lb.add(rows[1], feature)})},
                      roundOnce);
        o[f] = mmaF32(lb, pa, vb, o[f]);
      }
    }
  }

  /// The warps' partial softmaxes (`st`: max, sum of both rows, output
  /// fragments) merged through shared memory; the block's rows from m0
  /// written to `out` (tokens x heads x d) for head h.
  void mergeWarps(KernelBuilder &ib, ValueRange st, Value m0, Value nTokens,
                  Value h, int64_t heads, Value out) const {
    auto select = [](KernelBuilder &lb, Value cond, Value a, Value b) -> Value {
      return arith::SelectOp::create(lb.builder(), cond, a, b);
    };
    auto quadReduce = [](KernelBuilder &lb, Value v, bool isMax) {
      return shuffleReduce(lb, v, kQuad, isMax);
    };
    // Merge the warps: each row's max over the warps (base 2), each warp's
    // weight 2^(m_w - max), the weighted sum (then over the quad of lanes).
    auto statAt = [&](KernelBuilder &lb, Value warp, int64_t field) {
      return lb.add(lb.mul(lb.add(lb.mul(warp, lb.index(4)), lb.index(field)),
                           lb.index(32)),
                    lane);
    };
    auto tileAt = [&](KernelBuilder &lb, Value warp, Value tile, int64_t i) {
      Value slot = lb.add(
          lb.mul(lb.add(lb.mul(warp, lb.index(chunkTiles)), tile), lb.index(4)),
          lb.index(i));
      return lb.add(lb.index(statsFloats),
                    lb.add(lb.mul(slot, lb.index(32)), lane));
    };
    for (int64_t field = 0; field < 4; ++field)
      ib.store(st[field], exchange, {statAt(ib, warp, field)});
    gpu::BarrierOp::create(ib.builder());
    Value scale[kWarpsPerBlock][2], inv[2];
    for (int r = 0; r < 2; ++r) {
      Value m[kWarpsPerBlock], most = ib.f32(-INFINITY);
      for (int64_t v = 0; v < kWarpsPerBlock; ++v) {
        m[v] = memref::LoadOp::create(ib.builder(), exchange,
                                      ValueRange{statAt(ib, ib.index(v), r)});
        most = ib.fmax(most, m[v]);
      }
      Value safe =
          select(ib,
                 arith::CmpFOp::create(ib.builder(), arith::CmpFPredicate::OEQ,
                                       most, ib.f32(-INFINITY)),
                 ib.f32(0.0), most);
      Value sum = ib.f32(0.0);
      for (int64_t v = 0; v < kWarpsPerBlock; ++v) {
        scale[v][r] = flashExp2(ib, ib.sub(m[v], safe));
        Value l = memref::LoadOp::create(
            ib.builder(), exchange, ValueRange{statAt(ib, ib.index(v), 2 + r)});
        sum = ib.add(sum, ib.mul(l, scale[v][r]));
      }
      inv[r] = ib.div(ib.f32(1.0), quadReduce(ib, sum, /*isMax=*/false));
    }
    for (int64_t first = 0; first < featureTiles; first += chunkTiles) {
      int64_t count = std::min(chunkTiles, featureTiles - first);
      if (first > 0)
        gpu::BarrierOp::create(ib.builder()); // the last chunk is read
      for (int64_t t = 0; t < count; ++t)
        for (int64_t i = 0; i < 4; ++i)
          ib.store(accElement(ib, st[4 + first + t], i), exchange,
                   {tileAt(ib, warp, ib.index(t), i)});
      gpu::BarrierOp::create(ib.builder());
      // Warp w finishes tiles w, w + 4, ... of the chunk.
      for (int64_t tw = 0; tw < count; tw += kWarpsPerBlock) {
        Value t = ib.add(warp, ib.index(tw));
        ib.ifThen(less(ib, t, ib.index(count)), [&](KernelBuilder &lb) {
          for (int64_t i = 0; i < 4; ++i) {
            int r = int(i / 2);
            Value v = lb.f32(0.0);
            for (int64_t u = 0; u < kWarpsPerBlock; ++u)
              v = lb.add(v,
                         lb.mul(memref::LoadOp::create(
                                    lb.builder(), exchange,
                                    ValueRange{tileAt(lb, lb.index(u), t, i)}),
                                scale[u][r]));
            v = lb.mul(v, inv[r]);
            Value token = lb.add(m0, lb.add(ml.g, lb.index(8 * r)));
            Value feature = lb.add(
                twoT, lb.add(lb.mul(lb.add(t, lb.index(first)), lb.index(8)),
                             lb.index(i % 2)));
            lb.ifThen(less(lb, token, nTokens), [&](KernelBuilder &sb) {
              Value base = sb.mul(sb.add(sb.mul(token, sb.index(heads)), h),
                                  sb.index(d));
              sb.store(v, out, {sb.add(base, feature)});
            });
          }
        });
      }
    }
  }
};

/// Feature tiles a merge round of FlashMmaWarp::mergeWarps takes, and the
/// floats of its shared memory for heads of `d` features.
constexpr int64_t kFlashChunkTiles = 16;
int64_t flashExchangeFloats(int64_t d) {
  int64_t chunkTiles = std::min<int64_t>(d / 8, kFlashChunkTiles);
  return kWarpsPerBlock * 4 * 32 + kWarpsPerBlock * chunkTiles * 4 * 32;
}

/// A FlashMmaWarp for this thread of a block of kWarpsPerBlock warps
/// (lane, warp within the block, mma roles), merging through `exchange`
/// (flashExchangeFloats); the caller says where the keys are.
FlashMmaWarp flashWarp(KernelBuilder &kb, bool half, bool roundOnce,
                       Type element, Type keyElement, int64_t d,
                       Value exchange) {
  ImplicitLocOpBuilder &b = kb.builder();
  Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  // Lane, and warp within the block (not warpIds' global warp).
  Value lane = arith::RemUIOp::create(b, tid, kb.index(32));
  MmaLane ml = mmaLane(kb, lane);
  FlashMmaWarp w{half,
                 roundOnce,
                 element,
                 keyElement,
                 d,
                 d / 8,
                 std::min<int64_t>(d / 8, kFlashChunkTiles),
                 kWarpsPerBlock * 4 * 32,
                 ml,
                 lane,
                 kb.div(tid, kb.index(32)),
                 kb.mul(ml.t, kb.index(2)),
                 kb.mul(ml.t, kb.index(4)),
                 Value(),
                 Value(),
                 Value(),
                 exchange,
                 /*rowStride=*/0,
                 /*rowOffset=*/Value(),
                 /*cacheRowOf=*/{}};
  return w;
}

} // namespace

/// Flash attention for a prefill on tensor cores: a block per 16 tokens of
/// one head, its 4 warps taking every 4th block of 32 keys. S = Q.K^T and O +=
/// P.V are split-TF32 mma steps (GPUMma.h); the online softmax runs on the S
/// fragments (a lane holds two query rows, a row spread over a quad of lanes),
/// and the permuted k makes those fragments the A operand of P.V as they are.
void GPULowering::flashPrefillMma(CachedAttentionOp op,
                                  ArrayRef<Binding> bindings,
                                  const std::string &q, const std::string &out,
                                  int64_t slopesOffset, LaunchWhen when) {
  AttentionConfigAttr c = op.getConfig();
  Type f32 = Float32Type::get(ctx);
  int64_t heads = c.getNumHeads(), d = c.getHeadDim();
  int64_t group = heads / c.getNumKvHeads();
  constexpr int64_t kRows = 16;
  // Half-precision builds multiply in their own type, one m16n8k16 per
  // product (16 features of q.k or 16 keys of p.v a step); f32 builds split
  // every operand into TF32 hi + lo. Heads of 8k+ features that are not a
  // multiple of 16 take one TF32 value per operand (10 bits of mantissa,
  // more than bf16's).
  bool half = halfPrecision && d % 16 == 0;
  bool roundOnce = halfPrecision;
  Type element = half ? halfElement : Type();
  Kernel &k = beginKernel("attention_flash_mma", bindings);
  k.skipInBatched = true;
  KernelBuilder &kb = *k.kb;
  // The block's warps split the keys (warp w takes key blocks w, w + 4,
  // ...) and merge their partial softmaxes through shared memory: the
  // stats (max and sum of both rows) of every warp, then the output
  // fragments, at most 16 feature tiles at a time.
  FlashMmaWarp w = flashWarp(kb, half, roundOnce, element, cacheElement, d,
                             sharedFloats(k, flashExchangeFloats(d)));
  w.kCache = k.args["k_cache"];
  w.vCache = k.args["v_cache"];
  MmaLane ml = w.ml;
  Value h = gpu::BlockIdOp::create(*k.b, gpu::Dimension::x);
  Value nTokens = step(k, kStepTokens);
  Value m0 =
      kb.mul(gpu::BlockIdOp::create(*k.b, gpu::Dimension::y), kb.index(kRows));

  // The first key a query at `pos` sees.
  auto firstKey = [&](KernelBuilder &lb, Value pos) {
    return windowBegin(lb, c, lb.add(pos, lb.index(1)));
  };
  auto positionOf = [&](KernelBuilder &lb, Value token) {
    return tokenPosition(lb, k.args["positions"], token);
  };

  kb.ifThen(less(kb, h, kb.index(heads)), [&](KernelBuilder &ib) {
    Value last = ib.sub(nTokens, ib.index(1));
    // This lane's two query rows (g and g + 8 of the tile), clamped to real
    // tokens; positions grow with the token index in a prefill.
    Value token[2], pos[2], begin[2];
    for (int r = 0; r < 2; ++r) {
      token[r] = ib.umin(ib.add(m0, ib.add(ml.g, ib.index(8 * r))), last);
      pos[r] = positionOf(ib, token[r]);
      begin[r] = firstKey(ib, pos[r]);
    }
    Value lo = firstKey(ib, positionOf(ib, m0));
    Value hi =
        ib.add(positionOf(ib, ib.umin(ib.add(m0, ib.index(kRows - 1)), last)),
               ib.index(1));
    Value cacheRow0 =
        kvHeadRow0(ib, k, op.getLayer(), ib.div(h, ib.index(group)),
                   step(k, kStepContext));
    FlashRows rows{
        {pos[0], pos[1]}, {begin[0], begin[1]}, Value(), c.getSoftmaxScale()};
    if (slopesOffset >= 0)
      rows.slope = ib.loadF32(arenaView(ib, k, f32, slopesOffset), {h});
    w.cacheRow0 = cacheRow0;
    // The block's queries are one sequence's (a prompt): its table row.
    Value pages = pageRow(ib, k, m0);
    w.cacheRowOf = [this, &k, pages](KernelBuilder &lb, Value key) {
      return cacheRowOf(lb, k, pages, key);
    };
    // Q of both rows, pairs (8j + 2t, 8j + 2t + 1) of each group of 8, or
    // half precision's A fragments.
    SmallVector<Value> qv[2];
    SmallVector<SmallVector<Value>> qa;
    w.loadQueries(ib, k.args[q], token, heads, h, qv, qa);
    SmallVector<Value> st = w.scan(ib, rows, qa, qv, lo, hi);
    w.mergeWarps(ib, st, m0, nTokens, h, heads, k.args[out]);
  });
  endKernel(k, grid(heads, 1, GridScale::One, 1, GridScale::Tokens, kRows),
            when);
}

/// The vision encoder's attention on tensor cores: flashPrefillMma's warps
/// over one tile's rows, every key of the tile seen (no mask but the
/// tile's end), keys and values read from the QKV projection's buffers
/// (rows of heads x d) instead of a cache.
void GPULowering::encoderAttentionMma(EncoderAttentionOp op,
                                      const std::string &q,
                                      const std::string &keys,
                                      const std::string &values,
                                      const std::string &out) {
  Type f32 = Float32Type::get(ctx);
  auto type = op.getQuery().getType();
  int64_t heads = type.getDimSize(1), d = type.getDimSize(2);
  int64_t sequence = op.getSequence();
  constexpr int64_t kRows = 16;
  int64_t chunks = llvm::divideCeil(sequence, kRows);
  bool half = halfPrecision && d % 16 == 0;
  Type element = half ? halfElement : Type();
  Kernel &k = beginKernel("encoder_attention_mma",
                          {{q, f32}, {keys, f32}, {values, f32}, {out, f32}});
  KernelBuilder &kb = *k.kb;
  FlashMmaWarp w = flashWarp(kb, half, halfPrecision, element, f32, d,
                             sharedFloats(k, flashExchangeFloats(d)));
  MmaLane ml = w.ml;
  Value h = gpu::BlockIdOp::create(*k.b, gpu::Dimension::x);
  Value by = gpu::BlockIdOp::create(*k.b, gpu::Dimension::y);
  // Block row `by`: 16 query rows of tile by / chunks.
  Value first = kb.mul(kb.div(by, kb.index(chunks)), kb.index(sequence));
  Value m0 =
      kb.add(first, kb.mul(arith::RemUIOp::create(*k.b, by, kb.index(chunks)),
                           kb.index(kRows)));
  Value end = kb.add(first, kb.index(sequence));
  Value last = kb.sub(end, kb.index(1));
  Value token[2];
  for (int r = 0; r < 2; ++r)
    token[r] = kb.umin(kb.add(m0, kb.add(ml.g, kb.index(8 * r))), last);
  Value lastKey = kb.index(sequence - 1);
  FlashRows rows{{lastKey, lastKey},
                 {kb.index(0), kb.index(0)},
                 Value(),
                 op.getSoftmaxScale().convertToDouble()};
  w.cacheRow0 = first;
  w.kCache = k.args[keys];
  w.vCache = k.args[values];
  w.rowStride = heads * d;
  w.rowOffset = kb.mul(h, kb.index(d));
  SmallVector<Value> qv[2];
  SmallVector<SmallVector<Value>> qa;
  w.loadQueries(kb, k.args[q], token, heads, h, qv, qa);
  SmallVector<Value> st =
      w.scan(kb, rows, qa, qv, kb.index(0), kb.index(sequence));
  w.mergeWarps(kb, st, m0, end, h, heads, k.args[out]);
  // Blocks in y: chunks a tile (the tokens are tiles x sequence).
  endKernel(
      k, grid(heads, 1, GridScale::One, chunks, GridScale::Tokens, sequence));
}

} // namespace decc::gpulowering
