//===- GPUGemvMma.cpp - quantized decode GEMVs on tensor cores ------------===//
//
// A quantized decode GEMV done a lane a column, as GPUGemv.cpp does it,
// needs each weight's x in the lane that holds the weight: 2 f32 of x (and
// of the norm's gamma) a byte of int4, loaded from L1 and held in
// registers for every row a lane walks. That held the int4 GEMVs at 171-174
// registers, 8 warps an SM, and 18-25% of the H100's read bandwidth
// counted in their bytes (docs/PERF.md).
//
// Here a warp multiplies a tile of 16 weight rows by x with mma.sync
// m16n8k16 over bf16: the tensor core sums over k across the lanes, so x
// only has to be in the B fragment. The integers q - zero are exact in bf16,
// dequantized in registers: one and-or a pair of weights places two nibbles
// in the mantissas of 128.0, one bf16x2 subtraction takes 128 + zero away.
// x (times the norm's gamma) is split into bf16 hi + lo, exact to 2^-17, as
// columns 0 and 1 of B: one mma gives both products, which the end adds.
// LayerNorm's sums of gamma.W and beta.W are columns 2-5 of the same B.
// Each mma's 16 columns lie in one quantization group, whose scale
// multiplies the tile's accumulators (rows g and g + 8 each their own).
//
// B depends only on x: the block writes it for the whole row into shared
// memory once (after the wait on the previous kernel, while the first
// step's weights are in flight), in the order lanes read it, 8 bytes a lane
// an mma step; a thread takes runs of 16 columns, their x (and gamma)
// loaded as vectors, and adds the norm's sums on the way. The steps' weight
// loads are software-pipelined: step s + 1's are issued before step s's
// arithmetic.
//
// Lane = 4 g + c loads rows g and g + 8 of each tile, `loadBytes` bytes at
// byte c * loadBytes of a block of 4 * loadBytes bytes; since an mma's k may
// visit columns in any order, each A register holds a pair as the bytes
// give it, and B holds x at the same columns. A unit is one tile (SwiGLU: a
// gate tile and its up tile) and W warps of a block, which take the row's
// blocks in turn and add their sums through shared memory; each thread then
// finishes its own outputs. An appending projection (QKV into the cache)
// writes raw products for the prefill's epilogue kernel (its lane GEMV ran
// at 7% of DRAM, ncu, InternVL2-2B); with the lowering's fused-append it
// takes units of two tiles like SwiGLU's, whose rows pair as RoPE pairs
// (rows r and r + half of a head), so that the thread finishing a pair
// rotates and appends it (GPUProjection.cpp's mmaAppendUnit).
//
// H100, decode after 512 tokens: InternVL2-2B int4 1.75 -> 1.19 ms a token,
// InternLM2-chat-7B 4.98 -> 3.36; B built from vector runs instead of a
// loop of scalar loads: 1.16-1.19 -> 0.92, 3.41 -> 2.57 (docs/PERF.md).
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/GPU/GPUHopper.h"
#include "compiler/Conversion/GPU/GPULowering.h"
#include "compiler/Conversion/GPU/GPUMma.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

namespace decc::gpulowering {

std::optional<MmaGemvPlan> planMmaGemv(int64_t bits, int64_t groupSize,
                                       int64_t width,
                                       ArrayRef<int64_t> outWidths, bool swiglu,
                                       int64_t unitsPerBlock) {
  // int4 only: int8 on this path (its bytes made exact bf16 through f32,
  // 2.75 instructions a weight) was slower than the lane GEMV on an H100,
  // InternVL2-2B 1.43 against 1.27 ms a token, InternLM2-chat-7B 4.81
  // against 3.80 (docs/PERF.md).
  if (bits != 4)
    return std::nullopt;
  int64_t rowBytes = width / 2, groupBytes = groupSize / 2;
  if (width % 2 || groupSize % 2)
    return std::nullopt;
  MmaGemvPlan plan;
  // A block (4 lanes' loads) within one group: each mma's columns share a
  // scale.
  for (int64_t bytes : {16, 8, 4})
    if (groupBytes % (4 * bytes) == 0 && rowBytes % (4 * bytes) == 0) {
      plan.loadBytes = bytes;
      break;
    }
  if (!plan.loadBytes)
    return std::nullopt;
  plan.blocks = rowBytes / (4 * plan.loadBytes);
  // One tile a unit (SwiGLU: a gate tile and its up tile): a unit of 4
  // tiles held 250 registers and its projections too few blocks (the 1.8B's
  // O 32 blocks of 8 warps), 1.57 ms a token against 1.19 (H100).
  int64_t tiles = swiglu ? 2 : 1;
  // Rows a unit takes of each result (SwiGLU: of the gate and of the up).
  int64_t rows = 16;
  int64_t total = 0;
  for (int64_t w : outWidths)
    total += w;
  bool fits = llvm::all_of(outWidths, [&](int64_t w) { return w % rows == 0; });
  // One result (the LM head, or an appending projection's products) may
  // end in a partial unit: its rows past the end are read clamped and never
  // stored.
  if (!fits && (outWidths.size() != 1 || swiglu))
    return std::nullopt;
  plan.tiles = tiles;
  plan.units = llvm::divideCeil(swiglu ? outWidths[0] : total, rows);
  plan.rowLimit = swiglu ? 2 * outWidths[0] : total;
  plan.swiglu = swiglu;
  // Warps a unit: about 16 an SM of an sm_90 card in one wave, at most 16
  // (a block of 512 threads launches at up to 128 registers a thread, which
  // the kernel asks ptxas for). The warps of an SM are what hide the
  // latencies of its loads and mma chains (ncu: 2 warps a scheduler issued
  // every 8-14 cycles): 16 warps a unit for InternVL2-2B's O and down (128
  // units) made the step 0.89 -> 0.83 ms (H100, docs/PERF.md).
  constexpr int64_t kWarps = 132 * 16;
  int64_t warps = std::max<int64_t>(1, kWarps / plan.units);
  plan.warps =
      std::min<int64_t>({int64_t(llvm::bit_floor(uint64_t(warps))),
                         int64_t(llvm::bit_floor(uint64_t(plan.blocks))), 16});
  // Where a unit has one warp (the LM head: 5785 units of 16 rows) a
  // block takes 8 units, which share one B: a block of one warp built B for
  // the whole row (2048 columns: 4 runs a thread) for 16 rows of weights.
  // H100, decode after 512 tokens: InternVL2-2B 0.820-0.827 -> 0.803-0.819
  // ms a token, InternLM2-chat-7B level (docs/PERF.md).
  if (plan.warps == 1 && !swiglu)
    plan.unitsPerBlock = 8;
  // Units of several warps: as many a block as leave each thread at most
  // two runs of 16 columns of B to build, at most 16 warps. B's runs are
  // loaded a round at a time, each an L2 round trip queued behind the
  // first step's weights: InternLM2-chat-7B's gate/up (units of 2 warps,
  // 4096 columns) built B in 4 rounds, its down (8 warps, 14336 columns)
  // in 2. With 2 units a block for both its int4 decode went 2.26 / 2.23
  // -> 2.075 / 2.077 ms a token; 4 for the gate/up (one round) 2.086 /
  // 2.088, and half the blocks to spread over the SMs (H200, docs/PERF.md).
  if (plan.warps > 1) {
    int64_t runs = width / 16;
    int64_t v = 1;
    while (
        (unitsPerBlock ? v < unitsPerBlock : 2 * 32 * plan.warps * v < runs) &&
        2 * plan.warps * v <= 16)
      v *= 2;
    plan.unitsPerBlock = v;
  }
  // 64 bytes a lane a step (twice that in flight, pipelined): 128 held
  // 220-250 registers (ptxas, the 1.8B's and 7B's shapes); 32 was 11%
  // slower (H100, 1.31-1.32 ms a token against 1.18-1.19).
  int64_t perWarp = llvm::divideCeil(plan.blocks, plan.warps);
  plan.unroll = std::max<int64_t>(
      1, std::min<int64_t>(perWarp, 64 / (2 * tiles * plan.loadBytes)));
  plan.steps = llvm::divideCeil(perWarp, plan.unroll);
  // One step ahead: two (InternVL2-2B's gate/up 128 -> 172 registers) and
  // three (236) cost the blocks an SM what they won in loads in flight,
  // 0.93 -> 1.01 / 0.92 ms a token, InternLM2-chat-7B 2.58 -> 2.91 / 3.21
  // (H100, docs/PERF.md).
  plan.ahead = 1;
  return plan;
}

namespace {

Value i32Const(ImplicitLocOpBuilder &b, uint32_t v) {
  return arith::ConstantOp::create(b, b.getI32IntegerAttr(int32_t(v)));
}

/// The f32 whose bits are `word`.
Value asF32(ImplicitLocOpBuilder &b, Value word) {
  return arith::BitcastOp::create(b, b.getF32Type(), word);
}

/// (a, c) as a B register: `negOdd` 0 gives hi = bf16(a, c) rounded to
/// nearest, -1 gives lo = bf16(a - hi, c - hi).
Value splitPair(KernelBuilder &kb, Value a, Value c, Value negOdd) {
  ImplicitLocOpBuilder &b = kb.builder();
  Type bf16 = b.getBF16Type();
  Value hi = packPair(kb, a, c, bf16);
  Value hiA = asF32(b, arith::ShLIOp::create(b, hi, i32Const(b, 16)));
  Value hiC = asF32(b, arith::AndIOp::create(b, hi, i32Const(b, 0xFFFF0000u)));
  Value la = math::FmaOp::create(b, negOdd, hiA, a);
  Value lc = math::FmaOp::create(b, negOdd, hiC, c);
  return packPair(kb, la, lc, bf16);
}

/// The A registers {a0, a1, a2, a3} of the 2 mma steps of one word (4
/// bytes) of rows g and g + 8 (wg, wg8). The word holds, at nibble
/// positions 0..7, columns 0, 8, 1, 9, 2, 10, 3, 11 of its half run; step
/// st's k slots {2c, 2c + 1} and {2c + 8, 2c + 9} stand for its columns
/// st, st + 2 and st + 8, st + 10 (the prologue writes B so). A pair:
/// nibbles at bits s and s + 16, and-or'ed under 0x4300 (128.0) in each
/// half: 128 + q, exact (the block's 128 + zero is taken away from its
/// products, mmaGemv).
SmallVector<std::array<Value, 4>> int4Steps(KernelBuilder &kb, Value wg,
                                            Value wg8) {
  ImplicitLocOpBuilder &b = kb.builder();
  auto pairAt = [&](Value w, int64_t s) {
    Value v = s ? arith::ShRUIOp::create(b, w, i32Const(b, s)).getResult() : w;
    v = arith::AndIOp::create(b, v, i32Const(b, 0x000F000Fu));
    return Value(arith::OrIOp::create(b, v, i32Const(b, 0x43004300u)));
  };
  SmallVector<std::array<Value, 4>> steps;
  // Step 0: s = 0 (columns 0, 2) and s = 4 (8, 10); step 1: s = 8 (1, 3)
  // and s = 12 (9, 11).
  for (int64_t st = 0; st < 2; ++st) {
    int64_t s0 = 8 * st, s1 = 8 * st + 4;
    steps.push_back(
        {pairAt(wg, s0), pairAt(wg8, s0), pairAt(wg, s1), pairAt(wg8, s1)});
  }
  return steps;
}

} // namespace

/// B: width / 16 mma steps, 8 lanes a role (g = 2 role, 2 role + 1), 8
/// bytes.
static int64_t bFragmentBytes(int64_t width, int64_t perRow) {
  return width / 16 * 8 * perRow * 8;
}

int64_t mmaGemvRoles(std::optional<NormKind> norm, bool normBias) {
  return 1 + (norm == NormKind::Layer ? 1 : 0) + (normBias ? 1 : 0);
}

int64_t mmaGemvSharedBytes(int64_t width, int64_t perRow) {
  // B, then each block's sums of B (blocks of 32 columns at least).
  return bFragmentBytes(width, perRow) + width / 32 * perRow * 4;
}

void GPULowering::mmaGemv(
    KernelBuilder &lb, const GemvInput &in, const MmaGemvPlan &plan, Value lane,
    Value t, ArrayRef<Value> tileRows,
    llvm::function_ref<Value(KernelBuilder &, Value, Value)> finish,
    MmaEpilogue epilogue) {
  ImplicitLocOpBuilder &b = lb.builder();
  const QuantizedWeight &q = in.quant;
  Type f32 = b.getF32Type(), i32 = b.getI32Type();
  int64_t L = plan.loadBytes, T = plan.tiles, W = plan.warps,
          V = plan.unitsPerBlock;
  // A lane's load: 2 L columns, L / 4 words of 2 mma steps each.
  int64_t laneCols = 2 * L, blockCols = 4 * laneCols;
  int64_t words = L / 4, stepsPerWord = 2;
  int64_t mmaPerBlock = words * stepsPerWord;
  std::optional<NormKind> norm = in.norm;
  bool layer = norm && *norm == NormKind::Layer;
  bool normBias = bool(in.beta);
  int64_t perRow = mmaGemvRoles(norm, normBias);
  int64_t rows = 16 * T;
  int64_t perToken = norm ? (layer ? 2 : 1) : 0;
  int64_t count = rows * perRow + perToken;
  // Lanes of B with a role: g = 2 role (hi), 2 role + 1 (lo).
  int64_t roleLanes = 8 * perRow;
  // The block's warps: V units of W warps each (planMmaGemv), whose warps
  // take their row's blocks in turn. All of them build B.
  int64_t threads = 32 * W * V;
  Value warp = W * V > 1 ? in.sub : lb.index(0);
  // The warp's place in its unit, and its unit's first warp.
  Value sub = W == 1   ? lb.index(0)
              : V == 1 ? warp
                       : Value(arith::RemUIOp::create(b, warp, lb.index(W)));
  Value firstWarp = V > 1 ? lb.sub(warp, sub) : lb.index(0);
  Value tid = lb.add(lb.mul(warp, lb.index(32)), lane);
  MmaLane ml = mmaLane(lb, lane);
  // A lane past the roles reads some role's entry: it feeds a column of B
  // whose products no one reads (C's columns are independent), where a
  // select of zero cost 2 instructions an mma (3% of the step).
  Value laneEntry = lb.umin(lane, lb.index(roleLanes - 1));
  // The role of C's columns 2t, 2t + 1 in lane t (clamped past the roles).
  Value laneRole = lb.umin(ml.t, lb.index(perRow - 1));
  int64_t bBytes = bFragmentBytes(in.width, perRow);
  Value shared = dynamicSharedMemory(lb, kernels);
  auto entryAddress = [&](KernelBuilder &ib, Value entry) {
    return sharedAt(ib, shared, ib.mul(entry, ib.index(8)));
  };
  // Block `block`'s sum of role `role` of B, after B.
  auto blockSumAddress = [&](KernelBuilder &ib, Value block, Value role) {
    return sharedAt(ib, shared,
                    ib.add(ib.index(bBytes),
                           ib.mul(ib.add(ib.mul(block, ib.index(perRow)), role),
                                  ib.index(4))));
  };
  auto v2i32 = VectorType::get({2}, i32);

  // This lane's rows: g and g + 8 of each tile, clamped to the weight.
  SmallVector<Value> laneRows;
  for (Value base : tileRows)
    for (int64_t h = 0; h < 2; ++h)
      laneRows.push_back(lb.umin(lb.add(base, lb.add(ml.g, lb.index(8 * h))),
                                 lb.index(plan.rowLimit - 1)));

  // What one step of U blocks loads: per block and lane row, the words, the
  // group's scale (zero past the row's blocks: a clamped block's products
  // are counted once) and 128 + zero.
  struct BlockLoads {
    Value block;
    SmallVector<Value> raw, scale, zero;
  };
  auto loadStep = [&](KernelBuilder &ib, Value s0) {
    ImplicitLocOpBuilder &b = ib.builder();
    SmallVector<BlockLoads> out;
    for (int64_t u = 0; u < plan.unroll; ++u) {
      BlockLoads bl;
      Value blk = ib.add(s0, ib.index(u * W));
      Value valid = less(ib, blk, ib.index(plan.blocks));
      bl.block = ib.umin(blk, ib.index(plan.blocks - 1));
      Value byte =
          ib.add(ib.mul(bl.block, ib.index(4 * L)), ib.mul(ml.t, ib.index(L)));
      Value col0 = ib.mul(bl.block, ib.index(blockCols));
      for (Value r : laneRows) {
        Value raw = vector::LoadOp::create(
            b, VectorType::get({L}, b.getI8Type()), in.weight,
            ValueRange{ib.add(ib.mul(r, ib.index(q.rowBytes)), byte)}, false,
            llvm::MaybeAlign(L));
        bl.raw.push_back(
            vector::BitCastOp::create(b, VectorType::get({words}, i32), raw));
        Value group = q.groupOf(ib, r, col0);
        bl.scale.push_back(arith::SelectOp::create(
            b, valid, ib.loadF32(q.scales, {group}), ib.f32(0.0)));
        Value z = arith::UIToFPOp::create(
            b, f32, memref::LoadOp::create(b, q.zeros, ValueRange{group}));
        bl.zero.push_back(ib.add(z, ib.f32(128.0)));
      }
      out.push_back(std::move(bl));
    }
    return out;
  };

  // Accumulators: per tile the C fragment's 4 (rows g, g + 8; columns 2c,
  // 2c + 1), scaled group by group.
  SmallVector<Value> acc(4 * T, lb.f32(0.0));
  auto compute = [&](KernelBuilder &ib, ArrayRef<BlockLoads> step) {
    ImplicitLocOpBuilder &b = ib.builder();
    for (const BlockLoads &bl : step) {
      // The block's B registers, shared by its tiles.
      SmallVector<std::array<Value, 2>> bregs;
      Value firstMma = ib.mul(bl.block, ib.index(mmaPerBlock));
      for (int64_t m = 0; m < mmaPerBlock; ++m) {
        Value entry =
            ib.add(ib.mul(ib.add(firstMma, ib.index(m)), ib.index(roleLanes)),
                   laneEntry);
        Value pair = LLVM::LoadOp::create(b, v2i32, entryAddress(ib, entry),
                                          /*alignment=*/8);
        bregs.push_back({vector::ExtractOp::create(b, pair, 0),
                         vector::ExtractOp::create(b, pair, 1)});
      }
      // The block's sum of this lane's role of B (hi + lo), which 128 +
      // zero multiplies.
      Value sumB = LLVM::LoadOp::create(
          b, f32, blockSumAddress(ib, bl.block, laneRole), /*alignment=*/4);
      for (int64_t tt = 0; tt < T; ++tt) {
        SmallVector<Value> c(4, ib.f32(0.0));
        Value rawG = bl.raw[2 * tt], rawG8 = bl.raw[2 * tt + 1];
        for (int64_t wd = 0; wd < words; ++wd) {
          Value wg = vector::ExtractOp::create(b, rawG, wd);
          Value wg8 = vector::ExtractOp::create(b, rawG8, wd);
          SmallVector<std::array<Value, 4>> steps = int4Steps(ib, wg, wg8);
          for (size_t s = 0; s < steps.size(); ++s) {
            const std::array<Value, 2> &r = bregs[wd * stepsPerWord + s];
            SmallVector<Value> a(steps[s].begin(), steps[s].end());
            c = mmaHalf(ib, a, {r[0], r[1]}, c, b.getBF16Type());
          }
        }
        // A holds 128 + q: sum(128 + q) B - (128 + zero) sum(B), on the hi
        // columns (the sums count hi + lo). The products of 128 are exact
        // and the sums are of the bf16 values B holds, so what is lost is
        // the f32 rounding of the larger sums: ~2^-17 of the result.
        for (int64_t h = 0; h < 2; ++h)
          c[2 * h] = math::FmaOp::create(
              b, arith::NegFOp::create(b, bl.zero[2 * tt + h]), sumB, c[2 * h]);
        // The group's scale, row g's on c0 and c1, row g + 8's on c2, c3.
        for (int64_t i = 0; i < 4; ++i)
          acc[4 * tt + i] = math::FmaOp::create(
              b, c[i], bl.scale[2 * tt + i / 2], acc[4 * tt + i]);
      }
    }
  };

  // The first `ahead` steps' weights are in flight before the wait on the
  // previous kernel; then the block writes B for the whole row and the
  // norm's sums.
  Value s0 = sub;
  int64_t stride = W * plan.unroll;
  int64_t ahead = std::min(plan.ahead, plan.steps);
  SmallVector<SmallVector<BlockLoads>> queue;
  for (int64_t a = 0; a < ahead; ++a)
    queue.push_back(loadStep(lb, lb.add(s0, lb.index(a * stride))));
  // B and the norm's sums, a run of 16 columns at a time: a thread loads a
  // run's x (and gamma, beta) as vectors, `batch` runs in flight together,
  // and writes the run's 4 (h, st) x 2 perRow entries. A scalar loop of L2
  // loads, one round trip an iteration, had 4-16 iterations a kernel (the
  // LM head's one-warp blocks 32).
  int64_t runs = in.width / 16;
  int64_t perThread = llvm::divideCeil(runs, threads);
  // A run with its norm's gamma holds 32 registers: two in flight raised
  // the 7B's QKV and gate/up from 96-118 to 156-157 registers (ptxas), its
  // gate/up to two waves.
  int64_t batch = std::min<int64_t>(norm ? 1 : 2, perThread);
  int64_t batches = llvm::divideCeil(perThread, batch);
  int64_t gammaAlign = 0;
  if (norm)
    gammaAlign = std::min<int64_t>(
        16,
        16 * cast<MemRefType>(in.gamma.getType()).getElementTypeBitWidth() / 8);
  // A norm's gamma (and beta) do not depend on the previous kernel: where a
  // thread has one batch of runs, they are loaded before the wait with the
  // first step's weights, not after it behind them (B's build waited for
  // them 1-5 us after the wait). The registers they hold are held at B's
  // build anyway. H100, decode after 512: InternVL2-2B int4 -1.5%,
  // InternLM2-chat-7B int4 -1.5% (docs/PERF.md). Loading the second step's
  // weights there too (20-30 more registers) was 3-15% slower.
  SmallVector<Value> earlyGamma, earlyBeta;
  bool gammaEarly = norm && batches == 1;
  if (gammaEarly)
    for (int64_t i = 0; i < batch; ++i) {
      Value j = lb.umin(lb.add(tid, lb.index(i * threads)), lb.index(runs - 1));
      Value col = lb.mul(j, lb.index(16));
      earlyGamma.push_back(lb.loadVector(in.gamma, {col}, 16, gammaAlign));
      if (normBias)
        earlyBeta.push_back(lb.loadVector(in.beta, {col}, 16, gammaAlign));
    }
  if (in.waitInside)
    emitDependencyWait(lb);
  Value xBase = lb.mul(t, lb.index(in.width));
  SmallVector<Value> sums = lb.forLoop(
      lb.index(0), lb.index(batches), 1, {lb.f32(0.0), lb.f32(0.0)},
      [&](KernelBuilder &pb, Value it, ValueRange carried) {
        ImplicitLocOpBuilder &b = pb.builder();
        Value sumSq = carried[0], sumX = carried[1];
        struct Run {
          Value run, valid;
          SmallVector<Value> roles; // per role a vector<16xf32>
        };
        SmallVector<Run> loaded;
        for (int64_t i = 0; i < batch; ++i) {
          Run r;
          Value j = pb.add(
              tid, pb.mul(pb.add(pb.mul(it, pb.index(batch)), pb.index(i)),
                          pb.index(threads)));
          r.valid = less(pb, j, pb.index(runs));
          r.run = pb.umin(j, pb.index(runs - 1));
          Value col = pb.mul(r.run, pb.index(16));
          Value x = pb.loadVector(in.x, {pb.add(xBase, col)}, 16, 16);
          if (norm) {
            Value gm = gammaEarly
                           ? earlyGamma[i]
                           : pb.loadVector(in.gamma, {col}, 16, gammaAlign);
            r.roles.push_back(pb.mul(x, gm));
            if (layer)
              r.roles.push_back(gm);
            if (normBias)
              r.roles.push_back(
                  gammaEarly ? earlyBeta[i]
                             : pb.loadVector(in.beta, {col}, 16, gammaAlign));
          } else {
            r.roles.push_back(x);
          }
          if (norm) {
            // Invalid runs (clamped to the last) count nothing.
            Value xs = arith::SelectOp::create(b, r.valid, x,
                                               pb.splat(pb.f32(0.0), 16));
            for (int64_t e = 0; e < 16; ++e) {
              Value v = vector::ExtractOp::create(b, xs, e);
              sumSq = math::FmaOp::create(b, v, v, sumSq);
              if (layer)
                sumX = pb.add(sumX, v);
            }
          }
          loaded.push_back(std::move(r));
        }
        for (const Run &r : loaded) {
          // The run's place: block blk, lane c, word wd = 2 wdHi + h
          // (int4Steps' column order; a 4-byte load is half a run).
          Value blk, c, wdHi;
          if (L == 4) {
            blk = pb.div(r.run, pb.index(2));
            c = pb.mul(arith::RemUIOp::create(b, r.run, pb.index(2)),
                       pb.index(2));
            wdHi = pb.index(0);
          } else {
            blk = pb.div(r.run, pb.index(L / 2));
            Value inBlock = arith::RemUIOp::create(b, r.run, pb.index(L / 2));
            c = pb.div(inBlock, pb.index(L / 8));
            wdHi = arith::RemUIOp::create(b, inBlock, pb.index(L / 8));
          }
          // The entries' addresses and values, and per role the run's sum
          // of B as stored (hi + lo, bf16).
          SmallVector<std::pair<Value, Value>> entries;
          SmallVector<Value> runSums(perRow, pb.f32(0.0));
          auto halves = [&](Value reg) {
            return std::array<Value, 2>{
                asF32(b, arith::ShLIOp::create(b, reg, i32Const(b, 16))),
                asF32(b,
                      arith::AndIOp::create(b, reg, i32Const(b, 0xFFFF0000u)))};
          };
          for (int64_t h = 0; h < 2; ++h)
            for (int64_t st = 0; st < 2; ++st) {
              Value entryLane = L == 4 ? pb.add(c, pb.index(h)) : c;
              Value wd = L == 4
                             ? pb.index(0)
                             : pb.add(pb.mul(wdHi, pb.index(2)), pb.index(h));
              Value m = pb.add(
                  pb.mul(blk, pb.index(mmaPerBlock)),
                  pb.add(pb.mul(wd, pb.index(stepsPerWord)), pb.index(st)));
              int64_t base = 4 * h + st;
              for (int64_t role = 0; role < perRow; ++role) {
                auto at = [&](int64_t k) {
                  return Value(
                      vector::ExtractOp::create(b, r.roles[role], base + k));
                };
                std::array<Value, 4> v = {at(0), at(2), at(8), at(10)};
                for (int64_t lo = 0; lo < 2; ++lo) {
                  Value negOdd = pb.f32(lo ? -1.0 : 0.0);
                  std::array<Value, 2> regs = {
                      splitPair(pb, v[0], v[1], negOdd),
                      splitPair(pb, v[2], v[3], negOdd)};
                  for (Value reg : regs)
                    for (Value f : halves(reg))
                      runSums[role] = pb.add(runSums[role], f);
                  Value entry =
                      pb.add(pb.mul(m, pb.index(roleLanes)),
                             pb.add(pb.index(4 * (2 * role + lo)), entryLane));
                  entries.push_back(
                      {entry, vector::FromElementsOp::create(b, v2i32, regs)});
                }
              }
            }
          pb.ifThen(r.valid, [&](KernelBuilder &sb) {
            for (auto [entry, pair] : entries)
              LLVM::StoreOp::create(sb.builder(), pair, entryAddress(sb, entry),
                                    /*alignment=*/8);
          });
          // A block's runs are neighbouring lanes (its first a multiple of
          // their count): their sums added across those lanes, stored by
          // the first.
          int64_t runsPerBlock = L == 4 ? 2 : L / 2;
          SmallVector<int32_t> offsets;
          for (int32_t o = 1; o < runsPerBlock; o *= 2)
            offsets.push_back(o);
          SmallVector<Value> blockSums;
          for (Value v : runSums)
            blockSums.push_back(shuffleReduce(pb, v, offsets, false));
          Value first = arith::AndIOp::create(
              b, r.valid,
              isZero(pb,
                     arith::RemUIOp::create(b, r.run, pb.index(runsPerBlock))));
          pb.ifThen(first, [&](KernelBuilder &sb) {
            for (int64_t role = 0; role < perRow; ++role)
              LLVM::StoreOp::create(sb.builder(), blockSums[role],
                                    blockSumAddress(sb, blk, sb.index(role)),
                                    /*alignment=*/4);
          });
        }
        return SmallVector<Value>{sumSq, sumX};
      });
  if (norm) {
    Value sumSq = shuffleReduce(lb, sums[0], kWholeWarp, false);
    Value sumX =
        layer ? shuffleReduce(lb, sums[1], kWholeWarp, false) : Value();
    lb.ifThen(isZero(lb, lane), [&](KernelBuilder &sb) {
      Value at = sb.add(sb.mul(warp, sb.index(count)), sb.index(rows * perRow));
      sb.store(sumSq, in.partials, {at});
      if (layer)
        sb.store(sumX, in.partials, {sb.add(at, sb.index(1))});
    });
  }
  gpu::BarrierOp::create(b);
  // The trace's phases (decc --gpu-trace): 0 B built, 1 the warp's steps
  // done, 2 the unit's warps' sums in shared memory.
  tracePhase(lb, 0);

  if (plan.steps == ahead) {
    for (const SmallVector<BlockLoads> &step : queue)
      compute(lb, step);
  } else {
    // Software-pipelined: step s + ahead's weights are loaded before step s
    // is computed, so a warp always has `ahead` steps' loads in flight (the
    // loads carried through the loop).
    auto flatten = [&](ArrayRef<BlockLoads> step) {
      SmallVector<Value> v;
      for (const BlockLoads &bl : step) {
        v.push_back(bl.block);
        llvm::append_range(v, bl.raw);
        llvm::append_range(v, bl.scale);
        llvm::append_range(v, bl.zero);
      }
      return v;
    };
    size_t n = laneRows.size();
    size_t perBlock = 1 + 3 * n, perStep = plan.unroll * perBlock;
    auto unflatten = [&](ValueRange v) {
      SmallVector<BlockLoads> step;
      for (int64_t u = 0; u < plan.unroll; ++u) {
        ValueRange r = v.slice(u * perBlock, perBlock);
        BlockLoads bl;
        bl.block = r[0];
        bl.raw.assign(r.begin() + 1, r.begin() + 1 + n);
        bl.scale.assign(r.begin() + 1 + n, r.begin() + 1 + 2 * n);
        bl.zero.assign(r.begin() + 1 + 2 * n, r.begin() + 1 + 3 * n);
        step.push_back(std::move(bl));
      }
      return step;
    };
    size_t nAcc = 4 * T;
    SmallVector<Value> inits(acc);
    for (const SmallVector<BlockLoads> &step : queue)
      llvm::append_range(inits, flatten(step));
    SmallVector<Value> out =
        lb.forLoop(lb.add(s0, lb.index(ahead * stride)),
                   lb.add(s0, lb.index(plan.steps * stride)), stride, inits,
                   [&](KernelBuilder &ib, Value at, ValueRange it) {
                     acc.assign(it.begin(), it.begin() + nAcc);
                     SmallVector<BlockLoads> next = loadStep(ib, at);
                     compute(ib, unflatten(it.slice(nAcc, perStep)));
                     SmallVector<Value> carried(acc);
                     llvm::append_range(carried, it.drop_front(nAcc + perStep));
                     llvm::append_range(carried, flatten(next));
                     return carried;
                   });
    acc.assign(out.begin(), out.begin() + nAcc);
    for (int64_t a = 0; a < ahead; ++a)
      compute(lb,
              unflatten(ValueRange(out).slice(nAcc + a * perStep, perStep)));
  }

  tracePhase(lb, 1);

  // The warp's sums: x.gW in lanes c = 0 (hi + lo), gamma.W c = 1, beta.W
  // c = 2.
  Value base = lb.mul(warp, lb.index(count));
  lb.ifThen(less(lb, ml.t, lb.index(perRow)), [&](KernelBuilder &sb) {
    for (int64_t tt = 0; tt < T; ++tt)
      for (int64_t h = 0; h < 2; ++h) {
        Value row = sb.add(ml.g, sb.index(16 * tt + 8 * h));
        Value v = sb.add(acc[4 * tt + 2 * h], acc[4 * tt + 2 * h + 1]);
        sb.store(v, in.partials,
                 {sb.add(base, sb.add(sb.mul(row, sb.index(perRow)), ml.t))});
      }
  });
  gpu::BarrierOp::create(b);
  tracePhase(lb, 2);

  // Thread j of a unit's warps finishes outputs j, j + 32 W, ...: the sum
  // at `idx` of n warps' partials from warp `from`.
  int64_t outputs = plan.swiglu ? rows / 2 : rows;
  int64_t unitThreads = 32 * W;
  Value unitTid = lb.add(lb.mul(sub, lb.index(32)), lane);
  auto sumOf = [&](KernelBuilder &ib, Value idx, int64_t n, Value from) {
    ImplicitLocOpBuilder &b = ib.builder();
    Value at = ib.add(idx, ib.mul(from, ib.index(count)));
    Value s = ib.f32(0.0);
    for (int64_t w = 0; w < n; ++w)
      s = ib.add(
          s, memref::LoadOp::create(
                 b, in.partials, ValueRange{ib.add(at, ib.index(w * count))}));
    return s;
  };
  // A row's sums are its unit's warps'; the norm's, every warp's.
  auto total = [&](KernelBuilder &ib, Value idx) {
    return sumOf(ib, idx, W, firstWarp);
  };
  auto normTotal = [&](KernelBuilder &ib, Value idx) {
    return sumOf(ib, idx, W * V, ib.index(0));
  };
  for (int64_t n = 0; n * unitThreads < outputs; ++n) {
    Value o = lb.add(unitTid, lb.index(n * unitThreads));
    lb.ifThen(less(lb, o, lb.index(outputs)), [&](KernelBuilder &ob) {
      ImplicitLocOpBuilder &b = ob.builder();
      Value inv, mean;
      if (norm) {
        Value nw = ob.f32(double(in.width));
        Value var = ob.div(normTotal(ob, ob.index(rows * perRow)), nw);
        if (layer) {
          mean = ob.div(normTotal(ob, ob.index(rows * perRow + 1)), nw);
          var = ob.sub(var, ob.mul(mean, mean));
        }
        inv = math::RsqrtOp::create(b, ob.add(var, ob.f32(in.eps)));
      }
      SmallVector<Value> ys;
      for (int64_t half = 0; half < (plan.swiglu ? 2 : 1); ++half) {
        Value i = ob.add(o, ob.index(half * outputs));
        Value at = ob.mul(i, ob.index(perRow));
        Value s = total(ob, at);
        if (norm) {
          if (layer)
            s = ob.sub(s, ob.mul(mean, total(ob, ob.add(at, ob.index(1)))));
          s = ob.mul(s, inv);
          if (normBias)
            s = ob.add(s, total(ob, ob.add(at, ob.index(perRow - 1))));
        }
        // The weight row: tile i / 16's first, plus i % 16.
        Value row;
        for (int64_t tt = 0; tt < T; ++tt) {
          Value r =
              ob.add(tileRows[tt], arith::RemUIOp::create(b, i, ob.index(16)));
          row = tt == 0 ? r
                        : Value(arith::SelectOp::create(
                              b,
                              arith::CmpIOp::create(b, arith::CmpIPredicate::eq,
                                                    ob.div(i, ob.index(16)),
                                                    ob.index(tt)),
                              r, row));
        }
        ys.push_back(finish(ob, s, ob.umin(row, ob.index(plan.rowLimit - 1))));
      }
      epilogue(ob, o, ys);
    });
  }
  // The partials and B are free again for the next token.
  gpu::BarrierOp::create(b);
}

} // namespace decc::gpulowering
