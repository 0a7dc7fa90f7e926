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

#include "compiler/Conversion/CPU/CPULowering.h"

#include "compiler/Conversion/Common/DynamicNTK.h"
#include "compiler/Conversion/Common/PositionTables.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include "llvm/ADT/TypeSwitch.h"

namespace decc {
#define GEN_PASS_DEF_CONVERTDECODERTOCPU
#include "compiler/Conversion/Passes.h.inc"
} // namespace decc

namespace decc::cpulowering {

//===----------------------------------------------------------------------===//
// Setup
//===----------------------------------------------------------------------===//

Block *ForwardLowering::beginEntry(func::FuncOp at, StringRef name,
                                   ArrayRef<Type> args) {
  OpBuilder top(ctx);
  top.setInsertionPoint(at);
  entry = func::FuncOp::create(top, at.getLoc(), name,
                               top.getFunctionType(args, {}));
  entry->setAttr("llvm.emit_c_interface", top.getUnitAttr());
  Block *block = entry.addEntryBlock();
  b = std::make_unique<ImplicitLocOpBuilder>(at.getLoc(), ctx);
  b->setInsertionPointToStart(block);
  // Values asked once a call belong to the entry that asked.
  keysSeenValue = rankValue = prefetchBytesValue = threadsValue = Value();
  return block;
}

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
  auto cacheType = MemRefType::get(
      {cacheLayers, cacheKVHeads, dyn, cacheHeadDim}, kvType.getElement());
  // The arguments in the contract's order (contract/Contract.h).
  SmallVector<Type> args(contract::kForwardArgs);
  args[contract::kArenaArg] = MemRefType::get({dyn}, top.getI8Type());
  args[contract::kTokensArg] = MemRefType::get({dyn}, i64);
  args[contract::kPositionsArg] = MemRefType::get({dyn}, i64);
  args[contract::kKCacheArg] = cacheType;
  args[contract::kVCacheArg] = cacheType;
  args[contract::kStateArg] = MemRefType::get({dyn}, i64);
  args[contract::kLogitsArg] =
      MemRefType::get({dyn, resultType.getDimSize(1)}, f32);
  // Image rows: as wide as the embedding table (every model has the
  // argument; only an InternVL model's embedding reads it).
  int64_t hidden = 1;
  source.walk([&](EmbeddingOp e) { hidden = featuresPerToken(e.getResult()); });
  args[contract::kImageArg] = MemRefType::get({dyn, hidden}, f32);
  args[contract::kBlockTableArg] =
      MemRefType::get({dyn, dyn}, top.getI32Type());
  for (auto [i, type] : llvm::enumerate(args)) {
    (void)i;
    assert(cast<MemRefType>(type).getRank() == contract::kForwardArgRank[i] &&
           "decc_forward's argument disagrees with the contract");
  }
  Block *block = beginEntry(source, contract::kForwardFunction, args);
  arenaArg = block->getArgument(contract::kArenaArg);
  tokens = block->getArgument(contract::kTokensArg);
  positions = block->getArgument(contract::kPositionsArg);
  kCache = block->getArgument(contract::kKCacheArg);
  vCache = block->getArgument(contract::kVCacheArg);
  state = block->getArgument(contract::kStateArg);
  logits = block->getArgument(contract::kLogitsArg);
  blockTable = block->getArgument(contract::kBlockTableArg);
  numTokens = memref::DimOp::create(*b, tokens, 0);

  buffers[source.getArgument(0)] = tokens;
  buffers[source.getArgument(1)] = positions;
  if (source.getNumArguments() > 3)
    buffers[source.getArgument(3)] = block->getArgument(contract::kImageArg);
}

void ForwardLowering::computeLastUses() {
  lastUse = lastUses(source.getBody().front());
}

Value ForwardLowering::alloc(int64_t width, Type element, Value rows) {
  auto type = MemRefType::get({ShapedType::kDynamic, width},
                              element ? element : b->getF32Type());
  return memref::AllocOp::create(*b, type, ValueRange{rows ? rows : numTokens},
                                 b->getI64IntegerAttr(kArenaAlignment));
}

Value ForwardLowering::define(Value v, int64_t width, Value rows) {
  // Defined already: an epilogue emitted in two branches (a tile matmul's
  // prompt and a decode step) writes the buffer defined before them.
  if (owned.contains(v))
    return buffers.lookup(v);
  Value buffer = alloc(width, Type(), rows);
  outputAllocs.insert(buffer.getDefiningOp());
  buffers[v] = buffer;
  owned.insert(v);
  return buffer;
}

void ForwardLowering::freeDeadOperands(Operation *op) {
  for (Value operand : op->getOperands())
    if (lastUse.lookup(operand) == op && owned.erase(operand))
      memref::DeallocOp::create(*b, buffers[operand]);
}

Value ForwardLowering::weightView(Value weight,
                                  std::optional<KVGroupedLayout> layout) {
  int64_t offset = arena.offsetOf(weight, layout, isGathered);
  if (Value view = weightViews.lookup(weight))
    return view;
  // Views are made at the top of the function so every kernel can use them.
  auto type = cast<RankedTensorType>(weight.getType());
  // Quantized rows are bytes: int8 one a column, int4 two.
  MemRefType viewType =
      quantizationOf(weight)
          ? MemRefType::get(
                {type.getDimSize(0), arena.layoutOf(type).rowBytes()},
                b->getI8Type())
          : MemRefType::get(type.getShape(), type.getElementType());
  OpBuilder::InsertionGuard guard(*b);
  b->setInsertionPointAfterValue(numTokens);
  Value shift = arith::ConstantIndexOp::create(*b, offset);
  Value view =
      memref::ViewOp::create(*b, viewType, arenaArg, shift, ValueRange{});
  weightViews[weight] = view;
  return view;
}

QuantizedAttr ForwardLowering::quantizationOf(Value weight) {
  return dyn_cast_or_null<QuantizedAttr>(
      cast<RankedTensorType>(weight.getType()).getEncoding());
}

Value ForwardLowering::slotView(Value weight,
                                std::optional<KVGroupedLayout> layout,
                                int64_t byteOffset, ArrayRef<int64_t> shape,
                                Type element) {
  int64_t offset = arena.offsetOf(weight, layout, isGathered) + byteOffset;
  OpBuilder::InsertionGuard guard(*b);
  b->setInsertionPointAfterValue(numTokens);
  Value shift = arith::ConstantIndexOp::create(*b, offset);
  return memref::ViewOp::create(*b, MemRefType::get(shape, element), arenaArg,
                                shift, ValueRange{});
}

QuantizedDots
ForwardLowering::quantizedDots(Value weight,
                               std::optional<KVGroupedLayout> layout) {
  QuantizedDots q;
  QuantizedAttr quantized = quantizationOf(weight);
  if (!quantized)
    return q;
  contract::WeightSlot slot =
      arena.layoutOf(cast<RankedTensorType>(weight.getType()));
  assert(slot.f32GroupTerms && "the CPU kernels read f32 group terms");
  SmallVector<int64_t> perGroup{slot.shape[0], slot.groups()};
  q.bits = quantized.getBits();
  q.groupSize = quantized.getGroupSize();
  q.lanes = quantizedLanes;
  q.scales =
      slotView(weight, layout, slot.scalesOffset(), perGroup, b->getF32Type());
  if (q.bits == 4)
    q.offsets =
        slotView(weight, layout, slot.zerosOffset(), perGroup, b->getF32Type());
  return q;
}

Value ForwardLowering::keyTiles(KernelBuilder &kb) {
  auto type = cast<MemRefType>(kCache.getType());
  int64_t tile = contract::kCPUKeyTile, layers = type.getDimSize(0),
          heads = type.getDimSize(1), d = type.getDimSize(3);
  ImplicitLocOpBuilder &b = kb.builder();
  Value context = memref::DimOp::create(b, kCache, 2);
  int64_t dyn = ShapedType::kDynamic;
  auto tiles = MemRefType::get(
      {layers, heads, dyn, d, tile}, type.getElementType(),
      StridedLayoutAttr::get(b.getContext(), 0, {dyn, dyn, d * tile, tile, 1}));
  Value headStride = kb.mul(context, kb.index(d));
  return memref::ReinterpretCastOp::create(
      b, tiles, kCache, OpFoldResult(b.getIndexAttr(0)),
      ArrayRef<OpFoldResult>{b.getIndexAttr(layers), b.getIndexAttr(heads),
                             kb.div(context, kb.index(tile)), b.getIndexAttr(d),
                             b.getIndexAttr(tile)},
      ArrayRef<OpFoldResult>{kb.mul(headStride, kb.index(heads)), headStride,
                             b.getIndexAttr(d * tile), b.getIndexAttr(tile),
                             b.getIndexAttr(1)});
}

Value ForwardLowering::layerIndex(int64_t layer) {
  if (Value v = layerIndices.lookup(layer))
    return v;
  OpBuilder::InsertionGuard guard(*b);
  b->setInsertionPointAfterValue(numTokens);
  Value v = arith::ConstantIndexOp::create(*b, layer);
  layerIndices[layer] = v;
  return v;
}

void ForwardLowering::outlineKernel(Operation *after) {
  Block &block = entry.getBody().front();
  SmallVector<Operation *> ops;
  for (auto it = after ? std::next(after->getIterator()) : block.begin();
       it != block.end(); ++it)
    ops.push_back(&*it);
  // The outputs' allocations stay where they are, before the call.
  Operation *first = nullptr;
  SmallVector<Operation *> kernelOps;
  for (Operation *op : ops) {
    if (outputAllocs.contains(op))
      continue;
    if (!first)
      first = op;
    kernelOps.push_back(op);
  }
  if (kernelOps.empty())
    return;
  for (Operation *op : ops)
    if (outputAllocs.contains(op))
      op->moveBefore(first);
  // What the kernel reads of decc_forward, in the order it first uses it.
  DenseSet<Operation *> inside(kernelOps.begin(), kernelOps.end());
  llvm::SetVector<Value> captured;
  for (Operation *op : kernelOps)
    op->walk([&](Operation *nested) {
      for (Value v : nested->getOperands()) {
        if (v.getParentRegion() != &entry.getBody())
          continue; // defined inside the kernel's own regions
        Operation *def = v.getDefiningOp();
        if (!def || !inside.contains(def))
          captured.insert(v);
      }
    });

  OpBuilder top(ctx);
  top.setInsertionPoint(entry);
  SmallVector<Type> types;
  for (Value v : captured)
    types.push_back(v.getType());
  auto kernel = func::FuncOp::create(top, entry.getLoc(), "decc_kernel",
                                     top.getFunctionType(types, {}));
  kernel.setPrivate();
  Block *body = kernel.addEntryBlock();
  OpBuilder inner = OpBuilder::atBlockBegin(body);
  auto ret = func::ReturnOp::create(inner, entry.getLoc());
  // The call takes the kernel's place in decc_forward.
  OpBuilder before(first);
  auto call = func::CallOp::create(
      before, entry.getLoc(), kernel,
      SmallVector<Value>(captured.begin(), captured.end()));
  for (Operation *op : kernelOps)
    op->moveBefore(ret);
  for (auto [outer, arg] : llvm::zip(captured, body->getArguments()))
    Value(outer).replaceUsesWithIf(arg, [&](OpOperand &use) {
      return kernel->isProperAncestor(use.getOwner());
    });

  // The same kernel for another layer is the same text.
  std::string text;
  {
    llvm::raw_string_ostream os(text);
    kernel->print(os, OpPrintingFlags().useLocalScope());
  }
  auto [it, isNew] = kernels.try_emplace(text, kernel);
  if (isNew) {
    // LLVM would inline it back into decc_forward once per layer.
    kernel->setAttr("passthrough",
                    top.getArrayAttr({top.getStringAttr("noinline")}));
    kernel.setName(("decc_kernel_" + Twine(kernelCount++)).str());
  } else {
    kernel.erase();
  }
  call.setCallee(it->second.getName());
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

Value ForwardLowering::alibiSlopes(AttentionConfigAttr config) {
  int64_t heads = config.getNumHeads();
  int64_t all = config.getAlibiHeads() ? config.getAlibiHeads() : heads;
  Value table = constantTable("alibi_slopes",
                              decc::alibiSlopes(all, config.getAlibiBiasMax()));
  if (all == heads)
    return table;
  OpBuilder::InsertionGuard guard(*b);
  if (!rankValue) {
    b->setInsertionPointAfterValue(numTokens);
    Value rank = callRuntime(contract::kRankFunction, {}, b->getI64Type());
    rankValue = arith::IndexCastOp::create(*b, b->getIndexType(), rank);
  }
  // After both the table and the rank.
  b->setInsertionPointAfterValue(table);
  if (table.getDefiningOp()->isBeforeInBlock(rankValue.getDefiningOp()))
    b->setInsertionPointAfterValue(rankValue);
  KernelBuilder kb(*b);
  Value first = kb.mul(rankValue, kb.index(heads));
  return memref::SubViewOp::create(
      *b, table, ArrayRef<OpFoldResult>{first},
      ArrayRef<OpFoldResult>{b->getIndexAttr(heads)},
      ArrayRef<OpFoldResult>{b->getIndexAttr(1)});
}

Value ForwardLowering::weightPrefetchBytes() {
  if (!prefetchBytesValue) {
    OpBuilder::InsertionGuard guard(*b);
    b->setInsertionPointAfterValue(numTokens);
    Value bytes = callRuntime(contract::kPrefetchFunction, {}, b->getI64Type());
    prefetchBytesValue =
        arith::IndexCastOp::create(*b, b->getIndexType(), bytes);
  }
  return prefetchBytesValue;
}

Value ForwardLowering::threadCount() {
  if (!threadsValue) {
    OpBuilder::InsertionGuard guard(*b);
    b->setInsertionPointAfterValue(numTokens);
    Value threads = callRuntime("omp_get_max_threads", {}, b->getI32Type());
    threadsValue = arith::IndexCastOp::create(*b, b->getIndexType(), threads);
  }
  return threadsValue;
}

Value ForwardLowering::keysSeen() {
  if (!keysSeenValue) {
    OpBuilder::InsertionGuard guard(*b);
    b->setInsertionPointAfterValue(numTokens);
    KernelBuilder kb(*b);
    // The furthest position of the call: a prompt's or a decode step's
    // last, the longest sequence's in a batched decode step.
    Value furthest = kb.forLoop(kb.index(0), numTokens, 1, {kb.index(0)},
                                [&](KernelBuilder &lb, Value t, ValueRange m) {
                                  Value pos = lb.toIndex(memref::LoadOp::create(
                                      lb.builder(), positions, ValueRange{t}));
                                  return SmallVector<Value>{lb.umax(m[0], pos)};
                                })[0];
    keysSeenValue = kb.add(furthest, kb.index(1));
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
    Value current = updateNTKLength(kb, rope, state, seen);
    Value base = dynamicNTKBase(kb, rope, current);
    auto type = MemRefType::get({half}, b->getF32Type());
    frequencies = memref::AllocaOp::create(*b, type);
    kb.forLoop(
        kb.index(0), kb.index(half), 1, [&](KernelBuilder &lb, ValueRange i) {
          lb.store(inverseFrequency(lb, rope, base, i[0]), frequencies, i[0]);
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
  QuantizedDots q = quantizedDots(op.getTable());
  isGathered = false;
  Value out = define(op.getResult(), width);
  Value extra = op.getExtra() ? bufferOf(op.getExtra()) : Value();
  int64_t vocab = cast<RankedTensorType>(op.getTable().getType()).getDimSize(0);
  // Row `id` of the table into token t's row of the result.
  auto gatherRow = [&](KernelBuilder &lb, Value id, Value t) {
    if (q.bits) {
      // A quantized (tied) table: the row dequantized element by element
      // (a prompt gathers a few rows; the head streams the table).
      lb.forLoop(lb.index(0), lb.index(width), 1,
                 [&](KernelBuilder &cb, ValueRange k) {
                   cb.store(cb.dequantized(table, q, id, k[0]), out, {t, k[0]});
                 });
      return;
    }
    lb.forEachChunk(width, [&](KernelBuilder &cb, Value k, int64_t w) {
      cb.store(cb.loadN(table, {id, k}, w), out, {t, k});
    });
  };
  KernelBuilder kb(*b);
  kb.parallel({numTokens}, [&](KernelBuilder &lb, ValueRange t) {
    Value id = lb.toIndex(memref::LoadOp::create(lb.builder(), tokens, t[0]));
    if (extra) {
      // vocab + j: row j of the image rows, the table not read.
      Value isImage = arith::CmpIOp::create(
          lb.builder(), arith::CmpIPredicate::uge, id, lb.index(vocab));
      auto ifOp = scf::IfOp::create(lb.builder(), isImage, /*withElse=*/true);
      {
        OpBuilder::InsertionGuard guard(lb.builder());
        lb.builder().setInsertionPointToStart(ifOp.thenBlock());
        Value j = lb.sub(id, lb.index(vocab));
        lb.forEachChunk(width, [&](KernelBuilder &cb, Value k, int64_t w) {
          cb.store(cb.loadN(extra, {j, k}, w), out, {t[0], k});
        });
        lb.builder().setInsertionPointToStart(ifOp.elseBlock());
        gatherRow(lb, id, t[0]);
      }
      return;
    }
    gatherRow(lb, id, t[0]);
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
        y = siluTimes(cb, x[0], x[1]);
      else
        y = gelu(cb, x[0],
                 cast<GeluOp>(op).getApproximate() == GeluApproximation::Tanh);
      cb.store(y, out, {t[0], k});
    });
  });
}

//===----------------------------------------------------------------------===//
// Collectives
//===----------------------------------------------------------------------===//

Value ForwardLowering::callRuntime(StringRef name, ArrayRef<Value> args,
                                   Type result) {
  SmallVector<Type> types(args.size(), b->getI64Type());
  TypeRange results = result ? TypeRange(result) : TypeRange();
  if (!module.lookupSymbol<func::FuncOp>(name)) {
    OpBuilder top(ctx);
    top.setInsertionPointToEnd(module.getBody());
    func::FuncOp::create(top, module.getLoc(), name,
                         top.getFunctionType(types, results))
        .setPrivate();
  }
  auto call = func::CallOp::create(*b, name, results, args);
  return result ? call.getResult(0) : Value();
}

namespace {
/// `buffer`'s first element's address, as the runtime's calls take it.
Value addressOf(ImplicitLocOpBuilder &b, Value buffer) {
  return arith::IndexCastOp::create(
      b, b.getI64Type(),
      memref::ExtractAlignedPointerAsIndexOp::create(b, buffer));
}
} // namespace

void ForwardLowering::lowerAllReduce(AllReduceOp op) {
  int64_t width = widthOf(op.getResult());
  Value in = bufferOf(op.getInput());
  Value out = define(op.getResult(), width);
  KernelBuilder kb(*b);
  Value count = arith::IndexCastOp::create(*b, b->getI64Type(),
                                           kb.mul(numTokens, kb.index(width)));
  callRuntime(contract::kAllReduceFunction,
              {addressOf(*b, in), addressOf(*b, out), count});
}

void ForwardLowering::lowerAllGather(AllGatherOp op) {
  Value part = bufferOf(op.getInput());
  Value whole = op.getResult() == returned
                    ? logits
                    : define(op.getResult(), widthOf(op.getResult()));
  Value rows = arith::IndexCastOp::create(*b, b->getI64Type(),
                                          memref::DimOp::create(*b, part, 0));
  Value cols = arith::ConstantIntOp::create(*b, widthOf(op.getInput()), 64);
  callRuntime(contract::kAllGatherFunction,
              {addressOf(*b, part), addressOf(*b, whole), rows, cols});
}

Value ForwardLowering::callerRows() {
  Value zero = arith::ConstantIndexOp::create(*b, 0);
  Value rows = memref::DimOp::create(*b, logits, zero);
  outputAllocs.insert(zero.getDefiningOp());
  outputAllocs.insert(rows.getDefiningOp());
  return rows;
}

Value ForwardLowering::logitsTarget(Value result, int64_t width) {
  // A rank's share: the caller's rows only, as %logits has them.
  if (result == returned)
    return logits;
  return define(result, width, owned.contains(result) ? Value() : callerRows());
}

//===----------------------------------------------------------------------===//
// Driver
//===----------------------------------------------------------------------===//

LogicalResult ForwardLowering::lower(Operation *op) {
  if (isa<WeightOp, ConcatWeightsOp>(op))
    return success(); // Materialized as views where a kernel reads them.
  if (isa<func::ReturnOp>(op)) {
    Value projected = gatheredPart ? gatheredPart : returned;
    if (!projected.getDefiningOp<FusedLinearOp>() &&
        !projected.getDefiningOp<LinearOp>() &&
        !projected.getDefiningOp<LMHeadOp>())
      return op->emitOpError() << "the returned logits must come from a "
                                  "projection";
    func::ReturnOp::create(*b);
    return success();
  }
  // The kernel is what the lowering appends after this marker; what it
  // puts at the top of decc_forward (weight views, tables) stays there.
  Operation *after = arith::ConstantIndexOp::create(*b, 0);
  bool lowered =
      llvm::TypeSwitch<Operation *, bool>(op)
          .Case([&](EmbeddingOp e) {
            lowerEmbedding(e);
            return true;
          })
          .Case([&](RMSNormOp n) {
            lowerNorm(op, NormKind::RMS, n.getInput(), n.getWeight(), Value(),
                      n.getEpsilon().convertToDouble());
            return true;
          })
          .Case([&](LayerNormOp n) {
            lowerNorm(op, NormKind::Layer, n.getInput(), n.getWeight(),
                      n.getBias(), n.getEpsilon().convertToDouble());
            return true;
          })
          .Case([&](FusedLinearOp l) {
            lowerProjection(l);
            return true;
          })
          .Case([&](LinearOp l) {
            lowerProjection(l);
            return true;
          })
          .Case([&](LMHeadOp h) {
            lowerLMHead(h);
            return true;
          })
          .Case([&](RoPEOp r) {
            lowerRoPE(r);
            return true;
          })
          .Case([&](AttentionOp a) {
            lowerAttention(a);
            return true;
          })
          .Case([&](CachedAttentionOp a) {
            lowerCachedAttention(a);
            return true;
          })
          .Case<AddOp, SwiGLUOp, GeluOp>([&](Operation *e) {
            lowerElementwise(e);
            return true;
          })
          .Case([&](AllReduceOp r) {
            lowerAllReduce(r);
            return true;
          })
          .Case([&](AllGatherOp g) {
            lowerAllGather(g);
            return true;
          })
          .Case([&](PatchEmbeddingOp e) {
            lowerPatchEmbedding(e);
            return true;
          })
          .Case([&](EncoderAttentionOp a) {
            lowerEncoderAttention(a);
            return true;
          })
          .Case([&](LayerScaleOp s) {
            lowerLayerScale(s);
            return true;
          })
          .Case([&](PixelShuffleOp s) {
            lowerPixelShuffle(s);
            return true;
          })
          .Default([](Operation *) { return false; });
  if (!lowered) {
    after->erase();
    return op->emitOpError() << "has no CPU lowering";
  }
  outlineKernel(after);
  after->erase();
  freeDeadOperands(op);
  return success();
}

LogicalResult ForwardLowering::run() {
  auto ret = cast<func::ReturnOp>(source.getBody().front().getTerminator());
  returned = ret.getOperand(0);
  if (auto gather = returned.getDefiningOp<AllGatherOp>())
    gatheredPart = gather.getInput();
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

  // An InternVL model's vision encoder: a second entry point, its weights
  // in the same arena, so the manifest is written after both.
  func::FuncOp forward = source;
  // (@vision: compiler/Frontend/VisionBuilder.h, kVisionFunction.)
  if (auto vision = module.lookupSymbol<func::FuncOp>("vision")) {
    arena.endDecodeWeights();
    if (failed(lowerVision(vision)))
      return failure();
  }
  decc::setManifest(module, forward, reencodeAt, arena, contract::Target::CPU,
                    std::nullopt, visionShape);
  forward.erase();
  return success();
}

} // namespace decc::cpulowering

namespace {

using namespace mlir;

struct ConvertDecoderToCPUPass
    : decc::impl::ConvertDecoderToCPUBase<ConvertDecoderToCPUPass> {
  using Base::Base;
  void runOnOperation() override {
    if (failed(decc::lowerForward<decc::cpulowering::ForwardLowering>(
            getOperation(), bool(bf16Dot), int64_t(quantizedLanes),
            int64_t(sliceInputBytes), int64_t(sliceTokens), bool(amx),
            int64_t(dequantizePromptTokens), bool(int16Dots))))
      signalPassFailure();
  }
};

} // namespace
