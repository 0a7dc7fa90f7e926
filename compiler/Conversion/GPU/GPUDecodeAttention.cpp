//===- GPUDecodeAttention.cpp - flash attention of one decode step --------===//
//
// A decode step has one query token and, at long contexts, many keys: the
// keys are split over blocks, and a block works for one KV head and every
// query head of its group, so each key and value row is read once for the
// group (GQA and MQA read 2-7x fewer bytes than a block per query head).
//
// Block (kv head g, split): its 4 warps take every 4th chunk of 32 keys of
// the split's range, a lane a key: the lane scores its key against each
// head of the group (the whole q.k, no shuffle tree per key), the warp keeps
// an online softmax per head, and the value rows are read coalesced, lane L
// accumulating features L, L + 32, ... of every head with each key's weights
// broadcast by shuffles. The warps merge through shared memory into the
// block's partial softmax (max, sum, unnormalized output per head), written
// to a scratch buffer; the last block of the kv head to finish (a counter,
// after a memory fence) merges the splits and writes the output, so the
// step needs no second kernel.
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/GPU/GPULowering.h"

#include "compiler/Conversion/Common/PositionTables.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

namespace decc::gpulowering {

namespace {
constexpr int64_t kChunk = 32;
} // namespace

void GPULowering::decodeAttention(CachedAttentionOp op, const std::string &q,
                                  const std::string &out,
                                  int64_t slopesOffset) {
  AttentionConfigAttr c = op.getConfig();
  Type f32 = Float32Type::get(ctx), i8 = IntegerType::get(ctx, 8),
       i32 = IntegerType::get(ctx, 32), i64 = IntegerType::get(ctx, 64);
  int64_t heads = c.getNumHeads(), kvHeads = c.getNumKvHeads(),
          d = c.getHeadDim();
  int64_t group = heads / kvHeads, perLane = (d + 31) / 32;
  Type cacheElt = cacheElement;
  int64_t eltBytes = cacheElt.getIntOrFloatBitWidth() / 8;

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
  // Shared: every warp's state for every head of the group ([warp][head]
  // [max, sum, d outputs]), then the last-block flag.
  int64_t slot = d + 2, stateFloats = kWarpsPerBlock * group * slot;
  Value shared = sharedFloats(k, stateFloats + 1);
  Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  Value lane = arith::RemUIOp::create(b, tid, kb.index(32));
  Value warp = kb.div(tid, kb.index(32));
  Value g = gpu::BlockIdOp::create(b, gpu::Dimension::x);
  Value split = gpu::BlockIdOp::create(b, gpu::Dimension::y);
  Value splits = step(k, kStepSplits);
  auto sum = [&](KernelBuilder &lb, Value v) { return warpSum(lb, v); };
  auto max = [&](KernelBuilder &lb, Value v) {
    return shuffleReduce(lb, v, kWholeWarp, /*isMax=*/true);
  };
  auto select = [](KernelBuilder &lb, Value cond, Value a, Value v) -> Value {
    return arith::SelectOp::create(lb.builder(), cond, a, v);
  };
  auto isNegInf = [](KernelBuilder &lb, Value v) -> Value {
    return arith::CmpFOp::create(lb.builder(), arith::CmpFPredicate::OEQ, v,
                                 lb.f32(-INFINITY));
  };
  // Feature j of this lane (lane + 32 j), clamped to the head for loads.
  auto feature = [&](KernelBuilder &lb, int64_t j) {
    return lb.add(lane, lb.index(32 * j));
  };
  auto inHead = [&](KernelBuilder &lb, int64_t j) {
    return less(lb, feature(lb, j), lb.index(d));
  };
  auto clamped = [&](KernelBuilder &lb, int64_t j) {
    return d % 32 == 0 ? feature(lb, j)
                       : lb.umin(feature(lb, j), lb.index(d - 1));
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
    Value cacheRow0 =
        ib.mul(ib.add(ib.mul(ib.index(op.getLayer()), ib.index(kvHeads)), g),
               step(ib, k, kStepContext));
    SmallVector<Value> slope(group);
    if (slopesOffset >= 0)
      for (int64_t h = 0; h < group; ++h)
        slope[h] =
            ib.loadF32(arenaView(ib, k, f32, slopesOffset),
                       {ib.add(ib.mul(g, ib.index(group)), ib.index(h))});
    auto qBase = [&](KernelBuilder &lb, int64_t h) {
      return lb.mul(lb.add(lb.mul(g, lb.index(group)), lb.index(h)),
                    lb.index(d));
    };

    // State per head: max, sum, then perLane outputs.
    int64_t stride = 2 + perLane;
    SmallVector<Value> init;
    for (int64_t h = 0; h < group; ++h) {
      init.push_back(ib.f32(-INFINITY));
      init.push_back(ib.f32(0.0));
      for (int64_t j = 0; j < perLane; ++j)
        init.push_back(ib.f32(0.0));
    }
    SmallVector<Value> st = ib.forLoop(
        ib.add(lo, ib.mul(warp, ib.index(kChunk))), hi, kChunk * kWarpsPerBlock,
        init, [&](KernelBuilder &lb, Value base, ValueRange in) {
          ImplicitLocOpBuilder &l = lb.builder();
          Value key = lb.add(base, lane);
          Value valid = less(lb, key, hi);
          Value row = lb.mul(lb.add(cacheRow0, select(lb, valid, key, base)),
                             lb.index(d));
          // q.k for every head, 4 features at a time; the key row is read
          // once for the group.
          SmallVector<Value> dot(group);
          if (d % 4 == 0) {
            auto v4 = VectorType::get({4}, l.getF32Type());
            Value zero = arith::ConstantOp::create(
                l, DenseElementsAttr::get(v4, l.getF32FloatAttr(0.0)));
            // The whole head unrolled, every load of the key row in flight:
            // a loop of 32 features a step freed registers (255 -> 62) but
            // made an H200's decode slower at 8k keys (2.39 -> 2.54 ms a
            // step on InternVL2-2B, docs/PERF.md).
            int64_t step = d;
            SmallVector<Value> part = lb.forLoop(
                lb.index(0), lb.index(d), step, SmallVector<Value>(group, zero),
                [&](KernelBuilder &fb, Value f0, ValueRange in) {
                  SmallVector<Value> acc(in);
                  for (int64_t i = 0; i < step / 4; ++i) {
                    Value f = fb.add(f0, fb.index(4 * i));
                    Value kv = fb.loadVector(k.args["k_cache"],
                                             {fb.add(row, f)}, 4, 4 * eltBytes);
                    for (int64_t h = 0; h < group; ++h) {
                      Value qv = fb.loadVector(
                          k.args[q], {fb.add(qBase(fb, h), f)}, 4, 16);
                      acc[h] =
                          vector::FMAOp::create(fb.builder(), qv, kv, acc[h]);
                    }
                  }
                  return acc;
                });
            for (int64_t h = 0; h < group; ++h)
              dot[h] = vector::ReductionOp::create(
                  l, vector::CombiningKind::ADD, part[h]);
          } else {
            for (int64_t h = 0; h < group; ++h) {
              dot[h] = lb.f32(0.0);
              for (int64_t i = 0; i < d; ++i)
                dot[h] = lb.add(
                    dot[h], lb.mul(lb.loadF32(k.args[q], {lb.add(qBase(lb, h),
                                                                 lb.index(i))}),
                                   lb.loadF32(k.args["k_cache"],
                                              {lb.add(row, lb.index(i))})));
            }
          }
          SmallVector<Value> next, weights, acc;
          for (int64_t h = 0; h < group; ++h) {
            Value s = lb.mul(dot[h], lb.f32(c.getSoftmaxScale()));
            if (slope[h])
              s = lb.add(s, lb.mul(slope[h], lb.sub(lb.indexToF32(key),
                                                    lb.indexToF32(pos))));
            s = select(lb, valid, s, lb.f32(-INFINITY));
            // Key `base` is in range, so the chunk's max is finite.
            Value m = lb.fmax(in[h * stride], max(lb, s));
            Value correction = lb.exp(lb.sub(in[h * stride], m));
            Value p = lb.exp(lb.sub(s, m));
            next.push_back(m);
            next.push_back(
                lb.add(lb.mul(in[h * stride + 1], correction), sum(lb, p)));
            weights.push_back(p);
            for (int64_t j = 0; j < perLane; ++j)
              acc.push_back(lb.mul(in[h * stride + 2 + j], correction));
          }
          Value count = lb.umin(lb.index(kChunk), lb.sub(hi, base));
          Value lastKey = lb.sub(hi, lb.index(1));
          acc = sumWeightedByLane(
              lb, weights, count, acc,
              [&](KernelBuilder &vb, Value i) {
                return vb.mul(
                    vb.add(cacheRow0, vb.umin(vb.add(base, i), lastKey)),
                    vb.index(d));
              },
              [&](KernelBuilder &vb, Value vrow, int64_t j) {
                Value v = vb.loadF32(k.args["v_cache"],
                                     {vb.add(vrow, clamped(vb, j))});
                return d % 32 == 0 ? v
                                   : select(vb, inHead(vb, j), v, vb.f32(0.0));
              });
          SmallVector<Value> state;
          for (int64_t h = 0; h < group; ++h) {
            state.push_back(next[2 * h]);
            state.push_back(next[2 * h + 1]);
            for (int64_t j = 0; j < perLane; ++j)
              state.push_back(acc[h * perLane + j]);
          }
          return state;
        });

    // The warps' states into shared memory; warp w then merges heads w,
    // w + 4, ... into the block's partial softmax.
    auto at = [&](KernelBuilder &lb, Value w, Value h, Value field) {
      return lb.add(
          lb.mul(lb.add(lb.mul(w, lb.index(group)), h), lb.index(slot)), field);
    };
    for (int64_t h = 0; h < group; ++h) {
      Value hv = ib.index(h);
      ib.ifThen(isZero(ib, lane), [&](KernelBuilder &sb) {
        sb.store(st[h * stride], shared, {at(sb, warp, hv, sb.index(0))});
        sb.store(st[h * stride + 1], shared, {at(sb, warp, hv, sb.index(1))});
      });
      for (int64_t j = 0; j < perLane; ++j) {
        auto put = [&](KernelBuilder &sb) {
          sb.store(st[h * stride + 2 + j], shared,
                   {at(sb, warp, hv, sb.add(sb.index(2), feature(sb, j)))});
        };
        if (d % 32 == 0)
          put(ib);
        else
          ib.ifThen(inHead(ib, j), put);
      }
    }
    gpu::BarrierOp::create(ib.builder());
    auto partialAt = [&](KernelBuilder &lb, Value h, Value s) {
      return lb.mul(lb.add(lb.mul(lb.add(lb.mul(g, lb.index(group)), h),
                                  lb.index(kMaxSplits)),
                           s),
                    lb.index(slot));
    };
    ib.forLoop(
        warp, ib.index(group), kWarpsPerBlock,
        [&](KernelBuilder &hb, ValueRange hv) {
          Value h = hv[0];
          Value m[kWarpsPerBlock], most = hb.f32(-INFINITY);
          for (int64_t w = 0; w < kWarpsPerBlock; ++w) {
            m[w] = memref::LoadOp::create(
                hb.builder(), shared,
                ValueRange{at(hb, hb.index(w), h, hb.index(0))});
            most = hb.fmax(most, m[w]);
          }
          // A warp (or the whole block) with no key has max -inf and
          // weighs 0.
          Value safe = select(hb, isNegInf(hb, most), hb.f32(0.0), most);
          Value total = hb.f32(0.0);
          SmallVector<Value> acc(perLane, hb.f32(0.0));
          for (int64_t w = 0; w < kWarpsPerBlock; ++w) {
            Value e = hb.exp(hb.sub(m[w], safe));
            total =
                hb.add(total, hb.mul(e, memref::LoadOp::create(
                                            hb.builder(), shared,
                                            ValueRange{at(hb, hb.index(w), h,
                                                          hb.index(1))})));
            for (int64_t j = 0; j < perLane; ++j)
              acc[j] = hb.add(
                  acc[j],
                  hb.mul(e, memref::LoadOp::create(
                                hb.builder(), shared,
                                ValueRange{
                                    at(hb, hb.index(w), h,
                                       hb.add(hb.index(2), clamped(hb, j)))})));
          }
          Value base = partialAt(hb, h, split);
          Value p = k.args[partials];
          hb.ifThen(isZero(hb, lane), [&](KernelBuilder &sb) {
            sb.store(most, p, {base});
            sb.store(total, p, {sb.add(base, sb.index(1))});
          });
          for (int64_t j = 0; j < perLane; ++j) {
            auto put = [&](KernelBuilder &sb) {
              sb.store(acc[j], p,
                       {sb.add(base, sb.add(sb.index(2), feature(sb, j)))});
            };
            if (d % 32 == 0)
              put(hb);
            else
              hb.ifThen(inHead(hb, j), put);
          }
        });

    // Count this split done; the last of the kv head's splits merges them.
    NVVM::MembarOp::create(ib.builder(), NVVM::MemScopeKind::GPU);
    gpu::BarrierOp::create(ib.builder());
    Value flag = ib.index(stateFloats);
    ib.ifThen(isZero(ib, tid), [&](KernelBuilder &tb) {
      Value one = arith::ConstantOp::create(tb.builder(),
                                            tb.builder().getI32IntegerAttr(1));
      Value before =
          memref::AtomicRMWOp::create(tb.builder(), arith::AtomicRMWKind::addi,
                                      one, k.args[counters], ValueRange{g});
      Value last = arith::CmpIOp::create(
          tb.builder(), arith::CmpIPredicate::eq,
          arith::IndexCastOp::create(tb.builder(), tb.builder().getIndexType(),
                                     before),
          tb.sub(splits, tb.index(1)));
      tb.store(select(tb, last, tb.f32(1.0), tb.f32(0.0)), shared, {flag});
    });
    gpu::BarrierOp::create(ib.builder());
    Value isLast = arith::CmpFOp::create(
        ib.builder(), arith::CmpFPredicate::OEQ,
        memref::LoadOp::create(ib.builder(), shared, ValueRange{flag}),
        ib.f32(1.0));
    ib.ifThen(isLast, [&](KernelBuilder &mb) {
      // Lane s holds split s (at most 32): one max and one sum over the
      // warp give the merged softmax; each split's weight then reaches
      // every lane by a shuffle.
      Value p = k.args[partials];
      mb.forLoop(
          warp, mb.index(group), kWarpsPerBlock,
          [&](KernelBuilder &hb, ValueRange hv) {
            Value h = hv[0];
            Value active = less(hb, lane, splits);
            Value mine = select(hb, active, lane, hb.index(0));
            Value ms =
                select(hb, active, hb.loadF32(p, {partialAt(hb, h, mine)}),
                       hb.f32(-INFINITY));
            Value ls = select(
                hb, active,
                hb.loadF32(p, {hb.add(partialAt(hb, h, mine), hb.index(1))}),
                hb.f32(0.0));
            Value m = max(hb, ms);
            Value safe = select(hb, isNegInf(hb, m), hb.f32(0.0), m);
            Value weight = select(hb, isNegInf(hb, ms), hb.f32(0.0),
                                  hb.exp(hb.sub(ms, safe)));
            Value total = sum(hb, hb.mul(ls, weight));
            SmallVector<Value> init(perLane, hb.f32(0.0));
            Value lastSplit = hb.sub(splits, hb.index(1));
            SmallVector<Value> acc = sumWeightedByLane(
                hb, weight, splits, init,
                [&](KernelBuilder &lb, Value s) {
                  return lb.add(partialAt(lb, h, lb.umin(s, lastSplit)),
                                lb.index(2));
                },
                [&](KernelBuilder &lb, Value base, int64_t j) {
                  return lb.loadF32(p, {lb.add(base, clamped(lb, j))});
                });
            Value inv = hb.div(hb.f32(1.0), total);
            Value outBase =
                hb.mul(hb.add(hb.mul(g, hb.index(group)), h), hb.index(d));
            for (int64_t j = 0; j < perLane; ++j) {
              Value v = hb.mul(acc[j], inv);
              hb.ifThen(inHead(hb, j), [&](KernelBuilder &sb) {
                sb.store(v, k.args[out], {sb.add(outBase, feature(sb, j))});
              });
            }
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
  endKernel(k, grid(kvHeads, 1, GridScale::One, 1, GridScale::Splits),
            LaunchWhen::Decode);
}

} // namespace decc::gpulowering
