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
// through shared memory (where they are many, a warp's by shuffles first)
// into the block's softmax; with one split that is
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

#include "compiler/Conversion/GPU/GPUHopper.h"
#include "compiler/Conversion/GPU/GPULowering.h"

#include "compiler/Conversion/Common/PositionTables.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include "llvm/Support/MathExtras.h"

#include <functional>

namespace decc::gpulowering {

namespace {

/// Splits' partial outputs a merging thread loads at once.
constexpr int64_t kMergeLoads = 16;

/// The blocks an SM the kernel's registers are capped for, when ptxas can
/// meet the cap without spilling.
constexpr int32_t kDecodeAttentionBlocksPerSM = 4;

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
      : c(c), lay(lay), group(group), d(c.getHeadDim()), heads(c.getNumHeads()),
        vf32(VectorType::get({lay.vec}, kb.builder().getF32Type())), buf(buf),
        stats(stats), outputs(outputs) {
    ImplicitLocOpBuilder &b = kb.builder();
    flag = kb.index(mergedTeams() * group * 2);
    tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
    lane = arith::RemUIOp::create(b, tid, kb.index(32));
    warp = kb.div(tid, kb.index(32));
    laneInKey = arith::RemUIOp::create(b, lane, kb.index(lay.lanesPerKey));
    team = kb.add(kb.mul(warp, kb.index(lay.keysPerWarp)),
                  kb.div(lane, kb.index(lay.lanesPerKey)));
    for (int64_t o = lay.lanesPerKey / 2; o >= 1; o /= 2)
      teamOffsets.push_back(int32_t(o));
  }

  /// The block's query token (0 but in a batched step), its kv head, its
  /// split and the step's splits; with clusters of `clusterBlocks` splits,
  /// the partials that reach global memory are the clusters'. A batched
  /// step's tokens x splits are at most kMaxSplits (the runtime's
  /// stepRecord), so its partials, a token's heads `splits` apart, fit
  /// the buffer a decode step's heads take kMaxSplits apart.
  void placeBlock(KernelBuilder &kb, Value token, Value kvHead,
                  Value blockSplit, Value stepSplits, int64_t clusterBlocks,
                  bool batched) {
    g = kvHead;
    split = blockSplit;
    splits = stepSplits;
    cluster = clusterBlocks;
    merged = cluster > 1 ? kb.div(splits, kb.index(cluster)) : splits;
    firstHead =
        kb.add(kb.mul(token, kb.index(heads)), kb.mul(g, kb.index(group)));
    counter = kb.add(kb.mul(token, kb.index(heads / group)), g);
    splitStride = batched ? splits : kb.index(kMaxSplits);
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
    // With block-aligned steps, keys u * teams + team of a step share their
    // block with the other teams: one table lookup a block of the step.
    SmallVector<Value> blockRows;
    if (alignedBlocks)
      for (int64_t b = 0; b < keysPerStep() / contract::kCacheBlock; ++b)
        blockRows.push_back(blockRowOf(
            lb, lb.umin(lb.add(base, lb.index(b * contract::kCacheBlock)),
                        lastKey)));
    for (int64_t u = 0; u < lay.unroll; ++u) {
      Value kk = lb.add(base, lb.add(lb.index(u * lay.teams), team));
      l.key.push_back(kk);
      l.valid.push_back(less(lb, kk, hi));
      l.row.push_back(lb.umin(kk, lastKey));
      // (A key past the last reads its block's row: finite, and masked.)
      Value row =
          alignedBlocks
              ? lb.add(blockRows[u * lay.teams / contract::kCacheBlock],
                       lb.add(lb.index(u * lay.teams % contract::kCacheBlock),
                              team))
              : cacheRowOf(lb, l.row.back());
      Value at0 = lb.mul(lb.add(cacheRow0, row), lb.index(d));
      for (int64_t j = 0; j < lay.perLane; ++j) {
        Value at = lb.add(at0, pieceFeature(lb, j));
        l.kv.push_back(loadPiece(lb, buf.kCache, at));
        l.vv.push_back(loadPiece(lb, buf.vCache, at));
      }
    }
    return l;
  }

  /// A step's loads as loop-carried values, and back.
  void appendLoads(SmallVector<Value> &to, const KeyLoads &l) const {
    to.append(l.key.begin(), l.key.end());
    to.append(l.valid.begin(), l.valid.end());
    to.append(l.kv.begin(), l.kv.end());
    to.append(l.vv.begin(), l.vv.end());
  }
  KeyLoads takeLoads(ValueRange v) const {
    KeyLoads l;
    int64_t u = lay.unroll, p = lay.unroll * lay.perLane;
    l.key.assign(v.begin(), v.begin() + u);
    l.valid.assign(v.begin() + u, v.begin() + 2 * u);
    l.kv.assign(v.begin() + 2 * u, v.begin() + 2 * u + p);
    l.vv.assign(v.begin() + 2 * u + p, v.begin() + 2 * u + 2 * p);
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
        Value at0 = kb.mul(kb.add(cacheRow0, cacheRowOf(kb, pos)), kb.index(d));
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
          acc = fma(lb, qv[h * perLane + j], lb.toF32(l.kv[u * perLane + j]),
                    acc);
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
          o[j] = fma(lb, pv, lb.toF32(l.vv[u * perLane + j]), o[j]);
      }
      state.push_back(m);
      state.push_back(sum);
      state.append(o.begin(), o.end());
    }
    return state;
  }

  /// The team's online softmax `init` continued over the keys of `first`
  /// (the step at `lo`, already loaded) and every later step up to `hi`
  /// (the last key lastKey) of the cache rows from `cacheRow0`, `unroll`
  /// keys a team a step. Software-pipelined: a step's loads are issued
  /// before the previous step's arithmetic, so a block's steps cost one
  /// load latency and their arithmetic, not a latency each (a split of 128
  /// keys was four dependent round trips to DRAM for the 1.8B at 8k, eight
  /// for the 0.5B's group of 7).
  SmallVector<Value> scanKeys(KernelBuilder &kb, const KeyLoads &first,
                              Value lo, Value hi, Value lastKey, Value pos,
                              Value cacheRow0, ArrayRef<Value> qv,
                              ArrayRef<Value> slope, ValueRange init) {
    int64_t state = init.size();
    SmallVector<Value> carried(init.begin(), init.end());
    appendLoads(carried, first);
    SmallVector<Value> out =
        kb.forLoop(kb.add(lo, kb.index(keysPerStep())), hi, keysPerStep(),
                   carried, [&](KernelBuilder &lb, Value base, ValueRange in) {
                     KeyLoads next = loadKeys(lb, base, hi, lastKey, cacheRow0);
                     SmallVector<Value> st = foldKeys(
                         lb, in.take_front(state),
                         takeLoads(in.drop_front(state)), pos, qv, slope);
                     appendLoads(st, next);
                     return st;
                   });
    return foldKeys(kb, ValueRange(out).take_front(state),
                    takeLoads(ValueRange(out).drop_front(state)), pos, qv,
                    slope);
  }

  /// Partials the kv head's last block merges from global memory.
  Value mergedPartials() const { return merged; }

  /// Keys the block takes in one step of its teams.
  int64_t keysPerStep() const { return lay.teams * lay.unroll; }

  /// The states of a warp's teams (keysPerWarp of them, lanes that hold
  /// the same features lanesPerKey apart) merged by xor-shuffles, so that
  /// every team of the warp holds the warp's softmax: the block's merge
  /// through shared memory then walks a state a warp, not a team (the
  /// 0.5B's 16 teams of 8 lanes took 2 us a layer to merge there, each
  /// thread walking every team's max, sum and output for its features,
  /// H200, docs/PERF.md).
  SmallVector<Value> mergeWarpTeams(KernelBuilder &kb, ArrayRef<Value> st) {
    ImplicitLocOpBuilder &b = kb.builder();
    SmallVector<Value> s(st.begin(), st.end());
    int64_t stride = 2 + lay.perLane;
    auto shuffle = [&](Value v, int32_t offset) {
      return gpu::ShuffleOp::create(b, v, offset, 32, gpu::ShuffleMode::XOR)
          .getShuffleResult();
    };
    for (int32_t offset = lay.lanesPerKey; offset < 32; offset *= 2)
      for (int64_t h = 0; h < group; ++h) {
        Value m = s[h * stride], l = s[h * stride + 1];
        Value mOther = shuffle(m, offset), lOther = shuffle(l, offset);
        Value most = kb.fmax(m, mOther);
        Value safe = safeMax(kb, most);
        Value mine = kb.exp(kb.sub(m, safe));
        Value theirs = kb.exp(kb.sub(mOther, safe));
        s[h * stride] = most;
        s[h * stride + 1] = kb.add(kb.mul(l, mine), kb.mul(lOther, theirs));
        for (int64_t j = 0; j < lay.perLane; ++j) {
          Value o = s[h * stride + 2 + j];
          Value other = zero(kb);
          for (int64_t i = 0; i < lay.vec; ++i)
            other = vector::InsertOp::create(
                b, shuffle(vector::ExtractOp::create(b, o, i), offset), other,
                i);
          s[h * stride + 2 + j] =
              fma(kb, broadcast(kb, theirs), other,
                  arith::MulFOp::create(b, o, broadcast(kb, mine)));
        }
      }
    return s;
  }

  /// Whether a warp's teams merge by shuffles first (mergeWarpTeams): where
  /// the block's merge would have each thread walk 32 or more team states
  /// (its features x the teams). H200, decode: Qwen2.5-0.5B (16 teams,
  /// groups of 7: 56 a thread) 1.4% faster, InternLM2-chat-7B (8 teams,
  /// groups of 4: 32) 0.9%, but InternVL2-2B's 1.8B (8 teams, groups of 2:
  /// 16) 1-2% slower and Phi-3 and MPT (8) level (docs/PERF.md).
  static bool mergesWarps(const KeyTeams &lay, int64_t group, int64_t d) {
    return lay.keysPerWarp > 1 &&
           llvm::divideCeil(group * d, kThreads) * lay.teams >= 32;
  }
  /// States the block's merge walks: a warp's or a team's.
  static int64_t mergedTeams(const KeyTeams &lay, int64_t group, int64_t d) {
    return mergesWarps(lay, group, d) ? kWarpsPerBlock : lay.teams;
  }
  int64_t mergedTeams() const { return mergedTeams(lay, group, d); }

  /// The teams' states into shared memory (merged in each warp first
  /// where mergesWarps, the warp's first team writing), then a thread an
  /// output feature of the group merging them: the output itself with one
  /// split, else the split's partial softmax.
  void mergeTeams(KernelBuilder &kb, ArrayRef<Value> teamStates) {
    int64_t stride = 2 + lay.perLane;
    SmallVector<Value> st(teamStates.begin(), teamStates.end());
    // The state's slot in shared memory, and which teams write it (null:
    // every team).
    Value slot = team, writer;
    if (mergesWarps(lay, group, d)) {
      st = mergeWarpTeams(kb, teamStates);
      slot = warp;
      writer = less(kb, lane, kb.index(lay.lanesPerKey));
    }
    // `put` where every one of `conds` that is not null holds.
    auto when = [&](ArrayRef<Value> conds,
                    const std::function<void(KernelBuilder &)> &put) {
      Value all;
      for (Value c : conds)
        if (c)
          all = all ? arith::AndIOp::create(kb.builder(), all, c) : c;
      if (all)
        kb.ifThen(all, put);
      else
        put(kb);
    };
    for (int64_t h = 0; h < group; ++h) {
      when({writer, isZero(kb, laneInKey)}, [&](KernelBuilder &sb) {
        sb.store(st[h * stride], stats, {statAt(sb, slot, sb.index(h), 0)});
        sb.store(st[h * stride + 1], stats, {statAt(sb, slot, sb.index(h), 1)});
      });
      for (int64_t j = 0; j < lay.perLane; ++j)
        when({writer, lay.full() ? Value() : pieceValid(kb, j)},
             [&](KernelBuilder &sb) {
               sb.store(st[h * stride + 2 + j], outputs,
                        {outAt(sb, slot, sb.index(h), pieceFeature(sb, j))});
             });
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
          for (int64_t t = 0; t < mergedTeams(); ++t)
            most = hb.fmax(most, stat(hb, t, h, 0));
          Value safe = safeMax(hb, most);
          Value total = hb.f32(0.0), acc = hb.f32(0.0);
          for (int64_t t = 0; t < mergedTeams(); ++t) {
            Value e = hb.exp(hb.sub(stat(hb, t, h, 0), safe));
            total = hb.add(total, hb.mul(e, stat(hb, t, h, 1)));
            acc = hb.add(
                acc, hb.mul(e, memref::LoadOp::create(
                                   hb.builder(), outputs,
                                   ValueRange{outAt(hb, hb.index(t), h, f)})));
          }
          if (cluster > 1) {
            // The block's partial stays in its shared memory for the
            // cluster's merge.
            hb.ifThen(isZero(hb, f), [&](KernelBuilder &zb) {
              Value at = zb.add(zb.index(group * d), zb.mul(h, zb.index(2)));
              zb.store(most, blockPartial, {at});
              zb.store(total, blockPartial, {zb.add(at, zb.index(1))});
            });
            hb.store(acc, blockPartial, {ov[0]});
            return;
          }
          hb.ifThen(one, [&](KernelBuilder &sb) {
            sb.store(sb.div(acc, total), buf.out, {outputAt(sb, ov[0])});
          });
          hb.ifThen(negate(hb, one), [&](KernelBuilder &sb) {
            writePartial(sb, h, f, split, most, total, acc);
          });
        });
  }

  /// Shared memory of a cluster's merge: the block's partial softmax,
  /// [head][d] unnormalized outputs then [head][max, sum].
  static int64_t blockPartialFloats(int64_t group, int64_t d) {
    return group * (d + 2);
  }
  void placeBlockPartial(Value buffer) { blockPartial = buffer; }

  /// The cluster's splits merged (every block's partial is in its shared
  /// memory): block r of the cluster takes the r-th share of the group's
  /// features, reading each feature's partial from all the cluster's
  /// blocks at once. With one cluster a kv head that is the output; else
  /// the cluster's partial goes to global memory, at the cluster's index,
  /// for mergeSplits.
  void mergeCluster(KernelBuilder &kb) {
    clusterBarrier(kb);
    int64_t features = group * d;
    int64_t share = (features + cluster - 1) / cluster;
    Value rank = arith::RemUIOp::create(kb.builder(), split, kb.index(cluster));
    Value clusterIndex = kb.div(split, kb.index(cluster));
    Value oneCluster = arith::CmpIOp::create(
        kb.builder(), arith::CmpIPredicate::eq, merged, kb.index(1));
    SmallVector<Value> remote;
    for (int64_t r = 0; r < cluster; ++r)
      remote.push_back(clusterShared(kb, blockPartial, kb.index(r)));
    kb.forLoop(
        tid, kb.index(share), kThreads, [&](KernelBuilder &lb, ValueRange iv) {
          Value o = lb.add(lb.mul(rank, lb.index(share)), iv[0]);
          lb.ifThen(less(lb, o, lb.index(features)), [&](KernelBuilder &fb) {
            Value h = fb.div(o, fb.index(d));
            Value f = arith::RemUIOp::create(fb.builder(), o, fb.index(d));
            Value statAt = fb.add(fb.index(features), fb.mul(h, fb.index(2)));
            // Every block's loads issued before any is used.
            SmallVector<Value> m, l, a;
            for (int64_t r = 0; r < cluster; ++r) {
              m.push_back(loadClusterF32(fb, remote[r], statAt));
              l.push_back(
                  loadClusterF32(fb, remote[r], fb.add(statAt, fb.index(1))));
              a.push_back(loadClusterF32(fb, remote[r], o));
            }
            Value most = fb.f32(-INFINITY);
            for (int64_t r = 0; r < cluster; ++r)
              most = fb.fmax(most, m[r]);
            Value safe = safeMax(fb, most);
            Value total = fb.f32(0.0), acc = fb.f32(0.0);
            for (int64_t r = 0; r < cluster; ++r) {
              Value e = fb.exp(fb.sub(m[r], safe));
              total = fb.add(total, fb.mul(e, l[r]));
              acc = fb.add(acc, fb.mul(e, a[r]));
            }
            fb.ifThen(oneCluster, [&](KernelBuilder &sb) {
              sb.store(sb.div(acc, total), buf.out, {outputAt(sb, o)});
            });
            fb.ifThen(negate(fb, oneCluster), [&](KernelBuilder &sb) {
              writePartial(sb, h, f, clusterIndex, most, total, acc);
            });
          });
        });
    // No block leaves (its shared memory with it) before every block of
    // the cluster has read it.
    clusterBarrier(kb);
  }

  /// With several partials in global memory (the splits', or the
  /// clusters'): counts this block done (after a fence), and the last of
  /// the kv head's blocks merges them; `onCounted(kb, 2)` after the count,
  /// `(kb, 3)` after the merge (the trace's phases).
  void mergeSplits(
      KernelBuilder &kb,
      llvm::function_ref<void(KernelBuilder &, int64_t)> onCounted = {}) {
    NVVM::MembarOp::create(kb.builder(), NVVM::MemScopeKind::GPU);
    gpu::BarrierOp::create(kb.builder());
    kb.ifThen(isZero(kb, tid), [&](KernelBuilder &tb) {
      Value oneI = arith::ConstantOp::create(tb.builder(),
                                             tb.builder().getI32IntegerAttr(1));
      Value before =
          memref::AtomicRMWOp::create(tb.builder(), arith::AtomicRMWKind::addi,
                                      oneI, buf.counters, ValueRange{counter});
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
    if (onCounted)
      onCounted(kb, 2);
    kb.ifThen(isLast, [&](KernelBuilder &mb) {
      // The partial outputs do not depend on the splits' weights: their
      // loads go out with the weights' (max, sum) loads, one round trip
      // to L2 where there were two.
      std::optional<SplitLoads> first = loadFirstSplits(mb);
      splitWeights(mb);
      gpu::BarrierOp::create(mb.builder());
      sumSplits(mb, first);
      if (onCounted)
        onCounted(mb, 3);
      // Ready for the next step.
      mb.ifThen(isZero(mb, tid), [&](KernelBuilder &rb) {
        Value zero = arith::ConstantOp::create(
            rb.builder(), rb.builder().getI32IntegerAttr(0));
        memref::StoreOp::create(rb.builder(), zero, buf.counters,
                                ValueRange{counter});
      });
    });
  }

private:
  /// Feature f of head h's partial softmax (max and sum with feature 0)
  /// at index s of the kv head's partials in global memory.
  void writePartial(KernelBuilder &kb, Value h, Value f, Value s, Value most,
                    Value total, Value acc) {
    kb.ifThen(isZero(kb, f), [&](KernelBuilder &zb) {
      Value at = splitStatAt(zb, h, s);
      zb.store(most, buf.partials, {at});
      zb.store(total, buf.partials, {zb.add(at, zb.index(1))});
    });
    kb.store(acc, buf.partials, {partialOutAt(kb, h, s, f)});
  }

  /// Each split's share of head h's softmax, exp(m_s - M) / L, into
  /// `weights` ([head][split]): a warp a head, its lanes over the splits,
  /// every (max, sum) of the head loaded at once. The merge used to walk
  /// the splits for every output feature, each chunk of splits an L2 round
  /// trip (8 of them a layer at 32 splits for the 1.8B's group of 2).
  void splitWeights(KernelBuilder &kb) {
    Value lastSplit = kb.sub(merged, kb.index(1));
    // Head h's maxima and sums, every split's (lanes over the splits).
    struct HeadStats {
      Value h;
      SmallVector<Value> s, real, m, l;
    };
    auto load = [&](KernelBuilder &hb, Value h) {
      HeadStats st{h, {}, {}, {}, {}};
      for (int64_t i = 0; i < kMaxSplits / 32; ++i) {
        st.s.push_back(hb.add(lane, hb.index(32 * i)));
        st.real.push_back(less(hb, st.s.back(), merged));
        Value at = splitStatAt(hb, h, hb.umin(st.s.back(), lastSplit));
        st.m.push_back(hb.loadF32(buf.partials, {at}));
        st.l.push_back(hb.loadF32(buf.partials, {hb.add(at, hb.index(1))}));
      }
      return st;
    };
    auto weigh = [&](KernelBuilder &hb, const HeadStats &st, Value mine) {
      Value most = hb.f32(-INFINITY);
      for (size_t i = 0; i < st.s.size(); ++i)
        most =
            hb.fmax(most, select(hb, st.real[i], st.m[i], hb.f32(-INFINITY)));
      Value safe =
          safeMax(hb, shuffleReduce(hb, most, kWholeWarp, /*isMax=*/true));
      SmallVector<Value> e;
      Value total = hb.f32(0.0);
      for (size_t i = 0; i < st.s.size(); ++i) {
        e.push_back(
            select(hb, st.real[i], hb.exp(hb.sub(st.m[i], safe)), hb.f32(0.0)));
        total = hb.add(total, hb.mul(e[i], st.l[i]));
      }
      total = shuffleReduce(hb, total, kWholeWarp, /*isMax=*/false);
      for (size_t i = 0; i < st.s.size(); ++i) {
        Value store =
            mine ? arith::AndIOp::create(hb.builder(), mine, st.real[i])
                 : st.real[i];
        hb.ifThen(store, [&](KernelBuilder &sb) {
          sb.store(sb.div(e[i], total), weights,
                   {sb.add(sb.mul(st.h, sb.index(kMaxSplits)), st.s[i])});
        });
      }
    };
    if (group <= kWarpsPerBlock) {
      kb.forLoop(warp, kb.index(group), kWarpsPerBlock,
                 [&](KernelBuilder &hb, ValueRange hv) {
                   weigh(hb, load(hb, hv[0]), Value());
                 });
      return;
    }
    // More heads than warps (the 0.5B's groups of 7): a warp's heads'
    // loads all issued before any is used, one round of L2 loads instead
    // of a round a head.
    std::vector<HeadStats> heads;
    SmallVector<Value> mine;
    for (int64_t k = 0, e = llvm::divideCeil(group, kWarpsPerBlock); k < e;
         ++k) {
      Value h = kb.add(warp, kb.index(k * kWarpsPerBlock));
      mine.push_back(less(kb, h, kb.index(group)));
      heads.push_back(load(kb, kb.umin(h, kb.index(group - 1))));
    }
    for (size_t k = 0; k < heads.size(); ++k)
      weigh(kb, heads[k], mine[k]);
  }

  /// kMergeLoads splits' partial outputs of a thread's piece (4 features
  /// of a head) loaded at once: splits part + j x parts from j0, clamped to
  /// the last (`real`: within the thread's count).
  struct SplitLoads {
    SmallVector<Value> real, s, v;
  };
  /// A thread's piece and part of the sum (sumSplits): `parts` threads a
  /// piece, each every parts-th split.
  struct SumShape {
    int64_t vec, pieces, parts;
  };
  SumShape sumShape() const {
    int64_t vec = d % 4 == 0 ? 4 : 1;
    int64_t pieces = group * d / vec;
    return {vec, pieces, pieces >= kThreads ? 1 : kThreads / pieces};
  }
  /// Splits part, part + parts, ... of the merged partials.
  Value splitCount(KernelBuilder &kb, Value part, int64_t parts) {
    return kb.div(
        kb.add(kb.sub(merged, kb.umin(part, merged)), kb.index(parts - 1)),
        kb.index(parts));
  }
  SplitLoads loadSplits(KernelBuilder &kb, Value piece, Value part, Value j0) {
    SumShape sh = sumShape();
    Value h = kb.div(piece, kb.index(d / sh.vec));
    Value f = kb.mul(
        arith::RemUIOp::create(kb.builder(), piece, kb.index(d / sh.vec)),
        kb.index(sh.vec));
    Value count = splitCount(kb, part, sh.parts);
    Value lastSplit = kb.sub(merged, kb.index(1));
    SplitLoads out;
    for (int64_t i = 0; i < kMergeLoads; ++i) {
      Value j = kb.add(j0, kb.index(i));
      out.real.push_back(less(kb, j, count));
      out.s.push_back(
          kb.umin(kb.add(part, kb.mul(j, kb.index(sh.parts))), lastSplit));
      out.v.push_back(kb.loadVector(buf.partials,
                                    {partialOutAt(kb, h, out.s.back(), f)},
                                    sh.vec, 4 * sh.vec));
    }
    return out;
  }
  /// This thread's piece and part where it has at most one of each (every
  /// shape but groups of more than kThreads pieces): the first
  /// kMergeLoads splits' loads, issued before the splits' weights are
  /// known. A thread past the pieces loads clamped addresses it never
  /// uses.
  std::optional<SplitLoads> loadFirstSplits(KernelBuilder &kb) {
    SumShape sh = sumShape();
    if (sh.parts == 1 && sh.pieces > kThreads)
      return std::nullopt;
    Value piece = sh.parts == 1 ? kb.umin(tid, kb.index(sh.pieces - 1))
                                : arith::RemUIOp::create(kb.builder(), tid,
                                                         kb.index(sh.pieces));
    Value part = sh.parts == 1 ? kb.index(0) : kb.div(tid, kb.index(sh.pieces));
    return loadSplits(kb, piece, part, kb.index(0));
  }

  /// The group's outputs, sum over splits of weight x partial output: a
  /// thread 4 features of a head (16-byte loads) and, when the group has
  /// fewer such pieces than the block threads, every P-th split (the P
  /// parts added through shared memory); kMergeLoads splits' loads issued
  /// before any is used, the first of them (`first`, when a thread has one
  /// piece) before the splits' weights.
  void sumSplits(KernelBuilder &kb, const std::optional<SplitLoads> &first) {
    ImplicitLocOpBuilder &b = kb.builder();
    SumShape sh = sumShape();
    int64_t vec = sh.vec, pieces = sh.pieces, parts = sh.parts;
    VectorType type = VectorType::get({vec}, b.getF32Type());
    auto addLoads = [&](KernelBuilder &lb, Value h, const SplitLoads &l,
                        Value sum) {
      for (int64_t i = 0; i < kMergeLoads; ++i) {
        Value w = memref::LoadOp::create(
            lb.builder(), weights,
            ValueRange{lb.add(lb.mul(h, lb.index(kMaxSplits)), l.s[i])});
        w = select(lb, l.real[i], w, lb.f32(0.0));
        sum = fma(lb, vector::BroadcastOp::create(lb.builder(), type, w),
                  l.v[i], sum);
      }
      return sum;
    };
    auto sumPart = [&](KernelBuilder &pb, Value piece, Value part) {
      Value h = pb.div(piece, pb.index(d / vec));
      Value init = arith::ConstantOp::create(
          pb.builder(),
          DenseElementsAttr::get(type, pb.builder().getF32FloatAttr(0.0)));
      int64_t from = 0;
      if (first) {
        init = addLoads(pb, h, *first, init);
        from = kMergeLoads;
      }
      return pb.forLoop(pb.index(from), splitCount(pb, part, parts),
                        kMergeLoads, {init},
                        [&](KernelBuilder &lb, Value j0, ValueRange acc) {
                          return SmallVector<Value>{addLoads(
                              lb, h, loadSplits(lb, piece, part, j0), acc[0])};
                        })[0];
    };
    auto storeOut = [&](KernelBuilder &sb, Value piece, Value sum) {
      for (int64_t i = 0; i < vec; ++i)
        sb.store(
            vector::ExtractOp::create(sb.builder(), sum, i), buf.out,
            {outputAt(sb, sb.add(sb.mul(piece, sb.index(vec)), sb.index(i)))});
    };
    if (parts == 1) {
      kb.forLoop(tid, kb.index(pieces), kThreads,
                 [&](KernelBuilder &pb, ValueRange pv) {
                   storeOut(pb, pv[0], sumPart(pb, pv[0], pb.index(0)));
                 });
      return;
    }
    // One piece a thread: its part's sum into shared memory, then the
    // first `pieces` threads add the parts.
    kb.ifThen(less(kb, tid, kb.index(parts * pieces)), [&](KernelBuilder &pb) {
      Value piece = arith::RemUIOp::create(pb.builder(), tid, pb.index(pieces));
      Value sum = sumPart(pb, piece, pb.div(tid, pb.index(pieces)));
      for (int64_t i = 0; i < vec; ++i)
        pb.store(vector::ExtractOp::create(pb.builder(), sum, i), partSums,
                 {pb.add(pb.mul(tid, pb.index(vec)), pb.index(i))});
    });
    gpu::BarrierOp::create(b);
    kb.ifThen(less(kb, tid, kb.index(pieces)), [&](KernelBuilder &pb) {
      Value sum = arith::ConstantOp::create(
          pb.builder(),
          DenseElementsAttr::get(type, pb.builder().getF32FloatAttr(0.0)));
      for (int64_t p = 0; p < parts; ++p)
        sum = arith::AddFOp::create(
            pb.builder(), sum,
            pb.loadVector(
                partSums,
                {pb.mul(pb.add(tid, pb.index(p * pieces)), pb.index(vec))},
                vec));
      storeOut(pb, tid, sum);
    });
  }

public:
  /// Shared memory the split merge needs besides the teams' buffers: the
  /// splits' weights ([group][kMaxSplits]) and the parts' sums.
  static int64_t weightFloats(int64_t group) { return group * kMaxSplits; }
  static int64_t partSumFloats() { return 4 * kThreads; }
  void placeMergeBuffers(Value splitWeightsBuffer, Value partSumsBuffer) {
    weights = splitWeightsBuffer;
    partSums = partSumsBuffer;
  }

private:
  /// A piece of a K or V row as the cache stores it: widened to f32 only
  /// where it is used, so a step's loads in flight (two steps' with the
  /// pipelined scan) take half the registers in a half-precision cache.
  Value loadPiece(KernelBuilder &kb, Value cache, Value at) {
    auto type = cast<MemRefType>(cache.getType());
    int64_t eltBytes = type.getElementTypeBitWidth() / 8;
    return vector::LoadOp::create(
        kb.builder(), VectorType::get({lay.vec}, type.getElementType()), cache,
        ValueRange{at}, false, llvm::MaybeAlign(lay.vec * eltBytes));
  }
  static Value select(KernelBuilder &kb, Value cond, Value a, Value v) {
    return arith::SelectOp::create(kb.builder(), cond, a, v);
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
    return kb.mul(kb.add(firstHead, kb.index(h)), kb.index(d));
  }
  /// Where output o (head h x d + feature) of this kv head's group goes.
  Value outputAt(KernelBuilder &kb, Value o) {
    return kb.add(kb.mul(firstHead, kb.index(d)), o);
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
  /// Split s of head h's partial softmax: the d unnormalized outputs
  /// ([head][split][d], so 16-byte loads of them are aligned), then after
  /// every head's outputs its (max, sum) ([head][split][2]).
  Value partialOutAt(KernelBuilder &kb, Value h, Value s, Value f) {
    return kb.add(kb.mul(headSplit(kb, h, s), kb.index(d)), f);
  }
  Value splitStatAt(KernelBuilder &kb, Value h, Value s) {
    return kb.add(kb.index(heads * kMaxSplits * d),
                  kb.mul(headSplit(kb, h, s), kb.index(2)));
  }
  Value headSplit(KernelBuilder &kb, Value h, Value s) {
    return kb.add(kb.mul(kb.add(firstHead, h), splitStride), s);
  }

  AttentionConfigAttr c;
  const KeyTeams &lay;

public:
  /// The cache row of key position `key` (through the block table), and
  /// the first row of the block that holds `key`.
  std::function<Value(KernelBuilder &, Value)> cacheRowOf, blockRowOf;
  /// Whether every step's keys start on a block and a block holds whole
  /// groups of the teams' keys (a split's keys start on a block): then
  /// the teams share one lookup a block (loadKeys).
  bool alignedBlocks = false;
  static bool canAlignBlocks(const KeyTeams &lay, AttentionConfigAttr c) {
    return c.getSlidingWindow() <= 0 &&
           lay.teams * lay.unroll % contract::kCacheBlock == 0 &&
           contract::kCacheBlock % lay.teams == 0;
  }

private:
  int64_t group, d, heads;
  VectorType vf32;
  Value g, split, splits, merged;
  /// The block's first query head (of every token's heads), its kv head's
  /// counter, and the distance between two heads' partials.
  Value firstHead, counter, splitStride;
  int64_t cluster = 1;
  Buffers buf;
  Value stats, outputs, flag, weights, partSums, blockPartial;
  Value tid, lane, warp, laneInKey, team;
  SmallVector<int32_t> teamOffsets;
};

} // namespace

void GPULowering::decodeAttention(CachedAttentionOp op, const std::string &q,
                                  const std::string &out,
                                  const std::string &batchedOut,
                                  Type batchedOutElement,
                                  int64_t slopesOffset) {
  AttentionConfigAttr c = op.getConfig();
  int64_t heads = c.getNumHeads(), kvHeads = c.getNumKvHeads(),
          d = c.getHeadDim();

  // The partial softmax of every (head, split): max, sum, d outputs; and a
  // counter of the splits done per kv head (and token of a batched step).
  using Size = contract::PlanBuffer::Size;
  std::string partials = "partials:" + std::to_string(plan.buffers.size());
  plan.buffers.push_back({partials, Size::Fixed, heads * kMaxSplits * (d + 2)});
  std::string counters = "counters:" + std::to_string(plan.buffers.size());
  plan.buffers.push_back({counters, Size::Fixed, kvHeads * kMaxSplits});
  // A decode step's kernel, then a batched step's: a block per (token, kv
  // head, split), each token at its own position through its own row of
  // the block table, its output where the prompt's O projection reads it.
  for (bool batched : {false, true})
    emitDecodeAttention(op, q, batched ? batchedOut : out,
                        batched ? batchedOutElement : Float32Type::get(ctx),
                        partials, counters, slopesOffset, batched);
}

void GPULowering::emitDecodeAttention(CachedAttentionOp op,
                                      const std::string &q,
                                      const std::string &out, Type outElement,
                                      const std::string &partials,
                                      const std::string &counters,
                                      int64_t slopesOffset, bool batched) {
  AttentionConfigAttr c = op.getConfig();
  Type f32 = Float32Type::get(ctx), i8 = IntegerType::get(ctx, 8),
       i32 = IntegerType::get(ctx, 32), i64 = IntegerType::get(ctx, 64);
  int64_t heads = c.getNumHeads(), kvHeads = c.getNumKvHeads(),
          d = c.getHeadDim();
  int64_t group = heads / kvHeads;
  KeyTeams lay(d, cacheElement.getIntOrFloatBitWidth() / 8, group);
  // Clusters merge one token's splits; a batched step has few splits.
  int64_t clusterBlocks = batched ? 1 : decodeCluster;
  Kernel &k = beginKernel(batched ? "attention_batched" : "attention_decode",
                          {{"arena", i8},
                           {"step", i64},
                           {"positions", i64},
                           {q, f32},
                           {"k_cache", cacheElement},
                           {"v_cache", cacheElement},
                           {"block_table", i32},
                           {partials, f32},
                           {counters, i32},
                           {out, outElement}},
                          /*waitInside=*/true);
  // Asked to fit kDecodeAttentionBlocksPerSM blocks an SM (128 registers a
  // thread): more blocks an SM are more splits and more keys in flight (the
  // MHA shapes' 8k decode 2% faster, measured). Where ptxas can only meet
  // it by spilling (the 1.8B's groups of 2 hold two steps of 8 keys: 20
  // bytes, 3% slower), the driver assembles the kernel without it
  // (compiler/Target/RegisterCaps.h).
  requestOccupancy(k, kDecodeAttentionBlocksPerSM);
  KernelBuilder &kb = *k.kb;
  // Shared: every team's (or merged warp's) max and sum per head
  // ([team][head][2]) and the last-block flag, and the teams' outputs
  // ([team][head][d]).
  int64_t teamStates = DecodeAttentionKernel::mergedTeams(lay, group, d);
  Value stats = sharedFloats(k, teamStates * group * 2 + 1);
  Value outputs = sharedFloats(k, teamStates * group * d);
  DecodeAttentionKernel::Buffers buf{k.args[q],         k.args["k_cache"],
                                     k.args["v_cache"], k.args["positions"],
                                     k.args[partials],  k.args[counters],
                                     k.args[out]};
  DecodeAttentionKernel kernel(kb, c, lay, group, buf, stats, outputs);
  kernel.placeMergeBuffers(
      sharedFloats(k, DecodeAttentionKernel::weightFloats(group)),
      sharedFloats(k, DecodeAttentionKernel::partSumFloats()));
  Value g = gpu::BlockIdOp::create(*k.b, gpu::Dimension::x),
        token = kb.index(0);
  if (batched) {
    token = kb.div(g, kb.index(kvHeads));
    g = arith::RemUIOp::create(kb.builder(), g, kb.index(kvHeads));
  }
  Value split = gpu::BlockIdOp::create(*k.b, gpu::Dimension::y);
  Value splits = step(k, kStepSplits);
  kernel.placeBlock(kb, token, g, split, splits, clusterBlocks, batched);
  if (clusterBlocks > 1) {
    k.cluster = clusterBlocks;
    kernel.placeBlockPartial(
        sharedFloats(k, DecodeAttentionKernel::blockPartialFloats(group, d)));
  }

  kb.ifThen(less(kb, split, splits), [&](KernelBuilder &ib) {
    // This split's keys of the window.
    Value pos = ib.toIndex(
        memref::LoadOp::create(ib.builder(), buf.positions, ValueRange{token}));
    Value end = ib.add(pos, ib.index(1));
    Value begin = windowBegin(ib, c, end);
    Value keys = ib.sub(end, begin);
    Value chunk = ib.div(ib.add(keys, ib.sub(splits, ib.index(1))), splits);
    kernel.alignedBlocks = DecodeAttentionKernel::canAlignBlocks(lay, c);
    if (kernel.alignedBlocks)
      // Splits of whole blocks (the window begins at 0).
      chunk = arith::AndIOp::create(
          ib.builder(), ib.add(chunk, ib.index(contract::kCacheBlock - 1)),
          ib.index(~(contract::kCacheBlock - 1)));
    Value lo = ib.umin(end, ib.add(begin, ib.mul(split, chunk)));
    Value hi = ib.umin(end, ib.add(lo, chunk));
    Value lastKey = ib.sub(hi, ib.index(1));
    Value cacheRow0 =
        kvHeadRow0(ib, k, op.getLayer(), g, step(ib, k, kStepContext));
    Value pages = pageRow(ib, k, token);
    kernel.cacheRowOf = [this, &k, pages](KernelBuilder &lb, Value key) {
      return cacheRowOf(lb, k, pages, key);
    };
    kernel.blockRowOf = [this, &k, pages](KernelBuilder &lb, Value key) {
      Value first = arith::AndIOp::create(
          lb.builder(), key, lb.index(~(contract::kCacheBlock - 1)));
      return cacheRowOf(lb, k, pages, first);
    };
    SmallVector<Value> slope(group);
    if (slopesOffset >= 0)
      for (int64_t h = 0; h < group; ++h)
        slope[h] =
            ib.loadF32(arenaView(ib, k, f32, slopesOffset),
                       {ib.add(ib.mul(g, ib.index(group)), ib.index(h))});
    // The first step's keys are read before the wait on the kernel that
    // appended this step's key (the older ones were written by earlier
    // steps), so the cache streams while that kernel drains. A batched
    // step that joins a prompt's tokens appended their earlier keys itself:
    // it waits first (the wait below is then a no-op).
    if (batched && programmaticLaunch)
      ib.ifThen(negate(ib, isZero(ib, step(ib, k, kStepJoined))),
                [&](KernelBuilder &wb) { emitDependencyWait(wb); });
    DecodeAttentionKernel::KeyLoads first =
        kernel.loadKeys(ib, lo, hi, lastKey, cacheRow0);
    emitDependencyWait(ib);
    if (programmaticLaunch)
      kernel.reloadNewest(ib, first, pos, cacheRow0);
    SmallVector<Value> qv = kernel.loadQuery(ib);
    SmallVector<Value> st =
        kernel.scanKeys(ib, first, lo, hi, lastKey, pos, cacheRow0, qv, slope,
                        kernel.emptyState(ib));
    // The trace's phases (decc --gpu-trace): 0 the split's keys folded, 1
    // its teams merged and its partial written, 2 the split counted, 3 the
    // splits merged (the last block of a kv head).
    tracePhase(ib, 0);
    kernel.mergeTeams(ib, st);
    tracePhase(ib, 1);
    if (clusterBlocks > 1)
      kernel.mergeCluster(ib);
    ib.ifThen(arith::CmpIOp::create(ib.builder(), arith::CmpIPredicate::ugt,
                                    kernel.mergedPartials(), ib.index(1)),
              [&](KernelBuilder &cb) {
                kernel.mergeSplits(cb, [&](KernelBuilder &pb, int64_t phase) {
                  tracePhase(pb, phase);
                });
              });
  });
  endKernel(k,
            grid(kvHeads, 1, batched ? GridScale::Tokens : GridScale::One, 1,
                 GridScale::Splits),
            batched ? LaunchWhen::Batched : LaunchWhen::Decode);
}

} // namespace decc::gpulowering
