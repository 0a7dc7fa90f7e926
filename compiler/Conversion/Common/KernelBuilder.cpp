//===- KernelBuilder.cpp - loops and vector helpers of the CPU kernels ----===//

#include "compiler/Conversion/Common/KernelBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Dialect/X86Vector/X86VectorDialect.h"
#include "mlir/IR/TypeUtilities.h"
#include "mlir/Interfaces/LoopLikeInterface.h"

using namespace mlir;

namespace decc {

namespace {
/// bf16 elements of a vdpbf16ps on 512-bit registers (16 f32 sums).
constexpr int64_t kBF16DotWidth = 32;
/// How far ahead a one-token quantized dot product prefetches its
/// weights. A distance covers the memory latency at one core's streaming
/// rate: 1, 2 and 4 KB measured alike on a 2-core AVX2 EPYC that read 10
/// GB/s a core; on a Zen 4 EPYC reading 40 GB/s a core, 32 KB streamed
/// 13-20% more than 4 KB (16 KB and 64 KB+ less than 32 KB; docs/PERF.md).
/// Float and half-precision rows go as far ahead as the runtime says
/// (dotGrid's prefetchAhead): on Zen 4 the hardware streamed them 25-30%
/// faster alone on 2 MiB pages, on Intel 4 KB ahead was 14-23% faster.
/// Quantized rows, more instructions a byte, gain from it on both (int8
/// -12%, int4 -20% a token with it on Zen 4).
constexpr int64_t kPrefetchBytes = 32768;

/// `prefix` with `k` appended: an element of a row of a memref.
SmallVector<Value> indicesAt(ArrayRef<Value> prefix, Value k) {
  SmallVector<Value> idx(prefix);
  idx.push_back(k);
  return idx;
}

/// Asks for each of a unit's quantized rows (one token streams each once)
/// kPrefetchBytes past `byte`, once a group: int4's default group is one
/// 64-byte line, and a prefetch a chunk was eight instructions a line on
/// AVX2.
void prefetchRows(KernelBuilder &kb, Value bm,
                  ArrayRef<SmallVector<Value>> prefixesB, Value byte) {
  for (const SmallVector<Value> &prefix : prefixesB)
    memref::PrefetchOp::create(
        kb.builder(), bm,
        indicesAt(prefix, kb.add(byte, kb.index(kPrefetchBytes))),
        /*isWrite=*/false, /*localityHint=*/3, /*isDataCache=*/true);
}

/// The sum of a dot product's lanes, in any order: a tree of halves
/// (reassociation allowed) instead of LLVM's ordered reduction, a chain of
/// 16 dependent scalar adds at the end of every row.
Value horizontalSum(ImplicitLocOpBuilder &b, Value acc) {
  return vector::ReductionOp::create(b, vector::CombiningKind::ADD, acc,
                                     arith::FastMathFlags::reassoc);
}
} // namespace

Value KernelBuilder::index(int64_t v) {
  return arith::ConstantIndexOp::create(b, v);
}
Value KernelBuilder::f32(double v) {
  return arith::ConstantOp::create(b, b.getF32FloatAttr(v));
}
Value KernelBuilder::i64(int64_t v) {
  return arith::ConstantOp::create(b, b.getI64IntegerAttr(v));
}

Value KernelBuilder::add(Value a, Value c) {
  if (isa<IndexType>(a.getType()))
    return arith::AddIOp::create(b, a, c);
  return arith::AddFOp::create(b, a, c);
}
Value KernelBuilder::sub(Value a, Value c) {
  if (isa<IndexType>(a.getType()))
    return arith::SubIOp::create(b, a, c);
  return arith::SubFOp::create(b, a, c);
}
Value KernelBuilder::mul(Value a, Value c) {
  if (isa<IndexType>(a.getType()))
    return arith::MulIOp::create(b, a, c);
  return arith::MulFOp::create(b, a, c);
}
Value KernelBuilder::div(Value a, Value c) {
  if (isa<IndexType>(a.getType()))
    return arith::DivUIOp::create(b, a, c);
  return arith::DivFOp::create(b, a, c);
}
Value KernelBuilder::fmax(Value a, Value c) {
  return arith::MaximumFOp::create(b, a, c);
}
Value KernelBuilder::umin(Value a, Value c) {
  return arith::MinUIOp::create(b, a, c);
}
Value KernelBuilder::umax(Value a, Value c) {
  return arith::MaxUIOp::create(b, a, c);
}
Value KernelBuilder::ceilDiv(Value a, Value c) {
  return div(add(a, sub(c, index(1))), c);
}
Value KernelBuilder::wholeStepsEnd(Value lo, Value hi, int64_t step) {
  return add(lo, mul(div(sub(hi, lo), index(step)), index(step)));
}
Value KernelBuilder::exp(Value a) { return math::ExpOp::create(b, a); }
Value KernelBuilder::indexToF32(Value i) {
  Value i64v = arith::IndexCastOp::create(b, b.getI64Type(), i);
  return arith::SIToFPOp::create(b, b.getF32Type(), i64v);
}
Value KernelBuilder::toIndex(Value v) {
  return arith::IndexCastOp::create(b, b.getIndexType(), v);
}

Value KernelBuilder::toF32(Value v) {
  Type element = getElementTypeOrSelf(v.getType());
  if (!isa<FloatType>(element) || element == b.getF32Type())
    return v;
  Type f32 = b.getF32Type();
  if (auto vt = dyn_cast<VectorType>(v.getType()))
    f32 = VectorType::get(vt.getShape(), f32);
  return arith::ExtFOp::create(b, f32, v);
}

Value KernelBuilder::loadF32(Value memref, ValueRange indices) {
  return toF32(memref::LoadOp::create(b, memref, indices));
}

Value KernelBuilder::loadVector(Value memref, ValueRange indices, int64_t width,
                                int64_t align) {
  Type element = cast<MemRefType>(memref.getType()).getElementType();
  return toF32(vector::LoadOp::create(
      b, VectorType::get({width}, element), memref, indices, false,
      align ? llvm::MaybeAlign(align) : llvm::MaybeAlign()));
}

void KernelBuilder::store(Value value, Value memref, ValueRange indices) {
  Type element = cast<MemRefType>(memref.getType()).getElementType();
  if (isa<FloatType>(element) && getElementTypeOrSelf(value) != element) {
    Type narrow = element;
    if (auto v = dyn_cast<VectorType>(value.getType()))
      narrow = VectorType::get(v.getShape(), element);
    value = arith::TruncFOp::create(b, narrow, value);
  }
  if (isa<VectorType>(value.getType()))
    vector::StoreOp::create(b, value, memref, indices);
  else
    memref::StoreOp::create(b, value, memref, indices);
}

void KernelBuilder::forLoop(Value lb, Value ub, int64_t step,
                            const Body &body) {
  forLoop(lb, ub, index(step), body);
}

void KernelBuilder::forLoop(Value lb, Value ub, Value step, const Body &body) {
  scf::ForOp::create(b, lb, ub, step, ValueRange{},
                     [&](OpBuilder &nb, Location loc, Value iv, ValueRange) {
                       ImplicitLocOpBuilder ib(loc, nb);
                       KernelBuilder kb(ib);
                       body(kb, iv);
                       scf::YieldOp::create(ib);
                     });
}

SmallVector<Value> KernelBuilder::forLoop(Value lb, Value ub, int64_t step,
                                          ValueRange inits,
                                          const IterBody &body) {
  auto loop = scf::ForOp::create(
      b, lb, ub, index(step), inits,
      [&](OpBuilder &nb, Location loc, Value iv, ValueRange args) {
        ImplicitLocOpBuilder ib(loc, nb);
        KernelBuilder kb(ib);
        scf::YieldOp::create(ib, body(kb, iv, args));
      });
  return SmallVector<Value>(loop.getResults());
}

void KernelBuilder::parallel(ValueRange ubs, const Body &body) {
  // One iteration outside any loop: the body itself. The canonicalizer
  // would leave its alloca_scope inside an enclosing scf.if, whose single
  // block the scope's lowering to LLVM (before SCF's) cannot split (a
  // tensor-parallel rank's one attention head).
  bool once = llvm::all_of(ubs, [](Value ub) {
    std::optional<int64_t> n = getConstantIntValue(ub);
    return n && *n == 1;
  });
  bool inLoop = false;
  for (Operation *op = b.getInsertionBlock()->getParentOp(); op;
       op = op->getParentOp())
    inLoop |= isa<LoopLikeOpInterface>(op);
  if (once && !inLoop) {
    SmallVector<Value> ivs(ubs.size(), index(0));
    body(*this, ivs);
    return;
  }
  SmallVector<Value> lbs(ubs.size(), index(0)), steps(ubs.size(), index(1));
  scf::ParallelOp::create(
      b, lbs, ubs, steps, [&](OpBuilder &nb, Location loc, ValueRange ivs) {
        // Scratch allocated by one iteration is released
        // when it ends, not when the loop does.
        ImplicitLocOpBuilder ib(loc, nb);
        auto scope = memref::AllocaScopeOp::create(ib, TypeRange{});
        Block *block = new Block();
        scope.getBodyRegion().push_back(block);
        ib.setInsertionPointToStart(block);
        KernelBuilder kb(ib);
        body(kb, ivs);
        memref::AllocaScopeReturnOp::create(ib, ValueRange{});
      });
}

void KernelBuilder::ifThen(Value cond,
                           const std::function<void(KernelBuilder &)> &then) {
  scf::IfOp::create(b, cond, [&](OpBuilder &nb, Location loc) {
    ImplicitLocOpBuilder ib(loc, nb);
    KernelBuilder kb(ib);
    then(kb);
    scf::YieldOp::create(ib);
  });
}

void KernelBuilder::forEachChunk(
    int64_t length,
    const std::function<void(KernelBuilder &, Value, int64_t)> &body) {
  int64_t width = vectorWidth(length);
  int64_t vectorEnd = width ? length / width * width : 0;
  if (vectorEnd)
    forLoop(index(0), index(vectorEnd), width,
            [&](KernelBuilder &kb, ValueRange k) { body(kb, k[0], width); });
  if (vectorEnd != length)
    forLoop(index(vectorEnd), index(length), 1,
            [&](KernelBuilder &kb, ValueRange k) { body(kb, k[0], 1); });
}

Value KernelBuilder::loadN(Value memref, ValueRange indices, int64_t width) {
  return width == 1 ? loadF32(memref, indices)
                    : loadVector(memref, indices, width);
}

Value KernelBuilder::splat(Value scalar, int64_t width) {
  if (width == 1)
    return scalar;
  return vector::BroadcastOp::create(
      b, VectorType::get({width}, scalar.getType()), scalar);
}

int64_t KernelBuilder::vectorWidth(int64_t length, int64_t accumulators,
                                   int64_t registers) {
  // Many accumulators at 16 lanes would not fit the 16 AVX2 registers (a
  // 16-lane vector is two of them); AVX-512's 32 hold 16 accumulators of
  // 16 lanes and the loads of a block of 4 tokens x 4 rows.
  int64_t widest = accumulators > (registers >= 32 ? 16 : 4) ? 8 : 16;
  for (int64_t w : {widest, int64_t(8)})
    if (w <= widest && length % w == 0)
      return w;
  return length >= widest ? widest : (length >= 8 ? 8 : 0);
}

SmallVector<Value> KernelBuilder::dots(Value a, ValueRange prefixA, Value bm,
                                       ArrayRef<SmallVector<Value>> prefixesB,
                                       int64_t length, Value offsetA) {
  SmallVector<Value> row(prefixA);
  return dotGrid(a, {row}, bm, prefixesB, length, offsetA)[0];
}

SmallVector<SmallVector<Value>>
KernelBuilder::dotGrid(Value a, ArrayRef<SmallVector<Value>> prefixesA,
                       Value bm, ArrayRef<SmallVector<Value>> prefixesB,
                       int64_t length, Value offsetA, int64_t registers,
                       Value offsetB, bool pairedBF16, Value prefetchAhead) {
  size_t na = prefixesA.size(), nb = prefixesB.size();
  auto elementOf = [](Value m) {
    return cast<MemRefType>(m.getType()).getElementType();
  };
  // bf16 x bf16 (a CPU with AVX512-BF16): pairs of products accumulated in
  // f32 by vdpbf16ps, 32 elements a step.
  bool bf16Pairs = elementOf(a).isBF16() && elementOf(bm).isBF16();
  assert((!pairedBF16 || (elementOf(bm).isBF16() && elementOf(a).isF32() &&
                          length % kBF16PairColumns == 0)) &&
         "paired bf16 products take f32 inputs, bf16 rows, whole blocks");
  int64_t width = bf16Pairs ? (length >= kBF16DotWidth ? kBF16DotWidth : 0)
                  : pairedBF16
                      ? kBF16PairColumns
                      : vectorWidth(length, int64_t(na * nb), registers);
  int64_t vectorEnd = width ? length / width * width : 0;
  SmallVector<Value> flat; // [i * nb + j]
  if (width) {
    auto vecType = VectorType::get(
        {bf16Pairs || pairedBF16 ? width / 2 : width}, b.getF32Type());
    auto raw = VectorType::get({width}, b.getBF16Type());
    Value zero = arith::ConstantOp::create(
        b, DenseElementsAttr::get(vecType, b.getF32FloatAttr(0.0)));
    SmallVector<Value> inits(na * nb, zero);
    SmallVector<Value> accs = forLoop(
        index(0), index(vectorEnd), width, inits,
        [&](KernelBuilder &kb, Value k, ValueRange args) {
          Value ka = offsetA ? kb.add(offsetA, k) : k;
          Value kw = offsetB ? kb.add(offsetB, k) : k;
          // One token streams each row once: ask for it ahead of the loads
          // where the distance is not 0 (an invariant test that LLVM takes
          // out of the loop: two loops, one without prefetches).
          if (prefetchAhead && na == 1)
            kb.ifThen(arith::CmpIOp::create(kb.builder(),
                                            arith::CmpIPredicate::ne,
                                            prefetchAhead, kb.index(0)),
                      [&](KernelBuilder &pb) {
                        for (const auto &prefix : prefixesB)
                          memref::PrefetchOp::create(
                              pb.builder(), bm,
                              indicesAt(prefix, pb.add(kw, prefetchAhead)),
                              /*isWrite=*/false, /*localityHint=*/3,
                              /*isDataCache=*/true);
                      });
          if (pairedBF16) {
            ImplicitLocOpBuilder &ib = kb.builder();
            auto words = VectorType::get({width / 2}, ib.getI32Type());
            Value shift = kb.splat(
                arith::ConstantOp::create(ib, ib.getI32IntegerAttr(16)),
                width / 2);
            Value mask =
                kb.splat(arith::ConstantOp::create(
                             ib, ib.getI32IntegerAttr(int32_t(0xFFFF0000u))),
                         width / 2);
            // Per weight row: columns k + 2i (the words' low halves) and
            // k + 2i + 1 (the high halves), as f32.
            SmallVector<std::array<Value, 2>> wv;
            for (const auto &prefix : prefixesB) {
              Value w = vector::BitCastOp::create(
                  ib, words,
                  vector::LoadOp::create(ib, raw, bm, indicesAt(prefix, kw)));
              wv.push_back(
                  {vector::BitCastOp::create(
                       ib, vecType, arith::ShLIOp::create(ib, w, shift)),
                   vector::BitCastOp::create(
                       ib, vecType, arith::AndIOp::create(ib, w, mask))});
            }
            SmallVector<Value> next(args.begin(), args.end());
            for (size_t i = 0; i < na; ++i)
              for (int64_t h = 0; h < 2; ++h) {
                SmallVector<Value> idx = indicesAt(
                    prefixesA[i], h ? kb.add(ka, kb.index(width / 2)) : ka);
                Value va = kb.loadVector(a, idx, width / 2);
                for (size_t j = 0; j < nb; ++j)
                  next[i * nb + j] =
                      vector::FMAOp::create(ib, va, wv[j][h], next[i * nb + j]);
              }
            return next;
          }
          SmallVector<Value> va, vb;
          auto load = [&](Value m, SmallVector<Value> idx) -> Value {
            if (bf16Pairs)
              return vector::LoadOp::create(kb.builder(), raw, m, idx);
            return kb.loadVector(m, idx, width);
          };
          for (const auto &prefix : prefixesA)
            va.push_back(load(a, indicesAt(prefix, ka)));
          for (const auto &prefix : prefixesB)
            vb.push_back(load(bm, indicesAt(prefix, kw)));
          SmallVector<Value> next;
          for (size_t i = 0; i < na; ++i)
            for (size_t j = 0; j < nb; ++j)
              next.push_back(bf16Pairs ? x86vector::DotBF16Op::create(
                                             kb.builder(), vecType,
                                             args[i * nb + j], va[i], vb[j])
                                             .getResult()
                                       : vector::FMAOp::create(kb.builder(),
                                                               va[i], vb[j],
                                                               args[i * nb + j])
                                             .getResult());
          return next;
        });
    for (Value acc : accs)
      flat.push_back(horizontalSum(b, acc));
  } else {
    flat.assign(na * nb, f32(0.0));
  }
  if (vectorEnd != length)
    flat = forLoop(
        index(vectorEnd), index(length), 1, flat,
        [&](KernelBuilder &kb, Value k, ValueRange args) {
          Value ka = offsetA ? kb.add(offsetA, k) : k;
          Value kw = offsetB ? kb.add(offsetB, k) : k;
          SmallVector<Value> next;
          for (size_t i = 0; i < na; ++i) {
            Value va = kb.loadF32(a, indicesAt(prefixesA[i], ka));
            for (size_t j = 0; j < nb; ++j)
              next.push_back(kb.add(
                  args[i * nb + j],
                  kb.mul(va, kb.loadF32(bm, indicesAt(prefixesB[j], kw)))));
          }
          return next;
        });
  SmallVector<SmallVector<Value>> grid(na);
  for (size_t i = 0; i < na; ++i)
    grid[i].assign(flat.begin() + i * nb, flat.begin() + (i + 1) * nb);
  return grid;
}

void KernelBuilder::storePairedOrder(Value src, Value dst, ArrayRef<Value> row,
                                     Value k) {
  constexpr int64_t half = kBF16PairColumns / 2;
  SmallVector<Value> at(row);
  at.push_back(k);
  Value lo = loadVector(src, at, half);
  at.back() = add(k, index(half));
  Value hi = loadVector(src, at, half);
  SmallVector<int64_t> even, odd;
  for (int64_t i = 0; i < half; ++i) {
    even.push_back(2 * i);
    odd.push_back(2 * i + 1);
  }
  at.back() = k;
  vector::StoreOp::create(b, vector::ShuffleOp::create(b, lo, hi, even), dst,
                          at);
  at.back() = add(k, index(half));
  vector::StoreOp::create(b, vector::ShuffleOp::create(b, lo, hi, odd), dst,
                          at);
}

Value KernelBuilder::quantizedInteger(Value bm, int64_t bits,
                                      ArrayRef<Value> row, Value k,
                                      Value rowStart) {
  SmallVector<Value> idx(row);
  auto inRow = [&](Value byte) {
    return rowStart ? add(rowStart, byte) : byte;
  };
  if (bits == 8) {
    idx.push_back(inRow(k));
    return arith::SIToFPOp::create(b, b.getF32Type(),
                                   memref::LoadOp::create(b, bm, idx));
  }
  // contract::WeightSlot::int4Byte / int4Shift, as IR: byte k / 16 * 8 +
  // k % 8, the high nibble when k % 16 >= 8.
  idx.push_back(inRow(add(mul(div(k, index(16)), index(8)),
                          arith::RemUIOp::create(b, k, index(8)))));
  Value shift =
      mul(arith::RemUIOp::create(b, div(k, index(8)), index(2)), index(4));
  Value byte = arith::ExtUIOp::create(b, b.getI32Type(),
                                      memref::LoadOp::create(b, bm, idx));
  Value nibble = arith::AndIOp::create(
      b,
      arith::ShRUIOp::create(
          b, byte, arith::IndexCastOp::create(b, b.getI32Type(), shift)),
      arith::ConstantOp::create(b, b.getI32IntegerAttr(15)));
  return arith::UIToFPOp::create(b, b.getF32Type(), nibble);
}

Value KernelBuilder::quantizedIntegers(Value bm, int64_t bits,
                                       ArrayRef<Value> row, Value k, int64_t n,
                                       Value rowStart, int64_t align) {
  SmallVector<Value> idx(row);
  auto inRow = [&](Value byte) {
    return rowStart ? add(rowStart, byte) : byte;
  };
  auto vf32 = VectorType::get({n}, b.getF32Type());
  if (bits == 8) {
    idx.push_back(inRow(k));
    return arith::SIToFPOp::create(b, vf32, loadVector(bm, idx, n, align));
  }
  // quantizedInteger's byte and nibble, the same for the run's columns.
  auto vi32 = VectorType::get({n}, b.getI32Type());
  idx.push_back(inRow(add(mul(div(k, index(16)), index(8)),
                          arith::RemUIOp::create(b, k, index(8)))));
  Value shift = arith::IndexCastOp::create(
      b, b.getI32Type(),
      mul(arith::RemUIOp::create(b, div(k, index(8)), index(2)), index(4)));
  Value words = arith::ExtUIOp::create(b, vi32, loadVector(bm, idx, n, align));
  Value nibbles = arith::AndIOp::create(
      b,
      arith::ShRUIOp::create(b, words,
                             vector::BroadcastOp::create(b, vi32, shift)),
      arith::ConstantOp::create(
          b, DenseElementsAttr::get(vi32, b.getI32IntegerAttr(15))));
  return arith::UIToFPOp::create(b, vf32, nibbles);
}

Value KernelBuilder::dequantized(Value bm, const QuantizedDots &q, Value row,
                                 Value k) {
  Value v = quantizedInteger(bm, q.bits, {row}, k);
  Value g = div(k, index(q.groupSize));
  v = mul(v, loadF32(q.scales, {row, g}));
  return q.bits == 4 ? add(v, loadF32(q.offsets, {row, g})) : v;
}

SmallVector<SmallVector<Value>>
KernelBuilder::quantizedDotGrid(Value a, ArrayRef<SmallVector<Value>> prefixesA,
                                Value bm, const QuantizedDots &q,
                                ArrayRef<SmallVector<Value>> prefixesB,
                                int64_t length) {
  if (q.xInt16)
    return int16DotGrid(prefixesA, bm, q, prefixesB, length);
  size_t na = prefixesA.size(), nb = prefixesB.size();
  bool int4 = q.bits == 4;
  // The groups' sums of x given (once a row, not once a unit of weight
  // rows): the loops carry no sums of x, which the offsets' terms
  // take from the table, in scalars of their own.
  bool summed = int4 && q.xGroupSums;
  bool sumX = int4 && !summed;
  // A chunk is one load of `kLanes` bytes of a row: as many int8 columns,
  // or twice as many int4 columns in kLanes / 8 runs of 16, widened into
  // two vectors: the low nibbles (columns 0-7 of each run) and the high
  // (columns 8-15), which x's columns are gathered to match. Groups of
  // whole chunks are vectorized.
  const int64_t kLanes = q.lanes;
  int64_t chunk = int4 ? 2 * kLanes : kLanes;
  bool vectors = q.groupSize % chunk == 0;
  auto vf32 = VectorType::get({kLanes}, b.getF32Type());
  auto vi8 = VectorType::get({kLanes}, b.getI8Type());
  auto vi32 = VectorType::get({kLanes}, b.getI32Type());
  auto vectorZero = [&](KernelBuilder &kb) -> Value {
    return arith::ConstantOp::create(
        kb.builder(),
        DenseElementsAttr::get(vf32, kb.builder().getF32FloatAttr(0.0)));
  };
  // [x, y] of two 8-lane vectors.
  auto concat = [](KernelBuilder &kb, Value x, Value y) -> Value {
    SmallVector<int64_t> mask;
    for (int64_t i = 0; i < 16; ++i)
      mask.push_back(i);
    return vector::ShuffleOp::create(kb.builder(), x, y, mask);
  };
  auto splatI32 = [&](KernelBuilder &kb, int32_t v) -> Value {
    return arith::ConstantOp::create(
        kb.builder(),
        DenseElementsAttr::get(vi32, kb.builder().getI32IntegerAttr(v)));
  };
  // Row j's columns from k (a chunk's first) as f32 vectors.
  auto loadChunk = [&](KernelBuilder &kb, size_t j,
                       Value k) -> SmallVector<Value> {
    ImplicitLocOpBuilder &ib = kb.builder();
    if (!int4)
      return {arith::SIToFPOp::create(
          ib, vf32,
          vector::LoadOp::create(ib, vi8, bm, indicesAt(prefixesB[j], k)))};
    Value bytes = arith::ExtUIOp::create(
        ib, vi32,
        vector::LoadOp::create(
            ib, vi8, bm, indicesAt(prefixesB[j], kb.div(k, kb.index(2)))));
    Value lo = arith::AndIOp::create(ib, bytes, splatI32(kb, 15));
    Value hi = arith::ShRUIOp::create(ib, bytes, splatI32(kb, 4));
    return {arith::UIToFPOp::create(ib, vf32, lo),
            arith::UIToFPOp::create(ib, vf32, hi)};
  };
  // One group of `count` columns from k0: the partial sums x . q ([i * nb
  // + j]) and, with offsets, each token's sum of x ([i]); vectors over
  // its whole chunks, scalars over the rest.
  struct Partials {
    SmallVector<Value> vec, scalar, xsumVec, xsumScalar;
  };
  auto groupPartials = [&](KernelBuilder &kb, Value k0, int64_t count) {
    Partials p;
    if (na == 1)
      prefetchRows(kb, bm, prefixesB, int4 ? kb.div(k0, kb.index(2)) : k0);
    int64_t vectorEnd = vectors ? count / chunk * chunk : 0;
    if (vectorEnd) {
      SmallVector<Value> inits(na * nb + (sumX ? na : 0), vectorZero(kb));
      SmallVector<Value> out = kb.forLoop(
          kb.index(0), kb.index(vectorEnd), chunk, inits,
          [&](KernelBuilder &lb, Value c, ValueRange acc) {
            Value k = lb.add(k0, c);
            SmallVector<SmallVector<Value>> va, vb;
            for (const auto &prefix : prefixesA) {
              va.emplace_back();
              if (!int4) {
                va.back().push_back(
                    lb.loadVector(a, indicesAt(prefix, k), kLanes));
                continue;
              }
              // Half h: columns 16 r + 8 h + [0, 8) of every run r.
              for (int64_t h = 0; h < 2; ++h) {
                Value x;
                for (int64_t r = 0; r < kLanes / 8; ++r) {
                  Value part = lb.loadVector(
                      a, indicesAt(prefix, lb.add(k, lb.index(16 * r + 8 * h))),
                      8);
                  x = r == 0 ? part : concat(lb, x, part);
                }
                va.back().push_back(x);
              }
            }
            for (size_t j = 0; j < nb; ++j)
              vb.push_back(loadChunk(lb, j, k));
            SmallVector<Value> next(acc.begin(), acc.end());
            for (size_t i = 0; i < na; ++i)
              for (size_t h = 0; h < va[i].size(); ++h) {
                for (size_t j = 0; j < nb; ++j)
                  next[i * nb + j] = vector::FMAOp::create(
                      lb.builder(), va[i][h], vb[j][h], next[i * nb + j]);
                if (sumX)
                  next[na * nb + i] = arith::AddFOp::create(
                      lb.builder(), next[na * nb + i], va[i][h]);
              }
            return next;
          });
      p.vec.assign(out.begin(), out.begin() + na * nb);
      p.xsumVec.assign(out.begin() + na * nb, out.end());
    }
    if (vectorEnd != count) {
      SmallVector<Value> inits(na * nb + (sumX ? na : 0), kb.f32(0.0));
      SmallVector<Value> out = kb.forLoop(
          kb.index(vectorEnd), kb.index(count), 1, inits,
          [&](KernelBuilder &lb, Value c, ValueRange acc) {
            Value k = lb.add(k0, c);
            SmallVector<Value> next(acc.begin(), acc.end());
            SmallVector<Value> qj;
            for (size_t j = 0; j < nb; ++j)
              qj.push_back(lb.quantizedInteger(bm, q.bits, prefixesB[j], k));
            for (size_t i = 0; i < na; ++i) {
              Value va = lb.loadF32(a, indicesAt(prefixesA[i], k));
              for (size_t j = 0; j < nb; ++j)
                next[i * nb + j] = lb.add(next[i * nb + j], lb.mul(va, qj[j]));
              if (sumX)
                next[na * nb + i] = lb.add(next[na * nb + i], va);
            }
            return next;
          });
      p.scalar.assign(out.begin(), out.begin() + na * nb);
      p.xsumScalar.assign(out.begin() + na * nb, out.end());
    }
    return p;
  };
  // Accumulators: [vector (when groups are whole chunks), scalar (when
  // they are not, and for a shorter last group)] for every (i, j); each
  // group's partials times its scale (plus offset x sum(x)) into them.
  int64_t groups = length / q.groupSize, tail = length % q.groupSize;
  bool scalars = !vectors || tail % chunk;
  // Where each na x nb block of accumulators starts: vectors, scalars,
  // the offsets' terms (summed).
  size_t scalarsAt = vectors ? na * nb : 0,
         summedAt = scalarsAt + (scalars ? na * nb : 0);
  auto scaleInto = [&](KernelBuilder &kb, const Partials &p, Value g,
                       SmallVector<Value> acc) {
    ImplicitLocOpBuilder &ib = kb.builder();
    for (size_t j = 0; j < nb; ++j) {
      Value s = kb.loadF32(q.scales, indicesAt(prefixesB[j], g));
      Value offset =
          int4 ? kb.loadF32(q.offsets, indicesAt(prefixesB[j], g)) : Value();
      for (size_t i = 0; i < na; ++i) {
        size_t at = i * nb + j;
        if (summed) {
          Value xsum = kb.loadF32(q.xGroupSums, indicesAt(prefixesA[i], g));
          acc[summedAt + at] =
              math::FmaOp::create(ib, offset, xsum, acc[summedAt + at]);
        }
        if (!p.vec.empty()) {
          acc[at] = vector::FMAOp::create(
              ib, p.vec[at], vector::BroadcastOp::create(ib, vf32, s), acc[at]);
          if (sumX)
            acc[at] = vector::FMAOp::create(
                ib, vector::BroadcastOp::create(ib, vf32, offset), p.xsumVec[i],
                acc[at]);
        }
        if (!p.scalar.empty()) {
          Value sum = kb.add(acc[scalarsAt + at], kb.mul(p.scalar[at], s));
          if (sumX)
            sum = kb.add(sum, kb.mul(offset, p.xsumScalar[i]));
          acc[scalarsAt + at] = sum;
        }
      }
    }
    return acc;
  };
  SmallVector<Value> inits;
  if (vectors)
    inits.append(na * nb, vectorZero(*this));
  if (scalars)
    inits.append(na * nb, f32(0.0));
  if (summed)
    inits.append(na * nb, f32(0.0));
  SmallVector<Value> acc =
      forLoop(index(0), index(groups), 1, inits,
              [&](KernelBuilder &kb, Value g, ValueRange in) {
                Partials p = groupPartials(kb, kb.mul(g, kb.index(q.groupSize)),
                                           q.groupSize);
                return scaleInto(kb, p, g, SmallVector<Value>(in));
              });
  if (tail) {
    // The row's last, shorter group.
    Partials p = groupPartials(*this, index(groups * q.groupSize), tail);
    acc = scaleInto(*this, p, index(groups), acc);
  }
  SmallVector<SmallVector<Value>> grid(na);
  for (size_t i = 0; i < na; ++i)
    for (size_t j = 0; j < nb; ++j) {
      size_t at = i * nb + j;
      Value sum = f32(0.0);
      if (vectors)
        sum = horizontalSum(b, acc[at]);
      if (scalars)
        sum = add(sum, acc[scalarsAt + at]);
      if (summed)
        sum = add(sum, acc[summedAt + at]);
      grid[i].push_back(sum);
    }
  return grid;
}

SmallVector<SmallVector<Value>> KernelBuilder::int16DotGrid(
    ArrayRef<SmallVector<Value>> prefixesA, Value bm, const QuantizedDots &q,
    ArrayRef<SmallVector<Value>> prefixesB, int64_t length) {
  assert(q.bits == 4 && q.xGroupSums && q.xScales);
  assert(q.groupSize % q.int16Block() == 0 && length % q.groupSize == 0);
  size_t na = prefixesA.size(), nb = prefixesB.size();
  const int64_t lanes = q.lanes, words = 2 * lanes, block = q.int16Block();
  auto vf32 = VectorType::get({lanes}, b.getF32Type());
  auto vi32 = VectorType::get({lanes}, b.getI32Type());
  auto vi16 = VectorType::get({words}, b.getI16Type());
  auto vi8 = VectorType::get({words}, b.getI8Type());
  StringAttr pmaddwd = b.getStringAttr(
      lanes == 8 ? "llvm.x86.avx2.pmadd.wd" : "llvm.x86.avx512.pmaddw.d.512");
  auto splat = [](KernelBuilder &kb, VectorType type, Attribute v) -> Value {
    return arith::ConstantOp::create(kb.builder(),
                                     DenseElementsAttr::get(type, v));
  };
  Value low = splat(*this, vi16, b.getI16IntegerAttr(15));
  Value four = splat(*this, vi16, b.getI16IntegerAttr(4));
  SmallVector<Value> inits(na * nb, splat(*this, vf32, b.getF32FloatAttr(0)));
  inits.append(na * nb, f32(0.0));
  SmallVector<Value> acc = forLoop(
      index(0), index(length / q.groupSize), 1, inits,
      [&](KernelBuilder &kb, Value g, ValueRange in) {
        ImplicitLocOpBuilder &ib = kb.builder();
        Value k0 = kb.mul(g, kb.index(q.groupSize));
        if (na == 1)
          prefetchRows(kb, bm, prefixesB, kb.div(k0, kb.index(2)));
        SmallVector<Value> zeros(na * nb,
                                 splat(kb, vi32, ib.getI32IntegerAttr(0)));
        SmallVector<Value> sums = kb.forLoop(
            kb.index(0), kb.index(q.groupSize), block, zeros,
            [&](KernelBuilder &lb, Value c, ValueRange part) {
              ImplicitLocOpBuilder &cb = lb.builder();
              Value k = lb.add(k0, c);
              SmallVector<Value> lo, hi;
              for (size_t j = 0; j < nb; ++j) {
                Value w = arith::ExtUIOp::create(
                    cb, vi16,
                    vector::LoadOp::create(
                        cb, vi8, bm,
                        indicesAt(prefixesB[j], lb.div(k, lb.index(2)))));
                lo.push_back(arith::AndIOp::create(cb, w, low));
                hi.push_back(arith::ShRUIOp::create(cb, w, four));
              }
              SmallVector<Value> next(part.begin(), part.end());
              for (size_t i = 0; i < na; ++i) {
                Value xl = vector::LoadOp::create(cb, vi16, q.xInt16,
                                                  indicesAt(prefixesA[i], k));
                Value xh = vector::LoadOp::create(
                    cb, vi16, q.xInt16,
                    indicesAt(prefixesA[i], lb.add(k, lb.index(words))));
                for (size_t j = 0; j < nb; ++j)
                  for (auto [w, x] : {std::pair(lo[j], xl), {hi[j], xh}}) {
                    Value pairs = LLVM::CallIntrinsicOp::create(
                                      cb, vi32, pmaddwd, ValueRange{w, x})
                                      .getResult(0);
                    next[i * nb + j] =
                        arith::AddIOp::create(cb, next[i * nb + j], pairs);
                  }
              }
              return next;
            });
        SmallVector<Value> out(in.begin(), in.end());
        for (size_t j = 0; j < nb; ++j) {
          Value s = kb.loadF32(q.scales, indicesAt(prefixesB[j], g));
          Value offset = kb.loadF32(q.offsets, indicesAt(prefixesB[j], g));
          for (size_t i = 0; i < na; ++i) {
            size_t at = i * nb + j;
            Value xs = kb.loadF32(q.xScales, indicesAt(prefixesA[i], g));
            out[at] = vector::FMAOp::create(
                ib, arith::SIToFPOp::create(ib, vf32, sums[at]),
                vector::BroadcastOp::create(ib, vf32, kb.mul(s, xs)), out[at]);
            Value xsum = kb.loadF32(q.xGroupSums, indicesAt(prefixesA[i], g));
            out[na * nb + at] =
                math::FmaOp::create(ib, offset, xsum, out[na * nb + at]);
          }
        }
        return out;
      });
  SmallVector<SmallVector<Value>> grid(na);
  for (size_t i = 0; i < na; ++i)
    for (size_t j = 0; j < nb; ++j) {
      size_t at = i * nb + j;
      grid[i].push_back(add(horizontalSum(b, acc[at]), acc[na * nb + at]));
    }
  return grid;
}

} // namespace decc
