//===- DecoderToCPU.cpp - decoder ops to scf/vector/memref CPU kernels ----===//
//
// Rewrites `func.func @forward` (tensors, one decoder op per step) into
// `func.func @decc_forward` over memrefs, the entry point the runtime calls:
//
//   decc_forward(%weights : memref<?xi8>,          the weight arena
//                %tokens, %positions : memref<?xi64>,
//                %k_cache, %v_cache : memref<L x KVH x ? x D x f32>,
//                %state : memref<?xi64>,           RoPE state across calls
//                %logits : memref<? x V x f32>)    logits of the last rows
//
// Every decoder op becomes a kernel: scf loops over memrefs with vector
// bodies, the outermost loop an scf.parallel that later becomes an OpenMP
// worksharing loop. Weights live in one arena the runtime fills once; each
// is a `memref.view` at an offset fixed here, and the layout of the arena is
// recorded in the weight manifest (a module attribute the driver embeds).
//
// The function is straight-line SSA, so the lowering walks it once in order
// and maps each decoder value to a buffer; a buffer is freed right after its
// last use.
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/Passes.h"

#include "compiler/Conversion/KernelBuilder.h"
#include "compiler/Conversion/LoweringCommon.h"
#include "compiler/Conversion/PositionTables.h"
#include "compiler/Conversion/WeightArena.h"

#include "Decoder/DecoderOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include "llvm/Support/JSON.h"

namespace decc {
#define GEN_PASS_DEF_CONVERTDECODERTOCPU
#include "compiler/Conversion/Passes.h.inc"
} // namespace decc

using namespace mlir;
using namespace mlir::decoder;
using decc::KernelBuilder;
using decc::KVGroupedLayout;

namespace {

constexpr int64_t kArenaAlignment = decc::WeightArena::kAlignment;

/// The RoPE angles of this call's tokens: cos and sin `[tokens, rot/2]`,
/// already multiplied by the attention factor.
struct RoPETable {
  Value cos, sin;
  int64_t half;
};

/// The attention parameters a kernel needs.
struct AttentionParams {
  AttentionConfigAttr config;
  int64_t layer;
  Value positions;
};

class ForwardLowering {
public:
  ForwardLowering(ModuleOp module, func::FuncOp source)
      : module(module), source(source), ctx(module.getContext()) {}

  LogicalResult run();

private:
  // Setup.
  void createEntryFunction();
  void computeLastUses();

  // Op kernels.
  LogicalResult lower(Operation *op);
  void lowerEmbedding(EmbeddingOp op);
  void lowerNorm(Operation *op, NormKind kind, Value input, Value weight,
                 Value bias, double eps);
  void lowerProjection(FusedLinearOp op);
  void lowerProjection(LinearOp op);
  void lowerLMHead(LMHeadOp op);
  void lowerRoPE(RoPEOp op);
  void lowerAttention(AttentionOp op);
  void lowerCachedAttention(CachedAttentionOp op);
  void lowerElementwise(Operation *op);

  struct Projection {
    Value input, weight, bias, normWeight, normBias, residual;
    std::optional<NormKind> norm;
    double eps = 0;
    std::optional<Activation> activation;
    bool append = false;
    RoPEAttr rope;
    int64_t layer = 0;
    double clip = 0;
    std::optional<KVGroupedLayout> kvGrouped;
    SmallVector<Value> results;
  };
  void emitProjection(const Projection &p);
  void emitNormalizedRow(KernelBuilder &kb, Value src, Value dst, Value t,
                         int64_t width, NormKind kind, Value weight, Value bias,
                         double eps);
  void emitAppend(Value key, Value value, int64_t layer);
  void emitAttention(Value query, Value out, const AttentionParams &a);
  void emitAttentionRows(KernelBuilder &kb, Value query, Value out, Value t,
                         Value h, const AttentionParams &a, bool eager,
                         Value scores);
  void emitSplitKVDecode(KernelBuilder &kb, Value query, Value out,
                         const AttentionParams &a);

  // Buffers.
  Value alloc(int64_t width);
  Value bufferOf(Value v) { return buffers.lookup(v); }
  Value define(Value v, int64_t width);
  Value weightView(Value weight,
                   std::optional<KVGroupedLayout> layout = std::nullopt);
  Value constantTable(StringRef name, ArrayRef<float> values);
  RoPETable ropeTable(RoPEAttr rope);
  Value keysSeen(); // pos[n-1] + 1
  void freeDeadOperands(Operation *op);

  ModuleOp module;
  func::FuncOp source;
  MLIRContext *ctx;
  func::FuncOp entry;
  std::unique_ptr<ImplicitLocOpBuilder> b;

  Value arenaArg, tokens, positions, kCache, vCache, state, logits;
  Value numTokens;
  Value returned;
  int64_t cacheLayers = 0, cacheKVHeads = 0, cacheHeadDim = 0;

  DenseMap<Value, Value> buffers;
  DenseSet<Value> owned;
  DenseMap<Value, Operation *> lastUse;
  DenseMap<Value, Value> weightViews;
  DenseMap<Attribute, RoPETable> ropeTables;
  Value keysSeenValue;
  decc::WeightArena arena;
  /// Set while the embedding asks for its table: a decode step gathers one
  /// row of it rather than streaming it.
  bool isGathered = false;
  int64_t reencodeAt = 0;
  bool usesRoPEState = false;
  unsigned tableCount = 0;
};

//===----------------------------------------------------------------------===//
// Setup
//===----------------------------------------------------------------------===//

void ForwardLowering::createEntryFunction() {
  auto kvType = cast<KVCacheType>(source.getArgument(2).getType());
  cacheLayers = kvType.getLayers();
  cacheKVHeads = kvType.getKvHeads();
  cacheHeadDim = kvType.getHeadDim();
  auto resultType = cast<RankedTensorType>(source.getResultTypes()[0]);

  OpBuilder top(ctx);
  top.setInsertionPoint(source);
  Type f32 = top.getF32Type(), i64 = top.getI64Type();
  int64_t dyn = ShapedType::kDynamic;
  auto cacheType =
      MemRefType::get({cacheLayers, cacheKVHeads, dyn, cacheHeadDim}, f32);
  SmallVector<Type> args = {
      MemRefType::get({dyn}, top.getI8Type()),
      MemRefType::get({dyn}, i64),
      MemRefType::get({dyn}, i64),
      cacheType,
      cacheType,
      MemRefType::get({dyn}, i64),
      MemRefType::get({dyn, resultType.getDimSize(1)}, f32)};
  entry = func::FuncOp::create(top, source.getLoc(), "decc_forward",
                               top.getFunctionType(args, {}));
  entry->setAttr("llvm.emit_c_interface", top.getUnitAttr());
  Block *block = entry.addEntryBlock();
  b = std::make_unique<ImplicitLocOpBuilder>(source.getLoc(), ctx);
  b->setInsertionPointToStart(block);
  arenaArg = block->getArgument(0);
  tokens = block->getArgument(1);
  positions = block->getArgument(2);
  kCache = block->getArgument(3);
  vCache = block->getArgument(4);
  state = block->getArgument(5);
  logits = block->getArgument(6);
  numTokens = memref::DimOp::create(*b, tokens, 0);

  buffers[source.getArgument(0)] = tokens;
  buffers[source.getArgument(1)] = positions;
}

void ForwardLowering::computeLastUses() {
  for (Operation &op : source.getBody().front())
    for (Value operand : op.getOperands())
      lastUse[operand] = &op;
}

Value ForwardLowering::alloc(int64_t width) {
  auto type = MemRefType::get({ShapedType::kDynamic, width}, b->getF32Type());
  return memref::AllocOp::create(*b, type, ValueRange{numTokens},
                                 b->getI64IntegerAttr(kArenaAlignment));
}

Value ForwardLowering::define(Value v, int64_t width) {
  Value buffer = alloc(width);
  buffers[v] = buffer;
  owned.insert(v);
  return buffer;
}

void ForwardLowering::freeDeadOperands(Operation *op) {
  for (Value operand : op->getOperands())
    if (lastUse.lookup(operand) == op && owned.erase(operand))
      memref::DeallocOp::create(*b, buffers[operand]);
}

int64_t widthOf(Value v) { return decc::featuresPerToken(v); }

Value ForwardLowering::weightView(Value weight,
                                  std::optional<KVGroupedLayout> layout) {
  int64_t offset = arena.offsetOf(weight, layout, isGathered);
  if (Value view = weightViews.lookup(weight))
    return view;
  // Views are made at the top of the function so every kernel can use them.
  auto type = cast<RankedTensorType>(weight.getType());
  OpBuilder::InsertionGuard guard(*b);
  b->setInsertionPointAfterValue(numTokens);
  Value shift = arith::ConstantIndexOp::create(*b, offset);
  Value view = memref::ViewOp::create(
      *b, MemRefType::get(type.getShape(), type.getElementType()), arenaArg,
      shift, ValueRange{});
  weightViews[weight] = view;
  return view;
}

Value ForwardLowering::constantTable(StringRef name, ArrayRef<float> values) {
  auto type = MemRefType::get({int64_t(values.size())}, b->getF32Type());
  auto tensorType =
      RankedTensorType::get({int64_t(values.size())}, b->getF32Type());
  std::string symbol = (name + "_" + Twine(tableCount++)).str();
  {
    OpBuilder top(ctx);
    top.setInsertionPoint(entry);
    memref::GlobalOp::create(
        top, entry.getLoc(), symbol, top.getStringAttr("private"), type,
        DenseElementsAttr::get(tensorType, values), /*constant=*/true,
        /*alignment=*/nullptr);
  }
  OpBuilder::InsertionGuard guard(*b);
  b->setInsertionPointAfterValue(numTokens);
  return memref::GetGlobalOp::create(*b, type, symbol);
}

Value ForwardLowering::keysSeen() {
  if (!keysSeenValue) {
    OpBuilder::InsertionGuard guard(*b);
    b->setInsertionPointAfterValue(numTokens);
    KernelBuilder kb(*b);
    Value last = kb.sub(numTokens, kb.index(1));
    Value pos = memref::LoadOp::create(*b, positions, ValueRange{last});
    keysSeenValue = kb.add(kb.toIndex(pos), kb.index(1));
  }
  return keysSeenValue;
}

/// cos/sin of this call's positions, once per distinct RoPE, at the top of
/// the function: every layer shares them.
RoPETable ForwardLowering::ropeTable(RoPEAttr rope) {
  auto it = ropeTables.find(rope);
  if (it != ropeTables.end())
    return it->second;
  Value seen = keysSeen();
  OpBuilder::InsertionGuard guard(*b);
  b->setInsertionPointAfterValue(seen);
  KernelBuilder kb(*b);
  int64_t half = rope.getRotaryDim() / 2;
  Value frequencies;
  switch (rope.getKind()) {
  case RoPEKind::LongRoPE: {
    // Short factors while the sequence fits the original context, long
    // beyond it (the runtime re-encodes the whole sequence at the switch).
    Value shortTable =
        constantTable("rope_short", decc::inverseFrequencies(rope, false));
    Value longTable =
        constantTable("rope_long", decc::inverseFrequencies(rope, true));
    Value isLong =
        arith::CmpIOp::create(*b, arith::CmpIPredicate::ugt, seen,
                              kb.index(rope.getOriginalMaxPositions()));
    frequencies = arith::SelectOp::create(*b, isLong, longTable, shortTable);
    if (rope.getShortFactor() != rope.getLongFactor())
      reencodeAt = rope.getOriginalMaxPositions() + 1;
    break;
  }
  case RoPEKind::Dynamic: {
    // InternLM2's dynamic NTK: a call whose sequence exceeds max_positions
    // recomputes the base from its length, and that base sticks (state[0])
    // for later calls; cached keys keep the rotation they were given.
    usesRoPEState = true;
    Value zero = kb.index(0);
    Value previous = kb.toIndex(memref::LoadOp::create(*b, state, zero));
    Value max = kb.index(rope.getMaxPositions());
    Value grows =
        arith::CmpIOp::create(*b, arith::CmpIPredicate::ugt, seen, max);
    Value current = arith::SelectOp::create(*b, grows, seen, previous);
    memref::StoreOp::create(
        *b, arith::IndexCastOp::create(*b, b->getI64Type(), current), state,
        zero);
    Value scaled =
        arith::CmpIOp::create(*b, arith::CmpIPredicate::ugt, current, max);
    // base = theta * (factor*seq/max - (factor-1))^(d/(d-2)), in f32 as the
    // reference computes it.
    double factor = rope.getFactor();
    double d = double(rope.getRotaryDim());
    Value seqF = kb.indexToF32(current);
    Value ratio = kb.sub(kb.div(kb.mul(kb.f32(factor), seqF),
                                kb.f32(double(rope.getMaxPositions()))),
                         kb.f32(factor - 1));
    Value base = kb.mul(kb.f32(rope.getTheta()),
                        math::PowFOp::create(*b, ratio, kb.f32(d / (d - 2))));
    base = arith::SelectOp::create(*b, scaled, base, kb.f32(rope.getTheta()));
    auto type = MemRefType::get({half}, b->getF32Type());
    frequencies = memref::AllocaOp::create(*b, type);
    kb.forLoop(
        kb.index(0), kb.index(half), 1, [&](KernelBuilder &lb, ValueRange i) {
          Value exponent =
              lb.div(lb.mul(lb.f32(2.0), lb.indexToF32(i[0])), lb.f32(d));
          Value inv = lb.div(
              lb.f32(1.0), math::PowFOp::create(lb.builder(), base, exponent));
          lb.store(inv, frequencies, i[0]);
        });
    break;
  }
  default:
    frequencies =
        constantTable("rope_inv_freq", decc::inverseFrequencies(rope));
  }

  auto type = MemRefType::get({ShapedType::kDynamic, half}, b->getF32Type());
  Value cos = memref::AllocOp::create(*b, type, ValueRange{numTokens});
  Value sin = memref::AllocOp::create(*b, type, ValueRange{numTokens});
  double scale = rope.getAttentionFactor();
  kb.forLoop(kb.index(0), numTokens, 1, [&](KernelBuilder &lb, ValueRange t) {
    Value pos = lb.indexToF32(
        lb.toIndex(memref::LoadOp::create(lb.builder(), positions, t[0])));
    lb.forLoop(lb.index(0), lb.index(half), 1,
               [&](KernelBuilder &ib, ValueRange i) {
                 Value angle = ib.mul(pos, ib.loadF32(frequencies, i[0]));
                 Value c = math::CosOp::create(ib.builder(), angle);
                 Value s = math::SinOp::create(ib.builder(), angle);
                 if (scale != 1.0) {
                   c = ib.mul(c, ib.f32(scale));
                   s = ib.mul(s, ib.f32(scale));
                 }
                 ib.store(c, cos, {t[0], i[0]});
                 ib.store(s, sin, {t[0], i[0]});
               });
  });
  RoPETable table{cos, sin, half};
  ropeTables[rope] = table;
  return table;
}

//===----------------------------------------------------------------------===//
// Embedding, norms, elementwise
//===----------------------------------------------------------------------===//

void ForwardLowering::lowerEmbedding(EmbeddingOp op) {
  int64_t width = widthOf(op.getResult());
  isGathered = true;
  Value table = weightView(op.getTable());
  isGathered = false;
  Value out = define(op.getResult(), width);
  KernelBuilder kb(*b);
  kb.parallel({numTokens}, [&](KernelBuilder &lb, ValueRange t) {
    Value id = lb.toIndex(memref::LoadOp::create(lb.builder(), tokens, t[0]));
    lb.forEachChunk(width, [&](KernelBuilder &cb, Value k, int64_t w) {
      cb.store(cb.loadN(table, {id, k}, w), out, {t[0], k});
    });
  });
}

void ForwardLowering::emitNormalizedRow(KernelBuilder &kb, Value src, Value dst,
                                        Value t, int64_t width, NormKind kind,
                                        Value weight, Value bias, double eps) {
  Value n = kb.f32(double(width));
  Value mean = kb.f32(0.0);
  Value sumSq;
  if (kind == NormKind::RMS) {
    sumSq = kb.dots(src, {t}, src, {{t}}, width)[0];
  } else {
    Value sum = kb.forLoop(
        kb.index(0), kb.index(width), 1, {kb.f32(0.0)},
        [&](KernelBuilder &lb, Value k, ValueRange acc) {
          return SmallVector<Value>{lb.add(acc[0], lb.loadF32(src, {t, k}))};
        })[0];
    mean = kb.div(sum, n);
    sumSq =
        kb.forLoop(kb.index(0), kb.index(width), 1, {kb.f32(0.0)},
                   [&](KernelBuilder &lb, Value k, ValueRange acc) {
                     Value d = lb.sub(lb.loadF32(src, {t, k}), mean);
                     return SmallVector<Value>{lb.add(acc[0], lb.mul(d, d))};
                   })[0];
  }
  Value inv = math::RsqrtOp::create(kb.builder(),
                                    kb.add(kb.div(sumSq, n), kb.f32(eps)));
  kb.forEachChunk(width, [&](KernelBuilder &cb, Value k, int64_t w) {
    Value x = cb.loadN(src, {t, k}, w);
    if (kind == NormKind::Layer)
      x = cb.sub(x, cb.splat(mean, w));
    Value y = cb.mul(cb.loadN(weight, {k}, w), cb.mul(x, cb.splat(inv, w)));
    if (bias)
      y = cb.add(y, cb.loadN(bias, {k}, w));
    cb.store(y, dst, {t, k});
  });
}

void ForwardLowering::lowerNorm(Operation *op, NormKind kind, Value input,
                                Value weight, Value bias, double eps) {
  int64_t width = widthOf(input);
  Value src = bufferOf(input);
  Value w = weightView(weight);
  Value bv = bias ? weightView(bias) : Value();
  Value out = define(op->getResult(0), width);
  KernelBuilder kb(*b);
  kb.parallel({numTokens}, [&](KernelBuilder &lb, ValueRange t) {
    emitNormalizedRow(lb, src, out, t[0], width, kind, w, bv, eps);
  });
}

/// GELU with the exact erf or the tanh approximation.
Value gelu(KernelBuilder &kb, Value x, int64_t w, bool tanhApprox) {
  Value half = kb.splat(kb.f32(0.5), w), one = kb.splat(kb.f32(1.0), w);
  if (!tanhApprox) {
    Value scaled = kb.mul(x, kb.splat(kb.f32(M_SQRT1_2), w));
    return kb.mul(kb.mul(half, x),
                  kb.add(one, math::ErfOp::create(kb.builder(), scaled)));
  }
  Value cube = kb.mul(kb.mul(x, x), x);
  Value inner = kb.mul(kb.splat(kb.f32(std::sqrt(2.0 / M_PI)), w),
                       kb.add(x, kb.mul(kb.splat(kb.f32(0.044715), w), cube)));
  return kb.mul(kb.mul(half, x),
                kb.add(one, math::TanhOp::create(kb.builder(), inner)));
}

/// silu(gate) * up.
Value swiglu(KernelBuilder &kb, Value gate, Value up, int64_t w) {
  Value one = kb.splat(kb.f32(1.0), w);
  Value negated = arith::NegFOp::create(kb.builder(), gate);
  Value silu = kb.div(gate, kb.add(one, kb.exp(negated)));
  return kb.mul(silu, up);
}

void ForwardLowering::lowerElementwise(Operation *op) {
  int64_t width = widthOf(op->getResult(0));
  SmallVector<Value> ins;
  for (Value operand : op->getOperands())
    ins.push_back(bufferOf(operand));
  Value out = define(op->getResult(0), width);
  KernelBuilder kb(*b);
  kb.parallel({numTokens}, [&](KernelBuilder &lb, ValueRange t) {
    lb.forEachChunk(width, [&](KernelBuilder &cb, Value k, int64_t w) {
      SmallVector<Value> x;
      for (Value in : ins)
        x.push_back(cb.loadN(in, {t[0], k}, w));
      Value y;
      if (isa<AddOp>(op))
        y = cb.add(x[0], x[1]);
      else if (isa<SwiGLUOp>(op))
        y = swiglu(cb, x[0], x[1], w);
      else
        y = gelu(cb, x[0], w,
                 cast<GeluOp>(op).getApproximate() == GeluApproximation::Tanh);
      cb.store(y, out, {t[0], k});
    });
  });
}

//===----------------------------------------------------------------------===//
// Projections
//===----------------------------------------------------------------------===//

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

void ForwardLowering::emitProjection(const Projection &p) {
  KernelBuilder kb(*b);
  int64_t inWidth = widthOf(p.input);
  Value weight = weightView(p.weight, p.kvGrouped);
  Value bias = p.bias ? weightView(p.bias, p.kvGrouped) : Value();

  // The logits are computed only for the rows the caller asked for: the
  // last dim(%logits, 0) tokens.
  bool toLogits = p.results.size() == 1 && p.results[0] == returned;
  Value firstToken = kb.index(0);
  if (toLogits)
    firstToken = kb.sub(numTokens, memref::DimOp::create(*b, logits, 0));

  // Prologue: the normalized input, one row per token.
  Value x = bufferOf(p.input);
  Value normalized;
  if (p.norm) {
    normalized = alloc(inWidth);
    Value nw = weightView(p.normWeight);
    Value nb = p.normBias ? weightView(p.normBias) : Value();
    Value src = x;
    kb.parallel({kb.sub(numTokens, firstToken)},
                [&](KernelBuilder &lb, ValueRange i) {
                  Value t = lb.add(i[0], firstToken);
                  emitNormalizedRow(lb, src, normalized, t, inWidth, *p.norm,
                                    nw, nb, p.eps);
                });
    x = normalized;
  }

  // Output features `rows` for tokens `ts`: their dot products ([t][r]),
  // plus the bias, clamped for clip_qkv.
  auto project = [&](KernelBuilder &lb, ArrayRef<Value> ts,
                     ArrayRef<Value> rows) {
    SmallVector<SmallVector<Value>> tokenRows, weightRows;
    for (Value t : ts)
      tokenRows.push_back({t});
    for (Value r : rows)
      weightRows.push_back({r});
    SmallVector<SmallVector<Value>> sums =
        lb.dotGrid(x, tokenRows, weight, weightRows, inWidth);
    for (SmallVector<Value> &perToken : sums)
      for (auto [sum, row] : llvm::zip(perToken, rows)) {
        if (bias)
          sum = lb.add(sum, lb.loadF32(bias, {row}));
        if (p.clip > 0)
          sum = arith::MinimumFOp::create(
              lb.builder(),
              arith::MaximumFOp::create(lb.builder(), sum, lb.f32(-p.clip)),
              lb.f32(p.clip));
      }
    return sums;
  };
  // Parallel over output features: a weight row is read from memory once
  // and stays in cache while the tokens use it, four at a time (each vector
  // of the row then serves four FMAs); the last tokens one by one.
  constexpr int64_t kTokenBlock = 4;
  auto forEachFeature =
      [&](int64_t count, const std::function<void(KernelBuilder &, Value u,
                                                  ArrayRef<Value> ts)> &body) {
        kb.parallel({kb.index(count)}, [&](KernelBuilder &lb, ValueRange u) {
          Value tokens = lb.sub(numTokens, firstToken);
          Value blocked =
              lb.add(firstToken, lb.mul(lb.div(tokens, lb.index(kTokenBlock)),
                                        lb.index(kTokenBlock)));
          lb.forLoop(firstToken, blocked, kTokenBlock,
                     [&](KernelBuilder &tb, ValueRange t) {
                       SmallVector<Value> ts;
                       for (int64_t i = 0; i < kTokenBlock; ++i)
                         ts.push_back(tb.add(t[0], tb.index(i)));
                       body(tb, u[0], ts);
                     });
          lb.forLoop(
              blocked, numTokens, 1,
              [&](KernelBuilder &tb, ValueRange t) { body(tb, u[0], {t[0]}); });
        });
      };

  if (p.append) {
    // Rows are [q | k | v]; q and k rotated in pairs (i, i + rot/2).
    Value q = define(p.results[0], widthOf(p.results[0]));
    int64_t d = cacheHeadDim;
    int64_t qHeads = widthOf(p.results[0]) / d;
    RoPETable rope{};
    if (p.rope)
      rope = ropeTable(p.rope);
    int64_t half = p.rope ? rope.half : 0;
    int64_t unitsPerHead = d - half; // a pair counts once
    auto storeTo = [&](KernelBuilder &lb, int slot, Value head, Value t,
                       Value i, Value v) {
      if (slot == 0) {
        lb.store(v, q, {t, lb.add(lb.mul(head, lb.index(d)), i)});
        return;
      }
      Value pos =
          lb.toIndex(memref::LoadOp::create(lb.builder(), positions, t));
      lb.store(v, slot == 1 ? kCache : vCache,
               {lb.index(p.layer), head, pos, i});
    };
    auto emitSlot = [&](int slot, int64_t heads, int64_t rowBase) {
      bool rotate = slot < 2 && half > 0;
      int64_t units = rotate ? unitsPerHead : d;
      forEachFeature(heads * units, [&](KernelBuilder &lb, Value u,
                                        ArrayRef<Value> ts) {
        Value head = lb.div(u, lb.index(units));
        Value r = arith::RemUIOp::create(lb.builder(), u, lb.index(units));
        Value rowOfHead = lb.add(lb.index(rowBase), lb.mul(head, lb.index(d)));
        auto single = [&](KernelBuilder &ib, Value i) {
          SmallVector<SmallVector<Value>> y =
              project(ib, ts, {ib.add(rowOfHead, i)});
          for (auto [t, yt] : llvm::zip(ts, y))
            storeTo(ib, slot, head, t, i, yt[0]);
        };
        if (!rotate) {
          single(lb, r);
          return;
        }
        auto pair = [&](KernelBuilder &ib) {
          Value i2 = ib.add(r, ib.index(half));
          SmallVector<SmallVector<Value>> y =
              project(ib, ts, {ib.add(rowOfHead, r), ib.add(rowOfHead, i2)});
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
  } else if (p.activation == Activation::SwiGLU) {
    int64_t width = widthOf(p.results[0]);
    Value out = define(p.results[0], width);
    forEachFeature(width, [&](KernelBuilder &lb, Value o, ArrayRef<Value> ts) {
      SmallVector<SmallVector<Value>> y =
          project(lb, ts, {o, lb.add(o, lb.index(width))});
      for (auto [t, yt] : llvm::zip(ts, y))
        lb.store(swiglu(lb, yt[0], yt[1], 1), out, {t, o});
    });
  } else {
    int64_t rowBase = 0;
    for (Value result : p.results) {
      int64_t width = widthOf(result);
      Value out = toLogits ? logits : define(result, width);
      Value residual = p.residual ? bufferOf(p.residual) : Value();
      forEachFeature(
          width, [&](KernelBuilder &lb, Value o, ArrayRef<Value> ts) {
            SmallVector<SmallVector<Value>> y =
                project(lb, ts, {lb.add(o, lb.index(rowBase))});
            for (auto [t, yt] : llvm::zip(ts, y)) {
              Value v = yt[0];
              if (p.activation)
                v = gelu(lb, v, 1, *p.activation == Activation::GeluTanh);
              if (residual)
                v = lb.add(v, lb.loadF32(residual, {t, o}));
              Value row = toLogits ? lb.sub(t, firstToken) : t;
              lb.store(v, out, {row, o});
            }
          });
      rowBase += width;
    }
  }
  if (normalized)
    memref::DeallocOp::create(*b, normalized);
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

//===----------------------------------------------------------------------===//
// Attention
//===----------------------------------------------------------------------===//

void ForwardLowering::emitAppend(Value key, Value value, int64_t layer) {
  KernelBuilder kb(*b);
  Value k = bufferOf(key), v = bufferOf(value);
  int64_t d = cacheHeadDim;
  kb.parallel({numTokens, kb.index(cacheKVHeads)}, [&](KernelBuilder &lb,
                                                       ValueRange iv) {
    Value t = iv[0], g = iv[1];
    Value pos = lb.toIndex(memref::LoadOp::create(lb.builder(), positions, t));
    Value base = lb.mul(g, lb.index(d));
    lb.forEachChunk(d, [&](KernelBuilder &cb, Value i, int64_t w) {
      Value c = cb.add(base, i);
      Value idx[] = {cb.index(layer), g, pos, i};
      cb.store(cb.loadN(k, {t, c}, w), kCache, idx);
      cb.store(cb.loadN(v, {t, c}, w), vCache, idx);
    });
  });
}

/// Everything one query head of one token needs to attend: which cache
/// rows, which keys, the score of a key and the accumulation of a value.
struct HeadAttention {
  KernelBuilder &kb;
  const AttentionParams &a;
  Value query, kCache, vCache, t, h, g, layer, pos, qBase, scale, slope;
  int64_t d;

  /// q . k_j * scale (+ ALiBi slope * (j - pos)).
  Value score(KernelBuilder &lb, Value j) const {
    Value s = lb.dots(query, {t}, kCache, {{layer, g, j}}, d, qBase)[0];
    s = lb.mul(s, scale);
    if (slope)
      s = lb.add(s,
                 lb.mul(slope, lb.sub(lb.indexToF32(j), lb.indexToF32(pos))));
    return s;
  }
  /// acc = acc * rescale + p * v_j (rescale may be null).
  void accumulate(KernelBuilder &lb, Value acc, Value p, Value j) const {
    lb.forEachChunk(d, [&](KernelBuilder &cb, Value i, int64_t w) {
      Value v = cb.loadN(vCache, {layer, g, j, i}, w);
      Value old = cb.loadN(acc, {i}, w);
      cb.store(cb.add(old, cb.mul(cb.splat(p, w), v)), acc, {i});
    });
  }
  void scaleAcc(KernelBuilder &lb, Value acc, Value factor) const {
    lb.forEachChunk(d, [&](KernelBuilder &cb, Value i, int64_t w) {
      cb.store(cb.mul(cb.loadN(acc, {i}, w), cb.splat(factor, w)), acc, {i});
    });
  }
  /// Flash over keys [lo, hi): one pass with a running max; the accumulator
  /// is rescaled only when the max grows. Returns {max, sum}; `acc` holds
  /// the unnormalized output.
  std::pair<Value, Value> online(KernelBuilder &lb, Value lo, Value hi,
                                 Value acc) const {
    lb.forEachChunk(d, [&](KernelBuilder &cb, Value i, int64_t w) {
      cb.store(cb.splat(cb.f32(0.0), w), acc, {i});
    });
    SmallVector<Value> st = lb.forLoop(
        lo, hi, 1, {lb.f32(-INFINITY), lb.f32(0.0)},
        [&](KernelBuilder &ib, Value j, ValueRange prev) {
          Value s = score(ib, j);
          Value m = ib.fmax(prev[0], s);
          Value correction = ib.exp(ib.sub(prev[0], m));
          Value grew = arith::CmpFOp::create(
              ib.builder(), arith::CmpFPredicate::OGT, m, prev[0]);
          ib.ifThen(grew,
                    [&](KernelBuilder &cb) { scaleAcc(cb, acc, correction); });
          Value e = ib.exp(ib.sub(s, m));
          accumulate(ib, acc, e, j);
          return SmallVector<Value>{m, ib.add(ib.mul(prev[1], correction), e)};
        });
    return {st[0], st[1]};
  }
};

HeadAttention headAttention(KernelBuilder &kb, const AttentionParams &a,
                            Value query, Value kCache, Value vCache, Value t,
                            Value h, Value slopes) {
  AttentionConfigAttr c = a.config;
  int64_t d = c.getHeadDim();
  Value g = kb.div(h, kb.index(c.getNumHeads() / c.getNumKvHeads()));
  Value pos = kb.toIndex(memref::LoadOp::create(kb.builder(), a.positions, t));
  Value slope = slopes ? kb.loadF32(slopes, {h}) : Value();
  return HeadAttention{kb,
                       a,
                       query,
                       kCache,
                       vCache,
                       t,
                       h,
                       g,
                       kb.index(a.layer),
                       pos,
                       kb.mul(h, kb.index(d)),
                       kb.f32(c.getSoftmaxScale()),
                       slope,
                       d};
}

/// The keys query position `pos` sees: [begin, pos + 1).
std::pair<Value, Value> keyRange(KernelBuilder &kb, AttentionConfigAttr c,
                                 Value pos) {
  Value end = kb.add(pos, kb.index(1));
  Value begin = kb.index(0);
  if (c.getSlidingWindow() > 0) {
    Value w = kb.index(c.getSlidingWindow());
    Value far =
        arith::CmpIOp::create(kb.builder(), arith::CmpIPredicate::ugt, end, w);
    begin = arith::SelectOp::create(kb.builder(), far, kb.sub(end, w), begin);
  }
  return {begin, end};
}

Value newScratch(KernelBuilder &kb, int64_t d) {
  return memref::AllocaOp::create(
      kb.builder(), MemRefType::get({d}, kb.builder().getF32Type()));
}

void storeNormalized(KernelBuilder &kb, const HeadAttention &ha, Value acc,
                     Value sum, Value out) {
  Value inv = kb.div(kb.f32(1.0), sum);
  kb.forEachChunk(ha.d, [&](KernelBuilder &cb, Value i, int64_t w) {
    cb.store(cb.mul(cb.loadN(acc, {i}, w), cb.splat(inv, w)), out,
             {ha.t, cb.add(ha.qBase, i)});
  });
}

void ForwardLowering::emitAttentionRows(KernelBuilder &kb, Value query,
                                        Value out, Value t, Value h,
                                        const AttentionParams &a, bool eager,
                                        Value scores) {
  Value slopes;
  if (a.config.getAlibiBiasMax() > 0)
    slopes = constantTable(
        "alibi_slopes",
        decc::alibiSlopes(a.config.getNumHeads(), a.config.getAlibiBiasMax()));
  HeadAttention ha = headAttention(kb, a, query, kCache, vCache, t, h, slopes);
  auto [begin, end] = keyRange(kb, a.config, ha.pos);
  Value acc = newScratch(kb, ha.d);
  if (!eager) {
    auto [max, sum] = ha.online(kb, begin, end, acc);
    (void)max;
    storeNormalized(kb, ha, acc, sum, out);
    return;
  }
  // Eager: every score materialized, then softmax, then P V.
  Value max = kb.forLoop(begin, end, 1, {kb.f32(-INFINITY)},
                         [&](KernelBuilder &lb, Value j, ValueRange m) {
                           Value s = ha.score(lb, j);
                           lb.store(s, scores, {t, h, j});
                           return SmallVector<Value>{lb.fmax(m[0], s)};
                         })[0];
  Value sum =
      kb.forLoop(begin, end, 1, {kb.f32(0.0)},
                 [&](KernelBuilder &lb, Value j, ValueRange l) {
                   Value e = lb.exp(lb.sub(lb.loadF32(scores, {t, h, j}), max));
                   lb.store(e, scores, {t, h, j});
                   return SmallVector<Value>{lb.add(l[0], e)};
                 })[0];
  kb.forEachChunk(ha.d, [&](KernelBuilder &cb, Value i, int64_t w) {
    cb.store(cb.splat(cb.f32(0.0), w), acc, {i});
  });
  kb.forLoop(begin, end, 1, [&](KernelBuilder &lb, ValueRange j) {
    ha.accumulate(lb, acc, lb.loadF32(scores, {t, h, j[0]}), j[0]);
  });
  storeNormalized(kb, ha, acc, sum, out);
}

void ForwardLowering::emitAttention(Value query, Value out,
                                    const AttentionParams &a) {
  KernelBuilder kb(*b);
  bool eager = a.config.getBackend() == AttentionBackend::Eager;
  Value heads = kb.index(a.config.getNumHeads());
  Value scores;
  if (eager) {
    auto type = MemRefType::get(
        {ShapedType::kDynamic, a.config.getNumHeads(), ShapedType::kDynamic},
        b->getF32Type());
    scores =
        memref::AllocOp::create(*b, type, ValueRange{numTokens, keysSeen()});
  }
  auto rows = [&](KernelBuilder &lb) {
    lb.parallel({numTokens, heads}, [&](KernelBuilder &ib, ValueRange iv) {
      emitAttentionRows(ib, query, out, iv[0], iv[1], a, eager, scores);
    });
  };
  if (eager) {
    rows(kb);
    memref::DeallocOp::create(*b, scores);
    return;
  }
  // A decode step has one query row per head: too little parallelism, so
  // the keys are split across threads and the partial softmaxes merged.
  Value single = arith::CmpIOp::create(*b, arith::CmpIPredicate::eq, numTokens,
                                       kb.index(1));
  scf::IfOp::create(
      *b, single,
      [&](OpBuilder &nb, Location loc) {
        ImplicitLocOpBuilder ib(loc, nb);
        KernelBuilder sb(ib);
        emitSplitKVDecode(sb, query, out, a);
        scf::YieldOp::create(ib);
      },
      [&](OpBuilder &nb, Location loc) {
        ImplicitLocOpBuilder ib(loc, nb);
        KernelBuilder eb(ib);
        rows(eb);
        scf::YieldOp::create(ib);
      });
}

void ForwardLowering::emitSplitKVDecode(KernelBuilder &kb, Value query,
                                        Value out, const AttentionParams &a) {
  constexpr int64_t kMinKeysPerSplit = 64, kMaxSplits = 16;
  AttentionConfigAttr c = a.config;
  int64_t heads = c.getNumHeads(), d = c.getHeadDim();
  Value zero = kb.index(0);
  Value pos =
      kb.toIndex(memref::LoadOp::create(kb.builder(), a.positions, zero));
  auto [firstKey, endKey] = keyRange(kb, c, pos);
  Value begin = firstKey, end = endKey;
  Value keys = kb.sub(end, begin);
  Value wanted = kb.div(kb.add(keys, kb.index(kMinKeysPerSplit - 1)),
                        kb.index(kMinKeysPerSplit));
  Value splits =
      arith::MinUIOp::create(kb.builder(), wanted, kb.index(kMaxSplits));
  Value chunk = kb.div(kb.add(keys, kb.sub(splits, kb.index(1))), splits);
  Type f32 = kb.builder().getF32Type();
  int64_t dyn = ShapedType::kDynamic;
  Value maxes = memref::AllocOp::create(
      kb.builder(), MemRefType::get({heads, dyn}, f32), ValueRange{splits});
  Value sums = memref::AllocOp::create(
      kb.builder(), MemRefType::get({heads, dyn}, f32), ValueRange{splits});
  Value accs = memref::AllocOp::create(
      kb.builder(), MemRefType::get({heads, dyn, d}, f32), ValueRange{splits});
  Value slopes;
  if (c.getAlibiBiasMax() > 0)
    slopes = constantTable("alibi_slopes",
                           decc::alibiSlopes(heads, c.getAlibiBiasMax()));

  kb.parallel({kb.index(heads), splits}, [&](KernelBuilder &lb, ValueRange iv) {
    Value h = iv[0], s = iv[1];
    HeadAttention ha =
        headAttention(lb, a, query, kCache, vCache, zero, h, slopes);
    Value lo = lb.add(begin, lb.mul(s, chunk));
    Value hi = arith::MinUIOp::create(lb.builder(), end, lb.add(lo, chunk));
    lo = arith::MinUIOp::create(lb.builder(), lo, hi);
    Value acc = newScratch(lb, d);
    auto [m, l] = ha.online(lb, lo, hi, acc);
    lb.store(m, maxes, {h, s});
    lb.store(l, sums, {h, s});
    lb.forEachChunk(d, [&](KernelBuilder &cb, Value i, int64_t w) {
      cb.store(cb.loadN(acc, {i}, w), accs, {h, s, i});
    });
  });
  // Merge: out = sum_s acc_s e^(m_s - M) / sum_s l_s e^(m_s - M).
  kb.parallel({kb.index(heads)}, [&](KernelBuilder &lb, ValueRange iv) {
    Value h = iv[0];
    Value m = lb.forLoop(zero, splits, 1, {lb.f32(-INFINITY)},
                         [&](KernelBuilder &ib, Value s, ValueRange prev) {
                           return SmallVector<Value>{
                               ib.fmax(prev[0], ib.loadF32(maxes, {h, s}))};
                         })[0];
    Value acc = newScratch(lb, d);
    lb.forEachChunk(d, [&](KernelBuilder &cb, Value i, int64_t w) {
      cb.store(cb.splat(cb.f32(0.0), w), acc, {i});
    });
    Value l = lb.forLoop(
        zero, splits, 1, {lb.f32(0.0)},
        [&](KernelBuilder &ib, Value s, ValueRange prev) {
          Value weight = ib.exp(ib.sub(ib.loadF32(maxes, {h, s}), m));
          ib.forEachChunk(d, [&](KernelBuilder &cb, Value i, int64_t w) {
            Value part = cb.loadN(accs, {h, s, i}, w);
            cb.store(cb.add(cb.loadN(acc, {i}, w),
                            cb.mul(part, cb.splat(weight, w))),
                     acc, {i});
          });
          return SmallVector<Value>{
              ib.add(prev[0], ib.mul(ib.loadF32(sums, {h, s}), weight))};
        })[0];
    Value inv = lb.div(lb.f32(1.0), l);
    Value qBase = lb.mul(h, lb.index(d));
    lb.forEachChunk(d, [&](KernelBuilder &cb, Value i, int64_t w) {
      cb.store(cb.mul(cb.loadN(acc, {i}, w), cb.splat(inv, w)), out,
               {zero, cb.add(qBase, i)});
    });
  });
  for (Value buffer : {maxes, sums, accs})
    memref::DeallocOp::create(kb.builder(), buffer);
}

void ForwardLowering::lowerAttention(AttentionOp op) {
  emitAppend(op.getKey(), op.getValue(), op.getLayer());
  Value out = define(op.getResult(), widthOf(op.getResult()));
  emitAttention(
      bufferOf(op.getQuery()), out,
      {op.getConfig(), int64_t(op.getLayer()), bufferOf(op.getPositions())});
}

void ForwardLowering::lowerCachedAttention(CachedAttentionOp op) {
  Value out = define(op.getResult(), widthOf(op.getResult()));
  emitAttention(
      bufferOf(op.getQuery()), out,
      {op.getConfig(), int64_t(op.getLayer()), bufferOf(op.getPositions())});
}

//===----------------------------------------------------------------------===//
// Driver
//===----------------------------------------------------------------------===//

LogicalResult ForwardLowering::lower(Operation *op) {
  if (isa<WeightOp, ConcatWeightsOp>(op))
    return success(); // Materialized as views where a kernel reads them.
  if (auto e = dyn_cast<EmbeddingOp>(op))
    lowerEmbedding(e);
  else if (auto n = dyn_cast<RMSNormOp>(op))
    lowerNorm(op, NormKind::RMS, n.getInput(), n.getWeight(), Value(),
              n.getEpsilon().convertToDouble());
  else if (auto n = dyn_cast<LayerNormOp>(op))
    lowerNorm(op, NormKind::Layer, n.getInput(), n.getWeight(), n.getBias(),
              n.getEpsilon().convertToDouble());
  else if (auto l = dyn_cast<FusedLinearOp>(op))
    lowerProjection(l);
  else if (auto l = dyn_cast<LinearOp>(op))
    lowerProjection(l);
  else if (auto h = dyn_cast<LMHeadOp>(op))
    lowerLMHead(h);
  else if (auto r = dyn_cast<RoPEOp>(op))
    lowerRoPE(r);
  else if (auto a = dyn_cast<AttentionOp>(op))
    lowerAttention(a);
  else if (auto a = dyn_cast<CachedAttentionOp>(op))
    lowerCachedAttention(a);
  else if (isa<AddOp, SwiGLUOp, GeluOp>(op))
    lowerElementwise(op);
  else if (isa<func::ReturnOp>(op)) {
    if (!returned.getDefiningOp<FusedLinearOp>() &&
        !returned.getDefiningOp<LinearOp>() &&
        !returned.getDefiningOp<LMHeadOp>())
      return op->emitOpError() << "the returned logits must come from a "
                                  "projection";
    func::ReturnOp::create(*b);
    return success();
  } else
    return op->emitOpError() << "has no CPU lowering";
  freeDeadOperands(op);
  return success();
}

LogicalResult ForwardLowering::run() {
  auto ret = cast<func::ReturnOp>(source.getBody().front().getTerminator());
  returned = ret.getOperand(0);
  createEntryFunction();
  computeLastUses();
  for (Operation &op : source.getBody().front())
    if (failed(lower(&op)))
      return failure();
  // The RoPE tables live for the whole call.
  b->setInsertionPoint(entry.getBody().front().getTerminator());
  for (auto &[attr, table] : ropeTables) {
    memref::DeallocOp::create(*b, table.cos);
    memref::DeallocOp::create(*b, table.sin);
  }

  decc::setManifest(module, source, reencodeAt, usesRoPEState, arena);
  source.erase();
  return success();
}

struct ConvertDecoderToCPUPass
    : decc::impl::ConvertDecoderToCPUBase<ConvertDecoderToCPUPass> {
  void runOnOperation() override {
    if (failed(decc::lowerForward<ForwardLowering>(getOperation())))
      signalPassFailure();
  }
};

} // namespace
