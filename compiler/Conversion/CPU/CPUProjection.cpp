//===- CPUProjection.cpp - projection kernels of the CPU lowering ---------===//
//
// One parallel loop per projection over output features, a block of 4
// tokens sharing each weight vector (dotGrid), the norm prologue and the
// epilogue (bias, clip, residual, SwiGLU / GELU, RoPE + KV append); and the
// stand-alone RoPE.
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/CPU/CPULowering.h"

#include "compiler/Conversion/Common/PositionTables.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

namespace decc::cpulowering {

void ForwardLowering::lowerProjection(FusedLinearOp op) {
  Projection p;
  p.input = op.getInput();
  p.weight = op.getWeight();
  p.bias = op.getBias();
  p.normWeight = op.getNormWeight();
  p.normBias = op.getNormBias();
  p.residual = op.getResidual();
  p.norm = op.getNorm();
  if (op.getNormEpsilon())
    p.eps = op.getNormEpsilon()->convertToDouble();
  p.activation = op.getActivation();
  p.append = bool(op.getCache());
  if (op.getRope())
    p.rope = *op.getRope();
  if (op.getLayer())
    p.layer = *op.getLayer();
  if (p.append) {
    // MPT's clip_qkv belongs to the attention that reads this projection.
    for (Operation *user : op.getResult(0).getUsers())
      if (auto attention = dyn_cast<CachedAttentionOp>(user))
        p.clip = attention.getConfig().getClipQkv();
    if (op.getPacking() == Packing::KVGrouped)
      p.kvGrouped = KVGroupedLayout{widthOf(op.getResult(0)) / cacheHeadDim,
                                    cacheKVHeads, cacheHeadDim};
  }
  p.results = SmallVector<Value>(op.getResults());
  emitProjection(p);
}

void ForwardLowering::lowerProjection(LinearOp op) {
  Projection p;
  p.input = op.getInput();
  p.weight = op.getWeight();
  p.bias = op.getBias();
  p.results = SmallVector<Value>(op.getResults());
  if (op.getPacking() == Packing::KVGrouped) {
    auto q = cast<RankedTensorType>(op.getResult(0).getType());
    auto k = cast<RankedTensorType>(op.getResult(1).getType());
    p.kvGrouped =
        KVGroupedLayout{q.getDimSize(1), k.getDimSize(1), q.getDimSize(2)};
  }
  emitProjection(p);
}

void ForwardLowering::lowerLMHead(LMHeadOp op) {
  Projection p;
  p.input = op.getInput();
  p.weight = op.getWeight();
  p.results = {op.getResult()};
  emitProjection(p);
}

/// A projection's rows, whichever epilogue follows: the dot products of
/// weight rows with the (normalized) input of some tokens, and the loop
/// over output features that parallelizes them.
struct ForwardLowering::ProjectionRows {
  KernelBuilder &kb;
  Value x, weight, bias;
  int64_t inWidth;
  double clip;
  Value firstToken, numTokens;
  /// A block of tokens' inputs that stay in L1 while a panel's units use
  /// them: past this, a prompt's projection goes over its inputs in slices
  /// of columns, every block of tokens over one slice before the next.
  /// InternLM2-1.8B's down projection (8192 columns, 6 tokens x 2 rows a
  /// tile, x86-64-v3, one core): 58.5 GFLOP/s with whole rows in panels
  /// of 8 units, 85.9 in slices of 1024 columns in panels of 32
  /// (docs/PERF.md). The pass's slice-input-bytes.
  int64_t sliceInputBytes;
  /// Tokens whose sums a sliced panel keeps at a time (whole blocks): the
  /// pass's slice-tokens.
  int64_t sliceTokens;
  /// Quantized weights: their bits, scales and offsets (4 bits)
  /// ([row][group], f32) and group.
  QuantizedDots quantized = {};
  /// The CPU's vector registers: 16 (AVX2), 32 (AVX-512).
  int64_t registers = 16;
  /// bf16 weight rows against f32 inputs in the paired order
  /// (KernelBuilder::dotGrid's pairedBF16).
  bool pairedBF16 = false;
  /// Elements of `weight` a decode step's dot products prefetch its rows
  /// ahead (KernelBuilder::dotGrid's prefetchAhead; null: none).
  Value prefetchAhead = {};
  /// The threads the panels of a prompt are dealt out to (null: one).
  Value threads = {};

  /// Weight rows a block of tokens takes together in a prompt: its
  /// tokenBlock() x rows accumulators and their loads fill the registers
  /// (AVX2: 6 x 2; AVX-512: 4 x 4 or, bf16 pairs, 6 x 4, each input
  /// vector then serving four rows). Quantized rows keep 2: the
  /// widening of their integers needs registers of its own.
  int64_t rowsATokenBlock() const {
    return registers >= 32 && !quantized.bits ? 4 : 2;
  }

  /// A prompt's inputs in slices of their columns (forEachUnit): the slice
  /// whose dot products a unit's body is being emitted for, and where the
  /// sums of the slices before it are kept.
  struct Slice {
    Value begin;
    int64_t length;
    /// The last slice: project() returns the sums; before it, project()
    /// keeps them and returns no tokens, so the body stores nothing.
    bool last;
    /// [token of the chunk][unit of the panel][slot] f32, `slots` a unit,
    /// the chunk's tokens from `firstToken`.
    Value partials, unitsPerPanel, firstToken;
    int64_t slots;
    Value unit = {};
    /// The slots of the body's next project() call.
    int64_t slot = 0;
  };
  mutable Slice *slice = nullptr;
  /// The sums a tile matmul left for a chunk of a prompt's tokens
  /// (emitTileMatmul): [feature][token - from], what project() returns.
  struct TileSums {
    Value sums, from;
  };
  const TileSums *tileSums = nullptr;

  // Output features `rows` for tokens `ts`: their dot products ([t][r]),
  // plus the bias, clamped for clip_qkv.
  SmallVector<SmallVector<Value>> project(KernelBuilder &lb, ArrayRef<Value> ts,
                                          ArrayRef<Value> rows) const {
    if (tileSums) {
      SmallVector<SmallVector<Value>> sums;
      for (Value t : ts) {
        Value column = lb.sub(t, tileSums->from);
        sums.emplace_back();
        for (Value row : rows)
          sums.back().push_back(biasAndClip(
              lb, lb.loadF32(tileSums->sums, {row, column}), bias, row, clip));
      }
      return sums;
    }
    SmallVector<SmallVector<Value>> tokenRows, weightRows;
    for (Value t : ts)
      tokenRows.push_back({t});
    for (Value r : rows)
      weightRows.push_back({r});
    if (slice) {
      SmallVector<SmallVector<Value>> sums =
          lb.dotGrid(x, tokenRows, weight, weightRows, slice->length,
                     slice->begin, registers, slice->begin, pairedBF16);
      assert(slice->slot + int64_t(rows.size()) <= slice->slots);
      for (auto [t, perToken] : llvm::zip(ts, sums)) {
        Value unitSlots = lb.mul(
            lb.add(lb.mul(lb.sub(t, slice->firstToken), slice->unitsPerPanel),
                   slice->unit),
            lb.index(slice->slots));
        for (auto [j, sum] : llvm::enumerate(perToken)) {
          Value at = lb.add(unitSlots, lb.index(slice->slot + int64_t(j)));
          sum = lb.add(sum, lb.loadF32(slice->partials, {at}));
          if (!slice->last)
            lb.store(sum, slice->partials, {at});
        }
      }
      slice->slot += int64_t(rows.size());
      if (!slice->last)
        return {};
      for (SmallVector<Value> &perToken : sums)
        for (auto [sum, row] : llvm::zip(perToken, rows))
          sum = biasAndClip(lb, sum, bias, row, clip);
      return sums;
    }
    SmallVector<SmallVector<Value>> sums =
        quantized.bits
            ? lb.quantizedDotGrid(x, tokenRows, weight, quantized, weightRows,
                                  inWidth)
            : lb.dotGrid(x, tokenRows, weight, weightRows, inWidth, Value(),
                         registers, Value(), pairedBF16, prefetchAhead);
    for (SmallVector<Value> &perToken : sums)
      for (auto [sum, row] : llvm::zip(perToken, rows))
        sum = biasAndClip(lb, sum, bias, row, clip);
    return sums;
  }
  // Parallel over panels of output units, each unit `rowsPerUnit` weight
  // rows: a panel's rows (about kPanelBytes) stay in the core's L2 while
  // every block of tokens passes over them, and a block's inputs stay in
  // L1 while the panel's units use them; each vector of a weight row then
  // serves an FMA a token of the block, each vector of an input as many as
  // the unit has rows. The last tokens go in pairs, then one alone. A
  // decode step (a token block or less) takes a unit a panel: its weights
  // are read once anyway, and the threads get the most even shares.
  /// Tokens a prompt's block takes together.
  ///  - AVX2, float rows: 6 (x 2 rows), 12 accumulators of the 16 registers
  ///    and 2 for the weight vectors, the input's loads folded into the
  ///    FMAs: 12 FMAs for 2 weight loads (and, bf16, 2 widenings) where 4
  ///    tokens had 8. Qwen2.5-0.5B's 512-token prefill on 2 Zen 4 cores:
  ///    f16 +13-17%, f32 +8-14%, bf16 +1-8%; InternLM2-1.8B +5-12%.
  ///  - AVX512-BF16 pairs (bf16 inputs and weights): 6 (x 4 rows), 24
  ///    accumulators of 16 lanes and the 4 weight vectors in the 32
  ///    registers: bf16 prefill +7% (0.5B), +8-13% (1.8B).
  ///  - Otherwise 4: f32 and f16 on AVX-512 would drop to 8 lanes at 24
  ///    accumulators (vectorWidth), 30% slower; quantized rows widen their
  ///    integers in registers of their own. (docs/PERF.md)
  int64_t tokenBlock() const {
    if (quantized.bits)
      return 4;
    bool bf16Pairs = cast<MemRefType>(x.getType()).getElementType().isBF16();
    return registers < 32 || bf16Pairs ? 6 : 4;
  }
  /// `features` as one group for one token (a decode step: the most rows
  /// a dot product), else in groups of `perBlock` (a block of tokens:
  /// tokenBlock() x rows of accumulators is what the vector registers
  /// hold).
  void inRowGroups(size_t tokens, ArrayRef<Value> features, size_t perBlock,
                   llvm::function_ref<void(ArrayRef<Value>)> each) const {
    if (tokens == 1 || features.size() <= perBlock) {
      each(features);
      return;
    }
    for (size_t f = 0; f < features.size(); f += perBlock)
      each(features.slice(f, std::min(perBlock, features.size() - f)));
  }
  static constexpr int64_t kPanelBytes = 256 * 1024;
  /// A projection's output split into `count` units of `rows` weight rows.
  struct Units {
    int64_t count, rows;
  };
  using UnitBody = std::function<void(KernelBuilder &, Value u,
                                      ArrayRef<Value> ts, int64_t rows)>;
  void forEachFeature(
      int64_t count, int64_t rowsPerUnit,
      const std::function<void(KernelBuilder &, Value u, ArrayRef<Value> ts)>
          &body) const {
    forEachFeature({count, rowsPerUnit}, {count, rowsPerUnit},
                   [&](KernelBuilder &lb, Value u, ArrayRef<Value> ts,
                       int64_t) { body(lb, u, ts); });
  }
  /// Units of `prompt`'s shape when the call has more tokens than a block,
  /// else of `step`'s: a decode step's units need not be the prompt
  /// tile's (on AVX-512 a prompt takes 4 rows a unit for its 6 x 4 tile,
  /// where a decode step streams faster with 2, docs/PERF.md).
  void forEachFeature(Units prompt, Units step, const UnitBody &body) const {
    Value tokens = kb.sub(numTokens, firstToken);
    Value many = arith::CmpIOp::create(kb.builder(), arith::CmpIPredicate::ugt,
                                       tokens, kb.index(tokenBlock()));
    if (prompt.rows == step.rows && inputSlices() == 1) {
      Value perPanel = arith::SelectOp::create(
          kb.builder(), many, evenPanels(kb, prompt, panelUnits(prompt)),
          kb.index(1));
      forEachUnit(kb, prompt, perPanel, body);
      return;
    }
    scf::IfOp::create(
        kb.builder(), many,
        [&](OpBuilder &nb, Location loc) {
          ImplicitLocOpBuilder ib(loc, nb);
          KernelBuilder pb(ib);
          int64_t slices = inputSlices();
          forEachUnit(pb, prompt,
                      evenPanels(pb, prompt,
                                 slices > 1 ? slicedPanelUnits(prompt)
                                            : panelUnits(prompt)),
                      body, slices);
          scf::YieldOp::create(ib);
        },
        [&](OpBuilder &nb, Location loc) {
          ImplicitLocOpBuilder ib(loc, nb);
          KernelBuilder sb(ib);
          forEachUnit(sb, step, sb.index(1), body);
          scf::YieldOp::create(ib);
        });
  }

private:
  /// A sliced panel's weights in one slice: what stays in L2 while every
  /// block of tokens passes over it.
  static constexpr int64_t kSlicePanelBytes = 256 * 1024;
  /// Columns a slice takes (a multiple of 64: whole vectors, bf16 pairs
  /// included); the last slice takes the rest.
  int64_t sliceColumns() const {
    auto element = cast<MemRefType>(x.getType()).getElementType();
    int64_t rowBytes = tokenBlock() * (element.getIntOrFloatBitWidth() / 8);
    int64_t slices = llvm::divideCeil(inWidth * rowBytes,
                                      std::max<int64_t>(sliceInputBytes, 1));
    return llvm::alignTo(llvm::divideCeil(inWidth, slices), 64);
  }
  /// Slices of a prompt's inputs (1: the whole rows at once). Quantized
  /// rows keep theirs whole: a slice would cut their groups.
  int64_t inputSlices() const {
    if (quantized.bits || tileSums)
      return 1;
    return llvm::divideCeil(inWidth, sliceColumns());
  }
  /// Units a sliced panel takes: kSlicePanelBytes of weights a slice.
  int64_t slicedPanelUnits(Units units) const {
    auto weightType = cast<MemRefType>(weight.getType());
    int64_t unitBytes =
        units.rows * sliceColumns() * (weightType.getElementTypeBitWidth() / 8);
    return std::clamp<int64_t>(
        kSlicePanelBytes / std::max<int64_t>(unitBytes, 1), 1, units.count);
  }

  /// Units a panel takes so that the panels, each at most `most` units,
  /// are a multiple of the threads in number and about equal: the loop
  /// over panels gives each thread as many. Panels of `most` units left
  /// one thread idle at the end of every projection with panels short of
  /// a multiple (Qwen2.5-0.5B's O and down: 7 panels on 2 threads): the
  /// second thread had 7.9% of a 128-token prefill's samples in libomp's
  /// barrier (perf, docs/PERF.md).
  Value evenPanels(KernelBuilder &kb, Units units, int64_t most) const {
    if (!threads)
      return kb.index(most);
    Value panels = kb.mul(
        kb.ceilDiv(kb.index(llvm::divideCeil(units.count, most)), threads),
        threads);
    return kb.ceilDiv(kb.index(units.count), panels);
  }

  /// Units a panel of a prompt takes: about kPanelBytes of weight rows.
  int64_t panelUnits(Units units) const {
    auto weightType = cast<MemRefType>(weight.getType());
    int64_t unitBytes =
        units.rows * inWidth * (weightType.getElementTypeBitWidth() / 8);
    return std::clamp<int64_t>(kPanelBytes / std::max<int64_t>(unitBytes, 1), 1,
                               units.count);
  }
  void forEachUnit(KernelBuilder &kb, Units units, Value perPanel,
                   const UnitBody &body, int64_t slices = 1) const {
    int64_t block = tokenBlock();
    Value panels = kb.ceilDiv(kb.index(units.count), perPanel);
    kb.parallel({panels}, [&](KernelBuilder &lb, ValueRange p) {
      Value u0 = lb.mul(p[0], perPanel);
      Value u1 = lb.umin(lb.add(u0, perPanel), lb.index(units.count));
      // Whole blocks, then pairs, then at most one token alone: a token
      // alone reads (and widens) each weight vector for one FMA, so the
      // few tokens past the blocks (a batched decode step of B sequences
      // is a prompt of B tokens: 16 left 4) went at a quarter of a
      // block's rate.
      auto overTokens = [&](KernelBuilder &ob, Slice *over, Value first,
                            Value end) {
        SmallVector<int64_t> sizes{block};
        for (int64_t size : {int64_t(2), int64_t(1)})
          if (size < sizes.back())
            sizes.push_back(size);
        Value from = first;
        for (int64_t size : sizes) {
          Value to = size == 1 ? end : ob.wholeStepsEnd(from, end, size);
          ob.forLoop(from, to, size, [&](KernelBuilder &tb, ValueRange t) {
            SmallVector<Value> ts;
            for (int64_t i = 0; i < size; ++i)
              ts.push_back(tb.add(t[0], tb.index(i)));
            tb.forLoop(u0, u1, 1, [&](KernelBuilder &ub, ValueRange u) {
              std::optional<Slice> current;
              if (over) {
                current = *over;
                current->unit = ub.sub(u[0], u0);
                slice = &*current;
              }
              body(ub, u[0], ts, units.rows);
              slice = nullptr;
            });
          });
          from = to;
        }
      };
      if (slices == 1) {
        overTokens(lb, nullptr, firstToken, numTokens);
        return;
      }
      // Every slice's sums but the last's, kept for each token and row of
      // the panel (a unit's rows at most twice over: the RoPE projection's
      // rotated and plain rows are two calls), for a chunk of at most
      // sliceTokens at a time, so that the buffer does not grow with the
      // prompt (a 32k-token prompt would have kept 32 MB a panel). The
      // chunks are equal and whole blocks but the last, so that no chunk is
      // a few tokens that pass over every slice alone (512 tokens: 258 and
      // 254, not 510 and 2).
      int64_t slots = 2 * units.rows;
      int64_t columns = sliceColumns();
      int64_t most =
          llvm::divideCeil(std::max<int64_t>(sliceTokens, 1), block) * block;
      Value count = lb.mul(lb.mul(lb.index(most), perPanel), lb.index(slots));
      Value partials = memref::AllocOp::create(
          lb.builder(),
          MemRefType::get({ShapedType::kDynamic}, lb.builder().getF32Type()),
          ValueRange{count});
      Value tokens = lb.sub(numTokens, firstToken);
      Value equal = lb.umax(
          lb.ceilDiv(tokens, lb.index(std::max<int64_t>(sliceTokens, 1))),
          lb.index(1));
      Value chunk =
          lb.umax(lb.mul(lb.ceilDiv(lb.ceilDiv(tokens, equal), lb.index(block)),
                         lb.index(block)),
                  lb.index(block));
      // Rounding the chunks up to whole blocks may leave fewer of them.
      Value chunks = lb.ceilDiv(tokens, chunk);
      lb.forLoop(lb.index(0), chunks, 1, [&](KernelBuilder &cb, ValueRange i) {
        Value from = cb.add(firstToken, cb.mul(i[0], chunk));
        Value end = cb.umin(cb.add(from, chunk), numTokens);
        cb.forLoop(cb.index(0), count, 1, [&](KernelBuilder &zb, ValueRange z) {
          zb.store(zb.f32(0.0), partials, {z[0]});
        });
        cb.forLoop(cb.index(0), cb.index((slices - 1) * columns), columns,
                   [&](KernelBuilder &sb, ValueRange begin) {
                     Slice over{begin[0], columns, false, partials,
                                perPanel, from,    slots};
                     overTokens(sb, &over, from, end);
                   });
        Slice last{cb.index((slices - 1) * columns),
                   inWidth - (slices - 1) * columns,
                   true,
                   partials,
                   perPanel,
                   from,
                   slots};
        overTokens(cb, &last, from, end);
      });
      memref::DeallocOp::create(lb.builder(), partials);
    });
  }
};

namespace {
/// Quantized weight rows [rows][row bytes] dequantized into `out` ([rows]
/// [width] f32), in parallel over the rows, with KernelBuilder::dequantized's
/// arithmetic, q * scale + offset a column: the columns of a whole run of 8
/// bytes (8 int8, or 16 int4 columns, the low nibbles then the high) a
/// vector where the group holds whole runs, else one at a time.
void dequantizeRows(KernelBuilder &kb, Value bytes, const QuantizedDots &q,
                    Value out, int64_t rows, int64_t width) {
  bool int4 = q.bits == 4;
  int64_t run = int4 ? 16 : 8;
  int64_t vectorEnd = q.groupSize % run == 0 ? width / run * run : 0;
  kb.parallel({kb.index(rows)}, [&](KernelBuilder &lb, ValueRange r) {
    Value row = r[0];
    lb.forLoop(
        lb.index(0), lb.index(vectorEnd), run,
        [&](KernelBuilder &cb, ValueRange k) {
          ImplicitLocOpBuilder &ib = cb.builder();
          auto vf32 = VectorType::get({8}, ib.getF32Type());
          auto splat = [&](Value v) {
            return vector::BroadcastOp::create(ib, vf32, v).getResult();
          };
          Value group = cb.div(k[0], cb.index(q.groupSize));
          Value scale = splat(cb.loadF32(q.scales, {row, group}));
          Value offset =
              int4 ? splat(cb.loadF32(q.offsets, {row, group})) : Value();
          // A run of 16 int4 columns: its low nibbles, then its high.
          for (int64_t h = 0; h < run / 8; ++h) {
            Value c = cb.add(k[0], cb.index(8 * h));
            Value v = arith::MulFOp::create(
                ib, cb.quantizedIntegers(bytes, q.bits, {row}, c, 8), scale);
            if (offset)
              v = arith::AddFOp::create(ib, v, offset);
            vector::StoreOp::create(ib, v, out, ValueRange{row, c});
          }
        });
    lb.forLoop(
        lb.index(vectorEnd), lb.index(width), 1,
        [&](KernelBuilder &cb, ValueRange k) {
          cb.store(cb.dequantized(bytes, q, row, k[0]), out, {row, k[0]});
        });
  });
}
} // namespace

void ForwardLowering::emitProjection(const Projection &p) {
  KernelBuilder kb(*b);
  int64_t inWidth = widthOf(p.input);
  Value weight = weightView(p.weight, p.kvGrouped);
  Value bias = p.bias ? weightView(p.bias, p.kvGrouped) : Value();

  // The logits are computed only for the rows the caller asked for: the
  // last dim(%logits, 0) tokens.
  bool toLogits = p.results.size() == 1 &&
                  (p.results[0] == returned || p.results[0] == gatheredPart);
  Value firstToken = kb.index(0);
  if (toLogits)
    firstToken = kb.sub(numTokens, memref::DimOp::create(*b, logits, 0));

  // Prologue: the projection's own input rows, one per token, normalized
  // and, for bf16 weights on a CPU with AVX512-BF16, rounded to bf16 as
  // they are stored (every dot product then a vdpbf16ps,
  // KernelBuilder::dotGrid): one pass, one buffer.
  Value x = bufferOf(p.input);
  bool bf16Weight =
      cast<MemRefType>(weight.getType()).getElementType().isBF16();
  bool roundToBF16 = bf16Dot && bf16Weight;
  // On AVX2, bf16 rows against f32 inputs whose columns the prologue puts
  // in the order 16 bf16 widen in by a mask and a shift
  // (KernelBuilder::dotGrid's pairedBF16), where vpmovzxwd and a shift
  // widened every 8.
  bool pairedBF16 = bf16Weight && !bf16Dot && quantizedLanes < 16 &&
                    inWidth % KernelBuilder::kBF16PairColumns == 0;
  Value prepared;
  if (p.norm || roundToBF16 || pairedBF16) {
    prepared = alloc(inWidth, roundToBF16 ? b->getBF16Type() : Type());
    Value nw = p.norm ? weightView(p.normWeight) : Value();
    Value nb = p.normBias ? weightView(p.normBias) : Value();
    Value src = x;
    kb.parallel({kb.sub(numTokens, firstToken)}, [&](KernelBuilder &lb,
                                                     ValueRange i) {
      Value t = lb.add(i[0], firstToken);
      auto pairColumns = [&](Value from) {
        lb.forLoop(lb.index(0), lb.index(inWidth),
                   KernelBuilder::kBF16PairColumns,
                   [&](KernelBuilder &cb, ValueRange k) {
                     cb.storePairedOrder(from, prepared, {t}, k[0]);
                   });
      };
      if (p.norm) {
        emitNormalizedRow(lb, src, prepared, t, inWidth, *p.norm, nw, nb,
                          p.eps);
        // In place: each block's 16 columns are loaded before they are
        // stored.
        if (pairedBF16)
          pairColumns(prepared);
        return;
      }
      if (pairedBF16) {
        pairColumns(src);
        return;
      }
      lb.forEachChunk(inWidth, [&](KernelBuilder &cb, Value k, int64_t width) {
        cb.store(cb.loadN(src, {t, k}, width), prepared, {t, k});
      });
    });
    x = prepared;
  }

  QuantizedDots quantized = quantizedDots(p.weight, p.kvGrouped);
  // int4's offsets multiply each group's sum of x: summed once a token
  // before the dot products, not again by every unit of weight rows (an
  // add a vector of x, and its accumulator, in their loops).
  Value groupSums, xInt16, xScales;
  int64_t groups = 0;
  if (quantized.bits == 4) {
    groups = llvm::divideCeil(inWidth, quantized.groupSize);
    groupSums = alloc(groups);
    // int16 products where a group holds whole blocks and its sums stay
    // exact (i32: 32767 x 15 a column; x's in f32, 32767 a column).
    int64_t size = quantized.groupSize;
    if (int16Dots && size % quantized.int16Block() == 0 &&
        inWidth % size == 0 && size <= 512) {
      xInt16 = alloc(inWidth, b->getI16Type());
      xScales = alloc(groups);
    }
  }
  // Each token's sums of x over the groups.
  auto sumGroups = [&](KernelBuilder &rb, Value first, Value end) {
    int64_t size = quantized.groupSize;
    rb.forLoop(first, end, 1, [&](KernelBuilder &tb, ValueRange t) {
      tb.forLoop(tb.index(0), tb.index(groups), 1,
                 [&](KernelBuilder &gb, ValueRange g) {
                   Value k0 = gb.mul(g[0], gb.index(size));
                   Value k1 =
                       gb.umin(gb.add(k0, gb.index(size)), gb.index(inWidth));
                   Value sum = gb.forLoop(
                       k0, k1, 1, {gb.f32(0.0)},
                       [&](KernelBuilder &sb, Value k, ValueRange acc) {
                         return SmallVector<Value>{
                             sb.add(acc[0], sb.loadF32(x, {t[0], k}))};
                       })[0];
                   gb.store(sum, groupSums, {t[0], g[0]});
                 });
    });
  };
  // For int16 products: each token's x rounded to int16 with one scale a
  // group (its largest |x| to 32767), in the order int16Block() says, 8 columns
  // a vector (a run of 8 lands whole); and as the sums the offsets
  // multiply, the rounded x's (integers, exact in f32 below 2^24: groups
  // of up to 512), so that a group's sum is s xs sum(x~ (q - zero)) and
  // x's rounding errors meet q - zero, not q (half the error).
  auto roundToInt16 = [&](KernelBuilder &rb, Value first, Value end) {
    int64_t size = quantized.groupSize, block = quantized.int16Block();
    auto vf32 = VectorType::get({8}, b->getF32Type());
    auto vi16 = VectorType::get({8}, b->getI16Type());
    // In parallel over tokens and groups: a decode step's one token too.
    rb.parallel({rb.sub(end, first), rb.index(groups)}, [&](KernelBuilder &gb,
                                                            ValueRange ig) {
      Value t = gb.add(ig[0], first);
      ValueRange g = ig.drop_front();
      ImplicitLocOpBuilder &ib = gb.builder();
      Value k0 = gb.mul(g[0], gb.index(size));
      Value k1 = gb.add(k0, gb.index(size));
      Value zero = arith::ConstantOp::create(
          ib, DenseElementsAttr::get(vf32, ib.getF32FloatAttr(0)));
      Value largest = gb.forLoop(
          k0, k1, 8, {zero}, [&](KernelBuilder &sb, Value k, ValueRange acc) {
            Value v = sb.loadVector(x, {t, k}, 8);
            return SmallVector<Value>{arith::MaximumFOp::create(
                sb.builder(), acc[0], math::AbsFOp::create(sb.builder(), v))};
          })[0];
      Value most = vector::ReductionOp::create(
          ib, vector::CombiningKind::MAXIMUMF, largest);
      Value scale = gb.div(most, gb.f32(32767.0));
      gb.store(scale, xScales, {t, g[0]});
      Value inverse = vector::BroadcastOp::create(
          ib, vf32,
          arith::SelectOp::create(
              ib,
              arith::CmpFOp::create(ib, arith::CmpFPredicate::OGT, most,
                                    gb.f32(0.0)),
              gb.div(gb.f32(32767.0), most), gb.f32(0.0)));
      Value rounded = gb.forLoop(
          k0, k1, 8, {zero}, [&](KernelBuilder &sb, Value k, ValueRange acc) {
            ImplicitLocOpBuilder &cb = sb.builder();
            Value v = math::RoundEvenOp::create(
                cb, arith::MulFOp::create(cb, sb.loadVector(x, {t, k}, 8),
                                          inverse));
            // Where the 8 columns from k land: the block's base, then
            // half h of its run (low or high nibbles), then run r.
            Value i = arith::RemUIOp::create(cb, k, sb.index(block));
            Value half =
                arith::RemUIOp::create(cb, sb.div(i, sb.index(8)), sb.index(2));
            Value column =
                sb.add(sb.sub(k, i),
                       sb.add(sb.mul(half, sb.index(block / 2)),
                              sb.mul(sb.div(i, sb.index(16)), sb.index(8))));
            vector::StoreOp::create(cb, arith::FPToSIOp::create(cb, vi16, v),
                                    xInt16, ValueRange{t, column});
            return SmallVector<Value>{arith::AddFOp::create(cb, acc[0], v)};
          })[0];
      gb.store(gb.mul(vector::ReductionOp::create(
                          ib, vector::CombiningKind::ADD, rounded),
                      scale),
               groupSums, {t, g[0]});
    });
  };
  // A float weight's prefetch distance in its elements (decc_prefetch_bytes,
  // asked once a call).
  auto prefetchElements = [&](KernelBuilder &rb, Value rows) {
    int64_t bytes = cast<MemRefType>(rows.getType())
                        .getElementType()
                        .getIntOrFloatBitWidth() /
                    8;
    return rb.div(weightPrefetchBytes(), rb.index(bytes));
  };
  // `dequantized`: the weights as f32 rows, which the f32 build's
  // projection takes.
  auto rowsFor = [&](KernelBuilder &rb, Value first, Value end,
                     Value dequantized = Value()) {
    ProjectionRows dots{rb,         x,       dequantized ? dequantized : weight,
                        bias,       inWidth, p.clip,
                        first,      end,     sliceInputBytes,
                        sliceTokens};
    if (!dequantized) {
      dots.quantized = quantized;
      if (groupSums) {
        if (xInt16)
          roundToInt16(rb, first, end);
        else
          sumGroups(rb, first, end);
        dots.quantized.xGroupSums = groupSums;
        dots.quantized.xInt16 = xInt16;
        dots.quantized.xScales = xScales;
      }
    }
    // Quantized lanes of 16 are the pass's word for an AVX-512 CPU.
    dots.registers = quantizedLanes >= 16 ? 32 : 16;
    dots.pairedBF16 = pairedBF16;
    if (!dots.quantized.bits)
      dots.prefetchAhead = prefetchElements(rb, dots.weight);
    dots.threads = threadCount();
    return dots;
  };
  auto epilogue = [&](const ProjectionRows &dots) {
    if (p.append)
      emitAppendProjection(p, dots);
    else if (p.activation == Activation::SwiGLU)
      emitSwiGLUProjection(p, dots);
    else
      emitPlainProjection(p, dots, toLogits);
  };
  // A prompt's own form of the projection where `many` holds, the dot
  // products' otherwise (a decode step). The epilogue defines its outputs
  // where it runs: in both branches they must be the buffers defined here,
  // before them.
  auto promptOrStep = [&](Value many,
                          llvm::function_ref<void(KernelBuilder &)> prompt) {
    for (Value result : p.append || p.activation == Activation::SwiGLU
                            ? ArrayRef<Value>(p.results).take_front()
                            : ArrayRef<Value>(p.results))
      define(result, widthOf(result));
    scf::IfOp::create(
        *b, many,
        [&](OpBuilder &nb, Location loc) {
          ImplicitLocOpBuilder ib(loc, nb);
          KernelBuilder pb(ib);
          prompt(pb);
          scf::YieldOp::create(ib);
        },
        [&](OpBuilder &nb, Location loc) {
          ImplicitLocOpBuilder ib(loc, nb);
          KernelBuilder sb(ib);
          epilogue(rowsFor(sb, firstToken, numTokens));
          scf::YieldOp::create(ib);
        });
  };
  // A prompt's quantized projection: its weights dequantized to f32 once
  // (in parallel, about the bytes of an f32 build's weights written), then
  // the f32 build's projection on them, where each weight vector serves a
  // block of tokens as loaded. Widened in the dot products, a vector was
  // widened again for every block of 4 tokens: Qwen2.5-0.5B's 128-token
  // prefill ran at 0.65x the f32 build's (docs/PERF.md).
  if (quantized.bits && !toLogits && dequantizePromptTokens > 0) {
    Value many = arith::CmpIOp::create(*b, arith::CmpIPredicate::uge,
                                       kb.sub(numTokens, firstToken),
                                       kb.index(dequantizePromptTokens));
    promptOrStep(many, [&](KernelBuilder &pb) {
      ImplicitLocOpBuilder &ib = pb.builder();
      int64_t rows = cast<MemRefType>(weight.getType()).getDimSize(0);
      Value rowsF32 = memref::AllocOp::create(
          ib, MemRefType::get({rows, inWidth}, ib.getF32Type()), ValueRange{},
          ib.getI64IntegerAttr(64));
      dequantizeRows(pb, weight, quantized, rowsF32, rows, inWidth);
      epilogue(rowsFor(pb, firstToken, numTokens, rowsF32));
      memref::DeallocOp::create(ib, rowsF32);
    });
  } else if (!amx || toLogits || quantized.bits ||
             !tileMatmulFits(weight, x, inWidth)) {
    epilogue(rowsFor(kb, firstToken, numTokens));
  } else {
    // A prompt's bf16 projection on AMX tiles: its inputs as tile pairs
    // once, then a chunk of tokens at a time the tile matmul's sums and the
    // epilogue reading them. A decode step (a block of tokens or fewer)
    // keeps the dot products, which stream the weights at the memory's
    // rate. Not the logits: their rows count from firstToken, not from a
    // chunk's first (and a prompt asks for the last token's alone).
    Value many = arith::CmpIOp::create(
        *b, arith::CmpIPredicate::ugt, kb.sub(numTokens, firstToken),
        kb.index(rowsFor(kb, firstToken, numTokens).tokenBlock()));
    promptOrStep(many, [&](KernelBuilder &pb) {
      ImplicitLocOpBuilder &ib = pb.builder();
      // The sums of sliceTokens tokens at a time (whole pairs of token
      // tiles), as a sliced projection keeps them.
      int64_t chunk =
          llvm::alignTo(std::max<int64_t>(sliceTokens, 1), int64_t(32));
      TilePairs pairs = allocTilePairs(pb, inWidth, chunk);
      int64_t rows = cast<MemRefType>(weight.getType()).getDimSize(0);
      Value sums = memref::AllocOp::create(
          ib, MemRefType::get({rows, tileRowStride(chunk)}, ib.getF32Type()),
          ValueRange{}, ib.getI64IntegerAttr(64));
      pb.forLoop(
          firstToken, numTokens, chunk,
          [&](KernelBuilder &cb, ValueRange from) {
            Value end = cb.umin(cb.add(from[0], cb.index(chunk)), numTokens);
            packTilePairs(cb, pairs, x, from[0], end, inWidth);
            emitTileMatmul(cb, weight, pairs, sums, from[0], end, inWidth);
            ProjectionRows chunk = rowsFor(cb, from[0], end);
            ProjectionRows::TileSums tile{sums, from[0]};
            chunk.tileSums = &tile;
            epilogue(chunk);
          });
      memref::DeallocOp::create(ib, sums);
      memref::DeallocOp::create(ib, pairs.raw);
    });
  }
  if (prepared)
    memref::DeallocOp::create(*b, prepared);
  for (Value buffer : {groupSums, xInt16, xScales})
    if (buffer)
      memref::DeallocOp::create(*b, buffer);
}

void ForwardLowering::emitAppendProjection(const Projection &p,
                                           const ProjectionRows &dots) {
  // Rows are [q | k | v]; q and k rotated in pairs (i, i + rot/2).
  Value q = define(p.results[0], widthOf(p.results[0]));
  int64_t d = cacheHeadDim;
  int64_t qHeads = widthOf(p.results[0]) / d;
  RoPETable rope{};
  if (p.rope)
    rope = ropeTable(p.rope);
  int64_t half = p.rope ? rope.half : 0;
  int64_t unitsPerHead = d - half; // a pair counts once
  auto storeTo = [&](KernelBuilder &lb, int slot, Value head, Value t, Value i,
                     Value v) {
    if (slot == 0) {
      lb.store(v, q, {t, lb.add(lb.mul(head, lb.index(d)), i)});
      return;
    }
    Value pos = cacheSlot(
        lb, blockTable, t,
        lb.toIndex(memref::LoadOp::create(lb.builder(), positions, t)));
    if (slot == 1)
      lb.store(v, keyTiles(lb),
               keyTileIndex(lb, layerIndex(p.layer), head, pos, i));
    else
      lb.store(v, vCache, {layerIndex(p.layer), head, pos, i});
  };
  auto emitSlot = [&](int slot, int64_t heads, int64_t rowBase) {
    bool rotate = slot < 2 && half > 0;
    int64_t units = rotate ? unitsPerHead : d;
    dots.forEachFeature(
        heads * units, rotate ? 2 : 1,
        [&](KernelBuilder &lb, Value u, ArrayRef<Value> ts) {
          Value head = lb.div(u, lb.index(units));
          Value r = arith::RemUIOp::create(lb.builder(), u, lb.index(units));
          Value rowOfHead =
              lb.add(lb.index(rowBase), lb.mul(head, lb.index(d)));
          auto single = [&](KernelBuilder &ib, Value i) {
            SmallVector<SmallVector<Value>> y =
                dots.project(ib, ts, {ib.add(rowOfHead, i)});
            for (auto [t, yt] : llvm::zip(ts, y))
              storeTo(ib, slot, head, t, i, yt[0]);
          };
          if (!rotate) {
            single(lb, r);
            return;
          }
          auto pair = [&](KernelBuilder &ib) {
            Value i2 = ib.add(r, ib.index(half));
            SmallVector<SmallVector<Value>> y = dots.project(
                ib, ts, {ib.add(rowOfHead, r), ib.add(rowOfHead, i2)});
            for (auto [t, yt] : llvm::zip(ts, y)) {
              Value c = ib.loadF32(rope.cos, {t, r});
              Value s = ib.loadF32(rope.sin, {t, r});
              storeTo(ib, slot, head, t, r,
                      ib.sub(ib.mul(yt[0], c), ib.mul(yt[1], s)));
              storeTo(ib, slot, head, t, i2,
                      ib.add(ib.mul(yt[1], c), ib.mul(yt[0], s)));
            }
          };
          if (unitsPerHead == half) {
            pair(lb);
            return;
          }
          // Features past rotary_dim pass through unrotated.
          Value isPair = arith::CmpIOp::create(
              lb.builder(), arith::CmpIPredicate::ult, r, lb.index(half));
          scf::IfOp::create(
              lb.builder(), isPair,
              [&](OpBuilder &nb, Location loc) {
                ImplicitLocOpBuilder ib(loc, nb);
                KernelBuilder kb2(ib);
                pair(kb2);
                scf::YieldOp::create(ib);
              },
              [&](OpBuilder &nb, Location loc) {
                ImplicitLocOpBuilder ib(loc, nb);
                KernelBuilder kb2(ib);
                single(kb2, kb2.add(r, kb2.index(half)));
                scf::YieldOp::create(ib);
              });
        });
  };
  emitSlot(0, qHeads, 0);
  emitSlot(1, cacheKVHeads, qHeads * d);
  emitSlot(2, cacheKVHeads, (qHeads + cacheKVHeads) * d);
}

void ForwardLowering::emitSwiGLUProjection(const Projection &p,
                                           const ProjectionRows &dots) {
  int64_t width = widthOf(p.results[0]);
  Value out = define(p.results[0], width);
  if (dots.tileSums) {
    emitTileSwiGLU(dots, out, width);
    return;
  }
  // A unit of F features (F gate and F up rows): quantized weights, so
  // that a decode step converts each of x's chunks once for 2F rows; on
  // AVX-512, so that a prompt's token block takes 4 rows together (a
  // decode step's units keep one feature: faster there).
  int64_t features =
      (dots.quantized.bits || dots.rowsATokenBlock() == 4) && width % 2 == 0
          ? 2
          : 1;
  int64_t stepFeatures = dots.quantized.bits ? features : 1;
  dots.forEachFeature(
      {width / features, 2 * features},
      {width / stepFeatures, 2 * stepFeatures},
      [&](KernelBuilder &lb, Value u, ArrayRef<Value> ts, int64_t rows) {
        int64_t features = rows / 2;
        SmallVector<Value> os;
        for (int64_t f = 0; f < features; ++f)
          os.push_back(features == 1 ? u
                                     : lb.add(lb.mul(u, lb.index(features)),
                                              lb.index(f)));
        auto store = [&](ArrayRef<Value> fs) {
          SmallVector<Value> rows(fs);
          for (Value o : fs)
            rows.push_back(lb.add(o, lb.index(width)));
          SmallVector<SmallVector<Value>> y = dots.project(lb, ts, rows);
          for (auto [t, yt] : llvm::zip(ts, y))
            for (size_t f = 0; f < fs.size(); ++f)
              lb.store(siluTimes(lb, yt[f], yt[fs.size() + f]), out,
                       {t, fs[f]});
        };
        dots.inRowGroups(ts.size(), os, dots.rowsATokenBlock() / 2, store);
      });
}

/// The 16 x 16 block `rows` transposed: log2(16) levels of two-vector
/// shuffles, each swapping the off-diagonal blocks of every 2h x 2h block.
static SmallVector<Value> transpose16(ImplicitLocOpBuilder &b,
                                      SmallVector<Value> rows) {
  for (int64_t h = 8; h >= 1; h /= 2) {
    SmallVector<int64_t> top, bottom;
    for (int64_t j = 0; j < 16; ++j) {
      bool right = j & h;
      top.push_back(right ? 16 + j - h : j);
      bottom.push_back(right ? 16 + j : j + h);
    }
    SmallVector<Value> next(rows);
    for (int64_t i = 0; i < 16; ++i)
      if (!(i & h)) {
        next[i] = vector::ShuffleOp::create(b, rows[i], rows[i + h], top);
        next[i + h] =
            vector::ShuffleOp::create(b, rows[i], rows[i + h], bottom);
      }
    rows = std::move(next);
  }
  return rows;
}

/// A tile matmul's epilogue: `value(cb, f, c, lanes)` is feature f's
/// result for the chunk's tokens c.. (lanes 16, or 1 in the tail) from
/// its sums, `store(cb, t, f, v)` writes token t's results from feature f
/// on (16 features, or 1). The sums lie [feature][token]: 16 features' of
/// 16 tokens are 16 vector loads and the results are transposed in
/// registers into each token's 16 features, one store a token. (SwiGLU
/// on scalars called expf a value, 20% of a 512-token prefill of
/// Qwen2.5-0.5B on AMX; on vectors of a feature's tokens it stored 16
/// values a row apart, each missing the TLB: docs/PERF.md.)
static void forTileBlocks(
    KernelBuilder &kb, Value from, Value count, int64_t width,
    llvm::function_ref<Value(KernelBuilder &, Value, Value, int64_t)> value,
    llvm::function_ref<void(KernelBuilder &, Value, Value, Value)> store) {
  int64_t block = width % 16 == 0 ? 16 : 1;
  kb.parallel({kb.index(width / block)}, [&](KernelBuilder &lb, ValueRange u) {
    Value f0 = lb.mul(u[0], lb.index(block));
    Value whole = lb.wholeStepsEnd(lb.index(0), count, 16);
    lb.forLoop(lb.index(0), whole, 16, [&](KernelBuilder &cb, ValueRange c) {
      SmallVector<Value> ys;
      for (int64_t i = 0; i < block; ++i)
        ys.push_back(value(cb, cb.add(f0, cb.index(i)), c[0], 16));
      Value t0 = cb.add(from, c[0]);
      if (block == 1) {
        for (int64_t j = 0; j < 16; ++j)
          store(cb, cb.add(t0, cb.index(j)), f0,
                vector::ExtractOp::create(cb.builder(), ys[0], j));
        return;
      }
      SmallVector<Value> byToken = transpose16(cb.builder(), ys);
      for (int64_t j = 0; j < 16; ++j)
        store(cb, cb.add(t0, cb.index(j)), f0, byToken[j]);
    });
    // The last tokens, fewer than a vector.
    lb.forLoop(whole, count, 1, [&](KernelBuilder &cb, ValueRange c) {
      for (int64_t i = 0; i < block; ++i) {
        Value f = cb.add(f0, cb.index(i));
        store(cb, cb.add(from, c[0]), f, value(cb, f, c[0], 1));
      }
    });
  });
}

/// Row `row` of a tile matmul's sums for the chunk's tokens c.., plus the
/// bias.
static Value tileSum(KernelBuilder &cb, Value sums, Value bias, Value row,
                     Value c, int64_t lanes) {
  Value v = cb.loadN(sums, {row, c}, lanes);
  if (!bias)
    return v;
  return cb.add(v, cb.splat(cb.loadF32(bias, {row}), lanes));
}

/// Stores `v` (a vector of features from f on, or one) to out[t][f].
static void storeFeatures(KernelBuilder &cb, Value v, Value out, Value t,
                          Value f) {
  if (isa<VectorType>(v.getType()))
    vector::StoreOp::create(cb.builder(), v, out, ValueRange{t, f});
  else
    cb.store(v, out, {t, f});
}

void ForwardLowering::emitTileSwiGLU(const ProjectionRows &dots, Value out,
                                     int64_t width) {
  Value sums = dots.tileSums->sums;
  forTileBlocks(
      dots.kb, dots.tileSums->from,
      dots.kb.sub(dots.numTokens, dots.firstToken), width,
      [&](KernelBuilder &cb, Value f, Value c, int64_t lanes) {
        return siluTimes(
            cb, tileSum(cb, sums, dots.bias, f, c, lanes),
            tileSum(cb, sums, dots.bias, cb.add(f, cb.index(width)), c, lanes));
      },
      [&](KernelBuilder &cb, Value t, Value f, Value v) {
        storeFeatures(cb, v, out, t, f);
      });
}

void ForwardLowering::emitPlainProjection(const Projection &p,
                                          const ProjectionRows &dots,
                                          bool toLogits) {
  Value firstToken = dots.firstToken;
  int64_t rowBase = 0;
  for (Value result : p.results) {
    int64_t width = widthOf(result);
    Value out = toLogits ? logitsTarget(result, width) : define(result, width);
    Value residual = p.residual ? bufferOf(p.residual) : Value();
    // Two weight rows per iteration where the width allows: each vector
    // of a token's input then serves two FMAs as well; four for quantized
    // weights, whose chunks of x a decode step then converts once for four
    // rows, and on AVX-512 (rowsATokenBlock) in a prompt: its decode
    // steps stream 10-30% faster with two (docs/PERF.md). Unit u's rows: u
    // and u + width/2 (2u, 2u+1 and the same past width/2 with four).
    auto rowsAUnit = [&](bool four) {
      return four && width % 4 == 0 ? 4 : width % 2 == 0 ? 2 : 1;
    };
    int64_t promptPair =
        rowsAUnit(dots.quantized.bits || dots.rowsATokenBlock() == 4);
    int64_t stepPair = rowsAUnit(bool(dots.quantized.bits));
    // GELU keeps the scalar epilogue: erf and tanh on vectors become libm
    // calls a lane after the vector lowering, which leaves their
    // vector.extracts behind.
    if (dots.tileSums && !dots.clip && !p.activation) {
      // The tile matmul's sums in 16 x 16 blocks (forTileBlocks).
      Value sums = dots.tileSums->sums;
      forTileBlocks(
          dots.kb, dots.tileSums->from,
          dots.kb.sub(dots.numTokens, dots.firstToken), width,
          [&](KernelBuilder &cb, Value f, Value c, int64_t lanes) {
            return tileSum(cb, sums, dots.bias, cb.add(f, cb.index(rowBase)), c,
                           lanes);
          },
          [&](KernelBuilder &cb, Value t, Value f, Value v) {
            if (residual) {
              int64_t lanes = 1;
              if (auto type = dyn_cast<VectorType>(v.getType()))
                lanes = type.getNumElements();
              v = cb.add(v, cb.loadN(residual, {t, f}, lanes));
            }
            storeFeatures(cb, v, out, t, f);
          });
      rowBase += width;
      continue;
    }
    dots.forEachFeature(
        {width / promptPair, promptPair}, {width / stepPair, stepPair},
        [&](KernelBuilder &lb, Value u, ArrayRef<Value> ts, int64_t pair) {
          // A unit's rows come from the two halves of the weight (rows
          // 2u, 2u+1 and those half the width later with 4), so that a
          // thread streams two regions at once, as the SwiGLU kernel's
          // gate and up rows do: one region a thread left memory idle
          // (docs/PERF.md, eighteenth session).
          SmallVector<Value> features;
          int64_t adjacent = std::max<int64_t>(pair / 2, 1);
          Value first = adjacent == 1 ? u : lb.mul(u, lb.index(adjacent));
          for (int64_t half = 0; half < pair / adjacent; ++half)
            for (int64_t i = 0; i < adjacent; ++i) {
              Value row = i ? lb.add(first, lb.index(i)) : first;
              features.push_back(half ? lb.add(row, lb.index(half * width / 2))
                                      : row);
            }
          dots.inRowGroups(
              ts.size(), features, dots.rowsATokenBlock(),
              [&](ArrayRef<Value> fs) {
                SmallVector<Value> rows;
                for (Value o : fs)
                  rows.push_back(lb.add(o, lb.index(rowBase)));
                SmallVector<SmallVector<Value>> y = dots.project(lb, ts, rows);
                for (auto [t, yt] : llvm::zip(ts, y)) {
                  for (auto [o, v] : llvm::zip(fs, yt)) {
                    if (p.activation)
                      v = gelu(lb, v, *p.activation == Activation::GeluTanh);
                    if (residual)
                      v = lb.add(v, lb.loadF32(residual, {t, o}));
                    Value row = toLogits ? lb.sub(t, firstToken) : t;
                    lb.store(v, out, {row, o});
                  }
                }
              });
        });
    rowBase += width;
  }
}

void ForwardLowering::lowerRoPE(RoPEOp op) {
  int64_t width = widthOf(op.getResult());
  auto type = cast<RankedTensorType>(op.getResult().getType());
  int64_t d = type.getDimSize(2), heads = type.getDimSize(1);
  Value in = bufferOf(op.getInput());
  Value out = define(op.getResult(), width);
  RoPETable table = ropeTable(op.getRope());
  int64_t half = table.half;
  KernelBuilder kb(*b);
  kb.parallel({numTokens, kb.index(heads)}, [&](KernelBuilder &lb,
                                                ValueRange iv) {
    Value t = iv[0], base = lb.mul(iv[1], lb.index(d));
    lb.forLoop(lb.index(0), lb.index(d), 1,
               [&](KernelBuilder &ib, ValueRange i) {
                 ib.store(ib.loadF32(in, {t, ib.add(base, i[0])}), out,
                          {t, ib.add(base, i[0])});
               });
    lb.forLoop(
        lb.index(0), lb.index(half), 1, [&](KernelBuilder &ib, ValueRange i) {
          Value c1 = ib.add(base, i[0]), c2 = ib.add(c1, ib.index(half));
          Value x1 = ib.loadF32(in, {t, c1}), x2 = ib.loadF32(in, {t, c2});
          Value c = ib.loadF32(table.cos, {t, i[0]});
          Value s = ib.loadF32(table.sin, {t, i[0]});
          ib.store(ib.sub(ib.mul(x1, c), ib.mul(x2, s)), out, {t, c1});
          ib.store(ib.add(ib.mul(x2, c), ib.mul(x1, s)), out, {t, c2});
        });
  });
}

} // namespace decc::cpulowering
