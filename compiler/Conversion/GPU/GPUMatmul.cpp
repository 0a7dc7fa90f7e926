//===- GPUMatmul.cpp - prefill projections on tensor cores ----------------===//
//
// A prefill call has many tokens, and the decode GEMV (a warp per output
// feature, tokens in a loop) rereads each weight row once a token and does
// its arithmetic on the CUDA cores. For prefill a projection is instead
// four kernels: the norm statistics of each token (when a norm is fused);
// the activations, normalized, split into bf16 hi + lo (hi + lo equals the
// f32 value to 2^-17, so the products keep f32's accuracy to the goldens'
// 1e-3); the raw products G = hi.W + lo.W of every weight row on tensor
// cores (mma.sync m16n8k16 bf16, f32 accumulation; bf16 weights are exact,
// f32 and f16 weights are split too, a third product); and the
// projection's epilogue reading G (GPUProjection.cpp). Decode keeps the
// GEMV.
//
// Matmul tiling: a block owns 32 tokens x 32 or 64 weight rows (2 x 4 or
// 2 x 8 mma tiles) and its 4 warps split the columns (split-K inside the
// block, summed through shared memory): a prefill has few tokens, and small
// tiles with the reduction spread over 4 warps give the card enough
// independent loads in flight. Operands come straight from global memory
// as the packed bf16 pairs the mma takes (GPUMma.h's column permutation):
// per 32 columns a lane reads 32 contiguous bytes of each activation row
// and 16 of each weight row, and the inner loop is loads and mma only.
// A call of one token tile (a batched decode step, a short prompt) has too
// few blocks for that (a row tile each): its blocks split the columns
// across blocks too, each share's sums a row of products of its own, which
// the epilogue adds in order (deterministic, unlike atomics).
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/GPU/GPULowering.h"

#include "compiler/Conversion/GPU/GPUMma.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

namespace decc::gpulowering {

namespace {
constexpr int64_t kTileTokens = 32, kMTiles = kTileTokens / 16;

/// Columns [c, c + n) of quantized row `row` (n of 4 or 8, c a multiple of
/// n), dequantized to f32 with dequantizedAt's arithmetic, (q - zero) *
/// scale: the numbers the f32 build holds when it is given the weights
/// dequantized. A run lies in one 8-byte run of int4's 16 columns (low
/// nibbles for its first 8 columns, high for the next), and in one group
/// when the group size is a multiple of n: then it is one load of its
/// integers and one of its scale; otherwise a column at a time.
Value dequantizedRun(KernelBuilder &kb, Value bytes, const QuantizedWeight &q,
                     Value row, Value c, int64_t n) {
  ImplicitLocOpBuilder &b = kb.builder();
  auto vf32 = VectorType::get({n}, b.getF32Type());
  if (q.groupSize % n != 0) {
    Value v = arith::ConstantOp::create(
        b, DenseElementsAttr::get(vf32, b.getF32FloatAttr(0.0)));
    for (int64_t i = 0; i < n; ++i)
      v = vector::InsertOp::create(
          b, dequantizedAt(kb, bytes, q, row, kb.add(c, kb.index(i))), v, i);
    return v;
  }
  Value v = kb.quantizedIntegers(bytes, q.bits, {}, c, n,
                                 kb.mul(row, kb.index(q.rowBytes)), n);
  Value group = q.groupOf(kb, row, c);
  if (q.bits == 4) {
    Value zero = arith::UIToFPOp::create(
        b, b.getF32Type(),
        memref::LoadOp::create(b, q.zeros, ValueRange{group}));
    v = arith::SubFOp::create(b, v, vector::BroadcastOp::create(b, vf32, zero));
  }
  return arith::MulFOp::create(
      b, v,
      vector::BroadcastOp::create(b, vf32, kb.loadF32(q.scales, {group})));
}

/// f32 vector -> bf16 hi + lo, hi + lo equal to it within 2^-17.
std::pair<Value, Value> splitBF16(KernelBuilder &kb, Value v) {
  auto type = cast<VectorType>(v.getType());
  auto half = VectorType::get(type.getShape(), kb.builder().getBF16Type());
  Value hi = arith::TruncFOp::create(kb.builder(), half, v);
  Value rest = kb.sub(v, arith::ExtFOp::create(kb.builder(), type, hi));
  return {hi, arith::TruncFOp::create(kb.builder(), half, rest)};
}
} // namespace

bool GPULowering::hasPrefillMatmul(FusedLinearOp op) const {
  // Quantized weights too: the matmul dequantizes them in registers.
  return tensorCores && featuresOf(op.getInput()) % 8 == 0;
}

std::string GPULowering::halfPrefillBufferFor(Value v) {
  if (!halfPrecision || !v.hasOneUse())
    return "";
  auto consumer = dyn_cast<FusedLinearOp>(*v.getUsers().begin());
  if (!consumer || consumer.getInput() != v || consumer.getNorm() ||
      !hasPrefillMatmul(consumer) ||
      cast<RankedTensorType>(consumer.getWeight().getType()).getElementType() !=
          halfElement ||
      llvm::is_contained(consumer.getResults(), returned))
    return "";
  std::string name = newBuffer(featuresOf(v));
  halfPrefillBufferOf[v] = name;
  return name;
}

std::string GPULowering::prepareSplitActivations(FusedLinearOp op,
                                                 LaunchWhen when) {
  Type f32 = Float32Type::get(ctx), i8 = IntegerType::get(ctx, 8),
       i64 = IntegerType::get(ctx, 64);
  int64_t width = featuresOf(op.getInput());
  std::string x = bufferOf[op.getInput()];
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
    kb.ifThen(less(kb, t, step(k, kStepTokens)), [&](KernelBuilder &ib) {
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
    endKernel(k, grid(1, kWarpsPerBlock, GridScale::Tokens), when);
  }

  // The activations, normalized, as bf16 hi + lo (hi + lo = x to 2^-17),
  // in groups of 4 columns [hi x 4, lo x 4]: a thread a group, a block row
  // (y) a token.
  Type bf16 = BFloat16Type::get(ctx);
  std::string split = newBuffer(width);
  {
    SmallVector<Binding> binds = {{"arena", i8}, {"step", i64}, {x, f32}};
    if (norm)
      binds.push_back({stats, f32});
    binds.push_back({split, bf16});
    Kernel &k = beginKernel("split_activations", binds);
    KernelBuilder &kb = *k.kb;
    Value group = kb.add(kb.mul(gpu::BlockIdOp::create(*k.b, gpu::Dimension::x),
                                kb.index(kThreads)),
                         gpu::ThreadIdOp::create(*k.b, gpu::Dimension::x));
    Value t = gpu::BlockIdOp::create(*k.b, gpu::Dimension::y);
    kb.ifThen(less(kb, group, kb.index(width / 4)), [&](KernelBuilder &ib) {
      Value c = ib.mul(group, ib.index(4));
      Value v = ib.loadVector(k.args[x],
                              {ib.add(ib.mul(t, ib.index(width)), c)}, 4, 16);
      if (norm) {
        Type gelt = cast<RankedTensorType>(op.getNormWeight().getType())
                        .getElementType();
        int64_t gBytes = 4 * (gelt.getIntOrFloatBitWidth() / 8);
        Value at = ib.mul(t, ib.index(2));
        Value inv = ib.loadF32(k.args[stats], {at});
        if (layer)
          v = ib.sub(
              v, ib.splat(ib.loadF32(k.args[stats], {ib.add(at, ib.index(1))}),
                          4));
        Value gamma =
            arenaView(ib, k, gelt, arena.offsetOf(op.getNormWeight()));
        v = ib.mul(ib.mul(v, ib.splat(inv, 4)),
                   ib.loadVector(gamma, {c}, 4, gBytes));
        if (op.getNormBias())
          v = ib.add(v,
                     ib.loadVector(arenaView(ib, k, gelt,
                                             arena.offsetOf(op.getNormBias())),
                                   {c}, 4, gBytes));
      }
      auto [hi, lo] = splitBF16(ib, v);
      Value both = vector::ShuffleOp::create(
          ib.builder(), hi, lo, ArrayRef<int64_t>{0, 1, 2, 3, 4, 5, 6, 7});
      vector::StoreOp::create(ib.builder(), both, k.args[split],
                              ValueRange{ib.add(ib.mul(t, ib.index(2 * width)),
                                                ib.mul(c, ib.index(2)))},
                              false, llvm::MaybeAlign(16));
    });
    endKernel(k,
              grid(width / 4, kThreads, GridScale::One, 1, GridScale::Tokens),
              when);
  }
  if (norm)
    freeBuffers.push_back({stats, 2});
  return split;
}

std::string GPULowering::prepareHalfActivations(FusedLinearOp op,
                                                LaunchWhen when) {
  Type f32 = Float32Type::get(ctx), i8 = IntegerType::get(ctx, 8),
       i64 = IntegerType::get(ctx, 64);
  int64_t width = featuresOf(op.getInput());
  std::string x = bufferOf[op.getInput()];
  Type welt = cast<RankedTensorType>(op.getWeight().getType()).getElementType();
  std::optional<NormKind> norm = op.getNorm();
  bool layer = norm && *norm == NormKind::Layer;
  // A block a token (y): the row's sums (for the norm) reduced over the
  // block, then the row normalized and rounded, 4 columns a thread at a
  // time.
  std::string out = newBuffer(width);
  Kernel &k =
      beginKernel("prepare_activations",
                  {{"arena", i8}, {"step", i64}, {x, f32}, {out, welt}});
  KernelBuilder &kb = *k.kb;
  ImplicitLocOpBuilder &b = *k.b;
  Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  Value t = gpu::BlockIdOp::create(b, gpu::Dimension::y);
  Value row = kb.mul(t, kb.index(width));
  Value first = kb.mul(tid, kb.index(4));
  int64_t stride = 4 * kThreads;
  Value inv, mean;
  if (norm) {
    SmallVector<Value> sums = kb.forLoop(
        first, kb.index(width), stride, {kb.f32(0.0), kb.f32(0.0)},
        [&](KernelBuilder &lb, Value c, ValueRange acc) {
          Value v = lb.loadVector(k.args[x], {lb.add(row, c)}, 4, 16);
          Value s = vector::ReductionOp::create(lb.builder(),
                                                vector::CombiningKind::ADD, v);
          Value sq = vector::ReductionOp::create(
              lb.builder(), vector::CombiningKind::ADD, lb.mul(v, v));
          return SmallVector<Value>{lb.add(acc[0], s), lb.add(acc[1], sq)};
        });
    // Warp sums, then the block's through shared memory.
    Value partials = sharedFloats(k, 2 * kWarpsPerBlock);
    Value lane = arith::RemUIOp::create(b, tid, kb.index(32));
    Value warp = kb.div(tid, kb.index(32));
    SmallVector<Value> warpSums = {warpSum(kb, sums[0]), warpSum(kb, sums[1])};
    kb.ifThen(isZero(kb, lane), [&](KernelBuilder &ib) {
      for (int i = 0; i < 2; ++i)
        ib.store(warpSums[i], partials,
                 {ib.add(ib.mul(warp, ib.index(2)), ib.index(i))});
    });
    gpu::BarrierOp::create(b);
    Value total[2] = {kb.f32(0.0), kb.f32(0.0)};
    for (int64_t w = 0; w < kWarpsPerBlock; ++w)
      for (int i = 0; i < 2; ++i)
        total[i] =
            kb.add(total[i], memref::LoadOp::create(
                                 b, partials, ValueRange{kb.index(2 * w + i)}));
    Value n = kb.f32(double(width));
    Value var = kb.div(total[1], n);
    if (layer) {
      mean = kb.div(total[0], n);
      var = kb.sub(var, kb.mul(mean, mean));
    }
    inv = math::RsqrtOp::create(
        b, kb.add(var, kb.f32(op.getNormEpsilon()->convertToDouble())));
  }
  Value gamma, beta;
  if (norm) {
    Type gelt =
        cast<RankedTensorType>(op.getNormWeight().getType()).getElementType();
    gamma = arenaView(kb, k, gelt, arena.offsetOf(op.getNormWeight()));
    if (op.getNormBias())
      beta = arenaView(kb, k, gelt, arena.offsetOf(op.getNormBias()));
  }
  kb.forLoop(
      first, kb.index(width), stride, [&](KernelBuilder &lb, ValueRange iv) {
        Value c = iv[0];
        Value v = lb.loadVector(k.args[x], {lb.add(row, c)}, 4, 16);
        if (norm) {
          int64_t gBytes =
              4 *
              (cast<MemRefType>(gamma.getType()).getElementTypeBitWidth() / 8);
          if (mean)
            v = lb.sub(v, lb.splat(mean, 4));
          v = lb.mul(lb.mul(v, lb.splat(inv, 4)),
                     lb.loadVector(gamma, {c}, 4, gBytes));
          if (beta)
            v = lb.add(v, lb.loadVector(beta, {c}, 4, gBytes));
        }
        Value h = arith::TruncFOp::create(lb.builder(),
                                          VectorType::get({4}, welt), v);
        vector::StoreOp::create(lb.builder(), h, k.args[out],
                                ValueRange{lb.add(row, c)}, false,
                                llvm::MaybeAlign(8));
      });
  endKernel(k, grid(1, 1, GridScale::One, 1, GridScale::Tokens), when);
  return out;
}

namespace {

/// Shares of the columns that a matmul of `rowTiles` row tiles and `steps`
/// column steps splits over its blocks in a call of one token tile (a
/// batched decode step of 32 sequences or fewer): enough for kMatmulBlocks
/// blocks, each share a whole number of steps of every warp. Without them
/// the 2B's QKV, O and down projections were 64 blocks on 132 SMs, and a
/// 32-sequence step took 3.1-3.4x one sequence's; with them 2.2-2.3x, a
/// 16-token prompt 3.8 -> 2.3 ms (H100, docs/PERF.md). A longer call
/// has blocks enough in its token tiles and keeps one share.
int64_t matmulSplits(int64_t rowTiles, int64_t steps) {
  // Two blocks an SM of the H100 and H200 (132 SMs); 528 measured no
  // faster.
  constexpr int64_t kMatmulBlocks = 264;
  int64_t splits = 1;
  while (splits < 8 && rowTiles * splits < kMatmulBlocks &&
         steps % (2 * splits * kWarpsPerBlock) == 0)
    splits *= 2;
  return splits;
}

/// The mma.sync matmul's steps over the values they share: this lane's
/// activation rows (A rows g and g + 8 of each m tile) and weight rows (B
/// column g of each n tile), in elements, and how the operands are held.
struct MmaSyncTiles {
  struct Operands {
    SmallVector<Value> a, bHi, bLo;
  };
  bool half, packed;
  Type welt;
  int64_t nTiles, rows;
  SmallVector<Value> tokenBase, rowBase;
  Value as, weight;
  /// Quantized weights (bits 0: float): `weight` is their bytes, and
  /// weightRow the rows (clamped) that rowBase starts.
  QuantizedWeight quant;
  SmallVector<Value> weightRow;
  // For the warps' sum: shared memory, this lane, its warp, its m16n8
  // fragment position, the block's first token and row, the tokens.
  Value partials, lane, warp;
  MmaLane ml;
  Value m0, n0, nTokens;
  /// The block's share of the columns (split) of `splits`: its sums go to
  /// products row token * splits + split.
  Value split;
  int64_t splits;

  /// One step's operands as i32 words: per A row, n words (groups of
  /// [hi01 hi23 lo01 lo23]); per weight row, hi words (and lo words).
  Operands load(KernelBuilder &lb, Value c, int64_t n, Value valid) const {
    Operands o;
    auto words = [&](Value v, int64_t count) {
      SmallVector<Value> out;
      for (int64_t i = 0; i < count; ++i) {
        Value w =
            vector::ExtractOp::create(lb.builder(), v, ArrayRef<int64_t>{i});
        if (valid)
          w = arith::SelectOp::create(
              lb.builder(), valid, w,
              arith::ConstantOp::create(lb.builder(),
                                        lb.builder().getI32IntegerAttr(0)));
        out.push_back(w);
      }
      return out;
    };
    for (int64_t r = 0; r < 2 * kMTiles; ++r) {
      // Element e of a split row is bf16 2e (and i32 word e); a half row
      // holds column c in word c / 2.
      Value at = lb.add(tokenBase[r], c);
      o.a.push_back(
          half ? lb.loadVector(as, {lb.div(at, lb.index(2))}, n / 2, 2 * n)
               : lb.loadVector(as, {at}, n, 4 * n));
    }
    for (int64_t j = 0; j < nTiles; ++j) {
      Value at = lb.add(rowBase[j], c);
      if (packed) {
        o.bHi.push_back(
            lb.loadVector(weight, {lb.div(at, lb.index(2))}, n / 2, 2 * n));
        continue;
      }
      Value v = quant.bits
                    ? dequantizedRun(lb, weight, quant, weightRow[j], c, n)
                    : lb.loadVector(weight, {at}, n,
                                    n * (welt.getIntOrFloatBitWidth() / 8));
      auto [hi, lo] = splitBF16(lb, v);
      auto wordsOf = [&](Value h) {
        return vector::BitCastOp::create(
            lb.builder(), VectorType::get({n / 2}, lb.builder().getI32Type()),
            h);
      };
      o.bHi.push_back(wordsOf(hi));
      o.bLo.push_back(wordsOf(lo));
    }
    // Unpack into words, masking a partial step.
    Operands w;
    for (Value v : o.a)
      llvm::append_range(w.a, words(v, half ? n / 2 : n));
    for (Value v : o.bHi)
      llvm::append_range(w.bHi, words(v, n / 2));
    for (Value v : o.bLo)
      llvm::append_range(w.bLo, words(v, n / 2));
    return w;
  }

  /// acc (the tiles x 4) += the step's products, n / 4 mma steps.
  void multiply(KernelBuilder &lb, const Operands &o, int64_t n,
                SmallVector<Value> &acc) const {
    for (int64_t s = 0; s < n / 4; ++s)
      for (int64_t m = 0; m < kMTiles; ++m) {
        if (half) {
          // One product: the activations are already in half precision.
          auto aw = [&](int64_t r, int64_t i) {
            return o.a[r * (n / 2) + 2 * s + i];
          };
          SmallVector<Value> a = {aw(2 * m, 0), aw(2 * m + 1, 0), aw(2 * m, 1),
                                  aw(2 * m + 1, 1)};
          for (int64_t j = 0; j < nTiles; ++j) {
            MutableArrayRef<Value> c(acc.data() + 4 * (m * nTiles + j), 4);
            SmallVector<Value> d = mmaHalf(
                lb, a, {o.bHi[j * n / 2 + 2 * s], o.bHi[j * n / 2 + 2 * s + 1]},
                c, welt);
            llvm::copy(d, c.begin());
          }
          continue;
        }
        auto aw = [&](int64_t r, int64_t i) { return o.a[r * n + 4 * s + i]; };
        SmallVector<Value> hi = {aw(2 * m, 0), aw(2 * m + 1, 0), aw(2 * m, 1),
                                 aw(2 * m + 1, 1)};
        SmallVector<Value> lo = {aw(2 * m, 2), aw(2 * m + 1, 2), aw(2 * m, 3),
                                 aw(2 * m + 1, 3)};
        for (int64_t j = 0; j < nTiles; ++j) {
          SmallVector<Value> bHi = {o.bHi[j * n / 2 + 2 * s],
                                    o.bHi[j * n / 2 + 2 * s + 1]};
          MutableArrayRef<Value> c(acc.data() + 4 * (m * nTiles + j), 4);
          // Small terms first.
          Type bf16 = BFloat16Type::get(lb.builder().getContext());
          SmallVector<Value> d = mmaHalf(lb, lo, bHi, c, bf16);
          if (!packed)
            d = mmaHalf(
                lb, hi,
                {o.bLo[j * n / 2 + 2 * s], o.bLo[j * n / 2 + 2 * s + 1]}, d,
                bf16);
          d = mmaHalf(lb, hi, bHi, d, bf16);
          llvm::copy(d, c.begin());
        }
      }
  }

  /// Sums the warps' tiles through shared memory; warp w then stores its
  /// share of the tiles into `products` (tokens x splits x rows), where the
  /// block is `active` (one of the call's shares).
  void sumWarps(KernelBuilder &kb, ArrayRef<Value> acc, Value products,
                Value active) const {
    auto slot = [&](Value w, Value tile, int64_t i) {
      return kb.add(
          kb.mul(
              kb.add(kb.mul(kb.add(kb.mul(w, kb.index(kMTiles * nTiles)), tile),
                            kb.index(4)),
                     kb.index(i)),
              kb.index(32)),
          lane);
    };
    for (int64_t t = 0; t < kMTiles * nTiles; ++t)
      for (int64_t i = 0; i < 4; ++i)
        kb.store(acc[4 * t + i], partials, {slot(warp, kb.index(t), i)});
    gpu::BarrierOp::create(kb.builder());
    const int64_t tilesPerWarp = kMTiles * nTiles / kWarpsPerBlock;
    for (int64_t tw = 0; tw < tilesPerWarp; ++tw) {
      Value tile = kb.add(kb.mul(warp, kb.index(tilesPerWarp)), kb.index(tw));
      Value m = kb.div(tile, kb.index(nTiles));
      Value n = arith::RemUIOp::create(kb.builder(), tile, kb.index(nTiles));
      for (int64_t i = 0; i < 4; ++i) {
        Value sum = kb.f32(0.0);
        for (int64_t w = 0; w < kWarpsPerBlock; ++w)
          sum = kb.add(sum, memref::LoadOp::create(
                                kb.builder(), partials,
                                ValueRange{slot(kb.index(w), tile, i)}));
        Value token = kb.add(m0, kb.add(ml.g, kb.add(kb.mul(m, kb.index(16)),
                                                     kb.index(8 * (i / 2)))));
        Value row =
            kb.add(n0, kb.add(kb.mul(ml.t, kb.index(2)),
                              kb.add(kb.mul(n, kb.index(8)), kb.index(i % 2))));
        Value inside =
            arith::AndIOp::create(kb.builder(), less(kb, token, nTokens),
                                  less(kb, row, kb.index(rows)));
        inside = arith::AndIOp::create(kb.builder(), inside, active);
        kb.ifThen(inside, [&](KernelBuilder &sb) {
          Value at = sb.add(sb.mul(token, sb.index(splits)), split);
          sb.store(sum, products, {sb.add(sb.mul(at, sb.index(rows)), row)});
        });
      }
    }
  }
};

} // namespace

Value GPULowering::matmulShares(KernelBuilder &kb, Value nTokens,
                                int64_t splits) {
  if (splits == 1)
    return kb.index(1);
  Value oneTile = arith::CmpIOp::create(kb.builder(), arith::CmpIPredicate::ule,
                                        nTokens, kb.index(kTileTokens));
  return arith::SelectOp::create(kb.builder(), oneTile, kb.index(splits),
                                 kb.index(1));
}

std::string GPULowering::matmulProducts(FusedLinearOp op,
                                        const std::string &input, bool half,
                                        int64_t wOffset, int64_t rows,
                                        LaunchWhen when, std::string into,
                                        int64_t *splitsOut) {
  Type f32 = Float32Type::get(ctx), i8 = IntegerType::get(ctx, 8),
       i64 = IntegerType::get(ctx, 64), i32 = IntegerType::get(ctx, 32);
  int64_t width = featuresOf(op.getInput());
  Type welt = cast<RankedTensorType>(op.getWeight().getType()).getElementType();
  std::string split = input;

  // 64 weight rows a block when there are many (fewer rereads of the
  // activations from L2), 32 when fewer would leave the card short of
  // blocks (measured on the H100, docs/PERF.md).
  const int64_t tileRows = rows >= 4096 ? 64 : 32, nTiles = tileRows / 8;
  const int64_t rowTiles = (rows + tileRows - 1) / tileRows;
  // Columns per step: 32 (8 a lane, two 16-column mma steps) when the width
  // allows, else 16; a last 8 columns (width % 16 == 8) are a masked step.
  int64_t columns = width % 32 == 0 ? 32 : 16, perLane = columns / 4;
  int64_t mainWidth = width / columns * columns;
  int64_t steps = mainWidth / columns;
  int64_t splits = into.empty() ? matmulSplits(rowTiles, steps) : 1;
  QuantizedWeight quant;
  std::string products =
      into.empty() ? newBuffer(rows * splits) : std::move(into);
  SmallVector<Binding> binds = {
      {"arena", i8}, {"step", i64}, {split, i32}, {products, f32}};
  Kernel &k = beginKernel("matmul", binds);
  KernelBuilder &kb = *k.kb;
  // The partial tiles of the block's warps, summed at the end.
  const int64_t tileFloats = kMTiles * nTiles * 4 * 32;
  Value partials = sharedFloats(k, kWarpsPerBlock * tileFloats);
  Value tid = gpu::ThreadIdOp::create(*k.b, gpu::Dimension::x);
  Value lane = arith::RemUIOp::create(*k.b, tid, kb.index(32));
  Value warp = kb.div(tid, kb.index(32));
  MmaLane ml = mmaLane(kb, lane);
  Value nTokens = step(k, kStepTokens);
  // Token tiles in x, the fastest-varying: the blocks that read one weight
  // tile run side by side and share it through L2 instead of streaming the
  // weights from memory once per token tile. y is the row tile and, above
  // it, the share of the columns.
  Value m0 = kb.mul(gpu::BlockIdOp::create(*k.b, gpu::Dimension::x),
                    kb.index(kTileTokens));
  Value by = gpu::BlockIdOp::create(*k.b, gpu::Dimension::y);
  Value n0 = kb.mul(arith::RemUIOp::create(*k.b, by, kb.index(rowTiles)),
                    kb.index(tileRows));
  Value splitIndex = kb.div(by, kb.index(rowTiles));
  // bf16 weights are read as the packed pairs the mma takes; others are
  // split into bf16 hi + lo like the activations, quantized ones once
  // dequantized (a GEMV a token at a time took 235 ms for a 128-token
  // prompt of the 1.8B in int4, where bf16's matmul took 5 ms).
  bool packed = welt.isBF16() || (half && welt.isF16());
  Value weight = packed ? arenaView(kb, k, i32, wOffset)
                        : weightView(kb, k, op.getWeight(), wOffset, quant);
  Value as = k.args[split];

  // This lane's activation rows (A rows g and g + 8 of each m tile, clamped
  // to real tokens) and weight rows (B column g of each n tile), in
  // elements.
  Value lastToken = kb.sub(nTokens, kb.index(1));
  SmallVector<Value> tokenBase, rowBase;
  for (int64_t r = 0; r < 2 * kMTiles; ++r)
    tokenBase.push_back(
        kb.mul(kb.umin(kb.add(m0, kb.add(ml.g, kb.index(8 * r))), lastToken),
               kb.index(width)));
  SmallVector<Value> weightRow;
  for (int64_t n = 0; n < nTiles; ++n) {
    weightRow.push_back(
        kb.umin(kb.add(n0, kb.add(ml.g, kb.index(8 * n))), kb.index(rows - 1)));
    rowBase.push_back(kb.mul(weightRow.back(), kb.index(width)));
  }

  MmaSyncTiles tiles{half,      packed,   welt,    nTiles,     rows,
                     tokenBase, rowBase,  as,      weight,     quant,
                     weightRow, partials, lane,    warp,       ml,
                     m0,        n0,       nTokens, splitIndex, splits};
  // The block's warps split its share of the columns (warp w takes steps
  // w, w + 4, ...), two steps at a time when they divide evenly, both
  // steps' loads issued before either's mma so that their latencies
  // overlap.
  // This call's shares (matmulShares): a block past them has an empty loop
  // and stores nothing.
  Value shares = matmulShares(kb, nTokens, splits);
  Value share = kb.div(kb.index(mainWidth), shares);
  Value active = arith::CmpIOp::create(kb.builder(), arith::CmpIPredicate::ult,
                                       splitIndex, shares);
  int64_t unroll =
      (steps / splits) % (2 * kWarpsPerBlock) == 0 && !quant.bits ? 2 : 1;
  int64_t stride = kWarpsPerBlock * columns;
  Value laneColumn = kb.mul(ml.t, kb.index(perLane));
  Value first =
      kb.add(kb.mul(splitIndex, share), kb.mul(warp, kb.index(columns)));
  Value end = arith::SelectOp::create(
      kb.builder(), active, kb.mul(kb.add(splitIndex, kb.index(1)), share),
      kb.index(0));
  SmallVector<Value> inits(4 * kMTiles * nTiles, kb.f32(0.0));
  SmallVector<Value> acc = kb.forLoop(
      first, end, stride * unroll, inits,
      [&](KernelBuilder &lb, Value c0, ValueRange accIn) {
        SmallVector<MmaSyncTiles::Operands> ops;
        for (int64_t u = 0; u < unroll; ++u)
          ops.push_back(tiles.load(
              lb, lb.add(lb.add(c0, lb.index(u * stride)), laneColumn), perLane,
              Value()));
        SmallVector<Value> next(accIn);
        for (const MmaSyncTiles::Operands &o : ops)
          tiles.multiply(lb, o, perLane, next);
        return next;
      });
  if (width != mainWidth) {
    // 8 columns (width % 8 == 0, steps of 16): lanes t = 0, 1 of warp 0
    // of the last share hold them, every other lane multiplies zeros (its
    // reads clamped to real columns).
    Value c = kb.add(kb.index(mainWidth), kb.mul(ml.t, kb.index(4)));
    Value valid = arith::AndIOp::create(
        kb.builder(), less(kb, c, kb.index(width)), isZero(kb, warp));
    valid = arith::AndIOp::create(
        kb.builder(), valid,
        arith::CmpIOp::create(kb.builder(), arith::CmpIPredicate::eq,
                              splitIndex, kb.sub(shares, kb.index(1))));
    c = arith::SelectOp::create(kb.builder(), valid, c, kb.index(mainWidth));
    tiles.multiply(kb, tiles.load(kb, c, 4, valid), 4, acc);
  }

  tiles.sumWarps(kb, acc, k.args[products], active);
  endKernel(k, grid(1, kTileTokens, GridScale::Tokens, rowTiles * splits),
            when);
  if (splitsOut)
    *splitsOut = splits;
  return products;
}

} // namespace decc::gpulowering
