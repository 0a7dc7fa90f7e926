//===- CPUAttention.cpp - attention kernels of the CPU lowering -----------===//
//
// Parallel over (token, head): eager materializes the scores, flash keeps
// a running max; a decode step splits the keys over threads and merges the
// partial softmaxes. Also the KV append of an unfused attention.
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/CPU/CPULowering.h"

#include "compiler/Conversion/Common/PositionTables.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

namespace decc::cpulowering {

SmallVector<Value> keyTileIndex(KernelBuilder &kb, Value layer, Value g,
                                Value j, Value i) {
  Value tile = kb.index(contract::kCPUKeyTile);
  return {layer, g, kb.div(j, tile), i,
          arith::RemUIOp::create(kb.builder(), j, tile)};
}

Value cacheSlot(KernelBuilder &kb, Value table, Value t, Value j) {
  ImplicitLocOpBuilder &b = kb.builder();
  Value rows = memref::DimOp::create(b, table, 0);
  Value row = kb.umin(t, kb.sub(rows, kb.index(1)));
  Value size = kb.index(contract::kCacheBlock);
  Value block =
      memref::LoadOp::create(b, table, ValueRange{row, kb.div(j, size)});
  Value first =
      kb.mul(arith::IndexCastOp::create(b, b.getIndexType(), block), size);
  return kb.add(first, arith::RemUIOp::create(b, j, size));
}

void ForwardLowering::emitAppend(Value key, Value value, int64_t layer) {
  KernelBuilder kb(*b);
  Value k = bufferOf(key), v = bufferOf(value);
  int64_t d = cacheHeadDim;
  kb.parallel({numTokens, kb.index(cacheKVHeads)}, [&](KernelBuilder &lb,
                                                       ValueRange iv) {
    Value t = iv[0], g = iv[1];
    Value pos = cacheSlot(
        lb, blockTable, t,
        lb.toIndex(memref::LoadOp::create(lb.builder(), positions, t)));
    Value base = lb.mul(g, lb.index(d));
    Value tiles = keyTiles(lb);
    lb.forEachChunk(d, [&](KernelBuilder &cb, Value i, int64_t w) {
      Value idx[] = {layerIndex(layer), g, pos, i};
      cb.store(cb.loadN(v, {t, cb.add(base, i)}, w), vCache, idx);
    });
    // A key's features are a column of its tile: a store each.
    lb.forLoop(lb.index(0), lb.index(d), 1,
               [&](KernelBuilder &cb, ValueRange iv) {
                 cb.store(cb.loadN(k, {t, cb.add(base, iv[0])}, 1), tiles,
                          keyTileIndex(cb, layerIndex(layer), g, pos, iv[0]));
               });
  });
}

/// Everything one query head of one token needs to attend: which cache
/// rows, which keys, the score of a key and the accumulation of a value.
/// `kCache` is the K cache's tiles (ForwardLowering::keyTiles), or with
/// `byToken` a vision encoder's keys by token.
struct HeadAttention {
  KernelBuilder &kb;
  const AttentionParams &a;
  Value query, kCache, vCache, t, h, g, layer, pos, qBase, scale, slope;
  int64_t d;
  /// The paged cache's block table (null with `byToken`).
  Value table;

  /// Keys and values by token ([j][g]: a vision encoder's) rather than the
  /// cache's [layer][g][j].
  bool byToken = false;

  static constexpr int64_t kTile = contract::kCPUKeyTile;

  /// A tile's scores and which of its keys are in the range.
  struct TileScores {
    Value scores, inRange;        // vector<kTile x f32>, vector<kTile x i1>
    SmallVector<Value> inRangeAt; // inRange's lanes
  };
  /// The scores of the kTile keys of the tile at key j0 (a multiple of
  /// kTile) as one vector, -inf for the keys outside [lo, hi): q . k
  /// feature by feature (the query's feature broadcast against the tile's
  /// row of that feature), in four partial sums for the FMAs' latency,
  /// times the scale (+ ALiBi's slope times the distance).
  TileScores tileScores(KernelBuilder &lb, Value j0, Value lo, Value hi) const {
    ImplicitLocOpBuilder &b = lb.builder();
    auto vt = VectorType::get({kTile}, b.getF32Type());
    Value zero = lb.splat(lb.f32(0.0), kTile);
    Value tile = lb.div(slot(lb, j0), lb.index(kTile));
    int64_t sums = d % 4 == 0 ? 4 : 1;
    SmallVector<Value> parts = lb.forLoop(
        lb.index(0), lb.index(d), sums, SmallVector<Value>(sums, zero),
        [&](KernelBuilder &ib, Value i0, ValueRange acc) {
          SmallVector<Value> next;
          for (int64_t u = 0; u < sums; ++u) {
            Value i = ib.add(i0, ib.index(u));
            Value q = ib.splat(ib.loadF32(query, {t, ib.add(qBase, i)}), kTile);
            Value k =
                ib.loadVector(kCache, {layer, g, tile, i, ib.index(0)}, kTile);
            next.push_back(vector::FMAOp::create(ib.builder(), q, k, acc[u]));
          }
          return next;
        });
    Value s = parts[0];
    for (int64_t u = 1; u < sums; ++u)
      s = lb.add(s, parts[u]);
    s = lb.mul(s, lb.splat(scale, kTile));
    SmallVector<Value> keys, valid;
    for (int64_t k = 0; k < kTile; ++k) {
      Value j = lb.add(j0, lb.index(k));
      if (slope)
        keys.push_back(lb.indexToF32(j));
      valid.push_back(arith::AndIOp::create(
          b, arith::CmpIOp::create(b, arith::CmpIPredicate::uge, j, lo),
          arith::CmpIOp::create(b, arith::CmpIPredicate::ult, j, hi)));
    }
    if (slope) {
      Value distance = lb.sub(vector::FromElementsOp::create(b, vt, keys),
                              lb.splat(lb.indexToF32(pos), kTile));
      s = lb.add(s, lb.mul(lb.splat(slope, kTile), distance));
    }
    Value mask = vector::FromElementsOp::create(
        b, VectorType::get({kTile}, b.getI1Type()), valid);
    return {
        arith::SelectOp::create(b, mask, s, lb.splat(lb.f32(-INFINITY), kTile)),
        mask, valid};
  }
  /// The first key of the tile that holds key j.
  Value tileStart(KernelBuilder &lb, Value j) const {
    return lb.mul(lb.div(j, lb.index(kTile)), lb.index(kTile));
  }

  /// Where the cache keeps key or value j of this token's sequence
  /// (cacheSlot); a vision encoder's keys are where they are.
  Value slot(KernelBuilder &lb, Value j) const {
    return byToken ? j : cacheSlot(lb, table, t, j);
  }
  /// Where key or value j of this head is, j a slot() for the cache.
  SmallVector<Value> row(Value j) const {
    if (byToken)
      return {j, g};
    return {layer, g, j};
  }
  SmallVector<Value> element(Value j, Value i) const {
    SmallVector<Value> at = row(j);
    at.push_back(i);
    return at;
  }
  /// q . k_j * scale (+ ALiBi slope * (j - pos)).
  Value score(KernelBuilder &lb, Value j) const {
    return scaled(
        lb, lb.dots(query, {t}, kCache, {row(slot(lb, j))}, d, qBase)[0], j);
  }
  /// Key j's dot product `s` as its score.
  Value scaled(KernelBuilder &lb, Value s, Value j) const {
    s = lb.mul(s, scale);
    if (slope)
      s = lb.add(s,
                 lb.mul(slope, lb.sub(lb.indexToF32(j), lb.indexToF32(pos))));
    return s;
  }
  /// acc = acc * rescale + p * v_j (rescale may be null).
  void accumulate(KernelBuilder &lb, Value acc, Value p, Value j) const {
    Value at = slot(lb, j);
    lb.forEachChunk(d, [&](KernelBuilder &cb, Value i, int64_t w) {
      Value v = cb.loadN(vCache, element(at, i), w);
      Value old = cb.loadN(acc, {i}, w);
      cb.store(cb.add(old, cb.mul(cb.splat(p, w), v)), acc, {i});
    });
  }
  void scaleAcc(KernelBuilder &lb, Value acc, Value factor) const {
    lb.forEachChunk(d, [&](KernelBuilder &cb, Value i, int64_t w) {
      cb.store(cb.mul(cb.loadN(acc, {i}, w), cb.splat(factor, w)), acc, {i});
    });
  }
  /// Keys a step of the blocked online softmax takes.
  static constexpr int64_t kKeyBlock = 8;

  /// Flash over keys [lo, hi): one pass with a running max; the accumulator
  /// is rescaled only when the max grows. Keys go kKeyBlock at a time (their
  /// dot products sharing the query's loads, their exps one vector, which
  /// approximate-vector-exp keeps in registers, one rescale and one pass
  /// over the accumulator a block), the rest one by one. Returns {max,
  /// sum}; `acc` holds the unnormalized output.
  std::pair<Value, Value> online(KernelBuilder &lb, Value lo, Value hi,
                                 Value acc) const {
    lb.forEachChunk(d, [&](KernelBuilder &cb, Value i, int64_t w) {
      cb.store(cb.splat(cb.f32(0.0), w), acc, {i});
    });
    if (!byToken)
      return onlineTiles(lb, lo, hi, acc);
    ImplicitLocOpBuilder &b = lb.builder();
    auto block = VectorType::get({kKeyBlock}, b.getF32Type());
    Value blocked = lb.wholeStepsEnd(lo, hi, kKeyBlock);
    SmallVector<Value> blockSt = lb.forLoop(
        lo, blocked, kKeyBlock, {lb.f32(-INFINITY), lb.f32(0.0)},
        [&](KernelBuilder &ib, Value j0, ValueRange prev) {
          SmallVector<Value> keys;
          SmallVector<SmallVector<Value>> rows;
          for (int64_t k = 0; k < kKeyBlock; ++k) {
            keys.push_back(ib.add(j0, ib.index(k)));
            rows.push_back(row(keys.back()));
          }
          SmallVector<Value> s = ib.dots(query, {t}, kCache, rows, d, qBase);
          for (int64_t k = 0; k < kKeyBlock; ++k)
            s[k] = scaled(ib, s[k], keys[k]);
          Value sv = vector::FromElementsOp::create(ib.builder(), block, s);
          Value m = ib.fmax(
              prev[0], vector::ReductionOp::create(
                           ib.builder(), vector::CombiningKind::MAXNUMF, sv));
          Value correction = ib.exp(ib.sub(prev[0], m));
          Value p = ib.exp(ib.sub(sv, ib.splat(m, kKeyBlock)));
          Value sum = ib.add(ib.mul(prev[1], correction),
                             vector::ReductionOp::create(
                                 ib.builder(), vector::CombiningKind::ADD, p));
          SmallVector<Value> ps;
          for (int64_t k = 0; k < kKeyBlock; ++k)
            ps.push_back(vector::ExtractOp::create(ib.builder(), p, k));
          // acc = acc * correction + sum_k p_k v_k, one pass over acc.
          ib.forEachChunk(d, [&](KernelBuilder &cb, Value i, int64_t w) {
            Value a = cb.mul(cb.loadN(acc, {i}, w), cb.splat(correction, w));
            for (int64_t k = 0; k < kKeyBlock; ++k)
              a = cb.add(a, cb.mul(cb.splat(ps[k], w),
                                   cb.loadN(vCache, element(keys[k], i), w)));
            cb.store(a, acc, {i});
          });
          return SmallVector<Value>{m, sum};
        });
    SmallVector<Value> st = lb.forLoop(
        blocked, hi, 1, blockSt,
        [&](KernelBuilder &ib, Value j, ValueRange prev) {
          Value s = score(ib, j);
          Value m = ib.fmax(prev[0], s);
          Value correction = ib.exp(ib.sub(prev[0], m));
          Value grew = arith::CmpFOp::create(
              ib.builder(), arith::CmpFPredicate::OGT, m, prev[0]);
          ib.ifThen(grew,
                    [&](KernelBuilder &cb) { scaleAcc(cb, acc, correction); });
          Value e = ib.exp(ib.sub(s, m));
          accumulate(ib, acc, e, j);
          return SmallVector<Value>{m, ib.add(ib.mul(prev[1], correction), e)};
        });
    return {st[0], st[1]};
  }

  /// online() over the K cache's tiles: a tile of keys a step (its
  /// scores one vector, the keys outside [lo, hi) at -inf and weighing
  /// nothing), no key left to a scalar loop. Each tile has a key in
  /// [lo, hi), so the max is finite from the first on.
  std::pair<Value, Value> onlineTiles(KernelBuilder &lb, Value lo, Value hi,
                                      Value acc) const {
    Value last = lb.sub(hi, lb.index(1));
    SmallVector<Value> st = lb.forLoop(
        tileStart(lb, lo), hi, kTile, {lb.f32(-INFINITY), lb.f32(0.0)},
        [&](KernelBuilder &ib, Value j0, ValueRange prev) {
          ImplicitLocOpBuilder &ob = ib.builder();
          TileScores ts = tileScores(ib, j0, lo, hi);
          Value sv = ts.scores;
          // The tile's max and sum as trees (no NaN among the scores; the
          // sum in any order): an ordered reduction was 16 dependent adds,
          // a NaN-aware max 16 compares and maxes.
          Value m = ib.fmax(prev[0], vector::ReductionOp::create(
                                         ob, vector::CombiningKind::MAXNUMF, sv,
                                         arith::FastMathFlags::nnan));
          Value correction = ib.exp(ib.sub(prev[0], m));
          Value p = arith::SelectOp::create(
              ob, ts.inRange, ib.exp(ib.sub(sv, ib.splat(m, kTile))),
              ib.splat(ib.f32(0.0), kTile));
          Value sum = ib.add(
              ib.mul(prev[1], correction),
              vector::ReductionOp::create(ob, vector::CombiningKind::ADD, p,
                                          arith::FastMathFlags::reassoc));
          SmallVector<Value> ps, keys;
          // A tile's keys are consecutive in the cache (a block holds
          // whole tiles): one lookup a tile.
          Value first = slot(ib, j0);
          for (int64_t k = 0; k < kTile; ++k) {
            ps.push_back(vector::ExtractOp::create(ob, p, k));
            // The values of keys outside the range: a row in it, weighed 0.
            Value key = ib.umin(
                arith::MaxUIOp::create(ob, ib.add(j0, ib.index(k)), lo), last);
            keys.push_back(ib.add(first, ib.sub(key, j0)));
          }
          ib.forEachChunk(d, [&](KernelBuilder &cb, Value i, int64_t w) {
            Value a = cb.mul(cb.loadN(acc, {i}, w), cb.splat(correction, w));
            for (int64_t k = 0; k < kTile; ++k) {
              Value v = cb.loadN(vCache, element(keys[k], i), w);
              a = w == 1 ? Value(math::FmaOp::create(cb.builder(), ps[k], v, a))
                         : Value(vector::FMAOp::create(
                               cb.builder(), cb.splat(ps[k], w), v, a));
            }
            cb.store(a, acc, {i});
          });
          return SmallVector<Value>{m, sum};
        });
    return {st[0], st[1]};
  }
};

HeadAttention headAttention(KernelBuilder &kb, const AttentionParams &a,
                            Value query, Value kCache, Value vCache, Value t,
                            Value h, Value slopes) {
  AttentionConfigAttr c = a.config;
  int64_t d = c.getHeadDim();
  Value g = kb.div(h, kb.index(c.getNumHeads() / c.getNumKvHeads()));
  Value pos = kb.toIndex(memref::LoadOp::create(kb.builder(), a.positions, t));
  Value slope = slopes ? kb.loadF32(slopes, {h}) : Value();
  return HeadAttention{kb,
                       a,
                       query,
                       kCache,
                       vCache,
                       t,
                       h,
                       g,
                       a.layerIndex,
                       pos,
                       kb.mul(h, kb.index(d)),
                       kb.f32(c.getSoftmaxScale()),
                       slope,
                       d,
                       a.blockTable};
}

/// The keys query position `pos` sees: [begin, pos + 1).
std::pair<Value, Value> keyRange(KernelBuilder &kb, AttentionConfigAttr c,
                                 Value pos) {
  Value end = kb.add(pos, kb.index(1));
  return {windowBegin(kb, c, end), end};
}

Value newScratch(KernelBuilder &kb, int64_t d) {
  return memref::AllocaOp::create(
      kb.builder(), MemRefType::get({d}, kb.builder().getF32Type()));
}

void storeNormalized(KernelBuilder &kb, const HeadAttention &ha, Value acc,
                     Value sum, Value out) {
  Value inv = kb.div(kb.f32(1.0), sum);
  kb.forEachChunk(ha.d, [&](KernelBuilder &cb, Value i, int64_t w) {
    cb.store(cb.mul(cb.loadN(acc, {i}, w), cb.splat(inv, w)), out,
             {ha.t, cb.add(ha.qBase, i)});
  });
}

void ForwardLowering::emitEncoderHead(KernelBuilder &kb, Value query,
                                      Value keys, Value values, Value out,
                                      Value t, Value h, Value first, Value end,
                                      int64_t d, double scale) {
  AttentionParams none{};
  HeadAttention ha{kb,
                   none,
                   query,
                   keys,
                   values,
                   t,
                   h,
                   h,
                   Value(),
                   Value(),
                   kb.mul(h, kb.index(d)),
                   kb.f32(scale),
                   Value(),
                   d,
                   Value()};
  ha.byToken = true;
  Value acc = newScratch(kb, d);
  auto [m, sum] = ha.online(kb, first, end, acc);
  (void)m;
  storeNormalized(kb, ha, acc, sum, out);
}

void ForwardLowering::emitAttentionRows(KernelBuilder &kb, Value query,
                                        Value out, Value t, Value h,
                                        const AttentionParams &a, bool eager,
                                        Value scores) {
  Value slopes;
  if (a.config.getAlibiBiasMax() > 0)
    slopes = alibiSlopes(a.config);
  HeadAttention ha =
      headAttention(kb, a, query, keyTiles(kb), vCache, t, h, slopes);
  auto [firstKey, endKey] = keyRange(kb, a.config, ha.pos);
  Value begin = firstKey, end = endKey;
  Value acc = newScratch(kb, ha.d);
  if (!eager) {
    Value sum = ha.online(kb, begin, end, acc).second;
    storeNormalized(kb, ha, acc, sum, out);
    return;
  }
  // Eager: every score materialized (a tile of keys at a time, the keys
  // of the range stored), then softmax, then P V.
  int64_t tile = HeadAttention::kTile;
  Value max = kb.forLoop(
      ha.tileStart(kb, begin), end, tile, {kb.f32(-INFINITY)},
      [&](KernelBuilder &lb, Value j0, ValueRange m) {
        ImplicitLocOpBuilder &ob = lb.builder();
        HeadAttention::TileScores ts = ha.tileScores(lb, j0, begin, end);
        Value s = ts.scores;
        for (int64_t k = 0; k < tile; ++k)
          lb.ifThen(ts.inRangeAt[k], [&](KernelBuilder &sb) {
            sb.store(vector::ExtractOp::create(sb.builder(), s, k), scores,
                     {t, h, sb.add(j0, sb.index(k))});
          });
        return SmallVector<Value>{
            lb.fmax(m[0], vector::ReductionOp::create(
                              ob, vector::CombiningKind::MAXNUMF, s))};
      })[0];
  // The exps a vector of scores at a time (approximate-vector-exp keeps
  // them in registers), the rest one by one.
  int64_t w = HeadAttention::kKeyBlock;
  auto block = VectorType::get({w}, kb.builder().getF32Type());
  Value blocked = kb.wholeStepsEnd(begin, end, w);
  Value blockSum = kb.forLoop(
      begin, blocked, w, {kb.f32(0.0)},
      [&](KernelBuilder &lb, Value j, ValueRange l) {
        Value s = vector::LoadOp::create(lb.builder(), block, scores,
                                         ValueRange{t, h, j});
        Value e = lb.exp(lb.sub(s, lb.splat(max, w)));
        vector::StoreOp::create(lb.builder(), e, scores, ValueRange{t, h, j});
        return SmallVector<Value>{
            lb.add(l[0], vector::ReductionOp::create(
                             lb.builder(), vector::CombiningKind::ADD, e))};
      })[0];
  Value sum =
      kb.forLoop(blocked, end, 1, {blockSum},
                 [&](KernelBuilder &lb, Value j, ValueRange l) {
                   Value e = lb.exp(lb.sub(lb.loadF32(scores, {t, h, j}), max));
                   lb.store(e, scores, {t, h, j});
                   return SmallVector<Value>{lb.add(l[0], e)};
                 })[0];
  kb.forEachChunk(ha.d, [&](KernelBuilder &cb, Value i, int64_t w) {
    cb.store(cb.splat(cb.f32(0.0), w), acc, {i});
  });
  kb.forLoop(begin, end, 1, [&](KernelBuilder &lb, ValueRange j) {
    ha.accumulate(lb, acc, lb.loadF32(scores, {t, h, j[0]}), j[0]);
  });
  storeNormalized(kb, ha, acc, sum, out);
}

void ForwardLowering::emitAttention(Value query, Value out,
                                    const AttentionParams &a) {
  KernelBuilder kb(*b);
  bool eager = a.config.getBackend() == AttentionBackend::Eager;
  Value heads = kb.index(a.config.getNumHeads());
  Value scores;
  if (eager) {
    auto type = MemRefType::get(
        {ShapedType::kDynamic, a.config.getNumHeads(), ShapedType::kDynamic},
        b->getF32Type());
    scores =
        memref::AllocOp::create(*b, type, ValueRange{numTokens, keysSeen()});
  }
  // A causal prompt's token t attends to t + 1 keys, and OpenMP hands each
  // thread a contiguous share of the iterations: in token order the thread
  // with the last tokens had three times the first one's keys (2 threads),
  // and the other waited at the join. Iteration i takes token i / 2 when i
  // is even and T - 1 - i / 2 when odd, so every share holds early and late
  // tokens alike.
  auto balancedToken = [&](KernelBuilder &ib, Value i) {
    Value half = ib.div(i, ib.index(2));
    Value odd = arith::CmpIOp::create(
        ib.builder(), arith::CmpIPredicate::ne,
        arith::RemUIOp::create(ib.builder(), i, ib.index(2)), ib.index(0));
    return Value(arith::SelectOp::create(
        ib.builder(), odd, ib.sub(ib.sub(numTokens, ib.index(1)), half), half));
  };
  auto rows = [&](KernelBuilder &lb) {
    lb.parallel({numTokens, heads}, [&](KernelBuilder &ib, ValueRange iv) {
      emitAttentionRows(ib, query, out, balancedToken(ib, iv[0]), iv[1], a,
                        eager, scores);
    });
  };
  if (eager) {
    rows(kb);
    memref::DeallocOp::create(*b, scores);
    return;
  }
  // A decode step has one query row per head: too little parallelism, so
  // the keys are split across threads and the partial softmaxes merged.
  Value single = arith::CmpIOp::create(*b, arith::CmpIPredicate::eq, numTokens,
                                       kb.index(1));
  scf::IfOp::create(
      *b, single,
      [&](OpBuilder &nb, Location loc) {
        ImplicitLocOpBuilder ib(loc, nb);
        KernelBuilder sb(ib);
        emitSplitKVDecode(sb, query, out, a);
        scf::YieldOp::create(ib);
      },
      [&](OpBuilder &nb, Location loc) {
        ImplicitLocOpBuilder ib(loc, nb);
        KernelBuilder eb(ib);
        rows(eb);
        scf::YieldOp::create(ib);
      });
}

void ForwardLowering::emitSplitKVDecode(KernelBuilder &kb, Value query,
                                        Value out, const AttentionParams &a) {
  constexpr int64_t kMinKeysPerSplit = 64, kMaxSplits = 16;
  AttentionConfigAttr c = a.config;
  int64_t heads = c.getNumHeads(), d = c.getHeadDim();
  Value zero = kb.index(0);
  Value pos =
      kb.toIndex(memref::LoadOp::create(kb.builder(), a.positions, zero));
  auto [firstKey, endKey] = keyRange(kb, c, pos);
  Value begin = firstKey, end = endKey;
  Value keys = kb.sub(end, begin);
  Value wanted = kb.div(kb.add(keys, kb.index(kMinKeysPerSplit - 1)),
                        kb.index(kMinKeysPerSplit));
  Value splits =
      arith::MinUIOp::create(kb.builder(), wanted, kb.index(kMaxSplits));
  Value chunk = kb.ceilDiv(keys, splits);
  Type f32 = kb.builder().getF32Type();
  int64_t dyn = ShapedType::kDynamic;
  Value maxes = memref::AllocOp::create(
      kb.builder(), MemRefType::get({heads, dyn}, f32), ValueRange{splits});
  Value sums = memref::AllocOp::create(
      kb.builder(), MemRefType::get({heads, dyn}, f32), ValueRange{splits});
  Value accs = memref::AllocOp::create(
      kb.builder(), MemRefType::get({heads, dyn, d}, f32), ValueRange{splits});
  Value slopes;
  if (c.getAlibiBiasMax() > 0)
    slopes = alibiSlopes(c);

  kb.parallel({kb.index(heads), splits}, [&](KernelBuilder &lb, ValueRange iv) {
    Value h = iv[0], s = iv[1];
    HeadAttention ha =
        headAttention(lb, a, query, keyTiles(lb), vCache, zero, h, slopes);
    Value lo = lb.add(begin, lb.mul(s, chunk));
    Value hi = arith::MinUIOp::create(lb.builder(), end, lb.add(lo, chunk));
    lo = arith::MinUIOp::create(lb.builder(), lo, hi);
    Value acc = newScratch(lb, d);
    auto [m, l] = ha.online(lb, lo, hi, acc);
    lb.store(m, maxes, {h, s});
    lb.store(l, sums, {h, s});
    lb.forEachChunk(d, [&](KernelBuilder &cb, Value i, int64_t w) {
      cb.store(cb.loadN(acc, {i}, w), accs, {h, s, i});
    });
  });
  // Merge: out = sum_s acc_s e^(m_s - M) / sum_s l_s e^(m_s - M).
  kb.parallel({kb.index(heads)}, [&](KernelBuilder &lb, ValueRange iv) {
    Value h = iv[0];
    Value m = lb.forLoop(zero, splits, 1, {lb.f32(-INFINITY)},
                         [&](KernelBuilder &ib, Value s, ValueRange prev) {
                           return SmallVector<Value>{
                               ib.fmax(prev[0], ib.loadF32(maxes, {h, s}))};
                         })[0];
    Value acc = newScratch(lb, d);
    lb.forEachChunk(d, [&](KernelBuilder &cb, Value i, int64_t w) {
      cb.store(cb.splat(cb.f32(0.0), w), acc, {i});
    });
    Value l = lb.forLoop(
        zero, splits, 1, {lb.f32(0.0)},
        [&](KernelBuilder &ib, Value s, ValueRange prev) {
          Value weight = ib.exp(ib.sub(ib.loadF32(maxes, {h, s}), m));
          ib.forEachChunk(d, [&](KernelBuilder &cb, Value i, int64_t w) {
            Value part = cb.loadN(accs, {h, s, i}, w);
            cb.store(cb.add(cb.loadN(acc, {i}, w),
                            cb.mul(part, cb.splat(weight, w))),
                     acc, {i});
          });
          return SmallVector<Value>{
              ib.add(prev[0], ib.mul(ib.loadF32(sums, {h, s}), weight))};
        })[0];
    Value inv = lb.div(lb.f32(1.0), l);
    Value qBase = lb.mul(h, lb.index(d));
    lb.forEachChunk(d, [&](KernelBuilder &cb, Value i, int64_t w) {
      cb.store(cb.mul(cb.loadN(acc, {i}, w), cb.splat(inv, w)), out,
               {zero, cb.add(qBase, i)});
    });
  });
  for (Value buffer : {maxes, sums, accs})
    memref::DeallocOp::create(kb.builder(), buffer);
}

void ForwardLowering::lowerAttention(AttentionOp op) {
  emitAppend(op.getKey(), op.getValue(), op.getLayer());
  Value out = define(op.getResult(), widthOf(op.getResult()));
  emitAttention(bufferOf(op.getQuery()), out,
                {op.getConfig(), int64_t(op.getLayer()),
                 bufferOf(op.getPositions()), layerIndex(op.getLayer()),
                 blockTable});
}

void ForwardLowering::lowerCachedAttention(CachedAttentionOp op) {
  Value out = define(op.getResult(), widthOf(op.getResult()));
  emitAttention(bufferOf(op.getQuery()), out,
                {op.getConfig(), int64_t(op.getLayer()),
                 bufferOf(op.getPositions()), layerIndex(op.getLayer()),
                 blockTable});
}

} // namespace decc::cpulowering
