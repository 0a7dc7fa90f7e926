//===- GPUGemv.cpp - the decode GEMV's dot products -----------------------===//
//
// A warp per output unit: the lanes stride over the input, each reading 16
// bytes of a weight row at a time (8 bf16 or 4 f32, one 128-bit load), so a
// warp reads 512 contiguous bytes per step, unrolled so several loads are in
// flight; a shuffle tree sums the lanes. A projection with few units gives
// each one W warps of a block (every W-th 512-byte step each, their sums
// added through shared memory): a warp a row left the card with too few
// loads in flight (an H200 streamed O and down at 25-45% of its bandwidth). The
// norm prologue is folded into the same loop: y = r * sum_k x_k g_k W_k
// (RMSNorm), or r * (sum_k x_k g_k W_k - mean * sum_k g_k W_k) + sum_k b_k W_k
// (LayerNorm), with r = 1/sqrt(var + eps) from the sums of x and x^2 the
// same loop gathers. No normalized copy of x is ever written.
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/GPU/GPULowering.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

namespace decc::gpulowering {

namespace {

/// How a warp walks a row: 16-byte vectors of `vecWidth` elements (512
/// bytes a warp a chunk), the W warps of a unit interleaved chunk by chunk.
/// Every lane takes the same number of `steps`, each of `unroll` vectors
/// whose loads are all issued before any is used, so a row costs `steps`
/// memory latencies whatever its length. A row that is not a whole number
/// of the unit's chunks a step (Qwen2.5-0.5B's 896 and 4864) has its
/// last vectors `predicated`: read from the row's last vector and
/// multiplied by zero. Before, such rows took a latency a chunk and one
/// element a lane past the last whole chunk (seven dependent loads for a
/// row of 896). A row whose length is not a multiple of a vector goes one
/// element a lane (`vectorEnd` 0).
///
/// Quantized rows: a load is `loadBytes` (16, else 8) bytes of integers,
/// `vecWidth` columns (int8 16 or 8, int4 32 or 16) of one group, widened
/// and scaled in registers into pieces of `accWidth` (8) columns; a row
/// that cannot be cut so (a width or group size that is not a multiple of
/// a load's columns) goes one element a lane.
struct GemvSteps {
  int64_t width, vecWidth, vectorEnd, chunk, warps, unroll = 0, steps = 0;
  int64_t bits = 0, loadBytes = 16, accWidth;
  bool predicated = false;

  GemvSteps(const GemvInput &in, int64_t rows)
      : width(in.width), warps(in.warpsPerUnit), bits(in.quant.bits) {
    if (bits) {
      vectorEnd = 0;
      for (int64_t bytes : {16, 8}) {
        int64_t cols = bytes * 8 / bits;
        if (in.width % cols == 0 && in.quant.groupSize % cols == 0) {
          loadBytes = bytes;
          vecWidth = cols;
          vectorEnd = in.width;
          break;
        }
      }
      if (!vectorEnd)
        vecWidth = 8;
      accWidth = 8;
    } else {
      int64_t weightBits =
          cast<MemRefType>(in.weight.getType()).getElementTypeBitWidth();
      vecWidth = 16 / (weightBits / 8);
      vectorEnd = in.width % vecWidth == 0 ? in.width : 0;
      accWidth = vecWidth;
    }
    chunk = 32 * vecWidth;
    if (vectorEnd == 0)
      return;
    int64_t vectors = in.width / vecWidth;
    int64_t perLane = llvm::divideCeil(vectors, 32 * warps);
    predicated = perLane * 32 * warps != vectors;
    // Four vectors a row a step keep a lane's loads in registers at two
    // rows (gate and up); a unit shared by W warps streams its row in one
    // step of 8 when that is the whole row (one latency instead of two).
    // A whole row takes the largest of those that divides it (Phi-3's O
    // projection as 3 steps of 2 was 1% faster than as 2 of 3); a
    // predicated one the fewest steps of at most 4.
    // A quantized unit of R rows holds R loads a vector of the step, each
    // with its scale and offset: at most 8 int8 or 4 int4 loads (32
    // columns each) a step. 16 int4 loads, 4 rows of 4, took the 7B's
    // gate/up GEMV to 255 registers and a spill (8 warps an SM).
    int64_t most = bits ? std::max<int64_t>(1, (bits == 4 ? 4 : 8) / rows) : 8;
    if (predicated) {
      steps = llvm::divideCeil(perLane, std::min<int64_t>(4, most));
      unroll = llvm::divideCeil(perLane, steps);
    } else {
      // A float unit of one row takes 8 vectors a step, the loads in
      // flight of two rows at 4: ncu had MPT-7B's one-row QKV and up
      // GEMVs at 47% and 63% of DRAM where the 7B's two-row gate/up
      // streamed at 79%, at the same occupancy.
      bool oneRow = rows == 1 && !bits && perLane % 8 == 0;
      unroll = (warps > 1 && perLane == 8 && most >= 8) || oneRow ? 8
               : perLane % 4 == 0 && most >= 4                    ? 4
               : perLane % 2 == 0 && most >= 2                    ? 2
                                                                  : 1;
      steps = perLane / unroll;
    }
  }
  /// Elements between a warp's steps, and between a step's loads.
  int64_t stride() const { return chunk * warps * unroll; }
  int64_t spacing() const { return chunk * warps; }
  /// This lane's first column.
  Value start(KernelBuilder &kb, Value sub, Value lane) const {
    return kb.mul(kb.add(kb.mul(sub, kb.index(32)), lane), kb.index(vecWidth));
  }
  /// Load u of the step at column c0: the column it reads and, when the
  /// step is predicated, whether it is in the row (else null).
  std::pair<Value, Value> column(KernelBuilder &kb, Value c0, int64_t u) const {
    Value c = kb.add(c0, kb.index(u * spacing()));
    if (!predicated || (steps - 1) * stride() + (u + 1) * spacing() <= width)
      return {c, Value()};
    Value inRow = arith::CmpIOp::create(kb.builder(), arith::CmpIPredicate::ult,
                                        c, kb.index(width));
    return {kb.umin(c, kb.index(width - vecWidth)), inRow};
  }
};

Value loadRaw(KernelBuilder &ib, Value memref, Value idx, int64_t width) {
  if (width == 1)
    return memref::LoadOp::create(ib.builder(), memref, ValueRange{idx});
  Type element = cast<MemRefType>(memref.getType()).getElementType();
  return vector::LoadOp::create(
      ib.builder(), VectorType::get({width}, element), memref, ValueRange{idx},
      false, llvm::MaybeAlign(width * (element.getIntOrFloatBitWidth() / 8)));
}

/// The columns [c, c + vecWidth) of quantized row r, loaded as `raw`,
/// widened one piece of 8 consecutive columns at a time (8 f32 values), so
/// that a step holds its raw bytes and one piece a row, not every column
/// widened at once; the load's columns share one scale, which the GEMV
/// applies once to their sum. An integer becomes a float without a
/// conversion instruction (a quarter-rate one on sm_90): placed in the
/// mantissa of 2^23 it is the float 2^23 + q, from which the subtraction
/// of 2^23 (and the zero point, and 128 for int8's sign) is exact.
///
/// 8 bits: one prmt a weight builds 0x4B0000bb from a byte and the magic's
/// bytes (the bytes are flipped to unsigned first, a xor a word). 4 bits:
/// each 8-byte run of 16 columns holds column i in byte i's low nibble and
/// column i + 8 in its high one. A nibble is not shifted down: each 16-bit
/// half of a word (the upper one shifted down once) holds 4 nibbles, at
/// positions j = 0..3, and one and-or (lop3) a weight leaves nibble j in
/// place under the magic: 2^23 + q 2^4j, exact, minus 2^23 + zero 2^4j.
/// The factor 2^4j is the column's, the same in every row: columnScale()
/// gives x the inverse, so the products are the same numbers as
/// (q - zero) x. That is 2 instructions a weight, not 4 (prmt, and, or,
/// sub); with the FMA, the integer GEMV's work a weight.
class DequantizedLoad {
public:
  /// The load's raw bytes, and its group's scale and offset as
  /// groupParameters gives them.
  DequantizedLoad(KernelBuilder &ib, const GemvSteps &g, Value raw, Value scale,
                  Value offset)
      : ib(ib), g(g), raw(raw), scalar(scale), offset(offset) {}

  /// The scale of the group of row r's column c, and what the magic float
  /// exceeds q - zero by: 2^23, plus the zero point (4 bits) or 128 (int8,
  /// whose bytes are flipped to unsigned).
  static std::pair<Value, Value> groupParameters(KernelBuilder &ib,
                                                 const GemvInput &in,
                                                 const GemvSteps &g, Value r,
                                                 Value c) {
    ImplicitLocOpBuilder &b = ib.builder();
    const QuantizedWeight &q = in.quant;
    Value group = q.groupOf(ib, r, c);
    Value scale = ib.loadF32(q.scales, {group});
    Value offset = ib.f32(g.bits == 8 ? kMagic + 128.0 : kMagic);
    if (g.bits == 4)
      offset = ib.add(
          offset, ib.toF32(arith::UIToFPOp::create(
                      b, b.getF32Type(),
                      memref::LoadOp::create(b, q.zeros, ValueRange{group}))));
    return {scale, offset};
  }

  int64_t pieces() const { return g.vecWidth / 8; }

  /// Columns [c + 8p, c + 8p + 8) as integers q - zero (or q) in f32,
  /// column i times columnScale(p)[i]^-1: times scale() and x *
  /// columnScale(p) they are the products.
  SmallVector<Value> integers(int64_t p) {
    ImplicitLocOpBuilder &b = ib.builder();
    Type i32 = b.getI32Type(), f32 = b.getF32Type();
    auto i32c = [&](uint32_t v) {
      return arith::ConstantOp::create(b, b.getI32IntegerAttr(int32_t(v)))
          .getResult();
    };
    // The 2 words of the piece (int8) or of its run (int4).
    int64_t byte = g.bits == 8 ? 8 * p : 8 * (p / 2);
    Value bytes = g.loadBytes == 8
                      ? raw
                      : vector::ExtractStridedSliceOp::create(
                            b, raw, ArrayRef<int64_t>{byte},
                            ArrayRef<int64_t>{8}, ArrayRef<int64_t>{1});
    Value words =
        vector::BitCastOp::create(b, VectorType::get({2}, i32), bytes);
    SmallVector<Value> out;
    Value magic = i32c(0x4B000000u);
    for (int64_t k = 0; k < 2; ++k) {
      Value w = vector::ExtractOp::create(b, words, k);
      if (g.bits == 8) {
        w = arith::XOrIOp::create(b, w, i32c(0x80808080u));
        // Output bytes: the word's byte i, then the magic's 0, 0, 0x4B.
        for (int64_t i = 0; i < 4; ++i) {
          Value v = NVVM::PermuteOp::create(b, i32, w, magic,
                                            i32c(0x7540u | uint32_t(i)),
                                            NVVM::PermuteMode::DEFAULT);
          out.push_back(arith::SubFOp::create(
              b, arith::BitcastOp::create(b, f32, v), offset));
        }
        continue;
      }
      // Bytes 0, 1 of the word in its low half, 2, 3 in its high half.
      Value halves[2] = {w, arith::ShRUIOp::create(b, w, i32c(16))};
      for (int64_t i = 0; i < 4; ++i) {
        int64_t j = position(p, i);
        Value nibble =
            arith::AndIOp::create(b, halves[i / 2], i32c(0xFu << (4 * j)));
        Value v = arith::OrIOp::create(b, nibble, magic);
        out.push_back(arith::SubFOp::create(
            b, arith::BitcastOp::create(b, f32, v), offsetAt(j)));
      }
    }
    return out;
  }

  /// What x's columns of piece p are multiplied by (null: 1).
  Value columnScale(int64_t p) const {
    if (g.bits != 4)
      return Value();
    ImplicitLocOpBuilder &b = ib.builder();
    SmallVector<float> s;
    for (int64_t i = 0; i < 8; ++i)
      s.push_back(std::ldexp(1.0f, -4 * int(position(p, i % 4))));
    return arith::ConstantOp::create(
        b, DenseElementsAttr::get(VectorType::get({8}, b.getF32Type()),
                                  ArrayRef<float>(s)));
  }

  /// The load's group's scale.
  Value scaleScalar() const { return scalar; }

private:
  /// 2^23: its float's mantissa holds an integer below 2^23 exactly.
  static constexpr double kMagic = 8388608.0;
  /// Where column i % 4 of piece p sits in its 16-bit half: byte i % 2's
  /// low nibble (even pieces) or high one.
  static int64_t position(int64_t p, int64_t i) {
    return 2 * (i % 2) + (p % 2);
  }
  /// 2^23 + zero 2^4j, exact (zero 2^4j < 2^16).
  Value offsetAt(int64_t j) {
    if (!offsets[j]) {
      Value zero = ib.sub(offset, ib.f32(kMagic));
      offsets[j] = math::FmaOp::create(ib.builder(), zero,
                                       ib.f32(std::ldexp(1.0, 4 * int(j))),
                                       ib.f32(kMagic));
    }
    return offsets[j];
  }
  KernelBuilder &ib;
  const GemvSteps &g;
  Value raw, scalar, offset;
  Value offsets[4];
};

/// The weights of `rows` for one step at column c0, as stored ([unroll]
/// [row]); a quantized load is followed by its group's scale and offset
/// (DequantizedLoad), loaded with it: the first step's loads are issued
/// before the wait on the previous kernel, and a scale loaded after it
/// would cost the step a second memory latency.
SmallVector<Value> stepWeights(KernelBuilder &ib, const GemvInput &in,
                               const GemvSteps &g, Value c0,
                               ArrayRef<Value> rows) {
  SmallVector<Value> ws;
  for (int64_t u = 0; u < g.unroll; ++u) {
    Value c = g.column(ib, c0, u).first;
    for (Value r : rows) {
      if (g.bits) {
        // The integers of columns [c, c + vecWidth): loadBytes bytes.
        Value byte = ib.add(ib.mul(r, ib.index(in.quant.rowBytes)),
                            ib.div(ib.mul(c, ib.index(g.bits)), ib.index(8)));
        ws.push_back(loadRaw(ib, in.weight, byte, g.loadBytes));
        auto [scale, offset] =
            DequantizedLoad::groupParameters(ib, in, g, r, c);
        ws.push_back(scale);
        ws.push_back(offset);
        continue;
      }
      ws.push_back(loadRaw(
          ib, in.weight, ib.add(ib.mul(r, ib.index(in.width)), c), g.vecWidth));
    }
  }
  return ws;
}

} // namespace

SmallVector<Value> GPULowering::gemvDots(
    KernelBuilder &lb, const GemvInput &in, Value lane, Value t,
    ArrayRef<Value> rows,
    llvm::function_ref<Value(KernelBuilder &, Value, Value)> finish,
    EpilogueLoads loads) {
  // The wait on the previous kernel (when the kernel waits in its GEMV:
  // after the first step's weight loads), then the epilogue's loads.
  auto waitThenLoad = [&](KernelBuilder &wb) {
    // Not traced: the wait runs once a unit, and its record in the unit
    // loop took registers from the GEMV it measures (the 1.8B's gate/up
    // 108 -> 130); a GEMV's wait releases 0.2-0.6 us after its
    // predecessor's last block (H200, docs/PERF.md).
    if (in.waitInside)
      emitDependencyWait(wb, /*recordWait=*/false);
    if (loads)
      loads(wb);
  };
  int64_t inWidth = in.width;
  std::optional<NormKind> norm = in.norm;
  bool layer = norm && *norm == NormKind::Layer;
  bool normBias = bool(in.beta);
  Value xs = in.x, gamma = in.gamma, beta = in.beta;
  GemvSteps g(in, int64_t(rows.size()));
  int64_t vecWidth = g.vecWidth, vectorEnd = g.vectorEnd;
  // Accumulators per row: x.gW (or x.W), and for LayerNorm g.W and b.W;
  // per token: x.x and, for LayerNorm, the sum of x.
  int64_t perRow = 1 + (layer ? 1 : 0) + (normBias ? 1 : 0);
  Value xBase = lb.mul(t, lb.index(inWidth));
  size_t nr = rows.size();
  size_t perToken = norm ? (layer ? 2 : 1) : 0;
  size_t count = nr * perRow + perToken;
  // Index of accumulator k of row i, and of the per-token sums.
  auto rowAcc = [&](size_t i, int64_t k) { return i * perRow + k; };
  size_t sumSq = nr * perRow, sumX = sumSq + 1;
  // x (and the norm's gamma and beta) at columns [c, c + width), the
  // per-token sums (x.x, and the sum of x for LayerNorm) folded in. A load
  // past the row (`inRow` false) has x, gamma and beta zeroed, which zeroes
  // every product it adds.
  struct Inputs {
    Value x, gamma, beta;
  };
  auto loadInputs = [&](KernelBuilder &ib, Value c, int64_t width,
                        SmallVector<Value> &acc, Value inRow) {
    auto load = [&](Value memref, Value idx) {
      Value v = ib.toF32(loadRaw(ib, memref, idx, width));
      if (!inRow)
        return v;
      Value zero = arith::ConstantOp::create(
          ib.builder(),
          DenseElementsAttr::get(cast<ShapedType>(v.getType()),
                                 ib.builder().getF32FloatAttr(0.0)));
      return Value(arith::SelectOp::create(ib.builder(), inRow, v, zero));
    };
    Inputs in{load(xs, ib.add(xBase, c)), norm ? load(gamma, c) : Value(),
              normBias ? load(beta, c) : Value()};
    if (norm) {
      acc[sumSq] = width == 1 ? ib.add(acc[sumSq], ib.mul(in.x, in.x))
                              : Value(vector::FMAOp::create(ib.builder(), in.x,
                                                            in.x, acc[sumSq]));
      if (layer)
        acc[sumX] = width == 1
                        ? ib.add(acc[sumX], in.x)
                        : arith::AddFOp::create(ib.builder(), acc[sumX], in.x);
    }
    return in;
  };
  // One step over `width` elements at column c: x, and for each row the
  // weight vector `ws[i]` (widened), folded into the accumulators.
  auto fold = [&](KernelBuilder &ib, Value c, int64_t width, ArrayRef<Value> ws,
                  SmallVector<Value> &acc, Value inRow = Value()) {
    auto fma = [&](Value a, Value b, Value c2) -> Value {
      if (width == 1)
        return ib.add(c2, ib.mul(a, b));
      return vector::FMAOp::create(ib.builder(), a, b, c2);
    };
    auto [xv, gv, bv] = loadInputs(ib, c, width, acc, inRow);
    for (size_t i = 0; i < nr; ++i) {
      Value wv = ib.toF32(ws[i]);
      Value gw =
          norm ? (width == 1 ? ib.mul(gv, wv)
                             : arith::MulFOp::create(ib.builder(), gv, wv))
               : wv;
      acc[rowAcc(i, 0)] = fma(xv, gw, acc[rowAcc(i, 0)]);
      if (layer)
        acc[rowAcc(i, 1)] =
            width == 1
                ? ib.add(acc[rowAcc(i, 1)], gw)
                : arith::AddFOp::create(ib.builder(), acc[rowAcc(i, 1)], gw);
      if (bv)
        acc[rowAcc(i, perRow - 1)] = fma(bv, wv, acc[rowAcc(i, perRow - 1)]);
    }
  };
  // A quantized load's piece of `width` columns at c: for each row its
  // integers `ws[i]` (DequantizedLoad::integers) folded into the row's
  // scalar accumulators, a column at a time. x * gamma (times the piece's
  // column scale) is taken once for all the unit's rows (x.(gW) was a
  // multiply a weight), and the sums are scalar chains, not vectors added
  // across their lanes at the load's end: 4 rows' vector sums held 32
  // registers, and the integer GEMV's registers decide how many warps an
  // SM holds.
  auto foldIntegers = [&](KernelBuilder &ib, Value c, int64_t width,
                          ArrayRef<SmallVector<Value>> ws, Value columnScale,
                          SmallVector<Value> &acc, Value inRow) {
    ImplicitLocOpBuilder &b = ib.builder();
    auto [xv, gv, bv] = loadInputs(ib, c, width, acc, inRow);
    auto times = [&](Value v, Value by) {
      return by ? Value(arith::MulFOp::create(b, v, by)) : v;
    };
    Value xg = times(gv ? times(xv, gv) : xv, columnScale);
    Value gs = layer ? times(gv, columnScale) : Value();
    Value bs = bv ? times(bv, columnScale) : Value();
    auto at = [&](Value v, int64_t j) {
      return vector::ExtractOp::create(b, v, j).getResult();
    };
    auto fmaS = [&](Value a, Value x, Value c2) {
      return math::FmaOp::create(b, a, x, c2).getResult();
    };
    for (size_t i = 0; i < nr; ++i)
      for (int64_t j = 0; j < width; ++j) {
        Value w = ws[i][j];
        acc[rowAcc(i, 0)] = fmaS(at(xg, j), w, acc[rowAcc(i, 0)]);
        if (gs)
          acc[rowAcc(i, 1)] = fmaS(at(gs, j), w, acc[rowAcc(i, 1)]);
        if (bs)
          acc[rowAcc(i, perRow - 1)] =
              fmaS(at(bs, j), w, acc[rowAcc(i, perRow - 1)]);
      }
  };
  // One element a lane: a row that does not cut into vectors.
  auto step = [&](KernelBuilder &ib, Value c, SmallVector<Value> &acc) {
    SmallVector<Value> ws;
    for (Value r : rows)
      ws.push_back(in.quant.bits
                       ? dequantizedAt(ib, in.weight, in.quant, r, c)
                       : loadRaw(ib, in.weight,
                                 ib.add(ib.mul(r, ib.index(inWidth)), c), 1));
    fold(ib, c, 1, ws, acc);
  };
  int64_t warps = in.warpsPerUnit;
  Value sub = warps > 1 ? in.sub : lb.index(0);
  SmallVector<Value> partial(count, lb.f32(0.0));
  if (vectorEnd > 0) {
    auto vf32 = VectorType::get({g.accWidth}, lb.builder().getF32Type());
    Value zero = arith::ConstantOp::create(
        lb.builder(),
        DenseElementsAttr::get(vf32, lb.builder().getF32FloatAttr(0.0)));
    // Every load of a step is issued before any is used: a decode GEMV is
    // bound by memory latency, not by arithmetic. Warp `sub` of the unit's
    // W takes chunks sub, sub + W, ...
    int64_t stride = g.stride();
    Value start = g.start(lb, sub, lane);
    auto iteration = [&](KernelBuilder &ib, Value c0, ArrayRef<Value> ws,
                         SmallVector<Value> &acc) {
      for (int64_t u = 0; u < g.unroll; ++u) {
        auto [c, inRow] = g.column(ib, c0, u);
        if (!g.bits) {
          fold(ib, c, vecWidth, ArrayRef<Value>(ws).slice(u * nr, nr), acc,
               inRow);
          continue;
        }
        // A quantized load's values: its bytes, scale and offset.
        ArrayRef<Value> loaded = ArrayRef<Value>(ws).slice(u * nr * 3, nr * 3);
        // The row sums are linear in the weights: the load's integers are
        // folded into sums of their own, which its scale then multiplies
        // into the row's (one multiply a load, not one a weight); x.x and
        // the sum of x go straight on.
        SmallVector<DequantizedLoad> loads;
        for (size_t i = 0; i < nr; ++i)
          loads.emplace_back(ib, g, loaded[3 * i], loaded[3 * i + 1],
                             loaded[3 * i + 2]);
        SmallVector<Value> sums(acc);
        for (size_t i = 0; i < nr; ++i)
          for (int64_t k = 0; k < perRow; ++k)
            sums[rowAcc(i, k)] = ib.f32(0.0);
        for (int64_t p = 0; p < loads.front().pieces(); ++p) {
          SmallVector<SmallVector<Value>> piece;
          for (DequantizedLoad &d : loads)
            piece.push_back(d.integers(p));
          foldIntegers(ib, ib.add(c, ib.index(p * g.accWidth)), g.accWidth,
                       piece, loads.front().columnScale(p), sums, inRow);
        }
        // A row's accumulators are scalars, its load's sums scaled into
        // them.
        for (size_t i = 0; i < nr; ++i)
          for (int64_t k = 0; k < perRow; ++k)
            sums[rowAcc(i, k)] =
                math::FmaOp::create(ib.builder(), sums[rowAcc(i, k)],
                                    loads[i].scaleScalar(), acc[rowAcc(i, k)]);
        acc = sums;
      }
    };
    SmallVector<Value> accs(count, zero);
    if (g.bits)
      for (size_t i = 0; i < nr; ++i)
        for (int64_t k = 0; k < perRow; ++k)
          accs[rowAcc(i, k)] = lb.f32(0.0);
    int64_t firstStep = 0;
    Value from = start;
    if (in.waitInside) {
      // The first step's weights are loaded before the wait on the
      // previous kernel: only x comes from it. A whole row keeps the form
      // its kernels were measured with (ptxas schedules the rest of the
      // loop after it differently without the clamp and the select: Phi-3
      // 2.7% slower, docs/PERF.md); both are no-ops there.
      Value first = g.predicated
                        ? start
                        : lb.umin(start, lb.index(vectorEnd -
                                                  (g.unroll - 1) * g.spacing() -
                                                  vecWidth));
      SmallVector<Value> ws = stepWeights(lb, in, g, first, rows);
      waitThenLoad(lb);
      SmallVector<Value> acc(accs);
      iteration(lb, first, ws, acc);
      if (g.predicated) {
        accs = acc;
      } else {
        Value has =
            arith::CmpIOp::create(lb.builder(), arith::CmpIPredicate::ult,
                                  start, lb.index(vectorEnd));
        for (auto [a, init] : llvm::zip(acc, accs))
          init = arith::SelectOp::create(
              lb.builder(), has, a,
              isa<VectorType>(a.getType()) ? zero : lb.f32(0.0));
      }
      firstStep = 1;
      from = lb.add(start, lb.index(stride));
    } else if (loads) {
      loads(lb);
    }
    // The remaining steps: a whole row's loop is bounded by the row's end
    // (its measured form; a bound of start + steps * stride, unrolled,
    // changed ptxas's registers and cost MPT-7B 12% and Phi-3 5%), a
    // predicated row's by its steps.
    // A quantized whole row of up to 4 steps is straight-line code: a loop
    // whose count ptxas cannot see was unrolled into 252 registers (the
    // 1.8B's int4 down GEMV, one step left; 168 without the loop) and 255
    // (the 7B's int4 gate/up, three left; 170 without).
    if (g.predicated && firstStep + 1 == g.steps)
      iteration(lb, from, stepWeights(lb, in, g, from, rows), accs);
    else if (g.bits && !g.predicated && g.steps <= 4)
      for (int64_t s = firstStep; s < g.steps; ++s) {
        Value c0 = lb.add(start, lb.index(s * stride));
        iteration(lb, c0, stepWeights(lb, in, g, c0, rows), accs);
      }
    else if (!g.predicated || firstStep < g.steps)
      accs = lb.forLoop(
          from,
          g.predicated ? lb.add(start, lb.index(g.steps * stride))
                       : lb.index(vectorEnd),
          stride, accs, [&](KernelBuilder &ib, Value c0, ValueRange accIn) {
            SmallVector<Value> acc(accIn);
            iteration(ib, c0, stepWeights(ib, in, g, c0, rows), acc);
            return acc;
          });
    for (auto [p, a] : llvm::zip(partial, accs))
      p = isa<VectorType>(a.getType())
              ? Value(vector::ReductionOp::create(
                    lb.builder(), vector::CombiningKind::ADD, a))
              : a;
  } else {
    waitThenLoad(lb);
    partial = lb.forLoop(lb.add(lb.mul(sub, lb.index(32)), lane),
                         lb.index(inWidth), 32 * warps, partial,
                         [&](KernelBuilder &ib, Value c, ValueRange accIn) {
                           SmallVector<Value> acc(accIn);
                           step(ib, c, acc);
                           return acc;
                         });
  }
  SmallVector<Value> total;
  for (Value p : partial)
    total.push_back(warpSum(lb, p));
  if (warps > 1) {
    // The unit's warps add their sums through shared memory; every warp of
    // the block (one unit) gets the total.
    lb.ifThen(isZero(lb, lane), [&](KernelBuilder &sb) {
      for (size_t i = 0; i < count; ++i)
        sb.store(total[i], in.partials,
                 {sb.add(sb.mul(sub, sb.index(count)), sb.index(i))});
    });
    gpu::BarrierOp::create(lb.builder());
    for (size_t i = 0; i < count; ++i) {
      total[i] = lb.f32(0.0);
      for (int64_t w = 0; w < warps; ++w)
        total[i] =
            lb.add(total[i], memref::LoadOp::create(
                                 lb.builder(), in.partials,
                                 ValueRange{lb.index(int64_t(w * count + i))}));
    }
    // The buffer is free again for the next token.
    gpu::BarrierOp::create(lb.builder());
  }
  Value inv, mean;
  if (norm) {
    Value n = lb.f32(double(inWidth));
    Value meanSq = lb.div(total[sumSq], n);
    Value var = meanSq;
    if (layer) {
      mean = lb.div(total[sumX], n);
      var = lb.sub(meanSq, lb.mul(mean, mean));
    }
    inv = math::RsqrtOp::create(lb.builder(), lb.add(var, lb.f32(in.eps)));
  }
  SmallVector<Value> sums;
  for (auto [i, r] : llvm::enumerate(rows)) {
    Value s = total[rowAcc(i, 0)];
    if (norm) {
      if (layer)
        s = lb.sub(s, lb.mul(mean, total[rowAcc(i, 1)]));
      s = lb.mul(s, inv);
      if (normBias)
        s = lb.add(s, total[rowAcc(i, perRow - 1)]);
    }
    sums.push_back(finish(lb, s, r));
  }
  return sums;
}

} // namespace decc::gpulowering
