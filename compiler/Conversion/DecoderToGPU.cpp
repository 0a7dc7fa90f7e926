//===- DecoderToGPU.cpp - decoder ops to gpu.module kernels + launch plan -===//
//
// Rewrites `func.func @forward` into a kernel-only `gpu.module
// @decc_kernels` and a launch plan: the runtime (CUDA driver API) runs the
// kernels in plan order on one stream; no host code is generated.
//
// Every kernel takes bare pointers to flat buffers (one pointer a memref):
// the weight arena (i8), the step record (i64: tokens, first position, logits
// rows, keys seen, cache length, splits), token ids and positions, the K and
// V caches, the RoPE state, the logits, and activation buffers the plan
// names. Kernels index them by hand; the shapes that matter are constants.
//
// Decode-path structure: a projection gives one warp to each output feature
// (lanes stride over the input, coalesced; a shuffle tree reduces), with its
// fused prologue (norm, a kernel before it) and epilogue (bias, residual,
// SwiGLU / GELU, RoPE + KV append). Attention gives one warp to each (token,
// head); flash decode splits the keys over blocks and merges the partials.
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
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include "llvm/Support/JSON.h"

namespace decc {
#define GEN_PASS_DEF_CONVERTDECODERTOGPU
#include "compiler/Conversion/Passes.h.inc"
} // namespace decc

using namespace mlir;
using namespace mlir::decoder;
using decc::KernelBuilder;
using decc::KVGroupedLayout;

namespace {

/// Elements of a flat buffer as kernels see it: the size is irrelevant
/// (kernels index by hand) but must be static for bare-pointer arguments.
constexpr int64_t kFlat = int64_t(1) << 40;
constexpr int64_t kWarpsPerBlock = 8;
constexpr int64_t kThreads = 32 * kWarpsPerBlock;
// Decode splits the keys over at most this many blocks (the runtime picks
// how many from the number of keys).
constexpr int64_t kMaxSplits = 32;

/// Fields of the step record.
enum StepField { kTokens = 0, kStart, kRows, kKeys, kContext, kSplits };

/// What a kernel argument is bound to, as the plan names it.
struct Binding {
  std::string name; // arena, step, tokens, positions, k_cache, v_cache,
                    // state, logits, or buf:N
  Type element;
};

/// One kernel being built.
struct Kernel {
  gpu::GPUFuncOp func;
  std::unique_ptr<ImplicitLocOpBuilder> b;
  std::unique_ptr<KernelBuilder> kb;
  llvm::StringMap<Value> args;
  llvm::json::Array bindings;
};

class GPULowering {
public:
  GPULowering(ModuleOp module, func::FuncOp source)
      : module(module), source(source), ctx(module.getContext()) {}
  LogicalResult run();

private:
  // Kernels and the plan.
  Kernel &beginKernel(StringRef name, ArrayRef<Binding> bindings);
  void endKernel(Kernel &k, llvm::json::Object grid, StringRef when = "always");
  static llvm::json::Object grid(int64_t units, int64_t perBlock,
                                 StringRef times, int64_t y = 1,
                                 StringRef yTimes = "one");
  Value step(Kernel &k, StepField field);
  Value weightView(Kernel &k, Value weight, Type element, int64_t offset);
  std::string newBuffer(int64_t width);
  void release(Value v);
  Value warpSum(KernelBuilder &kb, Value v);

  // Ops.
  LogicalResult lower(Operation *op);
  void lowerEmbedding(EmbeddingOp op);
  LogicalResult lowerProjection(Operation *op);
  LogicalResult lowerAttention(CachedAttentionOp op);
  /// The cos and sin buffers of `rope` for this call's positions, made by
  /// kernels launched at the first use.
  std::pair<std::string, std::string> ropeTables(RoPEAttr rope);

  ModuleOp module;
  func::FuncOp source;
  MLIRContext *ctx;
  gpu::GPUModuleOp kernels;
  decc::WeightArena arena;
  llvm::json::Array launches, buffers;
  std::vector<std::unique_ptr<Kernel>> open;
  DenseMap<Value, std::string> bufferOf;
  DenseMap<Value, int64_t> widthOf;
  DenseMap<Value, Operation *> lastUse;
  std::vector<std::pair<std::string, int64_t>> freeBuffers; // name, width
  DenseMap<Attribute, std::pair<std::string, std::string>> ropeBuffers;
  bool usesRoPEState = false;
  Value returned;
  int64_t cacheLayers = 0, cacheKVHeads = 0, cacheHeadDim = 0, vocab = 0;
  int64_t reencodeAt = 0;
  unsigned kernelCount = 0;
};

int64_t featuresOf(Value v) { return decc::featuresPerToken(v); }

//===----------------------------------------------------------------------===//
// Kernels, buffers, the plan
//===----------------------------------------------------------------------===//

Kernel &GPULowering::beginKernel(StringRef name, ArrayRef<Binding> bindings) {
  auto k = std::make_unique<Kernel>();
  SmallVector<Type> types;
  for (const Binding &bd : bindings)
    types.push_back(MemRefType::get({kFlat}, bd.element));
  OpBuilder top(ctx);
  top.setInsertionPointToEnd(kernels.getBody());
  std::string symbol = (name + "_" + Twine(kernelCount++)).str();
  k->func = gpu::GPUFuncOp::create(top, source.getLoc(), symbol,
                                   top.getFunctionType(types, {}));
  k->func->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), top.getUnitAttr());
  k->b = std::make_unique<ImplicitLocOpBuilder>(source.getLoc(), ctx);
  k->b->setInsertionPointToStart(&k->func.getBody().front());
  k->kb = std::make_unique<KernelBuilder>(*k->b);
  for (auto [i, bd] : llvm::enumerate(bindings)) {
    k->args[bd.name] = k->func.getArgument(i);
    k->bindings.push_back(bd.name);
  }
  open.push_back(std::move(k));
  return *open.back();
}

void GPULowering::endKernel(Kernel &k, llvm::json::Object gridSpec,
                            StringRef when) {
  gpu::ReturnOp::create(*k.b);
  launches.push_back(llvm::json::Object{{"kernel", k.func.getName().str()},
                                        {"grid", std::move(gridSpec)},
                                        {"block", kThreads},
                                        {"args", std::move(k.bindings)},
                                        {"when", when.str()}});
}

/// Blocks in x: ceil(units * times / perBlock); in y: y * yTimes. `times`
/// is "one", "tokens" (of this call), "rows" (logits rows) or "splits".
llvm::json::Object GPULowering::grid(int64_t units, int64_t perBlock,
                                     StringRef times, int64_t y,
                                     StringRef yTimes) {
  return llvm::json::Object{{"units", units},
                            {"per_block", perBlock},
                            {"times", times.str()},
                            {"y", y},
                            {"y_times", yTimes.str()}};
}

Value GPULowering::step(Kernel &k, StepField field) {
  Value v = memref::LoadOp::create(*k.b, k.args["step"],
                                   ValueRange{k.kb->index(field)});
  return k.kb->toIndex(v);
}

Value GPULowering::weightView(Kernel &k, Value weight, Type element,
                              int64_t offset) {
  (void)weight;
  return memref::ViewOp::create(*k.b, MemRefType::get({kFlat}, element),
                                k.args["arena"], k.kb->index(offset),
                                ValueRange{});
}

/// A buffer of `width` floats per token, reusing one whose value is dead.
std::string GPULowering::newBuffer(int64_t width) {
  for (auto it = freeBuffers.begin(); it != freeBuffers.end(); ++it)
    if (it->second >= width) {
      std::string name = it->first;
      freeBuffers.erase(it);
      return name;
    }
  std::string name = "buf:" + std::to_string(buffers.size());
  buffers.push_back(
      llvm::json::Object{{"name", name}, {"floats_per_token", width}});
  return name;
}

void GPULowering::release(Value v) {
  auto it = bufferOf.find(v);
  if (it == bufferOf.end())
    return;
  freeBuffers.push_back({it->second, widthOf[v]});
}

/// Sum over the 32 lanes of a warp; every lane gets it.
Value GPULowering::warpSum(KernelBuilder &kb, Value v) {
  for (int32_t offset : {16, 8, 4, 2, 1})
    v = kb.add(v, gpu::ShuffleOp::create(kb.builder(), v, offset, 32,
                                         gpu::ShuffleMode::XOR)
                      .getShuffleResult());
  return v;
}

/// Lane and warp of this thread, and the global warp index.
struct WarpIds {
  Value lane, warp;
};
WarpIds warpIds(KernelBuilder &kb) {
  Value tid = gpu::ThreadIdOp::create(kb.builder(), gpu::Dimension::x);
  Value lane = arith::RemUIOp::create(kb.builder(), tid, kb.index(32));
  Value inBlock = kb.div(tid, kb.index(32));
  Value block = gpu::BlockIdOp::create(kb.builder(), gpu::Dimension::x);
  return {lane, kb.add(kb.mul(block, kb.index(kWarpsPerBlock)), inBlock)};
}

Value isZero(KernelBuilder &kb, Value i) {
  return arith::CmpIOp::create(kb.builder(), arith::CmpIPredicate::eq, i,
                               kb.index(0));
}
Value less(KernelBuilder &kb, Value a, Value b) {
  return arith::CmpIOp::create(kb.builder(), arith::CmpIPredicate::ult, a, b);
}

//===----------------------------------------------------------------------===//
// Embedding
//===----------------------------------------------------------------------===//

void GPULowering::lowerEmbedding(EmbeddingOp op) {
  int64_t width = featuresOf(op.getResult());
  auto tableType = cast<RankedTensorType>(op.getTable().getType());
  int64_t offset = arena.offsetOf(op.getTable(), std::nullopt, true);
  std::string out = newBuffer(width);
  bufferOf[op.getResult()] = out;
  widthOf[op.getResult()] = width;
  Type f32 = Float32Type::get(ctx), i8 = IntegerType::get(ctx, 8),
       i64 = IntegerType::get(ctx, 64);
  Kernel &k =
      beginKernel("embedding", {{"arena", i8}, {"tokens", i64}, {out, f32}});
  KernelBuilder &kb = *k.kb;
  Value table =
      weightView(k, op.getTable(), tableType.getElementType(), offset);
  Value tid = gpu::ThreadIdOp::create(*k.b, gpu::Dimension::x);
  Value col = kb.add(kb.mul(gpu::BlockIdOp::create(*k.b, gpu::Dimension::x),
                            kb.index(kThreads)),
                     tid);
  Value t = gpu::BlockIdOp::create(*k.b, gpu::Dimension::y);
  kb.ifThen(less(kb, col, kb.index(width)), [&](KernelBuilder &ib) {
    Value id = ib.toIndex(
        memref::LoadOp::create(ib.builder(), k.args["tokens"], ValueRange{t}));
    Value v = ib.loadF32(table, {ib.add(ib.mul(id, ib.index(width)), col)});
    ib.store(v, k.args[out], {ib.add(ib.mul(t, ib.index(width)), col)});
  });
  endKernel(k, grid(width, kThreads, "one", 1, "tokens"));
}

//===----------------------------------------------------------------------===//
// RoPE tables: cos and sin of this call's positions, once per call
//===----------------------------------------------------------------------===//

std::pair<std::string, std::string> GPULowering::ropeTables(RoPEAttr rope) {
  auto it = ropeBuffers.find(rope);
  if (it != ropeBuffers.end())
    return it->second;
  Type f32 = Float32Type::get(ctx), i8 = IntegerType::get(ctx, 8),
       i64 = IntegerType::get(ctx, 64);
  int64_t half = rope.getRotaryDim() / 2;
  std::string cosName = newBuffer(half), sinName = newBuffer(half);
  ropeBuffers[rope] = {cosName, sinName};

  if (rope.getKind() == RoPEKind::Dynamic) {
    // InternLM2's sticky NTK length: a call longer than max_positions sets
    // it, later calls keep it.
    usesRoPEState = true;
    Kernel &k = beginKernel("rope_state", {{"step", i64}, {"state", i64}});
    KernelBuilder &kb = *k.kb;
    Value tid = gpu::ThreadIdOp::create(*k.b, gpu::Dimension::x);
    kb.ifThen(isZero(kb, tid), [&](KernelBuilder &ib) {
      Value seen = step(k, kKeys);
      Value zero = ib.index(0);
      Value previous = ib.toIndex(memref::LoadOp::create(
          ib.builder(), k.args["state"], ValueRange{zero}));
      Value grows =
          arith::CmpIOp::create(ib.builder(), arith::CmpIPredicate::ugt, seen,
                                ib.index(rope.getMaxPositions()));
      Value current =
          arith::SelectOp::create(ib.builder(), grows, seen, previous);
      ib.store(arith::IndexCastOp::create(ib.builder(),
                                          ib.builder().getI64Type(), current),
               k.args["state"], {zero});
    });
    endKernel(k, grid(1, 1, "one"));
  }

  int64_t shortOffset = arena.constantOffset(decc::inverseFrequencies(rope));
  int64_t longOffset = -1;
  if (rope.getKind() == RoPEKind::LongRoPE) {
    longOffset = arena.constantOffset(decc::inverseFrequencies(rope, true));
    if (rope.getShortFactor() != rope.getLongFactor())
      reencodeAt = rope.getOriginalMaxPositions() + 1;
  }
  SmallVector<Binding> binds = {{"arena", i8},
                                {"step", i64},
                                {"positions", i64},
                                {cosName, f32},
                                {sinName, f32}};
  if (usesRoPEState && rope.getKind() == RoPEKind::Dynamic)
    binds.push_back({"state", i64});
  Kernel &k = beginKernel("rope_table", binds);
  KernelBuilder &kb = *k.kb;
  Value i = gpu::ThreadIdOp::create(*k.b, gpu::Dimension::x);
  Value t = gpu::BlockIdOp::create(*k.b, gpu::Dimension::y);
  kb.ifThen(less(kb, i, kb.index(half)), [&](KernelBuilder &ib) {
    Value inv;
    if (rope.getKind() == RoPEKind::Dynamic) {
      Value seq = ib.toIndex(memref::LoadOp::create(
          ib.builder(), k.args["state"], ValueRange{ib.index(0)}));
      Value scaled =
          arith::CmpIOp::create(ib.builder(), arith::CmpIPredicate::ugt, seq,
                                ib.index(rope.getMaxPositions()));
      double factor = rope.getFactor(), d = double(rope.getRotaryDim());
      Value ratio = ib.sub(ib.div(ib.mul(ib.f32(factor), ib.indexToF32(seq)),
                                  ib.f32(double(rope.getMaxPositions()))),
                           ib.f32(factor - 1));
      Value base = ib.mul(
          ib.f32(rope.getTheta()),
          math::PowFOp::create(ib.builder(), ratio, ib.f32(d / (d - 2))));
      base = arith::SelectOp::create(ib.builder(), scaled, base,
                                     ib.f32(rope.getTheta()));
      Value exponent = ib.div(ib.mul(ib.f32(2.0), ib.indexToF32(i)), ib.f32(d));
      inv = ib.div(ib.f32(1.0),
                   math::PowFOp::create(ib.builder(), base, exponent));
    } else {
      Value table = memref::ViewOp::create(
          ib.builder(), MemRefType::get({kFlat}, f32), k.args["arena"],
          ib.index(shortOffset), ValueRange{});
      inv = ib.loadF32(table, {i});
      if (longOffset >= 0) {
        Value longTable = memref::ViewOp::create(
            ib.builder(), MemRefType::get({kFlat}, f32), k.args["arena"],
            ib.index(longOffset), ValueRange{});
        Value isLong = arith::CmpIOp::create(
            ib.builder(), arith::CmpIPredicate::ugt, step(k, kKeys),
            ib.index(rope.getOriginalMaxPositions()));
        inv = arith::SelectOp::create(ib.builder(), isLong,
                                      ib.loadF32(longTable, {i}), inv);
      }
    }
    Value pos = ib.indexToF32(ib.toIndex(memref::LoadOp::create(
        ib.builder(), k.args["positions"], ValueRange{t})));
    Value angle = ib.mul(pos, inv);
    Value c = math::CosOp::create(ib.builder(), angle);
    Value s = math::SinOp::create(ib.builder(), angle);
    if (double scale = rope.getAttentionFactor(); scale != 1.0) {
      c = ib.mul(c, ib.f32(scale));
      s = ib.mul(s, ib.f32(scale));
    }
    Value idx = ib.add(ib.mul(t, ib.index(half)), i);
    ib.store(c, k.args[cosName], {idx});
    ib.store(s, k.args[sinName], {idx});
  });
  endKernel(k, grid(1, 1, "one", 1, "tokens"));
  return {cosName, sinName};
}

//===----------------------------------------------------------------------===//
// Projections
//===----------------------------------------------------------------------===//

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
  int64_t wOffset = arena.offsetOf(fused.getWeight(), kvGrouped);
  int64_t bOffset =
      fused.getBias() ? arena.offsetOf(fused.getBias(), kvGrouped) : -1;
  std::string x = bufferOf[input];
  // Only the LM head is limited to the rows the caller wants; every layer
  // computes all tokens.
  bool toLogits = fused.getNumResults() == 1 && fused.getResult(0) == returned;
  auto firstToken = [&](Kernel &k) {
    return toLogits ? k.kb->sub(step(k, kTokens), step(k, kRows))
                    : k.kb->index(0);
  };

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
    binds.push_back({"k_cache", f32});
    binds.push_back({"v_cache", f32});
    if (fused.getRope()) {
      auto [c, s] = ropeTables(*fused.getRope());
      cosName = c;
      sinName = s;
      half = fused.getRope()->getRotaryDim() / 2;
      binds.push_back({cosName, f32});
      binds.push_back({sinName, f32});
    }
  }
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

  // Units: plain rows per result; SwiGLU rows pair (o, o + I); append: q, k
  // and v heads, rotary pairs counted once.
  int64_t d = cacheHeadDim;
  int64_t qHeads = append ? featuresOf(fused.getResult(0)) / d : 0;
  int64_t unitsPerRotated = d - half;
  int64_t units = 0;
  if (append)
    units = (qHeads + cacheKVHeads) * unitsPerRotated + cacheKVHeads * d;
  else if (fused.getActivation() == Activation::SwiGLU)
    units = outWidths[0];
  else
    for (int64_t w : outWidths)
      units += w;

  Kernel &k = beginKernel("projection", binds);
  KernelBuilder &kb = *k.kb;
  WarpIds w = warpIds(kb);
  Value nTokens = step(k, kTokens);
  Value first = firstToken(k);
  Value weight = weightView(k, fused.getWeight(), welt, wOffset);
  Value bias =
      bOffset >= 0 ? weightView(k, fused.getBias(), welt, bOffset) : Value();
  Value xs = k.args[x];
  // Dot products of rows with token t's input; every lane gets them.
  // Each lane reads 16 bytes of the weight row at a time (8 bf16 or 4 f32,
  // one 128-bit load), so a warp reads 512 contiguous bytes per step; a row
  // whose length is not a multiple of that goes one element a lane.
  int64_t vecWidth = 16 / (weightType.getElementTypeBitWidth() / 8);
  bool vectorized = inWidth % vecWidth == 0;
  int64_t vectorEnd =
      vectorized ? inWidth / (32 * vecWidth) * (32 * vecWidth) : 0;
  // The norm prologue, fused: y = r * sum_k x_k g_k W_k (RMSNorm), or
  // r * (sum_k x_k g_k W_k - mean * sum_k g_k W_k) + sum_k b_k W_k
  // (LayerNorm), with r = 1/sqrt(var + eps) from the sums of x and x^2 the
  // same loop gathers. No normalized copy of x is ever written.
  std::optional<NormKind> norm = fused.getNorm();
  Value gamma, beta;
  Type gelt;
  int64_t gOffset = -1, nbOffset = -1;
  if (norm) {
    gOffset = arena.offsetOf(fused.getNormWeight());
    if (fused.getNormBias())
      nbOffset = arena.offsetOf(fused.getNormBias());
    gelt = cast<RankedTensorType>(fused.getNormWeight().getType())
               .getElementType();
  }
  bool layer = norm && *norm == NormKind::Layer;
  double eps = norm ? fused.getNormEpsilon()->convertToDouble() : 0;
  if (norm) {
    gamma = weightView(k, fused.getNormWeight(), gelt, gOffset);
    if (nbOffset >= 0)
      beta = weightView(k, fused.getNormBias(), gelt, nbOffset);
  }
  // Accumulators per row: x.gW (or x.W), and for LayerNorm g.W and b.W;
  // per token: x.x and, for LayerNorm, the sum of x.
  int64_t perRow = 1 + (layer ? 1 : 0) + (nbOffset >= 0 ? 1 : 0);
  auto dots = [&](KernelBuilder &lb, Value t, ArrayRef<Value> rows) {
    Value xBase = lb.mul(t, lb.index(inWidth));
    size_t nr = rows.size();
    size_t perToken = norm ? (layer ? 2 : 1) : 0;
    size_t count = nr * perRow + perToken;
    // Index of accumulator k of row i, and of the per-token sums.
    auto rowAcc = [&](size_t i, int64_t k) { return i * perRow + k; };
    size_t sumSq = nr * perRow, sumX = sumSq + 1;
    // One step over `width` elements at column c: xv, and for each row the
    // weight vector (widened), folded into the accumulators.
    auto step = [&](KernelBuilder &ib, Value c, int64_t width,
                    SmallVector<Value> &acc) {
      auto load = [&](Value memref, Value idx) {
        if (width == 1)
          return ib.loadF32(memref, {idx});
        Type element = cast<MemRefType>(memref.getType()).getElementType();
        Value v = vector::LoadOp::create(
            ib.builder(), VectorType::get({width}, element), memref,
            ValueRange{idx}, false,
            llvm::MaybeAlign(width * (element.getIntOrFloatBitWidth() / 8)));
        if (!element.isF32())
          v = arith::ExtFOp::create(
              ib.builder(), VectorType::get({width}, ib.builder().getF32Type()),
              v);
        return v;
      };
      auto fma = [&](Value a, Value b, Value c2) -> Value {
        if (width == 1)
          return ib.add(c2, ib.mul(a, b));
        return vector::FMAOp::create(ib.builder(), a, b, c2);
      };
      Value xv = load(xs, ib.add(xBase, c));
      Value gv = norm ? load(gamma, c) : Value();
      Value bv = nbOffset >= 0 ? load(beta, c) : Value();
      if (norm) {
        acc[sumSq] = fma(xv, xv, acc[sumSq]);
        if (layer)
          acc[sumX] = width == 1
                          ? ib.add(acc[sumX], xv)
                          : arith::AddFOp::create(ib.builder(), acc[sumX], xv);
      }
      for (size_t i = 0; i < nr; ++i) {
        Value wv = load(weight, ib.add(ib.mul(rows[i], ib.index(inWidth)), c));
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
    SmallVector<Value> partial(count, lb.f32(0.0));
    if (vectorEnd > 0) {
      auto vf32 = VectorType::get({vecWidth}, lb.builder().getF32Type());
      Value zero = arith::ConstantOp::create(
          lb.builder(),
          DenseElementsAttr::get(vf32, lb.builder().getF32FloatAttr(0.0)));
      // Unrolled so each lane has several 16-byte loads in flight: a
      // decode GEMV is bound by memory latency, not by arithmetic.
      int64_t chunk = 32 * vecWidth, chunks = vectorEnd / chunk;
      int64_t unroll = chunks % 4 == 0 ? 4 : chunks % 2 == 0 ? 2 : 1;
      SmallVector<Value> inits(count, zero);
      SmallVector<Value> accs = lb.forLoop(
          lb.mul(w.lane, lb.index(vecWidth)), lb.index(vectorEnd),
          chunk * unroll, inits,
          [&](KernelBuilder &ib, Value c0, ValueRange accIn) {
            SmallVector<Value> acc(accIn);
            for (int64_t u = 0; u < unroll; ++u)
              step(ib, ib.add(c0, ib.index(u * chunk)), vecWidth, acc);
            return acc;
          });
      for (auto [p, a] : llvm::zip(partial, accs))
        p = vector::ReductionOp::create(lb.builder(),
                                        vector::CombiningKind::ADD, a);
    }
    partial =
        lb.forLoop(lb.add(lb.index(vectorEnd), w.lane), lb.index(inWidth), 32,
                   partial, [&](KernelBuilder &ib, Value c, ValueRange accIn) {
                     SmallVector<Value> acc(accIn);
                     step(ib, c, 1, acc);
                     return acc;
                   });
    SmallVector<Value> total;
    for (Value p : partial)
      total.push_back(warpSum(lb, p));
    Value inv, mean;
    if (norm) {
      Value n = lb.f32(double(inWidth));
      Value meanSq = lb.div(total[sumSq], n);
      Value var = meanSq;
      if (layer) {
        mean = lb.div(total[sumX], n);
        var = lb.sub(meanSq, lb.mul(mean, mean));
      }
      inv = math::RsqrtOp::create(lb.builder(), lb.add(var, lb.f32(eps)));
    }
    SmallVector<Value> sums;
    for (auto [i, r] : llvm::enumerate(rows)) {
      Value s = total[rowAcc(i, 0)];
      if (norm) {
        if (layer)
          s = lb.sub(s, lb.mul(mean, total[rowAcc(i, 1)]));
        s = lb.mul(s, inv);
        if (nbOffset >= 0)
          s = lb.add(s, total[rowAcc(i, perRow - 1)]);
      }
      if (bias)
        s = lb.add(s, lb.loadF32(bias, {r}));
      if (clip > 0)
        s = arith::MinimumFOp::create(
            lb.builder(),
            arith::MaximumFOp::create(lb.builder(), s, lb.f32(-clip)),
            lb.f32(clip));
      sums.push_back(s);
    }
    return sums;
  };
  auto storeLane0 = [&](KernelBuilder &lb, Value v, Value memref, Value idx) {
    lb.ifThen(isZero(lb, w.lane),
              [&](KernelBuilder &ib) { ib.store(v, memref, {idx}); });
  };

  kb.ifThen(less(kb, w.warp, kb.index(units)), [&](KernelBuilder &ub) {
    Value u = w.warp;
    ub.forLoop(first, nTokens, 1, [&](KernelBuilder &tb, ValueRange tv) {
      Value t = tv[0];
      if (append) {
        Value pos = tb.toIndex(memref::LoadOp::create(
            tb.builder(), k.args["positions"], ValueRange{t}));
        Value layer = tb.index(*fused.getLayer());
        Value context = step(k, kContext);
        // Unit u: q heads, then k heads (rotated pairs), then v features.
        int64_t qUnits = qHeads * unitsPerRotated;
        int64_t kUnits = cacheKVHeads * unitsPerRotated;
        auto store = [&](KernelBuilder &lb, int slot, Value head, Value i,
                         Value v) {
          if (slot == 0) {
            Value idx = lb.add(lb.mul(t, lb.index(qHeads * d)),
                               lb.add(lb.mul(head, lb.index(d)), i));
            storeLane0(lb, v, k.args[outs[0]], idx);
            return;
          }
          Value row =
              lb.add(lb.mul(lb.add(lb.mul(layer, lb.index(cacheKVHeads)), head),
                            context),
                     pos);
          storeLane0(lb, v, k.args[slot == 1 ? "k_cache" : "v_cache"],
                     lb.add(lb.mul(row, lb.index(d)), i));
        };
        auto rotated = [&](KernelBuilder &lb, int slot, Value local,
                           int64_t rowBase) {
          Value head = lb.div(local, lb.index(unitsPerRotated));
          Value r = arith::RemUIOp::create(lb.builder(), local,
                                           lb.index(unitsPerRotated));
          Value rowOfHead =
              lb.add(lb.index(rowBase), lb.mul(head, lb.index(d)));
          auto single = [&](KernelBuilder &sb, Value i) {
            Value y = dots(sb, t, {sb.add(rowOfHead, i)})[0];
            store(sb, slot, head, i, y);
          };
          if (half == 0) {
            single(lb, r);
            return;
          }
          auto pair = [&](KernelBuilder &pb) {
            Value i2 = pb.add(r, pb.index(half));
            SmallVector<Value> y =
                dots(pb, t, {pb.add(rowOfHead, r), pb.add(rowOfHead, i2)});
            Value ci = pb.add(pb.mul(t, pb.index(half)), r);
            Value c = pb.loadF32(k.args[cosName], {ci});
            Value s = pb.loadF32(k.args[sinName], {ci});
            store(pb, slot, head, r, pb.sub(pb.mul(y[0], c), pb.mul(y[1], s)));
            store(pb, slot, head, i2, pb.add(pb.mul(y[1], c), pb.mul(y[0], s)));
          };
          if (unitsPerRotated == half) {
            pair(lb);
            return;
          }
          Value isPair = less(lb, r, lb.index(half));
          lb.ifThen(isPair, pair);
          lb.ifThen(arith::XOrIOp::create(
                        lb.builder(), isPair,
                        arith::ConstantOp::create(
                            lb.builder(), lb.builder().getBoolAttr(true))),
                    [&](KernelBuilder &sb) {
                      single(sb, sb.add(r, sb.index(half)));
                    });
        };
        Value isQ = less(tb, u, tb.index(qUnits));
        Value isK = arith::AndIOp::create(
            tb.builder(),
            arith::XOrIOp::create(
                tb.builder(), isQ,
                arith::ConstantOp::create(tb.builder(),
                                          tb.builder().getBoolAttr(true))),
            less(tb, u, tb.index(qUnits + kUnits)));
        Value isV =
            arith::CmpIOp::create(tb.builder(), arith::CmpIPredicate::uge, u,
                                  tb.index(qUnits + kUnits));
        tb.ifThen(isQ, [&](KernelBuilder &lb) { rotated(lb, 0, u, 0); });
        tb.ifThen(isK, [&](KernelBuilder &lb) {
          rotated(lb, 1, lb.sub(u, lb.index(qUnits)), qHeads * d);
        });
        tb.ifThen(isV, [&](KernelBuilder &lb) {
          Value local = lb.sub(u, lb.index(qUnits + kUnits));
          Value head = lb.div(local, lb.index(d));
          Value i = arith::RemUIOp::create(lb.builder(), local, lb.index(d));
          Value y = dots(
              lb, t, {lb.add(lb.index((qHeads + cacheKVHeads) * d), local)})[0];
          store(lb, 2, head, i, y);
        });
        return;
      }
      if (fused.getActivation() == Activation::SwiGLU) {
        int64_t width = outWidths[0];
        SmallVector<Value> y = dots(tb, t, {u, tb.add(u, tb.index(width))});
        Value silu = tb.div(
            y[0], tb.add(tb.f32(1.0),
                         tb.exp(arith::NegFOp::create(tb.builder(), y[0]))));
        storeLane0(tb, tb.mul(silu, y[1]), k.args[outs[0]],
                   tb.add(tb.mul(t, tb.index(width)), u));
        return;
      }
      // Plain rows, split over the results in order.
      int64_t rowBase = 0;
      for (auto [name, width] : llvm::zip(outs, outWidths)) {
        Value inThis = arith::AndIOp::create(
            tb.builder(),
            arith::CmpIOp::create(tb.builder(), arith::CmpIPredicate::uge, u,
                                  tb.index(rowBase)),
            less(tb, u, tb.index(rowBase + width)));
        int64_t base = rowBase;
        std::string outName = name;
        int64_t outWidth = width;
        tb.ifThen(inThis, [&](KernelBuilder &lb) {
          Value o = lb.sub(u, lb.index(base));
          Value y = dots(lb, t, {u})[0];
          if (auto act = fused.getActivation()) {
            Value half = lb.f32(0.5), one = lb.f32(1.0);
            if (*act == Activation::Gelu) {
              y = lb.mul(
                  lb.mul(half, y),
                  lb.add(one, math::ErfOp::create(
                                  lb.builder(), lb.mul(y, lb.f32(M_SQRT1_2)))));
            } else {
              Value cube = lb.mul(lb.mul(y, y), y);
              Value inner = lb.mul(lb.f32(std::sqrt(2.0 / M_PI)),
                                   lb.add(y, lb.mul(lb.f32(0.044715), cube)));
              y = lb.mul(
                  lb.mul(half, y),
                  lb.add(one, math::TanhOp::create(lb.builder(), inner)));
            }
          }
          Value row = toLogits ? lb.sub(t, first) : t;
          Value idx = lb.add(lb.mul(row, lb.index(outWidth)), o);
          if (!residual.empty())
            y = lb.add(y, lb.loadF32(k.args[residual], {idx}));
          storeLane0(lb, y, k.args[outName], idx);
        });
        rowBase += width;
      }
    });
  });
  endKernel(k, grid(units, kWarpsPerBlock, "one"));
  return success();
}

//===----------------------------------------------------------------------===//
// Attention
//===----------------------------------------------------------------------===//

/// One warp attending for one query head: the lanes split head_dim, each
/// holding `d / 32` (rounded up) features of q and of the accumulator.
struct WarpAttention {
  KernelBuilder &kb;
  AttentionConfigAttr c;
  Value lane, q, kCache, vCache, cacheRow0, qBase, slope, pos;
  int64_t d;
  SmallVector<Value> qv; // this lane's q features (0 past head_dim)

  int64_t perLane() const { return (d + 31) / 32; }
  Value feature(KernelBuilder &lb, int64_t j) const {
    return lb.add(lane, lb.index(32 * j));
  }
  Value inHead(KernelBuilder &lb, int64_t j) const {
    return arith::CmpIOp::create(lb.builder(), arith::CmpIPredicate::ult,
                                 feature(lb, j), lb.index(d));
  }
  /// Loads feature j of row `base` (0 past head_dim).
  Value load(KernelBuilder &lb, Value memref, Value base, int64_t j) const {
    if (d % 32 == 0)
      return lb.loadF32(memref, {lb.add(base, feature(lb, j))});
    Value i =
        arith::MinUIOp::create(lb.builder(), feature(lb, j), lb.index(d - 1));
    Value v = lb.loadF32(memref, {lb.add(base, i)});
    return arith::SelectOp::create(lb.builder(), inHead(lb, j), v, lb.f32(0.0));
  }
  void loadQuery(KernelBuilder &lb) {
    for (int64_t j = 0; j < perLane(); ++j)
      qv.push_back(load(lb, q, qBase, j));
  }
  /// q . k_key * scale (+ ALiBi), the same in every lane.
  Value
  score(KernelBuilder &lb, Value key,
        const std::function<Value(KernelBuilder &, Value)> &warpSum) const {
    Value row = lb.mul(lb.add(cacheRow0, key), lb.index(d));
    Value partial = lb.f32(0.0);
    for (int64_t j = 0; j < perLane(); ++j)
      partial = lb.add(partial, lb.mul(qv[j], load(lb, kCache, row, j)));
    Value s = lb.mul(warpSum(lb, partial), lb.f32(c.getSoftmaxScale()));
    if (slope)
      s = lb.add(s,
                 lb.mul(slope, lb.sub(lb.indexToF32(key), lb.indexToF32(pos))));
    return s;
  }
  /// Online softmax over keys [lo, hi) for one query, 32 keys at a time:
  /// lane L scores key lo + 32b + L on its own (the whole q . k, no shuffle
  /// tree per key), one max and one sum reduce the block, and the value rows
  /// are then read coalesced, lane L accumulating features L, L+32, ...
  /// with each key's weight broadcast by a shuffle. The result is that of the
  /// softmax over the range, unnormalized: {max, sum, acc...}.
  SmallVector<Value> keyParallel(
      KernelBuilder &lb, Value lo, Value hi,
      const std::function<Value(KernelBuilder &, Value)> &warpSum,
      const std::function<Value(KernelBuilder &, Value)> &warpMax) const {
    Type f32 = lb.builder().getF32Type();
    int64_t width = d % 4 == 0 ? 4 : 1;
    SmallVector<Value> init = {lb.f32(-INFINITY), lb.f32(0.0)};
    for (int64_t j = 0; j < perLane(); ++j)
      init.push_back(lb.f32(0.0));
    return lb.forLoop(
        lo, hi, 32, init, [&](KernelBuilder &ib, Value base, ValueRange st) {
          Value key = ib.add(base, lane);
          Value valid = arith::CmpIOp::create(
              ib.builder(), arith::CmpIPredicate::ult, key, hi);
          Value safeKey =
              arith::SelectOp::create(ib.builder(), valid, key, base);
          Value row = ib.mul(ib.add(cacheRow0, safeKey), ib.index(d));
          Value dot;
          if (width == 4) {
            auto v4 = VectorType::get({4}, f32);
            Value zero = arith::ConstantOp::create(
                ib.builder(),
                DenseElementsAttr::get(v4, ib.builder().getF32FloatAttr(0.0)));
            Value acc = ib.forLoop(
                ib.index(0), ib.index(d), 4, {zero},
                [&](KernelBuilder &cb, Value i, ValueRange a) {
                  Value qv4 = vector::LoadOp::create(
                      cb.builder(), v4, q, ValueRange{cb.add(qBase, i)}, false,
                      llvm::MaybeAlign(16));
                  Value kv4 = vector::LoadOp::create(
                      cb.builder(), v4, kCache, ValueRange{cb.add(row, i)},
                      false, llvm::MaybeAlign(16));
                  return SmallVector<Value>{
                      vector::FMAOp::create(cb.builder(), qv4, kv4, a[0])};
                })[0];
            dot = vector::ReductionOp::create(ib.builder(),
                                              vector::CombiningKind::ADD, acc);
          } else {
            dot = ib.forLoop(
                ib.index(0), ib.index(d), 1, {ib.f32(0.0)},
                [&](KernelBuilder &cb, Value i, ValueRange a) {
                  return SmallVector<Value>{cb.add(
                      a[0], cb.mul(cb.loadF32(q, {cb.add(qBase, i)}),
                                   cb.loadF32(kCache, {cb.add(row, i)})))};
                })[0];
          }
          Value s = ib.mul(dot, ib.f32(c.getSoftmaxScale()));
          if (slope)
            s = ib.add(s, ib.mul(slope, ib.sub(ib.indexToF32(key),
                                               ib.indexToF32(pos))));
          s = arith::SelectOp::create(ib.builder(), valid, s,
                                      ib.f32(-INFINITY));
          Value m = ib.fmax(st[0], warpMax(ib, s));
          Value correction = ib.exp(ib.sub(st[0], m));
          Value p = ib.exp(ib.sub(s, m)); // 0 for keys past the range
          SmallVector<Value> next = {
              m, ib.add(ib.mul(st[1], correction), warpSum(ib, p))};
          SmallVector<Value> acc;
          for (int64_t j = 0; j < perLane(); ++j)
            acc.push_back(ib.mul(st[2 + j], correction));
          Value count = arith::MinUIOp::create(ib.builder(), ib.index(32),
                                               ib.sub(hi, base));
          acc = ib.forLoop(
              ib.index(0), count, 1, acc,
              [&](KernelBuilder &vb, Value k, ValueRange a) {
                Value lanePick = arith::IndexCastOp::create(
                    vb.builder(), vb.builder().getI32Type(), k);
                Value pk =
                    gpu::ShuffleOp::create(
                        vb.builder(), p, lanePick,
                        arith::ConstantOp::create(
                            vb.builder(), vb.builder().getI32IntegerAttr(32)),
                        gpu::ShuffleMode::IDX)
                        .getShuffleResult();
                Value vrow =
                    vb.mul(vb.add(cacheRow0, vb.add(base, k)), vb.index(d));
                SmallVector<Value> out;
                for (int64_t j = 0; j < perLane(); ++j)
                  out.push_back(
                      vb.add(a[j], vb.mul(pk, load(vb, vCache, vrow, j))));
                return out;
              });
          next.append(acc.begin(), acc.end());
          return next;
        });
  }

  /// Stores acc / sum into `out` at `base` (the features this lane holds).
  void store(KernelBuilder &lb, Value out, Value base, ValueRange acc,
             Value sum) const {
    Value inv = lb.div(lb.f32(1.0), sum);
    for (int64_t j = 0; j < perLane(); ++j) {
      Value v = lb.mul(acc[j], inv);
      if (d % 32 == 0) {
        lb.store(v, out, {lb.add(base, feature(lb, j))});
        continue;
      }
      lb.ifThen(inHead(lb, j), [&](KernelBuilder &ib) {
        ib.store(v, out, {ib.add(base, feature(ib, j))});
      });
    }
  }
};

LogicalResult GPULowering::lowerAttention(CachedAttentionOp op) {
  AttentionConfigAttr c = op.getConfig();
  Type f32 = Float32Type::get(ctx), i8 = IntegerType::get(ctx, 8),
       i64 = IntegerType::get(ctx, 64);
  int64_t heads = c.getNumHeads(), d = c.getHeadDim();
  int64_t group = heads / c.getNumKvHeads();
  bool eager = c.getBackend() == AttentionBackend::Eager;
  std::string q = bufferOf[op.getQuery()];
  std::string out = newBuffer(heads * d);
  bufferOf[op.getResult()] = out;
  widthOf[op.getResult()] = heads * d;
  int64_t slopesOffset =
      c.getAlibiBiasMax() > 0
          ? arena.constantOffset(decc::alibiSlopes(heads, c.getAlibiBiasMax()))
          : -1;
  auto sum = [&](KernelBuilder &lb, Value v) { return warpSum(lb, v); };
  auto max = [&](KernelBuilder &lb, Value v) {
    for (int32_t offset : {16, 8, 4, 2, 1})
      v = lb.fmax(v, gpu::ShuffleOp::create(lb.builder(), v, offset, 32,
                                            gpu::ShuffleMode::XOR)
                         .getShuffleResult());
    return v;
  };
  auto setup = [&](Kernel &k, Value t, Value h, Value pos) {
    KernelBuilder &kb = *k.kb;
    Value g = kb.div(h, kb.index(group));
    Value cacheRow0 = kb.mul(
        kb.add(kb.mul(kb.index(op.getLayer()), kb.index(c.getNumKvHeads())), g),
        step(k, kContext));
    Value slope;
    if (slopesOffset >= 0) {
      Value slopes = memref::ViewOp::create(
          kb.builder(), MemRefType::get({kFlat}, f32), k.args["arena"],
          kb.index(slopesOffset), ValueRange{});
      slope = kb.loadF32(slopes, {h});
    }
    WarpAttention wa{kb,
                     c,
                     warpIds(kb).lane,
                     k.args[q],
                     k.args["k_cache"],
                     k.args["v_cache"],
                     cacheRow0,
                     kb.mul(kb.add(kb.mul(t, kb.index(heads)), h), kb.index(d)),
                     slope,
                     pos,
                     d,
                     {}};
    return wa;
  };
  auto window = [&](KernelBuilder &kb, Value end) {
    Value begin = kb.index(0);
    if (c.getSlidingWindow() > 0) {
      Value w = kb.index(c.getSlidingWindow());
      Value far = arith::CmpIOp::create(kb.builder(), arith::CmpIPredicate::ugt,
                                        end, w);
      begin = arith::SelectOp::create(kb.builder(), far, kb.sub(end, w), begin);
    }
    return begin;
  };

  // Row kernel: one warp per (token, head). Eager materializes the scores
  // ([tokens, heads, cache length]) and makes three passes; flash one.
  std::string scores;
  SmallVector<Binding> binds = {
      {"arena", i8},    {"step", i64},    {"positions", i64}, {q, f32},
      {"k_cache", f32}, {"v_cache", f32}, {out, f32}};
  if (eager) {
    scores = "scores:" + std::to_string(buffers.size());
    buffers.push_back(
        llvm::json::Object{{"name", scores}, {"floats_per_token_key", heads}});
    binds.push_back({scores, f32});
  }
  {
    Kernel &k =
        beginKernel(eager ? "attention_eager" : "attention_flash", binds);
    KernelBuilder &kb = *k.kb;
    WarpIds w = warpIds(kb);
    Value h = w.warp;
    Value t = gpu::BlockIdOp::create(*k.b, gpu::Dimension::y);
    kb.ifThen(less(kb, h, kb.index(heads)), [&](KernelBuilder &ib) {
      Value pos = ib.toIndex(memref::LoadOp::create(
          ib.builder(), k.args["positions"], ValueRange{t}));
      WarpAttention wa = setup(k, t, h, pos);
      wa.loadQuery(ib);
      Value end = ib.add(pos, ib.index(1));
      Value begin = window(ib, end);
      if (!eager) {
        SmallVector<Value> st = wa.keyParallel(ib, begin, end, sum, max);
        wa.store(ib, k.args[out], wa.qBase, ValueRange(st).drop_front(2),
                 st[1]);
        return;
      }
      Value scoreRow =
          ib.mul(ib.add(ib.mul(t, ib.index(heads)), h), step(k, kContext));
      Value sc = k.args[scores];
      // Every lane stores the same score and reads back its own store.
      Value max = ib.forLoop(begin, end, 1, {ib.f32(-INFINITY)},
                             [&](KernelBuilder &lb, Value key, ValueRange m) {
                               Value s = wa.score(lb, key, sum);
                               lb.store(s, sc, {lb.add(scoreRow, key)});
                               return SmallVector<Value>{lb.fmax(m[0], s)};
                             })[0];
      SmallVector<Value> init = {ib.f32(0.0)};
      for (int64_t j = 0; j < wa.perLane(); ++j)
        init.push_back(ib.f32(0.0));
      SmallVector<Value> st = ib.forLoop(
          begin, end, 1, init,
          [&](KernelBuilder &lb, Value key, ValueRange acc) {
            Value p =
                lb.exp(lb.sub(lb.loadF32(sc, {lb.add(scoreRow, key)}), max));
            SmallVector<Value> next = {lb.add(acc[0], p)};
            Value row = lb.mul(lb.add(wa.cacheRow0, key), lb.index(d));
            for (int64_t j = 0; j < wa.perLane(); ++j)
              next.push_back(
                  lb.add(acc[1 + j],
                         lb.mul(p, wa.load(lb, k.args["v_cache"], row, j))));
            return next;
          });
      wa.store(ib, k.args[out], wa.qBase, ValueRange(st).drop_front(1), st[0]);
    });
    endKernel(k, grid(heads, kWarpsPerBlock, "one", 1, "tokens"),
              eager ? "always" : "prefill");
  }
  if (eager)
    return success();

  // Decode (one token): the keys split over blocks (y), partial softmaxes
  // in a scratch buffer, merged by a second kernel.
  std::string partials = "partials:" + std::to_string(buffers.size());
  buffers.push_back(llvm::json::Object{
      {"name", partials}, {"floats", heads * kMaxSplits * (d + 2)}});
  {
    Kernel &k = beginKernel("attention_split", {{"arena", i8},
                                                {"step", i64},
                                                {"positions", i64},
                                                {q, f32},
                                                {"k_cache", f32},
                                                {"v_cache", f32},
                                                {partials, f32}});
    KernelBuilder &kb = *k.kb;
    WarpIds w = warpIds(kb);
    Value h = w.warp;
    Value split = gpu::BlockIdOp::create(*k.b, gpu::Dimension::y);
    Value splits = step(k, kSplits);
    Value active = arith::AndIOp::create(*k.b, less(kb, h, kb.index(heads)),
                                         less(kb, split, splits));
    kb.ifThen(active, [&](KernelBuilder &ib) {
      Value zero = ib.index(0);
      Value pos = ib.toIndex(memref::LoadOp::create(
          ib.builder(), k.args["positions"], ValueRange{zero}));
      WarpAttention wa = setup(k, zero, h, pos);
      wa.loadQuery(ib);
      Value end = ib.add(pos, ib.index(1));
      Value begin = window(ib, end);
      Value keys = ib.sub(end, begin);
      Value chunk = ib.div(ib.add(keys, ib.sub(splits, ib.index(1))), splits);
      Value lo = ib.add(begin, ib.mul(split, chunk));
      Value hi = arith::MinUIOp::create(ib.builder(), end, ib.add(lo, chunk));
      lo = arith::MinUIOp::create(ib.builder(), lo, hi);
      SmallVector<Value> st = wa.keyParallel(ib, lo, hi, sum, max);
      Value slot = ib.mul(ib.add(ib.mul(h, ib.index(kMaxSplits)), split),
                          ib.index(d + 2));
      ib.store(st[0], k.args[partials], {slot});
      ib.store(st[1], k.args[partials], {ib.add(slot, ib.index(1))});
      Value accBase = ib.add(slot, ib.index(2));
      SmallVector<Value> acc(ValueRange(st).drop_front(2));
      for (int64_t j = 0; j < wa.perLane(); ++j) {
        Value v = acc[j];
        auto put = [&](KernelBuilder &sb) {
          sb.store(v, k.args[partials], {sb.add(accBase, wa.feature(sb, j))});
        };
        if (d % 32 == 0)
          put(ib);
        else
          ib.ifThen(wa.inHead(ib, j), put);
      }
    });
    endKernel(k, grid(heads, kWarpsPerBlock, "one", 1, "splits"), "decode");
  }
  {
    Kernel &k = beginKernel("attention_merge",
                            {{"step", i64}, {partials, f32}, {out, f32}});
    KernelBuilder &kb = *k.kb;
    WarpIds w = warpIds(kb);
    Value h = w.warp;
    kb.ifThen(less(kb, h, kb.index(heads)), [&](KernelBuilder &ib) {
      // Lane s holds split s (at most 32 of them): one max and one sum over
      // the warp give the merged softmax; each split's weight then reaches
      // every lane by a shuffle.
      Value splits = step(k, kSplits);
      Value p = k.args[partials];
      auto slot = [&](KernelBuilder &lb, Value s) {
        return lb.mul(lb.add(lb.mul(h, lb.index(kMaxSplits)), s),
                      lb.index(d + 2));
      };
      Value active = less(ib, w.lane, splits);
      Value mine =
          arith::SelectOp::create(ib.builder(), active, w.lane, ib.index(0));
      Value ms = arith::SelectOp::create(ib.builder(), active,
                                         ib.loadF32(p, {slot(ib, mine)}),
                                         ib.f32(-INFINITY));
      Value ls = arith::SelectOp::create(
          ib.builder(), active,
          ib.loadF32(p, {ib.add(slot(ib, mine), ib.index(1))}), ib.f32(0.0));
      Value m = max(ib, ms);
      Value weight = ib.exp(ib.sub(ms, m));
      Value total = warpSum(ib, ib.mul(ls, weight));
      int64_t perLane = (d + 31) / 32;
      SmallVector<Value> init(perLane, ib.f32(0.0));
      SmallVector<Value> acc = ib.forLoop(
          ib.index(0), splits, 1, init,
          [&](KernelBuilder &lb, Value s, ValueRange a) {
            Value pick = arith::IndexCastOp::create(
                lb.builder(), lb.builder().getI32Type(), s);
            Value ws =
                gpu::ShuffleOp::create(
                    lb.builder(), weight, pick,
                    arith::ConstantOp::create(
                        lb.builder(), lb.builder().getI32IntegerAttr(32)),
                    gpu::ShuffleMode::IDX)
                    .getShuffleResult();
            Value base = lb.add(slot(lb, s), lb.index(2));
            SmallVector<Value> next;
            for (int64_t j = 0; j < perLane; ++j) {
              Value i = arith::MinUIOp::create(lb.builder(),
                                               lb.add(w.lane, lb.index(32 * j)),
                                               lb.index(d - 1));
              next.push_back(
                  lb.add(a[j], lb.mul(ws, lb.loadF32(p, {lb.add(base, i)}))));
            }
            return next;
          });
      Value inv = ib.div(ib.f32(1.0), total);
      Value outBase = ib.mul(h, ib.index(d));
      for (int64_t j = 0; j < perLane; ++j) {
        Value i = ib.add(w.lane, ib.index(32 * j));
        Value v = ib.mul(acc[j], inv);
        ib.ifThen(less(ib, i, ib.index(d)), [&](KernelBuilder &sb) {
          sb.store(v, k.args[out], {sb.add(outBase, i)});
        });
      }
    });
    endKernel(k, grid(heads, kWarpsPerBlock, "one"), "decode");
  }
  return success();
}

//===----------------------------------------------------------------------===//
// Driver
//===----------------------------------------------------------------------===//

LogicalResult GPULowering::lower(Operation *op) {
  if (isa<WeightOp, ConcatWeightsOp>(op))
    return success();
  if (auto e = dyn_cast<EmbeddingOp>(op)) {
    lowerEmbedding(e);
  } else if (isa<FusedLinearOp, LinearOp, LMHeadOp>(op)) {
    if (failed(lowerProjection(op)))
      return failure();
  } else if (auto a = dyn_cast<CachedAttentionOp>(op)) {
    if (failed(lowerAttention(a)))
      return failure();
  } else if (isa<func::ReturnOp>(op)) {
    return success();
  } else {
    return op->emitOpError() << "has no GPU lowering yet";
  }
  for (Value operand : op->getOperands())
    if (lastUse.lookup(operand) == op)
      release(operand);
  return success();
}

LogicalResult GPULowering::run() {
  auto kv = cast<KVCacheType>(source.getArgument(2).getType());
  cacheLayers = kv.getLayers();
  cacheKVHeads = kv.getKvHeads();
  cacheHeadDim = kv.getHeadDim();
  vocab = cast<RankedTensorType>(source.getResultTypes()[0]).getDimSize(1);
  returned = cast<func::ReturnOp>(source.getBody().front().getTerminator())
                 .getOperand(0);
  for (Operation &op : source.getBody().front())
    for (Value operand : op.getOperands())
      lastUse[operand] = &op;
  bufferOf[source.getArgument(0)] = "tokens";
  bufferOf[source.getArgument(1)] = "positions";

  OpBuilder top(ctx);
  top.setInsertionPointToEnd(module.getBody());
  kernels = gpu::GPUModuleOp::create(top, source.getLoc(), "decc_kernels");
  module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(),
                  top.getUnitAttr());
  for (Operation &op : source.getBody().front())
    if (failed(lower(&op)))
      return failure();

  decc::setManifest(
      module, source, reencodeAt, usesRoPEState, arena,
      llvm::json::Object{
          {"target", "cuda"},
          {"plan", llvm::json::Object{{"buffers", std::move(buffers)},
                                      {"launches", std::move(launches)}}}});
  source.erase();
  return success();
}

struct ConvertDecoderToGPUPass
    : decc::impl::ConvertDecoderToGPUBase<ConvertDecoderToGPUPass> {
  void runOnOperation() override {
    if (failed(decc::lowerForward<GPULowering>(getOperation())))
      signalPassFailure();
  }
};

} // namespace
