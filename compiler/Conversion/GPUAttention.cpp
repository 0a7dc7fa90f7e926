//===- GPUAttention.cpp - attention kernels of the GPU lowering -----------===//
//
// A warp per (token, head): eager (scores materialized), flash (online
// softmax over blocks of 32 keys, a lane a key), and for a decode step the
// keys split over blocks with a merge of the partial softmaxes.
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/GPULowering.h"

#include "compiler/Conversion/PositionTables.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

namespace decc::gpulowering {

namespace {

/// One warp attending for one query head: the lanes split head_dim, each
/// holding `d / 32` (rounded up) features of q and of the accumulator.
struct WarpAttention {
  KernelBuilder &kb;
  AttentionConfigAttr c;
  Value lane, q, kCache, vCache, cacheRow0, qBase, slope, pos;
  int64_t d;
  SmallVector<Value> qv; // this lane's q features (0 past head_dim)

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
    Value i =
        arith::MinUIOp::create(lb.builder(), feature(lb, j), lb.index(d - 1));
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
    Value row = lb.mul(lb.add(cacheRow0, key), lb.index(d));
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
          Value row = ib.mul(ib.add(cacheRow0, safeKey), ib.index(d));
          Value dot;
          if (width == 4) {
            auto v4 = VectorType::get({4}, f32);
            Value zero = arith::ConstantOp::create(
                ib.builder(),
                DenseElementsAttr::get(v4, ib.builder().getF32FloatAttr(0.0)));
            Value acc = ib.forLoop(
                ib.index(0), ib.index(d), 4, {zero},
                [&](KernelBuilder &cb, Value i, ValueRange a) {
                  Value qv4 = vector::LoadOp::create(
                      cb.builder(), v4, q, ValueRange{cb.add(qBase, i)}, false,
                      llvm::MaybeAlign(16));
                  Value kv4 = vector::LoadOp::create(
                      cb.builder(), v4, kCache, ValueRange{cb.add(row, i)},
                      false, llvm::MaybeAlign(16));
                  return SmallVector<Value>{
                      vector::FMAOp::create(cb.builder(), qv4, kv4, a[0])};
                })[0];
            dot = vector::ReductionOp::create(ib.builder(),
                                              vector::CombiningKind::ADD, acc);
          } else {
            dot = ib.forLoop(
                ib.index(0), ib.index(d), 1, {ib.f32(0.0)},
                [&](KernelBuilder &cb, Value i, ValueRange a) {
                  return SmallVector<Value>{cb.add(
                      a[0], cb.mul(cb.loadF32(q, {cb.add(qBase, i)}),
                                   cb.loadF32(kCache, {cb.add(row, i)})))};
                })[0];
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
          Value count = arith::MinUIOp::create(ib.builder(), ib.index(32),
                                               ib.sub(hi, base));
          acc = ib.forLoop(
              ib.index(0), count, 1, acc,
              [&](KernelBuilder &vb, Value k, ValueRange a) {
                Value lanePick = arith::IndexCastOp::create(
                    vb.builder(), vb.builder().getI32Type(), k);
                Value pk =
                    gpu::ShuffleOp::create(
                        vb.builder(), p, lanePick,
                        arith::ConstantOp::create(
                            vb.builder(), vb.builder().getI32IntegerAttr(32)),
                        gpu::ShuffleMode::IDX)
                        .getShuffleResult();
                Value vrow =
                    vb.mul(vb.add(cacheRow0, vb.add(base, k)), vb.index(d));
                SmallVector<Value> out;
                for (int64_t j = 0; j < perLane(); ++j)
                  out.push_back(
                      vb.add(a[j], vb.mul(pk, load(vb, vCache, vrow, j))));
                return out;
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
    for (int32_t offset : {16, 8, 4, 2, 1})
      v = lb.fmax(v, gpu::ShuffleOp::create(lb.builder(), v, offset, 32,
                                            gpu::ShuffleMode::XOR)
                         .getShuffleResult());
    return v;
  };
  auto setup = [&](Kernel &k, Value t, Value h, Value pos) {
    KernelBuilder &kb = *k.kb;
    Value g = kb.div(h, kb.index(group));
    Value cacheRow0 = kb.mul(
        kb.add(kb.mul(kb.index(op.getLayer()), kb.index(c.getNumKvHeads())), g),
        step(k, kContext));
    Value slope;
    if (slopesOffset >= 0) {
      Value slopes = arenaView(kb, k, f32, slopesOffset);
      slope = kb.loadF32(slopes, {h});
    }
    WarpAttention wa{kb,
                     c,
                     warpIds(kb).lane,
                     k.args[q],
                     k.args["k_cache"],
                     k.args["v_cache"],
                     cacheRow0,
                     kb.mul(kb.add(kb.mul(t, kb.index(heads)), h), kb.index(d)),
                     slope,
                     pos,
                     d,
                     {}};
    return wa;
  };
  auto window = [&](KernelBuilder &kb, Value end) {
    Value begin = kb.index(0);
    if (c.getSlidingWindow() > 0) {
      Value w = kb.index(c.getSlidingWindow());
      Value far = arith::CmpIOp::create(kb.builder(), arith::CmpIPredicate::ugt,
                                        end, w);
      begin = arith::SelectOp::create(kb.builder(), far, kb.sub(end, w), begin);
    }
    return begin;
  };

  // Row kernel: one warp per (token, head). Eager materializes the scores
  // ([tokens, heads, cache length]) and makes three passes; flash one.
  std::string scores;
  SmallVector<Binding> binds = {
      {"arena", i8},    {"step", i64},    {"positions", i64}, {q, f32},
      {"k_cache", f32}, {"v_cache", f32}, {out, f32}};
  if (eager) {
    scores = "scores:" + std::to_string(buffers.size());
    buffers.push_back(
        llvm::json::Object{{"name", scores}, {"floats_per_token_key", heads}});
    binds.push_back({scores, f32});
  }
  {
    Kernel &k =
        beginKernel(eager ? "attention_eager" : "attention_flash", binds);
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
      Value scoreRow =
          ib.mul(ib.add(ib.mul(t, ib.index(heads)), h), step(k, kContext));
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
            Value row = lb.mul(lb.add(wa.cacheRow0, key), lb.index(d));
            for (int64_t j = 0; j < wa.perLane(); ++j)
              next.push_back(
                  lb.add(acc[1 + j],
                         lb.mul(p, wa.load(lb, k.args["v_cache"], row, j))));
            return next;
          });
      wa.store(ib, k.args[out], wa.qBase, ValueRange(st).drop_front(1), st[0]);
    });
    endKernel(k, grid(heads, kWarpsPerBlock, "one", 1, "tokens"),
              eager ? "always" : "prefill");
  }
  if (eager)
    return success();

  // Decode (one token): the keys split over blocks (y), partial softmaxes
  // in a scratch buffer, merged by a second kernel.
  std::string partials = "partials:" + std::to_string(buffers.size());
  buffers.push_back(llvm::json::Object{
      {"name", partials}, {"floats", heads * kMaxSplits * (d + 2)}});
  {
    Kernel &k = beginKernel("attention_split", {{"arena", i8},
                                                {"step", i64},
                                                {"positions", i64},
                                                {q, f32},
                                                {"k_cache", f32},
                                                {"v_cache", f32},
                                                {partials, f32}});
    KernelBuilder &kb = *k.kb;
    WarpIds w = warpIds(kb);
    Value h = w.warp;
    Value split = gpu::BlockIdOp::create(*k.b, gpu::Dimension::y);
    Value splits = step(k, kSplits);
    Value active = arith::AndIOp::create(*k.b, less(kb, h, kb.index(heads)),
                                         less(kb, split, splits));
    kb.ifThen(active, [&](KernelBuilder &ib) {
      Value zero = ib.index(0);
      Value pos = ib.toIndex(memref::LoadOp::create(
          ib.builder(), k.args["positions"], ValueRange{zero}));
      WarpAttention wa = setup(k, zero, h, pos);
      wa.loadQuery(ib);
      Value end = ib.add(pos, ib.index(1));
      Value begin = window(ib, end);
      Value keys = ib.sub(end, begin);
      Value chunk = ib.div(ib.add(keys, ib.sub(splits, ib.index(1))), splits);
      Value lo = ib.add(begin, ib.mul(split, chunk));
      Value hi = arith::MinUIOp::create(ib.builder(), end, ib.add(lo, chunk));
      lo = arith::MinUIOp::create(ib.builder(), lo, hi);
      SmallVector<Value> st = wa.keyParallel(ib, lo, hi, sum, max);
      Value slot = ib.mul(ib.add(ib.mul(h, ib.index(kMaxSplits)), split),
                          ib.index(d + 2));
      ib.store(st[0], k.args[partials], {slot});
      ib.store(st[1], k.args[partials], {ib.add(slot, ib.index(1))});
      Value accBase = ib.add(slot, ib.index(2));
      SmallVector<Value> acc(ValueRange(st).drop_front(2));
      for (int64_t j = 0; j < wa.perLane(); ++j) {
        Value v = acc[j];
        auto put = [&](KernelBuilder &sb) {
          sb.store(v, k.args[partials], {sb.add(accBase, wa.feature(sb, j))});
        };
        if (d % 32 == 0)
          put(ib);
        else
          ib.ifThen(wa.inHead(ib, j), put);
      }
    });
    endKernel(k, grid(heads, kWarpsPerBlock, "one", 1, "splits"), "decode");
  }
  {
    Kernel &k = beginKernel("attention_merge",
                            {{"step", i64}, {partials, f32}, {out, f32}});
    KernelBuilder &kb = *k.kb;
    WarpIds w = warpIds(kb);
    Value h = w.warp;
    kb.ifThen(less(kb, h, kb.index(heads)), [&](KernelBuilder &ib) {
      // Lane s holds split s (at most 32 of them): one max and one sum over
      // the warp give the merged softmax; each split's weight then reaches
      // every lane by a shuffle.
      Value splits = step(k, kSplits);
      Value p = k.args[partials];
      auto slot = [&](KernelBuilder &lb, Value s) {
        return lb.mul(lb.add(lb.mul(h, lb.index(kMaxSplits)), s),
                      lb.index(d + 2));
      };
      Value active = less(ib, w.lane, splits);
      Value mine =
          arith::SelectOp::create(ib.builder(), active, w.lane, ib.index(0));
      Value ms = arith::SelectOp::create(ib.builder(), active,
                                         ib.loadF32(p, {slot(ib, mine)}),
                                         ib.f32(-INFINITY));
      Value ls = arith::SelectOp::create(
          ib.builder(), active,
          ib.loadF32(p, {ib.add(slot(ib, mine), ib.index(1))}), ib.f32(0.0));
      Value m = max(ib, ms);
      Value weight = ib.exp(ib.sub(ms, m));
      Value total = warpSum(ib, ib.mul(ls, weight));
      int64_t perLane = (d + 31) / 32;
      SmallVector<Value> init(perLane, ib.f32(0.0));
      SmallVector<Value> acc = ib.forLoop(
          ib.index(0), splits, 1, init,
          [&](KernelBuilder &lb, Value s, ValueRange a) {
            Value pick = arith::IndexCastOp::create(
                lb.builder(), lb.builder().getI32Type(), s);
            Value ws =
                gpu::ShuffleOp::create(
                    lb.builder(), weight, pick,
                    arith::ConstantOp::create(
                        lb.builder(), lb.builder().getI32IntegerAttr(32)),
                    gpu::ShuffleMode::IDX)
                    .getShuffleResult();
            Value base = lb.add(slot(lb, s), lb.index(2));
            SmallVector<Value> next;
            for (int64_t j = 0; j < perLane; ++j) {
              Value i = arith::MinUIOp::create(lb.builder(),
                                               lb.add(w.lane, lb.index(32 * j)),
                                               lb.index(d - 1));
              next.push_back(
                  lb.add(a[j], lb.mul(ws, lb.loadF32(p, {lb.add(base, i)}))));
            }
            return next;
          });
      Value inv = ib.div(ib.f32(1.0), total);
      Value outBase = ib.mul(h, ib.index(d));
      for (int64_t j = 0; j < perLane; ++j) {
        Value i = ib.add(w.lane, ib.index(32 * j));
        Value v = ib.mul(acc[j], inv);
        ib.ifThen(less(ib, i, ib.index(d)), [&](KernelBuilder &sb) {
          sb.store(v, k.args[out], {sb.add(outBase, i)});
        });
      }
    });
    endKernel(k, grid(heads, kWarpsPerBlock, "one"), "decode");
  }
  return success();
}

} // namespace decc::gpulowering
