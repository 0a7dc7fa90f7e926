//===- GPUDecodeAttention.cpp - flash attention of one decode step --------===//
//
// A decode step has one query token and, at long contexts, many keys: the
// keys are split over blocks, and a block works for one KV head and every
// query head of its group, so each key and value row is read once for the
// group (GQA and MQA read 2-7x fewer bytes than a block per query head).
//
// Block (kv head g, split): a key is read by a team of lanes, each lane a
// 16-byte piece of the key row and of the value row (a 128-feature bf16 row
// is 16 lanes, so a warp reads two keys with two fully used 512-byte loads),
// and every team takes `unroll` keys a step, all of their loads issued
// before any is used: a decode step is bound by the latency of its loads,
// not by their bytes. A team's score is its lanes' partial dot products
// added by a butterfly over the team; each team keeps an online softmax per
// head of the group with its lanes' features of the output. The teams merge
// through shared memory into the block's softmax; with one split that is
// the output, else it is the split's partial (max, sum, unnormalized
// output) in a scratch buffer, and the last block of the kv head to finish
// (a counter, after a memory fence) merges the splits, so the step needs no
// second kernel.
//
// The layout before this one gave a lane a whole key (its q.k with no
// shuffle, 8-byte pieces of 32 different rows per load) and broadcast each
// key's weight for the value rows one key at a time: 16-19 us a layer at
// 512 keys on an H200, where the bytes take half a microsecond.
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/GPU/GPULowering.h"

#include "compiler/Conversion/Common/PositionTables.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include "llvm/Support/MathExtras.h"

namespace decc::gpulowering {

namespace {

/// Splits a merging thread reads at once.
constexpr int64_t kMergeChunk = 8;

/// How a block's lanes share the key rows: each lane `vec` features of a
/// row at a time (16 bytes, or one element when the row does not split
/// into 16-byte pieces), a team of `lanesPerKey` lanes a key, `perLane`
/// pieces a lane.
struct KeyTeams {
  int64_t vec, pieces, lanesPerKey, perLane, keysPerWarp, teams, unroll;

  KeyTeams(int64_t d, int64_t eltBytes, int64_t group) {
    int64_t wide = 16 / eltBytes;
    vec = d % wide == 0 ? wide : 1;
    pieces = d / vec;
    lanesPerKey = std::min<int64_t>(32, llvm::PowerOf2Ceil(pieces));
    perLane = (pieces + lanesPerKey - 1) / lanesPerKey;
    keysPerWarp = 32 / lanesPerKey;
    teams = kWarpsPerBlock * keysPerWarp;
    // Keys a team has in flight: q and the output take group * perLane *
    // vec registers each, the loads 2 * unroll * perLane * vec.
    int64_t held = group * perLane * vec;
    unroll = held > 32 ? 2 : held > 16 ? 4 : 8;
  }
  /// Whether every lane's every piece is inside the row.
  bool full() const { return pieces == lanesPerKey * perLane; }
};

} // namespace

void GPULowering::decodeAttention(CachedAttentionOp op, const std::string &q,
                                  const std::string &out,
                                  int64_t slopesOffset) {
  AttentionConfigAttr c = op.getConfig();
  Type f32 = Float32Type::get(ctx), i8 = IntegerType::get(ctx, 8),
       i32 = IntegerType::get(ctx, 32), i64 = IntegerType::get(ctx, 64);
  int64_t heads = c.getNumHeads(), kvHeads = c.getNumKvHeads(),
          d = c.getHeadDim();
  int64_t group = heads / kvHeads;
  Type cacheElt = cacheElement;
  int64_t eltBytes = cacheElt.getIntOrFloatBitWidth() / 8;
  KeyTeams lay(d, eltBytes, group);
  int64_t vec = lay.vec, perLane = lay.perLane;
  auto vf32 = VectorType::get({vec}, f32);

  // The partial softmax of every (head, split): max, sum, d outputs; and a
  // counter of the splits done per kv head.
  using Size = contract::PlanBuffer::Size;
  std::string partials = "partials:" + std::to_string(plan.buffers.size());
  plan.buffers.push_back({partials, Size::Fixed, heads * kMaxSplits * (d + 2)});
  std::string counters = "counters:" + std::to_string(plan.buffers.size());
  plan.buffers.push_back({counters, Size::Fixed, kvHeads});
  Kernel &k = beginKernel("attention_decode", {{"arena", i8},
                                               {"step", i64},
                                               {"positions", i64},
                                               {q, f32},
                                               {"k_cache", cacheElt},
                                               {"v_cache", cacheElt},
                                               {partials, f32},
                                               {counters, i32},
                                               {out, f32}});
  KernelBuilder &kb = *k.kb;
  ImplicitLocOpBuilder &b = *k.b;
  // Shared: every team's max and sum per head ([team][head][2]), their
  // outputs ([team][head][d]), and the last-block flag.
  Value stats = sharedFloats(k, lay.teams * group * 2 + 1);
  Value outputs = sharedFloats(k, lay.teams * group * d);
  Value flag = kb.index(lay.teams * group * 2);
  Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  Value lane = arith::RemUIOp::create(b, tid, kb.index(32));
  Value warp = kb.div(tid, kb.index(32));
  Value laneInKey =
      arith::RemUIOp::create(b, lane, kb.index(lay.lanesPerKey));
  Value team = kb.add(kb.mul(warp, kb.index(lay.keysPerWarp)),
                      kb.div(lane, kb.index(lay.lanesPerKey)));
  Value g = gpu::BlockIdOp::create(b, gpu::Dimension::x);
  Value split = gpu::BlockIdOp::create(b, gpu::Dimension::y);
  Value splits = step(k, kStepSplits);
  auto select = [](KernelBuilder &lb, Value cond, Value a, Value v) -> Value {
    return arith::SelectOp::create(lb.builder(), cond, a, v);
  };
  auto isNegInf = [](KernelBuilder &lb, Value v) -> Value {
    return arith::CmpFOp::create(lb.builder(), arith::CmpFPredicate::OEQ, v,
                                 lb.f32(-INFINITY));
  };
  // A max that is -inf (no key yet) counts as 0, so exp(m - safe) is 0 and
  // never NaN.
  auto safeMax = [&](KernelBuilder &lb, Value m) {
    return select(lb, isNegInf(lb, m), lb.f32(0.0), m);
  };
  // Piece j of this lane: its first feature, and whether it is in the row.
  auto piece = [&](KernelBuilder &lb, int64_t j) {
    return lb.add(laneInKey, lb.index(j * lay.lanesPerKey));
  };
  auto pieceValid = [&](KernelBuilder &lb, int64_t j) {
    return less(lb, piece(lb, j), lb.index(lay.pieces));
  };
  auto pieceFeature = [&](KernelBuilder &lb, int64_t j) {
    Value p = lay.full() ? piece(lb, j)
                         : lb.umin(piece(lb, j), lb.index(lay.pieces - 1));
    return lb.mul(p, lb.index(vec));
  };
  SmallVector<int32_t> teamOffsets;
  for (int64_t o = lay.lanesPerKey / 2; o >= 1; o /= 2)
    teamOffsets.push_back(int32_t(o));
  auto teamSum = [&](KernelBuilder &lb, Value v) {
    return shuffleReduce(lb, v, teamOffsets, /*isMax=*/false);
  };
  auto vfma = [](KernelBuilder &lb, Value a, Value x, Value acc) -> Value {
    return vector::FMAOp::create(lb.builder(), a, x, acc);
  };
  // Pieces are vector<vec x f32> even when vec is 1.
  auto broadcast = [&](KernelBuilder &lb, Value scalar) -> Value {
    return vector::BroadcastOp::create(lb.builder(), vf32, scalar);
  };
  auto vzero = [&](KernelBuilder &lb) -> Value {
    return arith::ConstantOp::create(
        lb.builder(), DenseElementsAttr::get(vf32, lb.builder().getF32FloatAttr(0.0)));
  };

  kb.ifThen(less(kb, split, splits), [&](KernelBuilder &ib) {
    Value pos = ib.toIndex(memref::LoadOp::create(
        ib.builder(), k.args["positions"], ValueRange{ib.index(0)}));
    Value end = ib.add(pos, ib.index(1));
    Value begin = windowBegin(ib, c, end);
    Value keys = ib.sub(end, begin);
    Value chunk = ib.div(ib.add(keys, ib.sub(splits, ib.index(1))), splits);
    Value lo = ib.umin(end, ib.add(begin, ib.mul(split, chunk)));
    Value hi = ib.umin(end, ib.add(lo, chunk));
    Value lastKey = ib.sub(hi, ib.index(1));
    Value cacheRow0 =
        ib.mul(ib.add(ib.mul(cacheLayer(ib, k, op.getLayer()),
                             ib.index(kvHeads)),
                      g),
               step(ib, k, kStepContext));
    SmallVector<Value> slope(group);
    if (slopesOffset >= 0)
      for (int64_t h = 0; h < group; ++h)
        slope[h] =
            ib.loadF32(arenaView(ib, k, f32, slopesOffset),
                       {ib.add(ib.mul(g, ib.index(group)), ib.index(h))});
    auto headBase = [&](KernelBuilder &lb, int64_t h) {
      return lb.mul(lb.add(lb.mul(g, lb.index(group)), lb.index(h)),
                    lb.index(d));
    };
    // This lane's pieces of every head's query, scaled; a piece past the
    // row is 0, so it adds nothing to the score.
    SmallVector<Value> qv;
    Value scale = broadcast(ib, ib.f32(c.getSoftmaxScale()));
    for (int64_t h = 0; h < group; ++h)
      for (int64_t j = 0; j < perLane; ++j) {
        Value v = ib.loadVector(
            k.args[q], {ib.add(headBase(ib, h), pieceFeature(ib, j))}, vec,
            vec == 1 ? 4 : 16);
        v = arith::MulFOp::create(ib.builder(), v, scale);
        if (!lay.full())
          v = select(ib, pieceValid(ib, j), v, vzero(ib));
        qv.push_back(v);
      }

    // State per head: max, sum, then perLane output pieces.
    int64_t stride = 2 + perLane;
    SmallVector<Value> init;
    for (int64_t h = 0; h < group; ++h) {
      init.push_back(ib.f32(-INFINITY));
      init.push_back(ib.f32(0.0));
      for (int64_t j = 0; j < perLane; ++j)
        init.push_back(vzero(ib));
    }
    int64_t tile = lay.teams * lay.unroll;
    SmallVector<Value> st = ib.forLoop(
        lo, hi, tile, init, [&](KernelBuilder &lb, Value base, ValueRange in) {
          // Every key's and value's loads first, then the arithmetic.
          SmallVector<Value> key, valid, kv, vv;
          for (int64_t u = 0; u < lay.unroll; ++u) {
            Value kk = lb.add(base, lb.add(lb.index(u * lay.teams), team));
            key.push_back(kk);
            valid.push_back(less(lb, kk, hi));
            Value row = lb.mul(lb.add(cacheRow0, lb.umin(kk, lastKey)),
                               lb.index(d));
            for (int64_t j = 0; j < perLane; ++j) {
              Value at = lb.add(row, pieceFeature(lb, j));
              kv.push_back(lb.loadVector(k.args["k_cache"], {at}, vec,
                                         vec * eltBytes));
              vv.push_back(lb.loadVector(k.args["v_cache"], {at}, vec,
                                         vec * eltBytes));
            }
          }
          SmallVector<Value> state;
          for (int64_t h = 0; h < group; ++h) {
            SmallVector<Value> s;
            Value m = in[h * stride];
            for (int64_t u = 0; u < lay.unroll; ++u) {
              Value acc = vzero(lb);
              for (int64_t j = 0; j < perLane; ++j)
                acc = vfma(lb, qv[h * perLane + j], kv[u * perLane + j], acc);
              Value dot = teamSum(
                  lb, vector::ReductionOp::create(
                          lb.builder(), vector::CombiningKind::ADD, acc));
              if (slope[h])
                dot = lb.add(dot, lb.mul(slope[h],
                                         lb.sub(lb.indexToF32(key[u]),
                                                lb.indexToF32(pos))));
              s.push_back(select(lb, valid[u], dot, lb.f32(-INFINITY)));
              m = lb.fmax(m, s.back());
            }
            Value safe = safeMax(lb, m);
            Value correction = lb.exp(lb.sub(in[h * stride], safe));
            Value sum = lb.mul(in[h * stride + 1], correction);
            SmallVector<Value> o;
            Value cv = broadcast(lb, correction);
            for (int64_t j = 0; j < perLane; ++j)
              o.push_back(arith::MulFOp::create(lb.builder(),
                                                in[h * stride + 2 + j], cv));
            for (int64_t u = 0; u < lay.unroll; ++u) {
              Value p = lb.exp(lb.sub(s[u], safe));
              sum = lb.add(sum, p);
              Value pv = broadcast(lb, p);
              for (int64_t j = 0; j < perLane; ++j)
                o[j] = vfma(lb, pv, vv[u * perLane + j], o[j]);
            }
            state.push_back(m);
            state.push_back(sum);
            state.append(o.begin(), o.end());
          }
          return state;
        });

    // The teams' states into shared memory.
    auto statAt = [&](KernelBuilder &lb, Value t, int64_t h, int64_t field) {
      return lb.add(lb.mul(lb.add(lb.mul(t, lb.index(group)), lb.index(h)),
                           lb.index(2)),
                    lb.index(field));
    };
    auto outAt = [&](KernelBuilder &lb, Value t, Value h, Value f) {
      return lb.add(lb.mul(lb.add(lb.mul(t, lb.index(group)), h),
                           lb.index(d)),
                    f);
    };
    for (int64_t h = 0; h < group; ++h) {
      ib.ifThen(isZero(ib, laneInKey), [&](KernelBuilder &sb) {
        sb.store(st[h * stride], stats, {statAt(sb, team, h, 0)});
        sb.store(st[h * stride + 1], stats, {statAt(sb, team, h, 1)});
      });
      for (int64_t j = 0; j < perLane; ++j) {
        auto put = [&](KernelBuilder &sb) {
          sb.store(st[h * stride + 2 + j], outputs,
                   {outAt(sb, team, sb.index(h), pieceFeature(sb, j))});
        };
        if (lay.full())
          put(ib);
        else
          ib.ifThen(pieceValid(ib, j), put);
      }
    }
    gpu::BarrierOp::create(ib.builder());

    // A thread an output feature of the group: the teams' softmaxes merged.
    Value p = k.args[partials];
    auto partialAt = [&](KernelBuilder &lb, Value h, Value s) {
      return lb.mul(lb.add(lb.mul(lb.add(lb.mul(g, lb.index(group)), h),
                                  lb.index(kMaxSplits)),
                           s),
                    lb.index(d + 2));
    };
    Value one = arith::CmpIOp::create(ib.builder(), arith::CmpIPredicate::eq,
                                      splits, ib.index(1));
    ib.forLoop(tid, ib.index(group * d), kThreads, [&](KernelBuilder &hb,
                                                        ValueRange ov) {
      Value h = hb.div(ov[0], hb.index(d));
      Value f = arith::RemUIOp::create(hb.builder(), ov[0], hb.index(d));
      auto stat = [&](KernelBuilder &lb, int64_t t, int64_t field) {
        return memref::LoadOp::create(
            lb.builder(), stats,
            ValueRange{lb.add(
                lb.mul(lb.add(lb.index(t * group), h), lb.index(2)),
                lb.index(field))});
      };
      Value most = hb.f32(-INFINITY);
      for (int64_t t = 0; t < lay.teams; ++t)
        most = hb.fmax(most, stat(hb, t, 0));
      Value safe = safeMax(hb, most);
      Value total = hb.f32(0.0), acc = hb.f32(0.0);
      for (int64_t t = 0; t < lay.teams; ++t) {
        Value e = hb.exp(hb.sub(stat(hb, t, 0), safe));
        total = hb.add(total, hb.mul(e, stat(hb, t, 1)));
        acc = hb.add(acc, hb.mul(e, memref::LoadOp::create(
                                        hb.builder(), outputs,
                                        ValueRange{outAt(hb, hb.index(t), h,
                                                         f)})));
      }
      Value o = hb.add(hb.mul(g, hb.index(group * d)), ov[0]);
      hb.ifThen(one, [&](KernelBuilder &sb) {
        sb.store(sb.div(acc, total), k.args[out], {o});
      });
      hb.ifThen(arith::XOrIOp::create(
                    hb.builder(), one,
                    arith::ConstantOp::create(hb.builder(),
                                              hb.builder().getBoolAttr(true))),
                [&](KernelBuilder &sb) {
                  Value base = partialAt(sb, h, split);
                  sb.ifThen(isZero(sb, f), [&](KernelBuilder &zb) {
                    zb.store(most, p, {base});
                    zb.store(total, p, {zb.add(base, zb.index(1))});
                  });
                  sb.store(acc, p, {sb.add(base, sb.add(sb.index(2), f))});
                });
    });

    // With several splits: count this one done; the last of the kv head's
    // splits merges them, a thread an output feature.
    ib.ifThen(arith::CmpIOp::create(ib.builder(), arith::CmpIPredicate::ugt,
                                    splits, ib.index(1)),
              [&](KernelBuilder &cb) {
      NVVM::MembarOp::create(cb.builder(), NVVM::MemScopeKind::GPU);
      gpu::BarrierOp::create(cb.builder());
      cb.ifThen(isZero(cb, tid), [&](KernelBuilder &tb) {
        Value oneI = arith::ConstantOp::create(
            tb.builder(), tb.builder().getI32IntegerAttr(1));
        Value before = memref::AtomicRMWOp::create(
            tb.builder(), arith::AtomicRMWKind::addi, oneI, k.args[counters],
            ValueRange{g});
        Value last = arith::CmpIOp::create(
            tb.builder(), arith::CmpIPredicate::eq,
            arith::IndexCastOp::create(tb.builder(),
                                       tb.builder().getIndexType(), before),
            tb.sub(splits, tb.index(1)));
        tb.store(select(tb, last, tb.f32(1.0), tb.f32(0.0)), stats, {flag});
      });
      gpu::BarrierOp::create(cb.builder());
      Value isLast = arith::CmpFOp::create(
          cb.builder(), arith::CmpFPredicate::OEQ,
          memref::LoadOp::create(cb.builder(), stats, ValueRange{flag}),
          cb.f32(1.0));
      cb.ifThen(isLast, [&](KernelBuilder &mb) {
        mb.forLoop(tid, mb.index(group * d), kThreads,
                   [&](KernelBuilder &hb, ValueRange ov) {
          Value h = hb.div(ov[0], hb.index(d));
          Value f = arith::RemUIOp::create(hb.builder(), ov[0], hb.index(d));
          // The splits kMergeChunk at a time, every load of a chunk issued
          // before any is used (a loop of one split a step waited on L2
          // once per split, twice: 32 splits took ~10 us), folded into a
          // running softmax: (max, sum, output).
          Value lastSplit = hb.sub(splits, hb.index(1));
          SmallVector<Value> merged = hb.forLoop(
              hb.index(0), splits, kMergeChunk,
              {hb.f32(-INFINITY), hb.f32(0.0), hb.f32(0.0)},
              [&](KernelBuilder &lb, Value s0, ValueRange in) {
                SmallVector<Value> ms, ls, os, real;
                for (int64_t i = 0; i < kMergeChunk; ++i) {
                  Value s = lb.add(s0, lb.index(i));
                  real.push_back(less(lb, s, splits));
                  Value base = partialAt(lb, h, lb.umin(s, lastSplit));
                  ms.push_back(lb.loadF32(p, {base}));
                  ls.push_back(lb.loadF32(p, {lb.add(base, lb.index(1))}));
                  os.push_back(lb.loadF32(
                      p, {lb.add(base, lb.add(lb.index(2), f))}));
                }
                Value m = in[0];
                for (int64_t i = 0; i < kMergeChunk; ++i)
                  m = lb.fmax(m, select(lb, real[i], ms[i], lb.f32(-INFINITY)));
                Value safe = safeMax(lb, m);
                Value correction = lb.exp(lb.sub(in[0], safe));
                Value sum = lb.mul(in[1], correction);
                Value acc = lb.mul(in[2], correction);
                for (int64_t i = 0; i < kMergeChunk; ++i) {
                  Value e = select(lb, real[i], lb.exp(lb.sub(ms[i], safe)),
                                   lb.f32(0.0));
                  sum = lb.add(sum, lb.mul(e, ls[i]));
                  acc = lb.add(acc, lb.mul(e, os[i]));
                }
                return SmallVector<Value>{m, sum, acc};
              });
          hb.store(hb.div(merged[2], merged[1]), k.args[out],
                   {hb.add(hb.mul(g, hb.index(group * d)), ov[0])});
        });
        // Ready for the next step.
        mb.ifThen(isZero(mb, tid), [&](KernelBuilder &rb) {
          Value zero = arith::ConstantOp::create(
              rb.builder(), rb.builder().getI32IntegerAttr(0));
          memref::StoreOp::create(rb.builder(), zero, k.args[counters],
                                  ValueRange{g});
        });
      });
    });
  });
  endKernel(k, grid(kvHeads, 1, GridScale::One, 1, GridScale::Splits),
            LaunchWhen::Decode);
}

} // namespace decc::gpulowering
