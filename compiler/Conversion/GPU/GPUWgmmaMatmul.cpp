//===- GPUWgmmaMatmul.cpp - large prefill projections on sm_90a -----------===//
//
// A projection of a long prompt is a matmul Y[T, N] = A[T, K] . W[N, K]^T
// with both operands K-major in half precision: the activations, normalized
// and rounded once (prepareHalfActivations), and the weights as the arena
// holds them. On sm_90a it runs at the tensor cores' full rate:
//
// - a block owns 128 tokens x BN weight rows; BN is chosen at compile time
//   from the projection's shape (GPULowering::wgmmaTileRows);
// - three warpgroups: one producer, whose elected thread streams the K
//   steps of both operands into a ring of shared-memory stages with TMA,
//   each stage completing on a `full` mbarrier; two consumers, 64 tokens
//   each, issuing m64nBNk16 wgmmas from the stage and releasing it through
//   an `empty` mbarrier once the wgmmas that read it have retired (one
//   group kept in flight);
// - the producer gives registers to the consumers (setmaxnreg), whose
//   accumulators hold 64 x BN f32 per warpgroup;
// - the epilogue runs on the accumulators where they are, in registers:
//   bias, clip, GELU, residual; SwiGLU (the B tile is BN/2 gate rows then
//   the BN/2 up rows they pair with); RoPE + KV append (BN is a multiple of
//   the head size, so a rotated pair is in one thread's registers).
//
// Shared memory per stage: A 128 x 64 then B BN x 64 elements, 128-byte
// rows, 128-byte swizzle (GPUHopper.h); the mbarriers follow the stages.
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/GPU/GPULowering.h"

#include "compiler/Conversion/GPU/GPUHopper.h"
#include "compiler/Conversion/GPU/GPUMma.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <numeric>

namespace decc::gpulowering {

namespace {
constexpr int64_t kTileTokens = 128; // two consumer warpgroups of 64
constexpr int64_t kStepK = kSwizzleRowBytes / 2;
constexpr int64_t kThreadsPerGroup = 128;
constexpr int64_t kBlockThreads = 3 * kThreadsPerGroup;
constexpr int64_t kConsumerThreads = 2 * kThreadsPerGroup;
constexpr int64_t kSharedBudget = 200 * 1024;
constexpr int64_t kMaxStages = 8;
// 40 registers for the producer, 232 for each consumer thread: 128 * 40 +
// 256 * 232 fits the 64K of a multiprocessor.
constexpr uint32_t kProducerRegisters = 40, kConsumerRegisters = 232;
// Token tiles of the prompt length the tile shape is chosen for (2048).
constexpr int64_t kDesignTokenTiles = 2048 / kTileTokens;
constexpr int64_t kMultiprocessors = 132;

/// The tile width, of `widths`, that a 2048-token prompt runs fastest
/// with over `rows` output rows, `perTile` of them a tile of width bn (bn,
/// or bn / 2 for SwiGLU's gate and up halves): the fewest waves of blocks
/// over the card, each block's time taken as bn + 64 (its B rows plus a
/// share of its 128 A rows and fixed costs), the wider tile on a tie.
/// Measured on an H200 (docs/PERF.md): a 0.5B's 896 rows run O and down
/// 1.25x and 1.6x faster with 112 (128 blocks, one wave) than with 64 (two
/// waves of thin tiles; 128 would leave 20 SMs idle), Phi-3's 3072 1.25x
/// with 192 (1.94 waves) than with 256 (1.45); gate/up of 240 (120
/// features, 4.97 waves) was 2% slower than 256 (4.6), so widths that no
/// measurement backs are not candidates.
int64_t fastestTileRows(int64_t rows, ArrayRef<int64_t> widths, bool halves) {
  int64_t best = 0, bestCost = 0;
  for (int64_t bn : widths) {
    int64_t perTile = halves ? bn / 2 : bn;
    int64_t blocks = (rows + perTile - 1) / perTile * kDesignTokenTiles;
    int64_t cost =
        (blocks + kMultiprocessors - 1) / kMultiprocessors * (bn + 64);
    if (!best || cost < bestCost) {
      best = bn;
      bestCost = cost;
    }
  }
  return best;
}
} // namespace

int64_t GPULowering::wgmmaTileRows(const ProjectionEpilogue &e) const {
  if (!warpgroupMma || e.inWidth % 8 != 0)
    return 0;
  switch (e.kind) {
  case ProjectionEpilogue::Kind::Append: {
    // A block holds whole heads, and q, k and v start on a block boundary.
    int64_t d = cacheHeadDim;
    if (d % 16 != 0 || e.half % 8 != 0)
      return 0;
    int64_t heads = std::gcd(e.qHeads, cacheKVHeads);
    for (int64_t m = heads; m >= 1; --m)
      if (heads % m == 0 && d * m <= 256)
        return d * m;
    return 0;
  }
  case ProjectionEpilogue::Kind::SwiGLU:
    return fastestTileRows(e.outWidths[0], {256, 128, 64}, /*halves=*/true);
  case ProjectionEpilogue::Kind::Plain: {
    if (e.outs.size() == 1)
      return fastestTileRows(e.outWidths[0], {256, 192, 128, 112, 64},
                             /*halves=*/false);
    // Several outputs (an encoder's q, k, v): a tile lies in one of them.
    if (!e.residual.empty())
      return 0;
    SmallVector<int64_t> widths;
    for (int64_t bn : {256, 192, 128, 112, 64})
      if (llvm::all_of(e.outWidths, [&](int64_t w) { return w % bn == 0; }))
        widths.push_back(bn);
    if (widths.empty())
      return 0;
    int64_t rows = 0;
    for (int64_t w : e.outWidths)
      rows += w;
    return fastestTileRows(rows, widths, /*halves=*/false);
  }
  }
  return 0;
}

std::string GPULowering::tensorMap(StringRef buffer, int64_t offset,
                                   Type element, int64_t inner, int64_t outer,
                                   int64_t boxOuter, int64_t cacheLayer) {
  contract::TensorMapSpec map;
  map.buffer = buffer.str();
  map.offset = offset;
  map.dtype = element.isBF16() ? contract::DType::BF16 : contract::DType::F16;
  map.inner = inner;
  map.outer = outer;
  map.boxInner = kStepK;
  map.boxOuter = boxOuter;
  map.cacheLayer = cacheLayer;
  // Maps of the same matrix and box are one map.
  std::string key = (buffer + "@" + Twine(offset) + "/" + Twine(cacheLayer) +
                     ":" + Twine(inner) + "x" + Twine(outer) + "/" +
                     Twine(boxOuter) + ":" + contract::spelling(map.dtype))
                        .str();
  auto it = tensorMapNames.find(key);
  if (it != tensorMapNames.end())
    return it->second;
  std::string name = "tmap:" + std::to_string(plan.tensorMaps.size());
  map.name = name;
  plan.tensorMaps.push_back(std::move(map));
  tensorMapNames[key] = name;
  return name;
}

void GPULowering::emitWgmmaProjection(FusedLinearOp op,
                                      const ProjectionEpilogue &e,
                                      ArrayRef<Binding> epilogueBindings,
                                      const std::string &prepared,
                                      int64_t wOffset, int64_t bn,
                                      LaunchWhen when) {
  Type i8 = IntegerType::get(ctx, 8), i64 = IntegerType::get(ctx, 64);
  Type welt = cast<RankedTensorType>(op.getWeight().getType()).getElementType();
  bool swiglu = e.kind == ProjectionEpilogue::Kind::SwiGLU;
  int64_t k = e.inWidth;
  // Weight rows of one TMA box: the whole tile, or each half of a SwiGLU
  // tile (gate rows, then the up rows of the same features).
  int64_t boxRows = swiglu ? bn / 2 : bn;
  int64_t aBytes = kTileTokens * kSwizzleRowBytes;
  int64_t stageBytes = (kTileTokens + bn) * kSwizzleRowBytes;
  int64_t stages = std::min(kMaxStages, kSharedBudget / stageBytes);
  int64_t steps = (k + kStepK - 1) / kStepK;

  std::string mapA = tensorMap(prepared, 0, welt, k, /*outer=*/-1, kTileTokens);
  std::string mapB =
      tensorMap("arena", wOffset, welt, k, e.weightRows, boxRows);
  SmallVector<Binding> binds = {
      {"arena", i8}, {"step", i64}, {mapA, i8}, {mapB, i8}};
  for (const Binding &b : epilogueBindings)
    if (b.name != "arena" && b.name != "step")
      binds.push_back(b);
  Kernel &kernel = beginKernel("matmul_wgmma", binds);
  kernel.threads = kBlockThreads;
  // A register cap at entry is what lets setmaxnreg move registers between
  // the warpgroups.
  requestOccupancy(kernel, 1);
  KernelBuilder &kb = *kernel.kb;
  ImplicitLocOpBuilder &b = *kernel.b;

  SharedRing ring = sharedRing(kb, kernels, 0, stageBytes, stages);
  kernel.sharedBytes = ring.sharedBytes();
  auto stageAt = [&](KernelBuilder &lb, Value s, int64_t extra) {
    return sharedAt(lb, ring.stage(lb, s), extra);
  };

  Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  Value group = kb.div(tid, kb.index(kThreadsPerGroup));
  ring.init(kb, tid, kConsumerThreads);

  Value m0 = kb.mul(gpu::BlockIdOp::create(b, gpu::Dimension::x),
                    kb.index(kTileTokens));
  Value n0 =
      kb.mul(gpu::BlockIdOp::create(b, gpu::Dimension::y), kb.index(boxRows));
  WarpRoles roles = specializeWarps(kb, isZero(kb, group), kProducerRegisters,
                                    kConsumerRegisters);
  {
    // Producer: one thread walks K, refilling each stage once the
    // consumers have released it.
    KernelBuilder pk(*roles.producer);
    Value mapAPtr = genericPointer(pk, kernel.args[mapA]);
    Value mapBPtr = genericPointer(pk, kernel.args[mapB]);
    ring.produceRounds(
        pk, tid, pk.index(steps),
        [&](KernelBuilder &lb, Value step, Value stage, Value bar) {
          Value x = lb.mul(step, lb.index(kStepK));
          tmaLoad2D(lb, stage, mapAPtr, bar, x, m0);
          tmaLoad2D(lb, sharedAt(lb, stage, aBytes), mapBPtr, bar, x, n0);
          if (swiglu)
            tmaLoad2D(lb,
                      sharedAt(lb, stage, aBytes + boxRows * kSwizzleRowBytes),
                      mapBPtr, bar, x, lb.add(n0, lb.index(e.outWidths[0])));
        });
  }
  {
    ImplicitLocOpBuilder &cb = *roles.consumer;
    KernelBuilder ck(cb);
    Value t = ck.sub(tid, ck.index(kThreadsPerGroup));
    Value consumer = ck.div(t, ck.index(kThreadsPerGroup));
    Value aOffset = ck.mul(consumer, ck.index(aBytes / 2));
    Value acc = ck.forLoop(
        ck.index(0), ck.index(steps), 1, {wgmmaZero(ck, bn)},
        [&](KernelBuilder &lb, Value step, ValueRange in) {
          ImplicitLocOpBuilder &l = lb.builder();
          Value s = ring.slot(lb, step);
          mbarrierWait(lb, ring.full(lb, s), ring.parity(lb, step));
          NVVM::WgmmaFenceAlignedOp::create(l);
          Value stage = stageAt(lb, s, 0);
          Value descA = wgmmaDescriptor(lb, sharedAt(lb, stage, aOffset));
          Value descB = wgmmaDescriptor(lb, sharedAt(lb, stage, aBytes));
          Value a = in[0];
          for (int64_t kk = 0; kk < kStepK / 16; ++kk)
            a = wgmma(lb, advanceDescriptor(lb, descA, kk * 32),
                      advanceDescriptor(lb, descB, kk * 32), a, bn, welt);
          NVVM::WgmmaGroupSyncAlignedOp::create(l);
          // The wgmmas of the step before have retired: release its stage.
          NVVM::WgmmaWaitGroupSyncOp::create(l, 1);
          lb.ifThen(
              arith::CmpIOp::create(l, arith::CmpIPredicate::ugt, step,
                                    lb.index(0)),
              [&](KernelBuilder &rb) {
                mbarrierArrive(
                    rb,
                    ring.empty(rb, ring.slot(rb, rb.sub(step, rb.index(1)))));
              });
          return SmallVector<Value>{a};
        })[0];
    NVVM::WgmmaWaitGroupSyncOp::create(cb, 0);
    wgmmaEpilogue(ck, kernel, op, e, acc, bn, t, m0, n0);
  }
  int64_t tiledRows = swiglu ? e.outWidths[0] : e.weightRows;
  endKernel(kernel,
            grid(1, kTileTokens, GridScale::Tokens,
                 (tiledRows + boxRows - 1) / boxRows),
            when);
}

void GPULowering::wgmmaEpilogue(KernelBuilder &kb, Kernel &k, FusedLinearOp op,
                                const ProjectionEpilogue &e, Value acc,
                                int64_t bn, Value t, Value m0, Value n0) {
  ImplicitLocOpBuilder &b = kb.builder();
  Type f32 = b.getF32Type();
  auto v2 = VectorType::get({2}, f32);
  // This thread's rows and columns: consumer c, warp w, lane 4g + q hold
  // tokens m0 + 64c + 16w + g (+ 8) and tile columns 8j + 2q (+ 1).
  Value consumer = kb.div(t, kb.index(kThreadsPerGroup));
  Value inGroup = arith::RemUIOp::create(b, t, kb.index(kThreadsPerGroup));
  Value warp = kb.div(inGroup, kb.index(32));
  Value lane = arith::RemUIOp::create(b, inGroup, kb.index(32));
  Value g = kb.div(lane, kb.index(4));
  Value q2 = kb.mul(arith::RemUIOp::create(b, lane, kb.index(4)), kb.index(2));
  Value row0 = kb.add(m0, kb.add(kb.mul(consumer, kb.index(64)),
                                 kb.add(kb.mul(warp, kb.index(16)), g)));
  Value nTokens = step(kb, k, kStepTokens);
  Value bias = e.biasOffset >= 0
                   ? arenaView(kb, k,
                               cast<RankedTensorType>(op.getWeight().getType())
                                   .getElementType(),
                               e.biasOffset)
                   : Value();
  auto pair = [&](KernelBuilder &lb, Value a0, Value a1) {
    return vector::FromElementsOp::create(lb.builder(), v2, ValueRange{a0, a1});
  };
  auto load2 = [&](KernelBuilder &lb, Value memref, Value index) -> Value {
    return vector::LoadOp::create(lb.builder(), v2, memref, ValueRange{index},
                                  false, llvm::MaybeAlign(8));
  };
  auto store2 = storePair;
  // Accumulator column pair j of row half h, with the bias of weight rows
  // `row` and `row` + 1 and the clip applied.
  auto products = [&](KernelBuilder &lb, int64_t j, int64_t h, Value row) {
    Value v = pair(lb, wgmmaElement(lb, acc, 4 * j + 2 * h),
                   wgmmaElement(lb, acc, 4 * j + 2 * h + 1));
    if (bias)
      v = lb.add(v, pair(lb, lb.loadF32(bias, {row}),
                         lb.loadF32(bias, {lb.add(row, lb.index(1))})));
    if (e.clip > 0) {
      Value c = arith::ConstantOp::create(
          lb.builder(), DenseElementsAttr::get(v2, float(e.clip)));
      Value negC = arith::ConstantOp::create(
          lb.builder(), DenseElementsAttr::get(v2, float(-e.clip)));
      v = arith::MinimumFOp::create(
          lb.builder(), arith::MaximumFOp::create(lb.builder(), v, negC), c);
    }
    return v;
  };

  for (int64_t h = 0; h < 2; ++h) {
    Value token = kb.add(row0, kb.index(8 * h));
    kb.ifThen(less(kb, token, nTokens), [&](KernelBuilder &tb) {
      switch (e.kind) {
      case ProjectionEpilogue::Kind::Plain: {
        // Output `slot` holds weight rows from `start`; a tile of several
        // outputs' projection lies in one of them (wgmmaTileRows).
        auto region = [&](KernelBuilder &rb, size_t slot, int64_t start) {
          int64_t width = e.outWidths[slot];
          Value outBase = rb.mul(token, rb.index(width));
          for (int64_t j = 0; j < bn / 8; ++j) {
            Value row = rb.add(n0, rb.add(rb.index(8 * j), q2));
            auto finish = [&](KernelBuilder &sb) {
              Value y = products(sb, j, h, row);
              if (e.activation)
                y = applyActivation(sb, y, *e.activation);
              Value idx = sb.add(outBase, sb.sub(row, sb.index(start)));
              if (!e.residual.empty())
                y = sb.add(y, load2(sb, k.args[e.residual], idx));
              store2(sb, y, k.args[e.outs[slot]], idx);
            };
            if (width % bn == 0)
              finish(rb);
            else
              rb.ifThen(less(rb, row, rb.index(width)), finish);
          }
        };
        if (e.outs.size() == 1) {
          region(tb, 0, 0);
          return;
        }
        // A tile lies in one output: the one whose rows hold n0.
        int64_t start = 0;
        for (size_t slot = 0; slot < e.outs.size(); ++slot) {
          int64_t end = start + e.outWidths[slot];
          Value inSlot = arith::AndIOp::create(
              tb.builder(),
              arith::CmpIOp::create(tb.builder(), arith::CmpIPredicate::uge, n0,
                                    tb.index(start)),
              less(tb, n0, tb.index(end)));
          tb.ifThen(inSlot, [&, slot, start](KernelBuilder &rb) {
            region(rb, slot, start);
          });
          start = end;
        }
        return;
      }
      case ProjectionEpilogue::Kind::SwiGLU: {
        int64_t width = e.outWidths[0], half = bn / 2;
        Value outBase = tb.mul(token, tb.index(width));
        for (int64_t j = 0; j < half / 8; ++j) {
          Value row = tb.add(n0, tb.add(tb.index(8 * j), q2));
          auto finish = [&](KernelBuilder &sb) {
            Value gate = products(sb, j, h, row);
            Value up =
                products(sb, j + half / 8, h, sb.add(row, sb.index(width)));
            store2(sb, siluTimes(sb, gate, up), k.args[e.outs[0]],
                   sb.add(outBase, row));
          };
          if (width % half == 0)
            finish(tb);
          else
            tb.ifThen(less(tb, row, tb.index(width)), finish);
        }
        return;
      }
      case ProjectionEpilogue::Kind::Append:
        appendEpilogue(tb, k, e, bn, token, n0, q2,
                       [&](KernelBuilder &lb, int64_t j, Value row) {
                         return products(lb, j, h, row);
                       });
        return;
      }
    });
  }
}

void GPULowering::appendEpilogue(
    KernelBuilder &kb, Kernel &k, const ProjectionEpilogue &e, int64_t bn,
    Value token, Value n0, Value q2,
    llvm::function_ref<Value(KernelBuilder &, int64_t, Value)> products) {
  ImplicitLocOpBuilder &b = kb.builder();
  Type f32 = b.getF32Type();
  auto v2 = VectorType::get({2}, f32);
  int64_t d = cacheHeadDim, half = e.half;
  int64_t qRows = e.qHeads * d, kRows = cacheKVHeads * d;
  Value pos = kb.toIndex(
      memref::LoadOp::create(b, k.args["positions"], ValueRange{token}));
  Value cacheRow = cacheRowOf(kb, k, pageRow(kb, k, token), pos);
  Value context = step(kb, k, kStepContext);
  auto store2 = storePair;
  // Where feature i of head `head` goes: the q buffer, or the cache row of
  // this token's position.
  auto destination = [&](KernelBuilder &lb, int slot, Value head,
                         Value i) -> std::pair<Value, Value> {
    if (slot == 0)
      return {k.args[e.outs[0]], lb.add(lb.mul(token, lb.index(qRows)),
                                        lb.add(lb.mul(head, lb.index(d)), i))};
    Value row = lb.add(lb.mul(lb.add(lb.mul(cacheLayer(lb, k, e.layer),
                                            lb.index(cacheKVHeads)),
                                     head),
                              context),
                       cacheRow);
    return {k.args[slot == 1 ? "k_cache" : "v_cache"],
            lb.add(lb.mul(row, lb.index(d)), i)};
  };
  // The block's rows lie in one of q, k, v (the tile divides each).
  auto region = [&](KernelBuilder &rb, int slot, int64_t start) {
    Value head0 = rb.div(rb.sub(n0, rb.index(start)), rb.index(d));
    for (int64_t j = 0; j < bn / 8; ++j) {
      int64_t i0 = (8 * j) % d;
      Value head = rb.add(head0, rb.index(8 * j / d));
      Value row = rb.add(n0, rb.add(rb.index(8 * j), q2));
      Value i = rb.add(rb.index(i0), q2);
      bool rotated = slot < 2 && half > 0;
      if (rotated && i0 >= half && i0 < 2 * half)
        continue; // written with its partner j - half / 8
      Value x = products(rb, j, row);
      if (!rotated || i0 >= 2 * half) {
        auto [memref, idx] = destination(rb, slot, head, i);
        store2(rb, x, memref, idx);
        continue;
      }
      int64_t partner = j + half / 8;
      Value y = products(rb, partner, rb.add(row, rb.index(half)));
      Value ci = rb.add(rb.mul(token, rb.index(half)), i);
      Value c =
          vector::LoadOp::create(rb.builder(), v2, k.args[e.cosName],
                                 ValueRange{ci}, false, llvm::MaybeAlign(8));
      Value s =
          vector::LoadOp::create(rb.builder(), v2, k.args[e.sinName],
                                 ValueRange{ci}, false, llvm::MaybeAlign(8));
      auto [memref, idx] = destination(rb, slot, head, i);
      store2(rb, rb.sub(rb.mul(x, c), rb.mul(y, s)), memref, idx);
      auto [pm, pidx] = destination(rb, slot, head, rb.add(i, rb.index(half)));
      store2(rb, rb.add(rb.mul(y, c), rb.mul(x, s)), pm, pidx);
    }
  };
  Value isQ = less(kb, n0, kb.index(qRows));
  Value isK = less(kb, n0, kb.index(qRows + kRows));
  auto ifElse = scf::IfOp::create(b, isQ, /*withElse=*/true);
  {
    ImplicitLocOpBuilder qb(b.getLoc(), ifElse.getThenBodyBuilder());
    KernelBuilder qk(qb);
    region(qk, 0, 0);
  }
  {
    ImplicitLocOpBuilder rb(b.getLoc(), ifElse.getElseBodyBuilder());
    KernelBuilder rk(rb);
    auto kv = scf::IfOp::create(rb, isK, /*withElse=*/true);
    {
      ImplicitLocOpBuilder kbd(rb.getLoc(), kv.getThenBodyBuilder());
      KernelBuilder kk(kbd);
      region(kk, 1, qRows);
    }
    {
      ImplicitLocOpBuilder vbd(rb.getLoc(), kv.getElseBodyBuilder());
      KernelBuilder vk(vbd);
      region(vk, 2, qRows + kRows);
    }
  }
}

} // namespace decc::gpulowering
