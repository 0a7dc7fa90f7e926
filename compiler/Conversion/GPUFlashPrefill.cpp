//===- GPUFlashPrefill.cpp - flash attention of a prompt in half precision ===//
//
// Half-precision builds run a prompt's attention on bf16/f16 tensor cores,
// one mma.sync m16n8k16 per product, f32 accumulation and an f32 online
// softmax (as the reference implementation's own half-precision run
// computes): the FlashAttention-2 structure.
//
// A block is 64 queries of one head, a warp 16 of them: the warp walks the
// keys its rows see, 32 at a time (four 8-key S tiles, two 16-key P.V
// steps), with its Q fragments in registers. The four warps of a block read
// the same key and value rows, so the L1 serves three of the four reads.
//
// Fragments (lane = 4g + t): S = Q.K^T is m16n8k16 over 16 features a
// step, logical columns {2t, 2t+1, 2t+8, 2t+9} read from physical features
// 4t .. 4t+3 (one 8-byte load of a key row, one 16-byte load of a query
// row); S's C fragment holds rows g, g+8 and keys 2t, 2t+1 of its tile, so
// two adjacent S tiles are the A fragment of P.V as they stand; V's B
// fragment is keys {2t, 2t+1, 2t+8, 2t+9} of feature g, four scalar loads.
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/GPULowering.h"

#include "compiler/Conversion/GPUMma.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

namespace decc::gpulowering {

namespace {
constexpr int64_t kRowsPerWarp = 16, kKeyBlock = 32, kKeyTiles = kKeyBlock / 8;

/// Two values as one register of the mma's element type: `lo` in the low
/// half (the lower k index).
Value packPair(KernelBuilder &kb, Value lo, Value hi, Type element) {
  ImplicitLocOpBuilder &b = kb.builder();
  Value pair = vector::FromElementsOp::create(
      b, VectorType::get({2}, lo.getType()), ValueRange{lo, hi});
  if (lo.getType() != element)
    pair = arith::TruncFOp::create(b, VectorType::get({2}, element), pair);
  Value word = vector::BitCastOp::create(
      b, VectorType::get({1}, b.getI32Type()), pair);
  return vector::ExtractOp::create(b, word, ArrayRef<int64_t>{0});
}

/// Four values of `element` as two registers (elements 0, 1 and 2, 3).
std::pair<Value, Value> packQuad(KernelBuilder &kb, Value quad, Type element) {
  ImplicitLocOpBuilder &b = kb.builder();
  if (cast<VectorType>(quad.getType()).getElementType() != element)
    quad = arith::TruncFOp::create(b, VectorType::get({4}, element), quad);
  Value words = vector::BitCastOp::create(
      b, VectorType::get({2}, b.getI32Type()), quad);
  return {vector::ExtractOp::create(b, words, ArrayRef<int64_t>{0}),
          vector::ExtractOp::create(b, words, ArrayRef<int64_t>{1})};
}
} // namespace

void GPULowering::flashPrefillHalf(CachedAttentionOp op,
                                   ArrayRef<Binding> bindings,
                                   const std::string &q, const std::string &out,
                                   int64_t slopesOffset) {
  AttentionConfigAttr c = op.getConfig();
  Type f32 = Float32Type::get(ctx);
  Type element = halfElement; // bf16 or f16: the mma's operand type
  int64_t heads = c.getNumHeads(), d = c.getHeadDim();
  int64_t group = heads / c.getNumKvHeads();
  int64_t steps = d / 16, featureTiles = d / 8;
  Kernel &k = beginKernel("attention_flash_half", bindings);
  KernelBuilder &kb = *k.kb;
  ImplicitLocOpBuilder &b = *k.b;
  Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  Value lane = arith::RemUIOp::create(b, tid, kb.index(32));
  Value warp = kb.div(tid, kb.index(32));
  MmaLane ml = mmaLane(kb, lane);
  Value h = gpu::BlockIdOp::create(b, gpu::Dimension::x);
  Value nTokens = step(k, kTokens);
  Value m0 = kb.add(kb.mul(gpu::BlockIdOp::create(b, gpu::Dimension::y),
                           kb.index(kWarpsPerBlock * kRowsPerWarp)),
                    kb.mul(warp, kb.index(kRowsPerWarp)));
  auto select = [](KernelBuilder &lb, Value cond, Value a, Value v) -> Value {
    return arith::SelectOp::create(lb.builder(), cond, a, v);
  };
  auto cmp = [](KernelBuilder &lb, arith::CmpIPredicate p, Value a,
                Value v) -> Value {
    return arith::CmpIOp::create(lb.builder(), p, a, v);
  };
  auto positionOf = [&](KernelBuilder &lb, Value token) {
    return lb.toIndex(memref::LoadOp::create(lb.builder(), k.args["positions"],
                                             ValueRange{token}));
  };
  auto firstKey = [&](KernelBuilder &lb, Value pos) {
    return windowBegin(lb, c, lb.add(pos, lb.index(1)));
  };
  auto quadReduce = [](KernelBuilder &lb, Value v, bool isMax) {
    return shuffleReduce(lb, v, kQuad, isMax);
  };

  // A warp past the prompt has nothing to do (no barriers in this kernel).
  kb.ifThen(less(kb, m0, nTokens), [&](KernelBuilder &ib) {
    Value last = ib.sub(nTokens, ib.index(1));
    Value token[2], pos[2], begin[2];
    for (int r = 0; r < 2; ++r) {
      token[r] = ib.umin(ib.add(m0, ib.add(ml.g, ib.index(8 * r))), last);
      pos[r] = positionOf(ib, token[r]);
      begin[r] = firstKey(ib, pos[r]);
    }
    // Positions grow with the token in a prompt: the warp's keys run from
    // its first row's window to its last row's position.
    Value lo = firstKey(ib, positionOf(ib, m0));
    Value hi = ib.add(
        positionOf(ib, ib.umin(ib.add(m0, ib.index(kRowsPerWarp - 1)), last)),
        ib.index(1));
    Value cacheRow0 = ib.mul(
        ib.add(ib.mul(ib.index(op.getLayer()), ib.index(c.getNumKvHeads())),
               ib.div(h, ib.index(group))),
        step(ib, k, kContext));
    Value slope;
    if (slopesOffset >= 0)
      slope = ib.loadF32(arenaView(ib, k, f32, slopesOffset), {h});
    Value fourT = ib.mul(ml.t, ib.index(4));
    Value twoT = ib.mul(ml.t, ib.index(2));

    // Q's A fragments, one per 16 features: rows g and g + 8, physical
    // features 4t .. 4t+3 of the step.
    SmallVector<SmallVector<Value>> qa;
    for (int64_t s = 0; s < steps; ++s) {
      Value w[2][2];
      for (int r = 0; r < 2; ++r) {
        Value at = ib.add(
            ib.mul(ib.add(ib.mul(token[r], ib.index(heads)), h), ib.index(d)),
            ib.add(ib.index(16 * s), fourT));
        auto [lo2, hi2] =
            packQuad(ib, ib.loadVector(k.args[q], {at}, 4, 16), element);
        w[r][0] = lo2;
        w[r][1] = hi2;
      }
      qa.push_back({w[0][0], w[1][0], w[0][1], w[1][1]});
    }

    // State: the running max and (this lane's part of) the sum of both
    // rows, and the output fragments.
    SmallVector<Value> init = {ib.f32(-INFINITY), ib.f32(-INFINITY),
                               ib.f32(0.0), ib.f32(0.0)};
    for (int64_t f = 0; f < featureTiles; ++f)
      init.push_back(zeroAccumulator(ib));
    SmallVector<Value> st = ib.forLoop(
        lo, hi, kKeyBlock, init, [&](KernelBuilder &lb, Value k0, ValueRange in) {
          ImplicitLocOpBuilder &l = lb.builder();
          Value lastKey = lb.sub(hi, lb.index(1));
          // S = Q.K^T, four tiles of 8 keys (key g of each as B column).
          SmallVector<SmallVector<Value>> s;
          for (int64_t n = 0; n < kKeyTiles; ++n) {
            Value key =
                lb.umin(lb.add(k0, lb.add(ml.g, lb.index(8 * n))), lastKey);
            Value row = lb.mul(lb.add(cacheRow0, key), lb.index(d));
            SmallVector<Value> acc(4, lb.f32(0.0));
            for (int64_t fs = 0; fs < steps; ++fs) {
              Value quad = vector::LoadOp::create(
                  l, VectorType::get({4}, cacheElement), k.args["k_cache"],
                  ValueRange{lb.add(row, lb.add(lb.index(16 * fs), fourT))},
                  false,
                  llvm::MaybeAlign(4 * cacheElement.getIntOrFloatBitWidth() /
                                   8));
              auto [b0, b1] = packQuad(lb, quad, element);
              acc = mmaHalf(lb, qa[fs], {b0, b1}, acc, element);
            }
            s.push_back(acc);
          }
          // Scores, masked: element i of tile n is row i / 2, key
          // k0 + 8n + 2t + i % 2.
          SmallVector<Value> score[2];
          for (int64_t n = 0; n < kKeyTiles; ++n)
            for (int64_t i = 0; i < 4; ++i) {
              int r = int(i / 2);
              Value key = lb.add(k0, lb.add(twoT, lb.index(8 * n + i % 2)));
              Value v = lb.mul(s[n][i], lb.f32(c.getSoftmaxScale()));
              if (slope)
                v = lb.add(v, lb.mul(slope, lb.sub(lb.indexToF32(key),
                                                   lb.indexToF32(pos[r]))));
              Value valid = arith::AndIOp::create(
                  l, cmp(lb, arith::CmpIPredicate::ule, key, pos[r]),
                  cmp(lb, arith::CmpIPredicate::uge, key, begin[r]));
              score[r].push_back(select(lb, valid, v, lb.f32(-INFINITY)));
            }
          SmallVector<Value> p[2], correction(2);
          Value newMax[2], sums[2];
          for (int r = 0; r < 2; ++r) {
            Value mx = in[r];
            for (Value v : score[r])
              mx = lb.fmax(mx, v);
            newMax[r] = quadReduce(lb, mx, /*isMax=*/true);
            // A row with no key yet keeps max -inf: exponents against 0.
            Value safe = select(
                lb,
                arith::CmpFOp::create(l, arith::CmpFPredicate::OEQ, newMax[r],
                                      lb.f32(-INFINITY)),
                lb.f32(0.0), newMax[r]);
            correction[r] = lb.exp(lb.sub(in[r], safe));
            Value sum = lb.mul(in[2 + r], correction[r]);
            for (Value v : score[r]) {
              Value e = lb.exp(lb.sub(v, safe));
              p[r].push_back(e);
              sum = lb.add(sum, e);
            }
            sums[r] = sum;
          }
          SmallVector<Value> next = {newMax[0], newMax[1], sums[0], sums[1]};
          // O = O * correction + P.V, 16 keys a step: S tiles 2m and 2m + 1
          // are the A fragment; the B fragment is keys 2t, 2t+1 (of tile 2m)
          // and 2t+8, 2t+9 (of tile 2m + 1) of feature g.
          SmallVector<Value> o;
          for (int64_t f = 0; f < featureTiles; ++f)
            o.push_back(scaleRows(lb, in[4 + f], correction[0], correction[1]));
          for (int64_t m = 0; m < kKeyTiles / 2; ++m) {
            // p[r] is in tile order: tile n's keys 2t, 2t+1 at 2n, 2n + 1.
            SmallVector<Value> a = {
                packPair(lb, p[0][4 * m], p[0][4 * m + 1], element),
                packPair(lb, p[1][4 * m], p[1][4 * m + 1], element),
                packPair(lb, p[0][4 * m + 2], p[0][4 * m + 3], element),
                packPair(lb, p[1][4 * m + 2], p[1][4 * m + 3], element)};
            Value key0 = lb.add(k0, lb.add(lb.index(16 * m), twoT));
            Value rows[4];
            for (int e = 0; e < 4; ++e)
              rows[e] = lb.mul(
                  lb.add(cacheRow0,
                         lb.umin(lb.add(key0, lb.index((e / 2) * 8 + e % 2)),
                                 lastKey)),
                  lb.index(d));
            for (int64_t f = 0; f < featureTiles; ++f) {
              Value feature = lb.add(ml.g, lb.index(8 * f));
              Value v[4];
              for (int e = 0; e < 4; ++e)
                v[e] = memref::LoadOp::create(
                    l, k.args["v_cache"], ValueRange{lb.add(rows[e], feature)});
              SmallVector<Value> acc;
              for (int64_t i = 0; i < 4; ++i)
                acc.push_back(accElement(lb, o[f], i));
              acc = mmaHalf(lb, a,
                            {packPair(lb, v[0], v[1], element),
                             packPair(lb, v[2], v[3], element)},
                            acc, element);
              o[f] = vector::FromElementsOp::create(
                  l, VectorType::get({2, 2}, l.getF32Type()), acc);
            }
          }
          next.append(o.begin(), o.end());
          return next;
        });

    // Each row's sum over its quad of lanes, then the outputs: feature
    // 8f + 2t (+ 1) of rows g and g + 8.
    Value inv[2];
    for (int r = 0; r < 2; ++r)
      inv[r] = ib.div(ib.f32(1.0), quadReduce(ib, st[2 + r], /*isMax=*/false));
    for (int r = 0; r < 2; ++r) {
      Value tokenR = ib.add(m0, ib.add(ml.g, ib.index(8 * r)));
      ib.ifThen(less(ib, tokenR, nTokens), [&](KernelBuilder &sb) {
        Value base = sb.mul(sb.add(sb.mul(tokenR, sb.index(heads)), h),
                            sb.index(d));
        for (int64_t f = 0; f < featureTiles; ++f) {
          Value pair = vector::FromElementsOp::create(
              sb.builder(), VectorType::get({2}, sb.builder().getF32Type()),
              ValueRange{sb.mul(accElement(sb, st[4 + f], 2 * r), inv[r]),
                         sb.mul(accElement(sb, st[4 + f], 2 * r + 1), inv[r])});
          vector::StoreOp::create(
              sb.builder(), pair, k.args[out],
              ValueRange{sb.add(base, sb.add(sb.index(8 * f), twoT))}, false,
              llvm::MaybeAlign(8));
        }
      });
    }
  });
  endKernel(k,
            grid(heads, 1, "one", 1, "tokens", kWarpsPerBlock * kRowsPerWarp),
            "prefill");
}

} // namespace decc::gpulowering
