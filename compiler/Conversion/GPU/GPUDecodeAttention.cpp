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
#include "mlir/Dialect/SCF/IR/SCF.h"
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

/// The kernel's steps over the values they share. A block is (kv head g,
/// split); `ids` and the buffers are the kernel's, made by decodeAttention.
class DecodeAttentionKernel {
public:
  struct Buffers {
    Value q, kCache, vCache, positions, partials, counters, out;
  };
  DecodeAttentionKernel(KernelBuilder &kb, AttentionConfigAttr c,
                        const KeyTeams &lay, int64_t group, Buffers buf,
                        Value stats, Value outputs)
      : c(c), lay(lay), group(group), d(c.getHeadDim()),
        vf32(VectorType::get({lay.vec}, kb.builder().getF32Type())), buf(buf),
        stats(stats), outputs(outputs) {
    ImplicitLocOpBuilder &b = kb.builder();
    flag = kb.index(lay.teams * group * 2);
    tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
    Value lane = arith::RemUIOp::create(b, tid, kb.index(32));
    Value warp = kb.div(tid, kb.index(32));
    laneInKey = arith::RemUIOp::create(b, lane, kb.index(lay.lanesPerKey));
    team = kb.add(kb.mul(warp, kb.index(lay.keysPerWarp)),
                  kb.div(lane, kb.index(lay.lanesPerKey)));
    for (int64_t o = lay.lanesPerKey / 2; o >= 1; o /= 2)
      teamOffsets.push_back(int32_t(o));
  }

  /// The block's kv head, its split and the step's splits.
  void placeBlock(Value kvHead, Value blockSplit, Value stepSplits) {
    g = kvHead;
    split = blockSplit;
    splits = stepSplits;
  }

  /// This lane's pieces of every head's query ([head][piece]), scaled; a
  /// piece past the row is 0, so it adds nothing to the score.
  SmallVector<Value> loadQuery(KernelBuilder &kb) {
    SmallVector<Value> qv;
    Value scale = broadcast(kb, kb.f32(c.getSoftmaxScale()));
    for (int64_t h = 0; h < group; ++h)
      for (int64_t j = 0; j < lay.perLane; ++j) {
        Value v =
            kb.loadVector(buf.q, {kb.add(headBase(kb, h), pieceFeature(kb, j))},
                          lay.vec, lay.vec == 1 ? 4 : 16);
        v = arith::MulFOp::create(kb.builder(), v, scale);
        if (!lay.full())
          v = select(kb, pieceValid(kb, j), v, zero(kb));
        qv.push_back(v);
      }
    return qv;
  }

  /// A step's keys and their K and V pieces: the team's `unroll` keys from
  /// `base`, their rows clamped to `lastKey`.
  struct KeyLoads {
    SmallVector<Value> key, row, valid, kv, vv;
  };

  KeyLoads loadKeys(KernelBuilder &lb, Value base, Value hi, Value lastKey,
                    Value cacheRow0) {
    KeyLoads l;
    for (int64_t u = 0; u < lay.unroll; ++u) {
      Value kk = lb.add(base, lb.add(lb.index(u * lay.teams), team));
      l.key.push_back(kk);
      l.valid.push_back(less(lb, kk, hi));
      l.row.push_back(lb.umin(kk, lastKey));
      Value at0 = lb.mul(lb.add(cacheRow0, l.row.back()), lb.index(d));
      for (int64_t j = 0; j < lay.perLane; ++j) {
        Value at = lb.add(at0, pieceFeature(lb, j));
        l.kv.push_back(loadPiece(lb, buf.kCache, at));
        l.vv.push_back(loadPiece(lb, buf.vCache, at));
      }
    }
    return l;
  }

  /// Loads of `l` made before the kernel waited on its predecessor: the
  /// row of the newest key (`pos`, which the previous kernel appended) is
  /// read again, by the one team that has it.
  void reloadNewest(KernelBuilder &kb, KeyLoads &l, Value pos,
                    Value cacheRow0) {
    for (int64_t u = 0; u < lay.unroll; ++u) {
      Value newest = arith::CmpIOp::create(
          kb.builder(), arith::CmpIPredicate::eq, l.row[u], pos);
      SmallVector<Value> held;
      for (int64_t j = 0; j < lay.perLane; ++j) {
        held.push_back(l.kv[u * lay.perLane + j]);
        held.push_back(l.vv[u * lay.perLane + j]);
      }
      auto ifOp = scf::IfOp::create(kb.builder(), ValueRange(held).getTypes(),
                                    newest, /*withElseRegion=*/true);
      {
        OpBuilder::InsertionGuard guard(kb.builder());
        kb.builder().setInsertionPointToStart(ifOp.thenBlock());
        Value at0 = kb.mul(kb.add(cacheRow0, pos), kb.index(d));
        SmallVector<Value> fresh;
        for (int64_t j = 0; j < lay.perLane; ++j) {
          Value at = kb.add(at0, pieceFeature(kb, j));
          fresh.push_back(loadPiece(kb, buf.kCache, at));
          fresh.push_back(loadPiece(kb, buf.vCache, at));
        }
        scf::YieldOp::create(kb.builder(), fresh);
        kb.builder().setInsertionPointToStart(ifOp.elseBlock());
        scf::YieldOp::create(kb.builder(), held);
      }
      for (int64_t j = 0; j < lay.perLane; ++j) {
        l.kv[u * lay.perLane + j] = ifOp.getResult(2 * j);
        l.vv[u * lay.perLane + j] = ifOp.getResult(2 * j + 1);
      }
    }
  }

  /// The team's online softmax before any key: per head, its max, its sum
  /// and this lane's output pieces.
  SmallVector<Value> emptyState(KernelBuilder &kb) {
    SmallVector<Value> init;
    for (int64_t h = 0; h < group; ++h) {
      init.push_back(kb.f32(-INFINITY));
      init.push_back(kb.f32(0.0));
      for (int64_t j = 0; j < lay.perLane; ++j)
        init.push_back(zero(kb));
    }
    return init;
  }

  /// The team's online softmax `in` with the keys of `l` folded in.
  SmallVector<Value> foldKeys(KernelBuilder &lb, ValueRange in,
                              const KeyLoads &l, Value pos, ArrayRef<Value> qv,
                              ArrayRef<Value> slope) {
    int64_t perLane = lay.perLane, stride = 2 + perLane;
    SmallVector<Value> state;
    for (int64_t h = 0; h < group; ++h) {
      SmallVector<Value> s;
      Value m = in[h * stride];
      for (int64_t u = 0; u < lay.unroll; ++u) {
        Value acc = zero(lb);
        for (int64_t j = 0; j < perLane; ++j)
          acc = fma(lb, qv[h * perLane + j], l.kv[u * perLane + j], acc);
        Value dot =
            shuffleReduce(lb,
                          vector::ReductionOp::create(
                              lb.builder(), vector::CombiningKind::ADD, acc),
                          teamOffsets, /*isMax=*/false);
        if (slope[h])
          dot = lb.add(dot, lb.mul(slope[h], lb.sub(lb.indexToF32(l.key[u]),
                                                    lb.indexToF32(pos))));
        s.push_back(select(lb, l.valid[u], dot, lb.f32(-INFINITY)));
        m = lb.fmax(m, s.back());
      }
      Value safe = safeMax(lb, m);
      Value correction = lb.exp(lb.sub(in[h * stride], safe));
      Value sum = lb.mul(in[h * stride + 1], correction);
      Value cv = broadcast(lb, correction);
      SmallVector<Value> o;
      for (int64_t j = 0; j < perLane; ++j)
        o.push_back(
            arith::MulFOp::create(lb.builder(), in[h * stride + 2 + j], cv));
      for (int64_t u = 0; u < lay.unroll; ++u) {
        Value p = lb.exp(lb.sub(s[u], safe));
        sum = lb.add(sum, p);
        Value pv = broadcast(lb, p);
        for (int64_t j = 0; j < perLane; ++j)
          o[j] = fma(lb, pv, l.vv[u * perLane + j], o[j]);
      }
      state.push_back(m);
      state.push_back(sum);
      state.append(o.begin(), o.end());
    }
    return state;
  }

  /// The team's online softmax `init` continued over keys [lo, hi) (the
  /// last lastKey) of the cache rows from `cacheRow0`, `unroll` keys a team
  /// a step, every key's and value's loads first, then the arithmetic.
  SmallVector<Value> scanKeys(KernelBuilder &kb, Value lo, Value hi,
                              Value lastKey, Value pos, Value cacheRow0,
                              ArrayRef<Value> qv, ArrayRef<Value> slope,
                              ValueRange init) {
    return kb.forLoop(lo, hi, keysPerStep(), init,
                      [&](KernelBuilder &lb, Value base, ValueRange in) {
                        KeyLoads l = loadKeys(lb, base, hi, lastKey, cacheRow0);
                        return foldKeys(lb, in, l, pos, qv, slope);
                      });
  }

  /// Keys the block takes in one step of its teams.
  int64_t keysPerStep() const { return lay.teams * lay.unroll; }

  /// The teams' states into shared memory, then a thread an output feature
  /// of the group merging them: the output itself with one split, else the
  /// split's partial softmax.
  void mergeTeams(KernelBuilder &kb, ArrayRef<Value> st) {
    int64_t stride = 2 + lay.perLane;
    for (int64_t h = 0; h < group; ++h) {
      kb.ifThen(isZero(kb, laneInKey), [&](KernelBuilder &sb) {
        sb.store(st[h * stride], stats, {statAt(sb, team, sb.index(h), 0)});
        sb.store(st[h * stride + 1], stats, {statAt(sb, team, sb.index(h), 1)});
      });
      for (int64_t j = 0; j < lay.perLane; ++j) {
        auto put = [&](KernelBuilder &sb) {
          sb.store(st[h * stride + 2 + j], outputs,
                   {outAt(sb, team, sb.index(h), pieceFeature(sb, j))});
        };
        if (lay.full())
          put(kb);
        else
          kb.ifThen(pieceValid(kb, j), put);
      }
    }
    gpu::BarrierOp::create(kb.builder());
    Value one = arith::CmpIOp::create(kb.builder(), arith::CmpIPredicate::eq,
                                      splits, kb.index(1));
    kb.forLoop(
        tid, kb.index(group * d), kThreads,
        [&](KernelBuilder &hb, ValueRange ov) {
          Value h = hb.div(ov[0], hb.index(d));
          Value f = arith::RemUIOp::create(hb.builder(), ov[0], hb.index(d));
          Value most = hb.f32(-INFINITY);
          for (int64_t t = 0; t < lay.teams; ++t)
            most = hb.fmax(most, stat(hb, t, h, 0));
          Value safe = safeMax(hb, most);
          Value total = hb.f32(0.0), acc = hb.f32(0.0);
          for (int64_t t = 0; t < lay.teams; ++t) {
            Value e = hb.exp(hb.sub(stat(hb, t, h, 0), safe));
            total = hb.add(total, hb.mul(e, stat(hb, t, h, 1)));
            acc = hb.add(
                acc, hb.mul(e, memref::LoadOp::create(
                                   hb.builder(), outputs,
                                   ValueRange{outAt(hb, hb.index(t), h, f)})));
          }
          hb.ifThen(one, [&](KernelBuilder &sb) {
            sb.store(sb.div(acc, total), buf.out, {outputAt(sb, ov[0])});
          });
          hb.ifThen(negate(hb, one), [&](KernelBuilder &sb) {
            Value base = partialAt(sb, h, split);
            sb.ifThen(isZero(sb, f), [&](KernelBuilder &zb) {
              zb.store(most, buf.partials, {base});
              zb.store(total, buf.partials, {zb.add(base, zb.index(1))});
            });
            sb.store(acc, buf.partials, {sb.add(base, sb.add(sb.index(2), f))});
          });
        });
  }

  /// With several splits: counts this one done (after a fence), and the
  /// last of the kv head's splits merges them, a thread an output feature.
  void mergeSplits(KernelBuilder &kb) {
    NVVM::MembarOp::create(kb.builder(), NVVM::MemScopeKind::GPU);
    gpu::BarrierOp::create(kb.builder());
    kb.ifThen(isZero(kb, tid), [&](KernelBuilder &tb) {
      Value oneI = arith::ConstantOp::create(tb.builder(),
                                             tb.builder().getI32IntegerAttr(1));
      Value before =
          memref::AtomicRMWOp::create(tb.builder(), arith::AtomicRMWKind::addi,
                                      oneI, buf.counters, ValueRange{g});
      Value last = arith::CmpIOp::create(
          tb.builder(), arith::CmpIPredicate::eq,
          arith::IndexCastOp::create(tb.builder(), tb.builder().getIndexType(),
                                     before),
          tb.sub(splits, tb.index(1)));
      tb.store(select(tb, last, tb.f32(1.0), tb.f32(0.0)), stats, {flag});
    });
    gpu::BarrierOp::create(kb.builder());
    Value isLast = arith::CmpFOp::create(
        kb.builder(), arith::CmpFPredicate::OEQ,
        memref::LoadOp::create(kb.builder(), stats, ValueRange{flag}),
        kb.f32(1.0));
    kb.ifThen(isLast, [&](KernelBuilder &mb) {
      mb.forLoop(tid, mb.index(group * d), kThreads,
                 [&](KernelBuilder &hb, ValueRange ov) {
                   Value h = hb.div(ov[0], hb.index(d));
                   Value f =
                       arith::RemUIOp::create(hb.builder(), ov[0], hb.index(d));
                   SmallVector<Value> merged = mergeSplitsOf(hb, h, f);
                   hb.store(hb.div(merged[2], merged[1]), buf.out,
                            {outputAt(hb, ov[0])});
                 });
      // Ready for the next step.
      mb.ifThen(isZero(mb, tid), [&](KernelBuilder &rb) {
        Value zero = arith::ConstantOp::create(
            rb.builder(), rb.builder().getI32IntegerAttr(0));
        memref::StoreOp::create(rb.builder(), zero, buf.counters,
                                ValueRange{g});
      });
    });
  }

private:
  /// Feature f of head h merged over the splits' partial softmaxes:
  /// (max, sum, output). kMergeChunk splits at a time, every load of a
  /// chunk issued before any is used (a loop of one split a step waited
  /// on L2 once per split, twice: 32 splits took ~10 us).
  SmallVector<Value> mergeSplitsOf(KernelBuilder &kb, Value h, Value f) {
    Value lastSplit = kb.sub(splits, kb.index(1));
    return kb.forLoop(
        kb.index(0), splits, kMergeChunk,
        {kb.f32(-INFINITY), kb.f32(0.0), kb.f32(0.0)},
        [&](KernelBuilder &lb, Value s0, ValueRange in) {
          SmallVector<Value> ms, ls, os, real;
          for (int64_t i = 0; i < kMergeChunk; ++i) {
            Value s = lb.add(s0, lb.index(i));
            real.push_back(less(lb, s, splits));
            Value base = partialAt(lb, h, lb.umin(s, lastSplit));
            ms.push_back(lb.loadF32(buf.partials, {base}));
            ls.push_back(lb.loadF32(buf.partials, {lb.add(base, lb.index(1))}));
            os.push_back(lb.loadF32(buf.partials,
                                    {lb.add(base, lb.add(lb.index(2), f))}));
          }
          Value m = in[0];
          for (int64_t i = 0; i < kMergeChunk; ++i)
            m = lb.fmax(m, select(lb, real[i], ms[i], lb.f32(-INFINITY)));
          Value safe = safeMax(lb, m);
          Value correction = lb.exp(lb.sub(in[0], safe));
          Value sum = lb.mul(in[1], correction);
          Value acc = lb.mul(in[2], correction);
          for (int64_t i = 0; i < kMergeChunk; ++i) {
            Value e =
                select(lb, real[i], lb.exp(lb.sub(ms[i], safe)), lb.f32(0.0));
            sum = lb.add(sum, lb.mul(e, ls[i]));
            acc = lb.add(acc, lb.mul(e, os[i]));
          }
          return SmallVector<Value>{m, sum, acc};
        });
  }

  Value loadPiece(KernelBuilder &kb, Value cache, Value at) {
    int64_t eltBytes =
        cast<MemRefType>(cache.getType()).getElementTypeBitWidth() / 8;
    return kb.loadVector(cache, {at}, lay.vec, lay.vec * eltBytes);
  }
  static Value select(KernelBuilder &kb, Value cond, Value a, Value v) {
    return arith::SelectOp::create(kb.builder(), cond, a, v);
  }
  static Value negate(KernelBuilder &kb, Value cond) {
    return arith::XOrIOp::create(
        kb.builder(), cond,
        arith::ConstantOp::create(kb.builder(),
                                  kb.builder().getBoolAttr(true)));
  }
  /// A max that is -inf (no key yet) counts as 0, so exp(m - safe) is 0
  /// and never NaN.
  static Value safeMax(KernelBuilder &kb, Value m) {
    Value none = arith::CmpFOp::create(kb.builder(), arith::CmpFPredicate::OEQ,
                                       m, kb.f32(-INFINITY));
    return select(kb, none, kb.f32(0.0), m);
  }
  static Value fma(KernelBuilder &kb, Value a, Value x, Value acc) {
    return vector::FMAOp::create(kb.builder(), a, x, acc);
  }
  // Pieces are vector<vec x f32> even when vec is 1.
  Value broadcast(KernelBuilder &kb, Value scalar) {
    return vector::BroadcastOp::create(kb.builder(), vf32, scalar);
  }
  Value zero(KernelBuilder &kb) {
    return arith::ConstantOp::create(
        kb.builder(),
        DenseElementsAttr::get(vf32, kb.builder().getF32FloatAttr(0.0)));
  }
  // Piece j of this lane: its first feature, and whether it is in the row.
  Value piece(KernelBuilder &kb, int64_t j) {
    return kb.add(laneInKey, kb.index(j * lay.lanesPerKey));
  }
  Value pieceValid(KernelBuilder &kb, int64_t j) {
    return less(kb, piece(kb, j), kb.index(lay.pieces));
  }
  Value pieceFeature(KernelBuilder &kb, int64_t j) {
    Value p = lay.full() ? piece(kb, j)
                         : kb.umin(piece(kb, j), kb.index(lay.pieces - 1));
    return kb.mul(p, kb.index(lay.vec));
  }
  Value headBase(KernelBuilder &kb, int64_t h) {
    return kb.mul(kb.add(kb.mul(g, kb.index(group)), kb.index(h)), kb.index(d));
  }
  /// Where output o (head h x d + feature) of this kv head's group goes.
  Value outputAt(KernelBuilder &kb, Value o) {
    return kb.add(kb.mul(g, kb.index(group * d)), o);
  }
  // Shared memory: [team][head][max, sum] and [team][head][d].
  Value statAt(KernelBuilder &kb, Value t, Value h, int64_t field) {
    return kb.add(kb.mul(kb.add(kb.mul(t, kb.index(group)), h), kb.index(2)),
                  kb.index(field));
  }
  Value stat(KernelBuilder &kb, int64_t t, Value h, int64_t field) {
    return memref::LoadOp::create(
        kb.builder(), stats, ValueRange{statAt(kb, kb.index(t), h, field)});
  }
  Value outAt(KernelBuilder &kb, Value t, Value h, Value f) {
    return kb.add(kb.mul(kb.add(kb.mul(t, kb.index(group)), h), kb.index(d)),
                  f);
  }
  /// Split s of head h's partial softmax: max, sum, d outputs.
  Value partialAt(KernelBuilder &kb, Value h, Value s) {
    return kb.mul(kb.add(kb.mul(kb.add(kb.mul(g, kb.index(group)), h),
                                kb.index(kMaxSplits)),
                         s),
                  kb.index(d + 2));
  }

  AttentionConfigAttr c;
  const KeyTeams &lay;
  int64_t group, d;
  VectorType vf32;
  Value g, split, splits;
  Buffers buf;
  Value stats, outputs, flag;
  Value tid, laneInKey, team;
  SmallVector<int32_t> teamOffsets;
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
  KeyTeams lay(d, cacheElement.getIntOrFloatBitWidth() / 8, group);

  // The partial softmax of every (head, split): max, sum, d outputs; and a
  // counter of the splits done per kv head.
  using Size = contract::PlanBuffer::Size;
  std::string partials = "partials:" + std::to_string(plan.buffers.size());
  plan.buffers.push_back({partials, Size::Fixed, heads * kMaxSplits * (d + 2)});
  std::string counters = "counters:" + std::to_string(plan.buffers.size());
  plan.buffers.push_back({counters, Size::Fixed, kvHeads});
  Kernel &k = beginKernel("attention_decode",
                          {{"arena", i8},
                           {"step", i64},
                           {"positions", i64},
                           {q, f32},
                           {"k_cache", cacheElement},
                           {"v_cache", cacheElement},
                           {partials, f32},
                           {counters, i32},
                           {out, f32}},
                          /*waitInside=*/true);
  KernelBuilder &kb = *k.kb;
  // Shared: every team's max and sum per head ([team][head][2]) and the
  // last-block flag, and the teams' outputs ([team][head][d]).
  Value stats = sharedFloats(k, lay.teams * group * 2 + 1);
  Value outputs = sharedFloats(k, lay.teams * group * d);
  DecodeAttentionKernel::Buffers buf{k.args[q],         k.args["k_cache"],
                                     k.args["v_cache"], k.args["positions"],
                                     k.args[partials],  k.args[counters],
                                     k.args[out]};
  DecodeAttentionKernel kernel(kb, c, lay, group, buf, stats, outputs);
  Value g = gpu::BlockIdOp::create(*k.b, gpu::Dimension::x);
  Value split = gpu::BlockIdOp::create(*k.b, gpu::Dimension::y);
  Value splits = step(k, kStepSplits);
  kernel.placeBlock(g, split, splits);

  kb.ifThen(less(kb, split, splits), [&](KernelBuilder &ib) {
    // This split's keys of the window.
    Value pos = ib.toIndex(memref::LoadOp::create(ib.builder(), buf.positions,
                                                  ValueRange{ib.index(0)}));
    Value end = ib.add(pos, ib.index(1));
    Value begin = windowBegin(ib, c, end);
    Value keys = ib.sub(end, begin);
    Value chunk = ib.div(ib.add(keys, ib.sub(splits, ib.index(1))), splits);
    Value lo = ib.umin(end, ib.add(begin, ib.mul(split, chunk)));
    Value hi = ib.umin(end, ib.add(lo, chunk));
    Value lastKey = ib.sub(hi, ib.index(1));
    Value cacheRow0 =
        kvHeadRow0(ib, k, op.getLayer(), g, step(ib, k, kStepContext));
    SmallVector<Value> slope(group);
    if (slopesOffset >= 0)
      for (int64_t h = 0; h < group; ++h)
        slope[h] =
            ib.loadF32(arenaView(ib, k, f32, slopesOffset),
                       {ib.add(ib.mul(g, ib.index(group)), ib.index(h))});
    // The first step's keys are read before the wait on the kernel that
    // appended this step's key (the older ones were written by earlier
    // steps), so the cache streams while that kernel drains.
    DecodeAttentionKernel::KeyLoads first =
        kernel.loadKeys(ib, lo, hi, lastKey, cacheRow0);
    emitDependencyWait(ib);
    if (programmaticLaunch)
      kernel.reloadNewest(ib, first, pos, cacheRow0);
    SmallVector<Value> qv = kernel.loadQuery(ib);
    SmallVector<Value> st =
        kernel.foldKeys(ib, kernel.emptyState(ib), first, pos, qv, slope);
    st = kernel.scanKeys(ib, ib.add(lo, ib.index(kernel.keysPerStep())), hi,
                         lastKey, pos, cacheRow0, qv, slope, st);
    kernel.mergeTeams(ib, st);
    ib.ifThen(arith::CmpIOp::create(ib.builder(), arith::CmpIPredicate::ugt,
                                    splits, ib.index(1)),
              [&](KernelBuilder &cb) { kernel.mergeSplits(cb); });
  });
  endKernel(k, grid(kvHeads, 1, GridScale::One, 1, GridScale::Splits),
            LaunchWhen::Decode);
}

} // namespace decc::gpulowering
