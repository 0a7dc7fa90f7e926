//===- GPUProjection.cpp - projection kernels of the GPU lowering ---------===//
//
// A projection's kernel: its epilogue (bias, clip, residual, SwiGLU / GELU,
// RoPE + KV append) over dot products that come from the decode GEMV (a
// warp per output unit, GPUGemv.cpp) or, in a prefill, from the tensor-core
// matmul's products (a thread per unit, a block row per token,
// GPUMatmul.cpp).
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/GPU/GPULowering.h"

#include "compiler/Conversion/Common/PositionTables.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include "llvm/ADT/bit.h"

namespace decc::gpulowering {

Value applyActivation(KernelBuilder &kb, Value y, Activation activation) {
  return gelu(kb, y, activation == Activation::GeluTanh);
}

int64_t GPULowering::gemvWarpsPerUnit(int64_t units) {
  // Units per warp count measured on an H200 (docs/PERF.md): 2048-unit
  // projections streamed at 25-45% of the bandwidth a warp a unit, 8192-unit
  // ones at 61%. As many warps a unit as keep the whole grid resident at
  // once on an sm_90 card (132 SMs x 64 warps): a second, partial wave of
  // blocks is one more memory latency with the card nearly idle.
  constexpr int64_t kResidentWarps = 132 * 64;
  for (int64_t warps : {4, 2})
    if (units * warps <= kResidentWarps)
      return warps;
  return 1;
}

GPULowering::AppendPlace GPULowering::appendPlace(KernelBuilder &kb, Kernel &k,
                                                  const AppendShape &shape,
                                                  Value t) {
  Value pos = kb.toIndex(
      memref::LoadOp::create(kb.builder(), k.args["positions"], ValueRange{t}));
  return {t, cacheRowOf(kb, k, pageRow(kb, k, t), pos),
          cacheLayer(kb, k, shape.layer), step(k, kStepContext)};
}

std::pair<Value, Value> GPULowering::appendTarget(KernelBuilder &lb, Kernel &k,
                                                  const AppendShape &shape,
                                                  const AppendPlace &at,
                                                  int slot, Value head,
                                                  Value i) {
  int64_t d = cacheHeadDim;
  if (slot == 0)
    return {k.args[shape.q], lb.add(lb.mul(at.t, lb.index(shape.qHeads * d)),
                                    lb.add(lb.mul(head, lb.index(d)), i))};
  Value row =
      lb.add(lb.mul(lb.add(lb.mul(at.layer, lb.index(cacheKVHeads)), head),
                    at.context),
             at.cacheRow);
  return {k.args[slot == 1 ? "k_cache" : "v_cache"],
          lb.add(lb.mul(row, lb.index(d)), i)};
}

void GPULowering::appendUnit(KernelBuilder &tb, Kernel &k,
                             const AppendShape &shape, Value u, Value t,
                             DotsFn dots, StoreFn storeLane0) {
  int64_t d = cacheHeadDim;
  AppendPlace at = appendPlace(tb, k, shape, t);
  // Unit u: q heads, then k heads (rotated pairs), then v features.
  int64_t qUnits = shape.qHeads * shape.unitsPerRotated;
  int64_t kUnits = cacheKVHeads * shape.unitsPerRotated;
  auto store = [&](KernelBuilder &lb, int slot, Value head, Value i, Value v) {
    auto [memref, idx] = appendTarget(lb, k, shape, at, slot, head, i);
    storeLane0(lb, v, memref, idx);
  };
  auto rotated = [&](KernelBuilder &lb, int slot, Value local,
                     int64_t rowBase) {
    Value head = lb.div(local, lb.index(shape.unitsPerRotated));
    Value r = arith::RemUIOp::create(lb.builder(), local,
                                     lb.index(shape.unitsPerRotated));
    Value rowOfHead = lb.add(lb.index(rowBase), lb.mul(head, lb.index(d)));
    auto single = [&](KernelBuilder &sb, Value i) {
      Value y = dots(sb, t, {sb.add(rowOfHead, i)}, {})[0];
      store(sb, slot, head, i, y);
    };
    if (shape.half == 0) {
      single(lb, r);
      return;
    }
    auto pair = [&](KernelBuilder &pb) {
      Value i2 = pb.add(r, pb.index(shape.half));
      Value ci = pb.add(pb.mul(t, pb.index(shape.half)), r);
      Value c, s;
      auto loadTables = [&](KernelBuilder &ib) {
        c = ib.loadF32(k.args[shape.cos], {ci});
        s = ib.loadF32(k.args[shape.sin], {ci});
      };
      SmallVector<Value> y = dots(
          pb, t, {pb.add(rowOfHead, r), pb.add(rowOfHead, i2)}, loadTables);
      store(pb, slot, head, r, pb.sub(pb.mul(y[0], c), pb.mul(y[1], s)));
      store(pb, slot, head, i2, pb.add(pb.mul(y[1], c), pb.mul(y[0], s)));
    };
    if (shape.unitsPerRotated == shape.half) {
      pair(lb);
      return;
    }
    Value isPair = less(lb, r, lb.index(shape.half));
    lb.ifThen(isPair, pair);
    lb.ifThen(negate(lb, isPair), [&](KernelBuilder &sb) {
      single(sb, sb.add(r, sb.index(shape.half)));
    });
  };
  Value isQ = less(tb, u, tb.index(qUnits));
  Value isK = arith::AndIOp::create(tb.builder(), negate(tb, isQ),
                                    less(tb, u, tb.index(qUnits + kUnits)));
  Value isV = arith::CmpIOp::create(tb.builder(), arith::CmpIPredicate::uge, u,
                                    tb.index(qUnits + kUnits));
  tb.ifThen(isQ, [&](KernelBuilder &lb) { rotated(lb, 0, u, 0); });
  tb.ifThen(isK, [&](KernelBuilder &lb) {
    rotated(lb, 1, lb.sub(u, lb.index(qUnits)), shape.qHeads * d);
  });
  tb.ifThen(isV, [&](KernelBuilder &lb) {
    Value local = lb.sub(u, lb.index(qUnits + kUnits));
    Value head = lb.div(local, lb.index(d));
    Value i = arith::RemUIOp::create(lb.builder(), local, lb.index(d));
    Value y = dots(lb, t,
                   {lb.add(lb.index((shape.qHeads + cacheKVHeads) * d), local)},
                   {})[0];
    store(lb, 2, head, i, y);
  });
}

std::optional<MmaGemvPlan>
GPULowering::decodeMmaPlan(const ProjectionKernels &p) const {
  FusedLinearOp op = p.op;
  auto type = cast<RankedTensorType>(op.getWeight().getType());
  contract::WeightSlot slot = slotLayout(type);
  if (!slot.quantBits || !tensorCores)
    return std::nullopt;
  bool swiglu = op.getActivation() == Activation::SwiGLU;
  if (p.append) {
    // A unit of two tiles that pair rows as the epilogue needs them: RoPE
    // pairs r, r + half of a head (16 of them: half a multiple of 16), or
    // 32 rows of an unrotated head; else raw products for the epilogue
    // kernel.
    int64_t d = cacheHeadDim, half = p.shape.half;
    if (fusedAppend && (half == 0 || (2 * half == d && half % 16 == 0)) &&
        d % 32 == 0) {
      std::optional<MmaGemvPlan> plan =
          planMmaGemv(slot.quantBits, slot.groupSize, p.inWidth,
                      {p.weightRows / 2}, /*swiglu=*/true, gemvUnitsPerBlock);
      if (plan)
        plan->appends = true;
      return plan;
    }
    return planMmaGemv(slot.quantBits, slot.groupSize, p.inWidth,
                       {p.weightRows}, false, gemvUnitsPerBlock);
  }
  return planMmaGemv(slot.quantBits, slot.groupSize, p.inWidth, p.outWidths,
                     swiglu, gemvUnitsPerBlock);
}

void GPULowering::mmaAppendUnit(
    KernelBuilder &tb, Kernel &k, const ProjectionKernels &p,
    const MmaGemvPlan &plan, const GemvInput &gemv, Value lane, Value t,
    Value u, llvm::function_ref<Value(KernelBuilder &, Value, Value)> finish) {
  ImplicitLocOpBuilder &b = tb.builder();
  const AppendShape &shape = p.shape;
  int64_t d = cacheHeadDim, half = shape.half;
  // Units: rotated q heads, rotated k heads (half / 16 a head), then 32
  // rows at a time of the rest (v; all of them without RoPE).
  int64_t perHead = half / 16;
  int64_t qUnits = half ? shape.qHeads * perHead : 0;
  int64_t kUnits = half ? cacheKVHeads * perHead : 0;
  int64_t rotatedUnits = qUnits + kUnits;
  Value rotated = less(tb, u, tb.index(rotatedUnits));
  // Rotated: the head's rows r0.. and r0 + half.. (the k heads after the q
  // heads' rows).
  Value ru = tb.umin(u, tb.index(std::max<int64_t>(rotatedUnits, 1) - 1));
  Value head = tb.div(ru, tb.index(std::max<int64_t>(perHead, 1)));
  Value r0 = tb.mul(
      arith::RemUIOp::create(b, ru, tb.index(std::max<int64_t>(perHead, 1))),
      tb.index(16));
  Value rotRow = tb.add(tb.mul(head, tb.index(d)), r0);
  // Plain: 32 rows from row 32 (u - rotatedUnits) + the rotated rows.
  Value plainRow = tb.add(
      tb.mul(tb.sub(tb.umax(u, tb.index(rotatedUnits)), tb.index(rotatedUnits)),
             tb.index(32)),
      tb.index(rotatedUnits * 32));
  auto pick = [&](Value a, Value c) {
    return Value(arith::SelectOp::create(b, rotated, a, c));
  };
  SmallVector<Value> tileRows = {
      pick(rotRow, plainRow),
      pick(tb.add(rotRow, tb.index(half)), tb.add(plainRow, tb.index(16)))};
  Value isK = arith::CmpIOp::create(b, arith::CmpIPredicate::uge, head,
                                    tb.index(shape.qHeads));
  mmaGemv(
      tb, gemv, plan, lane, t, tileRows, finish,
      [&](KernelBuilder &eb, Value o, ArrayRef<Value> ys) {
        AppendPlace at = appendPlace(eb, k, shape, t);
        auto store = [&](KernelBuilder &sb, int slot, Value h, Value i,
                         Value v) {
          auto [memref, idx] = appendTarget(sb, k, shape, at, slot, h, i);
          sb.store(v, memref, {idx});
        };
        if (half) {
          eb.ifThen(rotated, [&](KernelBuilder &rb) {
            Value i = rb.add(r0, o);
            Value ci = rb.add(rb.mul(t, rb.index(half)), i);
            Value c = rb.loadF32(k.args[shape.cos], {ci});
            Value s = rb.loadF32(k.args[shape.sin], {ci});
            Value y0 = rb.sub(rb.mul(ys[0], c), rb.mul(ys[1], s));
            Value y1 = rb.add(rb.mul(ys[1], c), rb.mul(ys[0], s));
            Value i2 = rb.add(i, rb.index(half));
            rb.ifThen(isK, [&](KernelBuilder &sb) {
              Value kh = sb.sub(head, sb.index(shape.qHeads));
              store(sb, 1, kh, i, y0);
              store(sb, 1, kh, i2, y1);
            });
            rb.ifThen(negate(rb, isK), [&](KernelBuilder &sb) {
              store(sb, 0, head, i, y0);
              store(sb, 0, head, i2, y1);
            });
          });
        }
        // Unrotated rows: which slot each of the unit's two is in.
        auto plain = [&](KernelBuilder &pb) {
          for (int64_t j = 0; j < 2; ++j) {
            Value row = pb.add(plainRow, pb.add(o, pb.index(16 * j)));
            Value h = pb.div(row, pb.index(d));
            Value i = arith::RemUIOp::create(pb.builder(), row, pb.index(d));
            int64_t kvStart = shape.qHeads,
                    vStart = shape.qHeads + cacheKVHeads;
            Value inQ = less(pb, h, pb.index(kvStart));
            Value inV = arith::CmpIOp::create(
                pb.builder(), arith::CmpIPredicate::uge, h, pb.index(vStart));
            Value inK = arith::AndIOp::create(pb.builder(), negate(pb, inQ),
                                              less(pb, h, pb.index(vStart)));
            pb.ifThen(inQ,
                      [&](KernelBuilder &sb) { store(sb, 0, h, i, ys[j]); });
            pb.ifThen(inK, [&](KernelBuilder &sb) {
              store(sb, 1, sb.sub(h, sb.index(kvStart)), i, ys[j]);
            });
            pb.ifThen(inV, [&](KernelBuilder &sb) {
              store(sb, 2, sb.sub(h, sb.index(vStart)), i, ys[j]);
            });
          }
        };
        if (half)
          eb.ifThen(negate(eb, rotated), plain);
        else
          plain(eb);
      });
}

void GPULowering::mmaUnit(
    KernelBuilder &tb, Kernel &k, const ProjectionKernels &p,
    const MmaGemvPlan &plan, const GemvInput &gemv, Value lane, Value t,
    Value firstRow, const std::string &out0,
    llvm::function_ref<Value(KernelBuilder &, Value, Value)> finish) {
  if (plan.appends) {
    mmaAppendUnit(tb, k, p, plan, gemv, lane, t, tb.div(firstRow, tb.index(32)),
                  finish);
    return;
  }
  FusedLinearOp fused = p.op;
  bool swiglu = fused.getActivation() == Activation::SwiGLU;
  int64_t perHalf = swiglu ? plan.tiles / 2 : plan.tiles;
  SmallVector<Value> tileRows;
  for (int64_t i = 0; i < perHalf; ++i)
    tileRows.push_back(tb.add(firstRow, tb.index(16 * i)));
  if (swiglu)
    for (int64_t i = 0; i < perHalf; ++i)
      tileRows.push_back(tb.add(firstRow, tb.index(p.outWidths[0] + 16 * i)));
  if (p.append) {
    // Raw products (bias, clip and RoPE are the epilogue kernel's).
    mmaGemv(
        tb, gemv, plan, lane, t, tileRows,
        [](KernelBuilder &, Value s, Value) { return s; },
        [&](KernelBuilder &eb, Value o, ArrayRef<Value> ys) {
          Value r = eb.add(firstRow, o);
          eb.ifThen(less(eb, r, eb.index(p.weightRows)),
                    [&](KernelBuilder &sb) {
                      sb.store(ys[0], k.args[p.products],
                               {sb.add(sb.mul(t, sb.index(p.weightRows)), r)});
                    });
        });
    return;
  }
  // The LM head's rows of logits are the call's last tokens'.
  Value first = p.toLogits ? tb.sub(step(k, kStepTokens), step(k, kStepRows))
                           : tb.index(0);
  mmaGemv(tb, gemv, plan, lane, t, tileRows, finish,
          [&](KernelBuilder &eb, Value o, ArrayRef<Value> ys) {
            Value r = eb.add(firstRow, o);
            if (swiglu) {
              int64_t width = p.outWidths[0];
              eb.store(siluTimes(eb, ys[0], ys[1]), k.args[out0],
                       {eb.add(eb.mul(t, eb.index(width)), r)});
              return;
            }
            // Plain rows, split over the results in order; a row past the last
            // (a partial unit) is stored nowhere.
            int64_t rowBase = 0;
            for (auto [name, width] : llvm::zip(p.outs, p.outWidths)) {
              Value inThis = arith::AndIOp::create(
                  eb.builder(),
                  arith::CmpIOp::create(eb.builder(), arith::CmpIPredicate::uge,
                                        r, eb.index(rowBase)),
                  less(eb, r, eb.index(rowBase + width)));
              int64_t base = rowBase, outWidth = width;
              std::string outName = p.outs.size() == 1 ? out0 : name;
              eb.ifThen(inThis, [&](KernelBuilder &sb) {
                Value row = p.toLogits ? sb.sub(t, first) : t;
                Value idx = sb.add(sb.mul(row, sb.index(outWidth)),
                                   sb.sub(r, sb.index(base)));
                Value y = ys[0];
                if (auto act = fused.getActivation())
                  y = applyActivation(sb, y, *act);
                if (!p.residual.empty())
                  y = sb.add(y, sb.loadF32(k.args[p.residual], {idx}));
                sb.store(y, k.args[outName], {idx});
              });
              rowBase += width;
            }
          });
}

void GPULowering::emitProjectionKernel(const ProjectionKernels &p,
                                       bool fromProducts, LaunchWhen when) {
  FusedLinearOp fused = p.op;
  Type f32 = Float32Type::get(ctx);
  const SmallVector<Binding> &binds = p.binds, &prefillBinds = p.prefillBinds;
  const SmallVector<std::string> &outs = p.outs;
  const SmallVector<int64_t> &outWidths = p.outWidths;
  const std::string &x = p.x, &residual = p.residual, &halfOut = p.halfOut,
                    &products = p.products;
  int64_t wOffset = p.wOffset, bOffset = p.bOffset, inWidth = p.inWidth,
          units = p.units, weightRows = p.weightRows;
  double clip = p.clip;
  bool append = p.append, toLogits = p.toLogits;
  const AppendShape &shape = p.shape;
  auto firstToken = [&](Kernel &k) {
    return toLogits ? k.kb->sub(step(k, kStepTokens), step(k, kStepRows))
                    : k.kb->index(0);
  };
  SmallVector<Binding> kernelBinds(fromProducts ? prefillBinds : binds);
  // The prefill epilogue's one result, maybe in half precision.
  std::string out0 = fromProducts && !halfOut.empty() ? halfOut : outs[0];
  // A quantized decode GEMV on tensor cores where its groups allow it
  // (GPUGemvMma.cpp). An appending projection's writes raw products, which
  // the prefill's epilogue kernel rotates and appends (lowerProjection), or
  // with fused-append rotates and appends itself (mmaAppendUnit).
  std::optional<MmaGemvPlan> mma =
      fromProducts ? std::nullopt : decodeMmaPlan(p);
  if (fromProducts || (mma && append && !mma->appends))
    kernelBinds.push_back({products, f32});
  // The decode GEMV waits on the previous kernel itself, after its first
  // weight loads; nothing before those reads what a kernel writes.
  Kernel &k = beginKernel(fromProducts ? "epilogue" : "projection", kernelBinds,
                          /*waitInside=*/!fromProducts);
  k.skipInBatched = p.batchedHead;
  KernelBuilder &kb = *k.kb;
  WarpIds w = warpIds(kb);
  int64_t quantBits =
      slotLayout(cast<RankedTensorType>(fused.getWeight().getType())).quantBits;
  // A quantized GEMV reads 2 or 4 bytes of x (f32, from L1) a weight byte
  // when a warp takes one row: L1 was 80-92% busy and DRAM 5-9% (ncu,
  // H200, docs/PERF.md). A unit of R rows (SwiGLU: R gate and R up rows)
  // reads x once for all of them; four rows at most (eight held 255
  // registers and spilled).
  //
  // A float plain projection (O, down, the LM head) takes its rows in
  // pairs, like SwiGLU's gate and up: the pair's loads in flight together
  // and one reduction chain for both, half the units a warp walks one after
  // another. H200, decode after 512 tokens: InternLM2-chat-7B -6%,
  // InternVL2-2B -5%, Phi-3 -4.5%, MPT-7B and Qwen2.5-0.5B within 1%
  // (docs/PERF.md).
  bool swiglu = fused.getActivation() == Activation::SwiGLU;
  SmallVector<int64_t, 2> candidates;
  if (!fromProducts && !append) {
    if (quantBits)
      candidates = {swiglu ? 2 : 4, 2};
    else if (!swiglu)
      candidates = {2};
  }
  int64_t rowsPerUnit = 1;
  int64_t warpsPerUnit = 1, unitsPerBlock = 1;
  if (mma) {
    rowsPerUnit = swiglu ? 8 * mma->tiles : 16 * mma->tiles;
    units = mma->units;
    warpsPerUnit = mma->warps;
    unitsPerBlock = mma->unitsPerBlock;
  } else {
    for (int64_t r : candidates) {
      if (llvm::all_of(outWidths, [&](int64_t w) { return w % r == 0; })) {
        rowsPerUnit = r;
        break;
      }
    }
    units /= rowsPerUnit;
    // The GEMV gives a unit W warps when there are few units (a block of W
    // warps a unit), so that the card has enough loads in flight; a
    // quantized row keeps at least two 16-byte loads a lane.
    warpsPerUnit = fromProducts ? 1 : gemvWarpsPerUnit(units);
    if (quantBits)
      warpsPerUnit = std::max<int64_t>(
          1, std::min(warpsPerUnit, int64_t(llvm::bit_floor<uint64_t>(
                                        inWidth * quantBits / 8 / 16 / 64))));
  }
  Value sub;
  if (warpsPerUnit > 1 || mma) {
    k.threads = 32 * warpsPerUnit * unitsPerBlock;
    sub =
        kb.div(gpu::ThreadIdOp::create(*k.b, gpu::Dimension::x), kb.index(32));
  }
  Value nTokens = step(k, kStepTokens);
  Value first = firstToken(k);
  // The shares of the matmul's products this call has (matmulShares; a
  // decode step's tensor-core GEMV writes whole products of its one token).
  int64_t splits =
      fromProducts && when != LaunchWhen::Decode ? p.productSplits : 1;
  Value shares = matmulShares(kb, nTokens, splits);
  // Quantized weights are read as their bytes, dequantized in registers.
  QuantizedWeight quant;
  Value weight = weightView(kb, k, fused.getWeight(), wOffset, quant);
  Value bias = bOffset >= 0
                   ? arenaView(kb, k,
                               cast<RankedTensorType>(fused.getBias().getType())
                                   .getElementType(),
                               bOffset)
                   : Value();
  Value xs = k.args[x];
  // The fused norm's weight and bias, for the GEMV's prologue.
  GemvInput gemv{xs,  weight, Value(), Value(), inWidth,       fused.getNorm(),
                 0.0, 1,      Value(), Value(), !fromProducts, quant};
  if (mma) {
    gemv.warpsPerUnit = warpsPerUnit;
    gemv.sub = sub;
    k.sharedBytes = mmaGemvSharedBytes(
        inWidth, mmaGemvRoles(fused.getNorm(), bool(fused.getNormBias())));
    gemv.partials = sharedFloats(k, unitsPerBlock * warpsPerUnit *
                                        (16 * mma->tiles * 3 + 2));
  } else if (warpsPerUnit > 1) {
    gemv.warpsPerUnit = warpsPerUnit;
    gemv.sub = sub;
    // Per warp: the row sums and the norm's (at most 3 x 2R + 2).
    gemv.partials = sharedFloats(k, warpsPerUnit * (6 * rowsPerUnit + 2));
  }
  if (gemv.norm) {
    Type gelt = cast<RankedTensorType>(fused.getNormWeight().getType())
                    .getElementType();
    gemv.eps = fused.getNormEpsilon()->convertToDouble();
    gemv.gamma =
        arenaView(*k.kb, k, gelt, arena.offsetOf(fused.getNormWeight()));
    if (fused.getNormBias())
      gemv.beta =
          arenaView(*k.kb, k, gelt, arena.offsetOf(fused.getNormBias()));
  }
  // Bias and clip, the part of the epilogue that follows each dot product.
  auto epilogueOfDot = [&](KernelBuilder &lb, Value s, Value r) -> Value {
    return biasAndClip(lb, s, bias, r, clip);
  };
  // The dot products of `rows` with token t's input, finished (bias,
  // clip): the GEMV's in a decode step (`loads` after its wait), the
  // matmul's in a prefill (`loads` after them).
  auto dots = [&](KernelBuilder &lb, Value t, ArrayRef<Value> rows,
                  EpilogueLoads loads) {
    if (!fromProducts)
      return gemvDots(lb, gemv, w.lane, t, rows, epilogueOfDot, loads);
    // The matmul's partial sums, in the order of its shares.
    SmallVector<Value> sums;
    for (Value r : rows) {
      Value first = lb.add(lb.mul(t, lb.index(splits * weightRows)), r);
      Value s = lb.loadF32(k.args[products], {first});
      if (splits > 1)
        s = lb.forLoop(lb.index(1), shares, 1, ValueRange{s},
                       [&](KernelBuilder &ib, Value i, ValueRange sum) {
                         Value at =
                             ib.add(first, ib.mul(i, ib.index(weightRows)));
                         return SmallVector<Value>{ib.add(
                             sum[0], ib.loadF32(k.args[products], {at}))};
                       })[0];
      sums.push_back(epilogueOfDot(lb, s, r));
    }
    if (loads)
      loads(lb);
    return sums;
  };
  // A warp's lanes agree on each GEMV result; in the epilogue each lane has
  // its own token.
  auto storeLane0 = [&](KernelBuilder &lb, Value v, Value memref, Value idx) {
    if (fromProducts) {
      lb.store(v, memref, {idx});
      return;
    }
    Value first = isZero(lb, w.lane);
    if (sub)
      first = arith::AndIOp::create(lb.builder(), first, isZero(lb, sub));
    lb.ifThen(first, [&](KernelBuilder &ib) { ib.store(v, memref, {idx}); });
  };

  // The GEMV: a warp per unit, tokens in a loop. The epilogue: a thread
  // per unit and a block row (y) per token, so that neighbouring threads
  // read and write neighbouring features.
  Value unit = w.warp;
  if (warpsPerUnit > 1 || mma)
    unit = gpu::BlockIdOp::create(*k.b, gpu::Dimension::x);
  // A block of several tensor-core units: its warps past the last unit
  // take the last one again (they must meet the block's barriers) and
  // write what it writes.
  if (unitsPerBlock > 1)
    unit = kb.umin(kb.add(kb.mul(unit, kb.index(unitsPerBlock)),
                          kb.div(sub, kb.index(warpsPerUnit))),
                   kb.index(units - 1));
  if (fromProducts)
    unit = kb.add(kb.mul(gpu::BlockIdOp::create(*k.b, gpu::Dimension::x),
                         kb.index(kThreads)),
                  gpu::ThreadIdOp::create(*k.b, gpu::Dimension::x));
  // A decode GEMV's warps stride over the units by the grid they are
  // launched with (a resident grid): the runtime launches one wave of
  // blocks, and a warp whose unit is done starts the next one at once,
  // where a block of a second wave waited for a whole block's slot. Not
  // the quantized GEMVs: their rows are straight-line code, whose loads
  // of x LLVM hoists out of a loop over the units (the 7B's int4 gate/up
  // went from 171 registers to 255 and spilled).
  bool strided = !fromProducts && !quantBits;
  auto eachUnit = [&](const KernelBuilder::Body &body) {
    if (!strided) {
      kb.ifThen(less(kb, unit, kb.index(units)),
                [&](KernelBuilder &ub) { body(ub, unit); });
      return;
    }
    Value blocks = gpu::GridDimOp::create(*k.b, gpu::Dimension::x);
    Value stride =
        warpsPerUnit > 1 ? blocks : kb.mul(blocks, kb.index(kWarpsPerBlock));
    kb.forLoop(unit, kb.index(units), stride, body);
  };
  eachUnit([&](KernelBuilder &ub, ValueRange uv) {
    Value u = uv[0];
    auto perToken = [&](KernelBuilder &tb, ValueRange tv) {
      Value t = tv[0];
      // The unit's rows: R from its first.
      Value firstRow = rowsPerUnit == 1 ? u : tb.mul(u, tb.index(rowsPerUnit));
      if (mma) {
        mmaUnit(tb, k, p, *mma, gemv, w.lane, t, firstRow, out0, epilogueOfDot);
        return;
      }
      if (append) {
        appendUnit(tb, k, shape, u, t, dots, storeLane0);
        return;
      }
      auto unitRows = [&](KernelBuilder &rb, int64_t offset) {
        SmallVector<Value> rows;
        for (int64_t i = offset; i < offset + rowsPerUnit; ++i)
          rows.push_back(i == 0 ? firstRow : rb.add(firstRow, rb.index(i)));
        return rows;
      };
      if (fused.getActivation() == Activation::SwiGLU) {
        int64_t width = outWidths[0];
        SmallVector<Value> rows = unitRows(tb, 0);
        rows.append(unitRows(tb, width));
        SmallVector<Value> y = dots(tb, t, rows, {});
        for (int64_t i = 0; i < rowsPerUnit; ++i)
          storeLane0(tb, siluTimes(tb, y[i], y[rowsPerUnit + i]), k.args[out0],
                     tb.add(tb.mul(t, tb.index(width)), rows[i]));
        return;
      }
      // Plain rows, split over the results in order.
      int64_t rowBase = 0;
      for (auto [name, width] : llvm::zip(outs, outWidths)) {
        // Every result's width is a multiple of R: a unit's rows are all
        // in one result.
        Value inThis = arith::AndIOp::create(
            tb.builder(),
            arith::CmpIOp::create(tb.builder(), arith::CmpIPredicate::uge,
                                  firstRow, tb.index(rowBase)),
            less(tb, firstRow, tb.index(rowBase + width)));
        int64_t base = rowBase;
        std::string outName = outs.size() == 1 ? out0 : name;
        int64_t outWidth = width;
        tb.ifThen(inThis, [&](KernelBuilder &lb) {
          SmallVector<Value> rows = unitRows(lb, 0), idxs, residuals;
          Value row = toLogits ? lb.sub(t, first) : t;
          for (Value r : rows)
            idxs.push_back(lb.add(lb.mul(row, lb.index(outWidth)),
                                  lb.sub(r, lb.index(base))));
          auto loadResiduals = [&](KernelBuilder &ib) {
            for (Value idx : idxs)
              residuals.push_back(ib.loadF32(k.args[residual], {idx}));
          };
          SmallVector<Value> ys = dots(
              lb, t, rows, residual.empty() ? EpilogueLoads() : loadResiduals);
          for (auto [i, y] : llvm::enumerate(ys)) {
            if (auto act = fused.getActivation())
              y = applyActivation(lb, y, *act);
            if (!residual.empty())
              y = lb.add(y, residuals[i]);
            storeLane0(lb, y, k.args[outName], idxs[i]);
          }
        });
        rowBase += width;
      }
    };
    if (fromProducts)
      perToken(ub, ValueRange{gpu::BlockIdOp::create(ub.builder(),
                                                     gpu::Dimension::y)});
    else
      ub.forLoop(first, nTokens, 1, perToken);
  });
  // Asked for 16 warps an SM (4 blocks of 128 threads: 128 registers a
  // thread) where that raises the kernel's occupancy: Phi-3's QKV (136
  // registers) and LM head (132), MPT's up (130) and LM head (135) held 3
  // blocks an SM; 4 made the step 3% (Phi-3) and 7% (MPT-7B) faster on an
  // H200 (docs/PERF.md). A kernel that needs fewer registers keeps its own
  // count: under the cap ptxas would take all 128 (a GEMV of 96, 5 blocks
  // an SM, went to 4), so the driver keeps the cap only where it raises
  // the blocks an SM without spilling (compiler/Target/RegisterCaps.h).
  if (strided)
    requestOccupancy(k, kGemvWarpsPerSM * 32 / k.threads, /*raiseOnly=*/true);
  // A tensor-core GEMV's plan counts on 16 warps an SM (planMmaGemv): a
  // block of 16 warps launches only at 128 registers a thread or fewer;
  // smaller blocks ask for as many as make 16 warps where their registers
  // fall short (InternLM2-chat-7B's O at 132 held one block of 8 warps).
  if (mma && k.threads > 256)
    requestOccupancy(k, 1, /*raiseOnly=*/false);
  else if (mma)
    requestOccupancy(k, 512 / k.threads, /*raiseOnly=*/true);
  endKernel(
      k,
      fromProducts ? grid(units, kThreads, GridScale::One, 1, GridScale::Tokens)
      : strided    ? residentGrid(units, warpsPerUnit > 1 ? 1 : kWarpsPerBlock)
                   : grid(units,
                       mma                ? unitsPerBlock
                          : warpsPerUnit > 1 ? 1
                                             : kWarpsPerBlock,
                          GridScale::One),
      when);
}

LogicalResult GPULowering::lowerProjection(Operation *op) {
  auto fused = dyn_cast<FusedLinearOp>(op);
  if (!fused)
    return op->emitOpError() << "has no GPU lowering yet (the decoder passes "
                                "turn projections into decoder.fused_linear)";
  Type f32 = Float32Type::get(ctx), i8 = IntegerType::get(ctx, 8),
       i64 = IntegerType::get(ctx, 64);
  Value input = fused.getInput();
  int64_t inWidth = featuresOf(input);
  auto weightType = cast<RankedTensorType>(fused.getWeight().getType());
  Type welt = weightType.getElementType();
  bool append = bool(fused.getCache());
  std::optional<KVGroupedLayout> kvGrouped;
  double clip = 0;
  if (append) {
    for (Operation *user : fused.getResult(0).getUsers())
      if (auto attention = dyn_cast<CachedAttentionOp>(user))
        clip = attention.getConfig().getClipQkv();
    if (fused.getPacking() == Packing::KVGrouped)
      kvGrouped = KVGroupedLayout{featuresOf(fused.getResult(0)) / cacheHeadDim,
                                  cacheKVHeads, cacheHeadDim};
  }
  std::string x = bufferOf[input];
  // Only the LM head is limited to the rows the caller wants; every layer
  // computes all tokens.
  bool toLogits = fused.getNumResults() == 1 && fused.getResult(0) == returned;

  // The main kernel: one warp per output unit, tokens in a loop.
  SmallVector<Binding> binds = {{"arena", i8}, {"step", i64}, {x, f32}};
  std::string residual, out;
  if (fused.getResidual()) {
    residual = bufferOf[fused.getResidual()];
    binds.push_back({residual, f32});
  }
  std::string cosName, sinName;
  int64_t half = 0;
  if (append) {
    binds.push_back({"positions", i64});
    binds.push_back({"k_cache", cacheElement});
    binds.push_back({"v_cache", cacheElement});
    binds.push_back({"block_table", IntegerType::get(ctx, 32)});
    if (fused.getRope()) {
      auto [c, s] = ropeTables(*fused.getRope());
      cosName = c;
      sinName = s;
      half = fused.getRope()->getRotaryDim() / 2;
      binds.push_back({cosName, f32});
      binds.push_back({sinName, f32});
    }
  }
  // The weights placed after the RoPE tables (made on first use): a
  // layer's weights then lie alike in every layer, which lets the layers
  // share kernels (shareKernels).
  int64_t wOffset = arena.offsetOf(fused.getWeight(), kvGrouped);
  int64_t bOffset =
      fused.getBias() ? arena.offsetOf(fused.getBias(), kvGrouped) : -1;
  SmallVector<std::string> outs;
  SmallVector<int64_t> outWidths;
  if (toLogits) {
    outs.push_back("logits");
    outWidths.push_back(featuresOf(fused.getResult(0)));
  } else {
    for (Value r : fused.getResults()) {
      int64_t w = featuresOf(r);
      std::string name = newBuffer(w);
      bufferOf[r] = name;
      widthOf[r] = w;
      outs.push_back(name);
      outWidths.push_back(w);
    }
  }
  for (const std::string &o : outs)
    binds.push_back({o, f32});
  // A prefill writes a plain or SwiGLU result straight in half precision
  // when its consumer multiplies it so (the decode step keeps f32).
  std::string halfOut;
  if (!toLogits && !append && outs.size() == 1 && !fused.getResidual() &&
      hasPrefillMatmul(fused))
    halfOut = halfPrefillBufferFor(fused.getResult(0));
  SmallVector<Binding> prefillBinds(binds);
  if (!halfOut.empty())
    for (Binding &b : prefillBinds)
      if (b.name == outs[0])
        b = {halfOut, halfElement};

  // Units: plain rows per result; SwiGLU rows pair (o, o + I); append: q, k
  // and v heads, rotary pairs counted once.
  int64_t d = cacheHeadDim;
  int64_t qHeads = append ? featuresOf(fused.getResult(0)) / d : 0;
  int64_t unitsPerRotated = d - half;
  AppendShape shape{append ? int64_t(*fused.getLayer()) : 0,
                    qHeads,
                    unitsPerRotated,
                    half,
                    outs[0],
                    cosName,
                    sinName};
  int64_t units = 0;
  if (append)
    units = (qHeads + cacheKVHeads) * unitsPerRotated + cacheKVHeads * d;
  else if (fused.getActivation() == Activation::SwiGLU)
    units = outWidths[0];
  else
    for (int64_t w : outWidths)
      units += w;

  // Prefill with tensor cores: the products come from the matmul kernel and
  // this kernel is only the epilogue, a lane a token. Decode (and a layer
  // without a tensor-core shape) computes them here.
  int64_t weightRows = weightType.getDimSize(0);
  bool tensorCores = !toLogits && hasPrefillMatmul(fused);
  // Half-precision builds run the matmul on activations rounded to the
  // weights' type (as the reference implementation does); f32 builds split
  // them into bf16 hi + lo to keep f32's accuracy.
  bool halfPrecision = welt.isBF16() || welt.isF16();
  ProjectionEpilogue e;
  e.kind = append ? ProjectionEpilogue::Kind::Append
           : fused.getActivation() == Activation::SwiGLU
               ? ProjectionEpilogue::Kind::SwiGLU
               : ProjectionEpilogue::Kind::Plain;
  e.outs = outs;
  e.outWidths = outWidths;
  e.residual = residual;
  e.cosName = cosName;
  e.sinName = sinName;
  e.biasOffset = bOffset;
  e.clip = clip;
  if (fused.getActivation() != Activation::SwiGLU)
    e.activation = fused.getActivation();
  e.qHeads = qHeads;
  e.half = half;
  e.layer = append ? *fused.getLayer() : 0;
  e.weightRows = weightRows;
  e.inWidth = inWidth;
  // A long prompt's products come from the wgmma matmul, the epilogue in its
  // registers, where the shape allows; a short one's from the mma.sync
  // matmul and an epilogue kernel of its own.
  int64_t bn = tensorCores && halfPrecision ? wgmmaTileRows(e) : 0;
  LaunchWhen small = bn ? LaunchWhen::PrefillSmall : LaunchWhen::Prefill;
  std::string prepared, products;
  int64_t productSplits = 1;
  if (tensorCores) {
    auto written = halfPrefillBufferOf.find(input);
    prepared = written != halfPrefillBufferOf.end() ? written->second
               : halfPrecision ? prepareHalfActivations(fused)
                               : prepareSplitActivations(fused);
    products = matmulProducts(fused, prepared, halfPrecision, wOffset,
                              weightRows, small, "", &productSplits);
  }
  ProjectionKernels kernels{
      fused,    binds,      prefillBinds, outs,    outWidths, x,
      residual, halfOut,    products,     wOffset, bOffset,   inWidth,
      units,    weightRows, clip,         append,  toLogits,  shape};
  kernels.productSplits = productSplits;
  auto emit = [&](bool fromProducts, LaunchWhen when) {
    emitProjectionKernel(kernels, fromProducts, when);
  };
  // A batched step's LM head: the mma.sync matmul over its tokens, the
  // logits rows its products (a head without a bias has no epilogue; a
  // step's rows are all its tokens), the weights read once for every
  // sequence where the GEMV read them once a row.
  if (toLogits && hasPrefillMatmul(fused) && bOffset < 0) {
    std::string head =
        halfPrecision ? prepareHalfActivations(fused, LaunchWhen::Batched)
                      : prepareSplitActivations(fused, LaunchWhen::Batched);
    matmulProducts(fused, head, halfPrecision, wOffset, weightRows,
                   LaunchWhen::Batched, "logits");
    freeBuffers.push_back({head, inWidth});
    kernels.batchedHead = true;
  }
  if (!tensorCores) {
    emit(false, LaunchWhen::Always);
    return success();
  }
  emit(false, LaunchWhen::Decode);
  if (std::optional<MmaGemvPlan> plan = decodeMmaPlan(kernels);
      append && plan && !plan->appends)
    emit(true, LaunchWhen::Decode);
  emit(true, small);
  if (bn) {
    ProjectionEpilogue prefill = e;
    if (!halfOut.empty())
      prefill.outs = {halfOut};
    emitWgmmaProjection(fused, prefill, prefillBinds, prepared, wOffset, bn,
                        LaunchWhen::PrefillLarge);
  }
  freeBuffers.push_back({products, weightRows * productSplits});
  freeBuffers.push_back({prepared, inWidth});
  return success();
}

} // namespace decc::gpulowering
