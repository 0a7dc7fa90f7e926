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

#include "compiler/Conversion/GPU/GPULowering.h"

#include "compiler/Conversion/Common/DynamicNTK.h"
#include "compiler/Conversion/Common/PositionTables.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include "llvm/ADT/StringSet.h"
#include "llvm/ADT/TypeSwitch.h"

namespace decc {
#define GEN_PASS_DEF_CONVERTDECODERTOGPU
#include "compiler/Conversion/Passes.h.inc"
} // namespace decc

namespace decc::gpulowering {

//===----------------------------------------------------------------------===//
// Kernels, buffers, the plan
//===----------------------------------------------------------------------===//

Kernel &GPULowering::beginKernel(StringRef name, ArrayRef<Binding> bindings,
                                 bool waitInside) {
  auto k = std::make_unique<Kernel>();
  SmallVector<Binding> all(bindings);
  if (trace)
    all.push_back({"trace", IntegerType::get(ctx, 64)});
  SmallVector<Type> types;
  for (const Binding &bd : all)
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
  for (auto [i, bd] : llvm::enumerate(all)) {
    k->args[bd.name] = k->func.getArgument(i);
    k->bindings.push_back(bd.name);
  }
  open.push_back(std::move(k));
  Kernel &kernel = *open.back();
  if (trace)
    recordTime(*kernel.kb, kernel, TraceMark::Start);
  if (programmaticLaunch) {
    // Let the next kernel be scheduled now (its own wait keeps it from
    // reading what this one writes), then wait for the previous one: its
    // writes are visible after the wait.
    NVVM::GriddepcontrolOp::create(*kernel.b,
                                   NVVM::GridDepActionKind::launch_dependents);
    if (!waitInside)
      emitDependencyWait(*kernel.kb);
    kernel.waitInside = waitInside;
  }
  return kernel;
}

void GPULowering::tracePhase(KernelBuilder &kb, int64_t phase) {
  if (trace && !open.empty())
    recordTime(kb, *open.back(), TraceMark::Phase, phase);
}

void GPULowering::recordTime(KernelBuilder &kb, Kernel &k, TraceMark mark,
                             int64_t phase) {
  assert(phase >= 0 && phase < contract::kTracePhases &&
         "a phase of the record");
  ImplicitLocOpBuilder &b = kb.builder();
  Type i64 = b.getI64Type();
  // Inline PTX with side effects, so that the read stays where it is
  // between the wait (also inline PTX) and the work around it.
  Value now =
      LLVM::InlineAsmOp::create(
          b, i64, ValueRange{}, "mov.u64 $0, %globaltimer;", "=l,~{memory}",
          /*has_side_effects=*/true,
          /*is_align_stack=*/false, LLVM::tailcallkind::TailCallKind::None,
          LLVM::AsmDialectAttr(), ArrayAttr())
          .getResult(0);
  // The start and the wait by each block's first thread, the end and a
  // phase by each warp's first lane (a block's warps finish their units
  // apart; a phase may be passed by some warps only), into the block's own
  // record.
  Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  Value who = mark == TraceMark::End || mark == TraceMark::Phase
                  ? arith::RemUIOp::create(b, tid, kb.index(32)).getResult()
                  : tid;
  Value block = kb.add(gpu::BlockIdOp::create(b, gpu::Dimension::x),
                       kb.mul(gpu::BlockIdOp::create(b, gpu::Dimension::y),
                              gpu::GridDimOp::create(b, gpu::Dimension::x)));
  Value recorded = arith::AndIOp::create(
      b, isZero(kb, who), less(kb, block, kb.index(contract::kTraceBlocks)));
  kb.ifThen(recorded, [&](KernelBuilder &tb) {
    ImplicitLocOpBuilder &ib = tb.builder();
    // A start or wait is kept as its complement, so that the maximum is
    // the first (the wait may run once a unit).
    Value v = mark == TraceMark::End || mark == TraceMark::Phase
                  ? now
                  : arith::XOrIOp::create(
                        ib, now,
                        arith::ConstantOp::create(ib, ib.getI64IntegerAttr(-1)))
                        .getResult();
    int64_t field = mark == TraceMark::Start  ? contract::kTraceStart
                    : mark == TraceMark::Wait ? contract::kTraceWait
                    : mark == TraceMark::End
                        ? contract::kTraceEnd
                        : contract::kTraceFirstPhase + phase;
    memref::AtomicRMWOp::create(
        ib, arith::AtomicRMWKind::maxu, v, k.args["trace"],
        ValueRange{tb.add(tb.mul(block, tb.index(contract::kTraceWords)),
                          tb.index(field))});
  });
}

void GPULowering::emitDependencyWait(KernelBuilder &kb, bool recordWait) {
  if (!programmaticLaunch)
    return;
  // Inline PTX that clobbers memory, not nvvm.griddepcontrol: LLVM 22
  // declares that intrinsic IntrNoMem, so loads move across it freely (a
  // GEMV's and the decode attention's early loads were sunk below it, and
  // a load of what the previous kernel writes could as well be hoisted
  // above it).
  LLVM::InlineAsmOp::create(kb.builder(), TypeRange{}, ValueRange{},
                            "griddepcontrol.wait;", "~{memory}",
                            /*has_side_effects=*/true,
                            /*is_align_stack=*/false,
                            LLVM::tailcallkind::TailCallKind::None,
                            LLVM::AsmDialectAttr(), ArrayAttr());
  // The same wait may run more than once: the block keeps its first
  // release.
  if (trace && recordWait && !open.empty())
    recordTime(kb, *open.back(), TraceMark::Wait);
}

/// One kernel for every run of the same code: a kernel that prints like an
/// earlier one (its name aside) is erased and its launches run the earlier
/// one. With weights and caches addressed from each launch's layer, a
/// model's layers share their kernels, and what the GPU toolchain compiles
/// (LLVM's O3, ptxas) no longer grows with depth.
void GPULowering::shareKernels() {
  llvm::StringMap<std::string> firstOfCode;
  llvm::StringMap<std::string> sameAs;
  for (auto func : llvm::make_early_inc_range(
           kernels.getBody()->getOps<gpu::GPUFuncOp>())) {
    std::string code;
    llvm::raw_string_ostream os(code);
    func.print(os, OpPrintingFlags().useLocalScope());
    std::string name = func.getName().str();
    size_t at = code.find("@" + name + "(");
    if (at != std::string::npos)
      code.replace(at, name.size() + 1, "@kernel");
    auto [it, first] = firstOfCode.try_emplace(code, name);
    if (first)
      continue;
    sameAs[name] = it->second;
    func.erase();
  }
  for (contract::Plan *p : {&plan, visionPlan ? &visionPlan->plan : nullptr}) {
    if (!p)
      continue;
    for (contract::Launch &launch : p->launches) {
      auto it = sameAs.find(launch.kernel);
      if (it != sameAs.end())
        launch.kernel = it->second;
    }
  }
}

void GPULowering::eraseUnlaunchedKernels() {
  llvm::StringSet<> launched;
  for (const contract::Plan *p :
       {&plan, visionPlan ? &visionPlan->plan : nullptr})
    if (p)
      for (const contract::Launch &launch : p->launches)
        launched.insert(launch.kernel);
  for (auto func :
       llvm::make_early_inc_range(kernels.getBody()->getOps<gpu::GPUFuncOp>()))
    if (!launched.contains(func.getName()))
      func.erase();
}

Value GPULowering::cacheLayer(KernelBuilder &kb, Kernel &k, int64_t layer) {
  assert((k.cacheLayer < 0 || k.cacheLayer == layer) &&
         "a kernel reads one layer's cache");
  k.cacheLayer = layer;
  return kb.index(0);
}

Value GPULowering::kvHeadRow0(KernelBuilder &kb, Kernel &k, int64_t layer,
                              Value kvHead, Value context) {
  return kb.mul(
      kb.add(kb.mul(cacheLayer(kb, k, layer), kb.index(cacheKVHeads)), kvHead),
      context);
}

/// Makes the kernel's weight views relative to the lowest of them (rounded
/// down to 256 bytes, so that every alignment the kernel relies on holds):
/// the launch adds that base to the arena pointer. Every layer lays out its
/// weights alike, so its kernels then differ from the first layer's only in
/// their launches.
static int64_t rebaseArenaViews(gpu::GPUFuncOp func, Value arena) {
  SmallVector<std::pair<memref::ViewOp, int64_t>> views;
  for (Operation *user : arena.getUsers()) {
    auto view = dyn_cast<memref::ViewOp>(user);
    if (!view)
      return 0;
    std::optional<int64_t> offset = getConstantIntValue(view.getByteShift());
    if (!offset)
      return 0;
    views.push_back({view, *offset});
  }
  if (views.empty())
    return 0;
  int64_t base = views.front().second;
  for (auto &[_, offset] : views)
    base = std::min(base, offset);
  base = base / 256 * 256;
  for (auto &[view, offset] : views) {
    OpBuilder b(view);
    Operation *old = view.getByteShift().getDefiningOp();
    view.getByteShiftMutable().assign(
        arith::ConstantIndexOp::create(b, view.getLoc(), offset - base));
    if (old->use_empty())
      old->erase();
  }
  return base;
}

void GPULowering::endKernel(Kernel &k, contract::Grid gridSpec,
                            LaunchWhen when) {
  // A kernel that waits inside may have threads that never reached their
  // wait; every thread waits before it ends, so that this grid completes
  // only after its predecessor (a later kernel's wait relies on it).
  if (k.waitInside)
    emitDependencyWait(*k.kb, /*recordWait=*/false);
  if (trace)
    recordTime(*k.kb, k, TraceMark::End);
  gpu::ReturnOp::create(*k.b);
  contract::Launch launch;
  if (k.args.count("arena"))
    launch.arenaOffset = rebaseArenaViews(k.func, k.args["arena"]);
  launch.cacheLayer = std::max<int64_t>(k.cacheLayer, 0);
  launch.kernel = k.func.getName().str();
  launch.grid = gridSpec;
  launch.block = k.threads;
  launch.args = std::move(k.bindings);
  launch.when = when;
  launch.sharedBytes = k.sharedBytes;
  launch.cluster = k.cluster;
  launch.skipInBatched = k.skipInBatched;
  plan.launches.push_back(std::move(launch));
}

/// Blocks in x: ceil(units * times / perBlock); in y: y * ceil(yTimes /
/// yTile).
contract::Grid GPULowering::grid(int64_t units, int64_t perBlock,
                                 GridScale times, int64_t y, GridScale yTimes,
                                 int64_t yTile) {
  return contract::Grid{units, perBlock, times, y, yTimes, yTile};
}

contract::Grid GPULowering::residentGrid(int64_t units, int64_t perBlock) {
  contract::Grid g = grid(units, perBlock, GridScale::One);
  g.resident = true;
  return g;
}

Value GPULowering::step(Kernel &k, StepField field) {
  return step(*k.kb, k, field);
}

Value GPULowering::step(KernelBuilder &kb, Kernel &k, StepField field) {
  Value v = memref::LoadOp::create(kb.builder(), k.args["step"],
                                   ValueRange{kb.index(field)});
  return kb.toIndex(v);
}

Value GPULowering::pageRow(KernelBuilder &kb, Kernel &k, Value token) {
  return kb.mul(token, step(kb, k, kStepTableStride));
}

Value GPULowering::cacheRowOf(KernelBuilder &kb, Kernel &k, Value pageRow,
                              Value pos) {
  Value entry = kb.add(pageRow, kb.div(pos, kb.index(contract::kCacheBlock)));
  Value block = arith::IndexCastUIOp::create(
      kb.builder(), kb.builder().getIndexType(),
      memref::LoadOp::create(kb.builder(), k.args["block_table"],
                             ValueRange{entry}));
  return kb.add(kb.mul(block, kb.index(contract::kCacheBlock)),
                arith::RemUIOp::create(kb.builder(), pos,
                                       kb.index(contract::kCacheBlock)));
}

void GPULowering::requestOccupancy(Kernel &k, int64_t blocksPerSM,
                                   bool raiseOnly) {
  if (raiseOnly) {
    k.func->setAttr(kOccupancyRequestAttr,
                    DenseI32ArrayAttr::get(
                        ctx, {int32_t(k.threads), int32_t(blocksPerSM)}));
    return;
  }
  k.func->setAttr("nvvm.maxntid",
                  DenseI32ArrayAttr::get(ctx, {int32_t(k.threads), 1, 1}));
  k.func->setAttr("nvvm.minctasm", IntegerAttr::get(IntegerType::get(ctx, 32),
                                                    int32_t(blocksPerSM)));
}

Value GPULowering::sharedFloats(Kernel &k, int64_t n) {
  return sharedBuffer(k, Float32Type::get(ctx), n);
}

Value GPULowering::sharedBuffer(Kernel &k, Type element, int64_t n) {
  Value buffer = k.func.addWorkgroupAttribution(
      MemRefType::get({n}, element, AffineMap(),
                      gpu::AddressSpaceAttr::get(
                          ctx, gpu::GPUDialect::getWorkgroupAddressSpace())),
      k.func.getLoc());
  // 16-byte aligned: vector copies and ldmatrix rows are 16 bytes.
  k.func.setWorkgroupAttributionAttr(
      k.func.getNumWorkgroupAttributions() - 1,
      LLVM::LLVMDialect::getAlignAttrName(),
      IntegerAttr::get(IntegerType::get(ctx, 64), 16));
  return buffer;
}

Value GPULowering::arenaView(KernelBuilder &kb, Kernel &k, Type element,
                             int64_t offset) {
  return memref::ViewOp::create(kb.builder(), MemRefType::get({kFlat}, element),
                                k.args["arena"], kb.index(offset),
                                ValueRange{});
}

Value GPULowering::weightView(KernelBuilder &kb, Kernel &k, Value weight,
                              int64_t offset, QuantizedWeight &quant) {
  auto type = cast<RankedTensorType>(weight.getType());
  contract::WeightSlot slot = slotLayout(type);
  quant = {};
  if (!slot.quantBits)
    return arenaView(kb, k, type.getElementType(), offset);
  quant.bits = slot.quantBits;
  quant.groupSize = slot.groupSize;
  quant.rowBytes = slot.rowBytes();
  quant.groups = slot.groups();
  Type i8 = IntegerType::get(ctx, 8);
  Value bytes = arenaView(kb, k, i8, offset);
  quant.scales =
      arenaView(kb, k, Float16Type::get(ctx), offset + slot.scalesOffset());
  if (quant.bits == 4)
    quant.zeros = arenaView(kb, k, i8, offset + slot.zerosOffset());
  return bytes;
}

Value dequantizedAt(KernelBuilder &kb, Value bytes, const QuantizedWeight &q,
                    Value row, Value col) {
  // KernelBuilder::dequantized on flat views: the row's first byte and its
  // group's index computed here.
  Value v = kb.quantizedInteger(bytes, q.bits, {}, col,
                                kb.mul(row, kb.index(q.rowBytes)));
  Value group = q.groupOf(kb, row, col);
  if (q.bits == 4)
    v = kb.sub(
        v, arith::UIToFPOp::create(kb.builder(), kb.builder().getF32Type(),
                                   memref::LoadOp::create(kb.builder(), q.zeros,
                                                          ValueRange{group})));
  return kb.mul(v, kb.loadF32(q.scales, {group}));
}

/// A buffer of `width` floats per token, reusing the smallest one whose
/// value is dead and that is wide enough (first fit let a narrow request
/// take a wide buffer, and every layer then allocated a wide one anew).
std::string GPULowering::newBuffer(int64_t width) {
  auto best = freeBuffers.end();
  for (auto it = freeBuffers.begin(); it != freeBuffers.end(); ++it)
    if (it->second >= width &&
        (best == freeBuffers.end() || it->second < best->second))
      best = it;
  if (best != freeBuffers.end()) {
    std::string name = best->first;
    freeBuffers.erase(best);
    return name;
  }
  std::string name = "buf:" + std::to_string(plan.buffers.size());
  plan.buffers.push_back({name, contract::PlanBuffer::Size::PerToken, width});
  return name;
}

void GPULowering::release(Value v) {
  auto it = bufferOf.find(v);
  if (it == bufferOf.end())
    return;
  freeBuffers.push_back({it->second, widthOf[v]});
}

Value shuffleReduce(KernelBuilder &kb, Value v, ArrayRef<int32_t> offsets,
                    bool isMax) {
  for (int32_t offset : offsets) {
    Value other = gpu::ShuffleOp::create(kb.builder(), v, offset, 32,
                                         gpu::ShuffleMode::XOR)
                      .getShuffleResult();
    v = isMax ? kb.fmax(v, other) : kb.add(v, other);
  }
  return v;
}

/// Sum over the 32 lanes of a warp; every lane gets it.
Value GPULowering::warpSum(KernelBuilder &kb, Value v) {
  return shuffleReduce(kb, v, kWholeWarp, /*isMax=*/false);
}

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
Value negate(KernelBuilder &kb, Value cond) {
  return arith::XOrIOp::create(
      kb.builder(), cond,
      arith::ConstantOp::create(kb.builder(), kb.builder().getBoolAttr(true)));
}

//===----------------------------------------------------------------------===//
// Embedding
//===----------------------------------------------------------------------===//

void GPULowering::lowerEmbedding(EmbeddingOp op) {
  int64_t width = featuresOf(op.getResult());
  int64_t offset = arena.offsetOf(op.getTable(), std::nullopt, true);
  std::string out = defineBuffer(op.getResult());
  Type f32 = Float32Type::get(ctx), i8 = IntegerType::get(ctx, 8),
       i64 = IntegerType::get(ctx, 64);
  // Ids past the table's rows are image rows (`image`: the vision
  // encoder's output the runtime holds, a row per image token).
  int64_t tableRows =
      cast<RankedTensorType>(op.getTable().getType()).getDimSize(0);
  SmallVector<Binding> binds = {{"arena", i8}, {"tokens", i64}, {out, f32}};
  if (op.getExtra())
    binds.push_back({"image", f32});
  elementwiseKernel(
      "embedding", binds, width,
      [&](KernelBuilder &ib, Kernel &k, Value t, Value col) {
        ImplicitLocOpBuilder &b = ib.builder();
        QuantizedWeight quant;
        Value table = weightView(ib, k, op.getTable(), offset, quant);
        Value id = ib.toIndex(
            memref::LoadOp::create(b, k.args["tokens"], ValueRange{t}));
        // A quantized (tied) table: the row dequantized as the LM head
        // reads it.
        auto fromTable = [&](KernelBuilder &rb) {
          return quant.bits
                     ? dequantizedAt(rb, table, quant, id, col)
                     : rb.loadF32(table,
                                  {rb.add(rb.mul(id, rb.index(width)), col)});
        };
        if (!op.getExtra())
          return fromTable(ib);
        Value isImage = negate(ib, less(ib, id, ib.index(tableRows)));
        auto branch = scf::IfOp::create(b, TypeRange{f32}, isImage,
                                        /*withElseRegion=*/true);
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPointToStart(branch.thenBlock());
        Value row = ib.sub(id, ib.index(tableRows));
        scf::YieldOp::create(
            b, ib.loadF32(k.args["image"],
                          {ib.add(ib.mul(row, ib.index(width)), col)}));
        b.setInsertionPointToStart(branch.elseBlock());
        scf::YieldOp::create(b, fromTable(ib));
        return branch.getResult(0);
      },
      out);
}

void GPULowering::elementwiseKernel(
    StringRef name, ArrayRef<Binding> bindings, int64_t width,
    llvm::function_ref<Value(KernelBuilder &, Kernel &, Value row, Value col)>
        element,
    const std::string &out, GridScale rows) {
  Kernel &k = beginKernel(name, bindings);
  KernelBuilder &kb = *k.kb;
  Value tid = gpu::ThreadIdOp::create(*k.b, gpu::Dimension::x);
  Value col = kb.add(kb.mul(gpu::BlockIdOp::create(*k.b, gpu::Dimension::x),
                            kb.index(kThreads)),
                     tid);
  Value row = gpu::BlockIdOp::create(*k.b, gpu::Dimension::y);
  kb.ifThen(less(kb, col, kb.index(width)), [&](KernelBuilder &ib) {
    ib.store(element(ib, k, row, col), k.args[out],
             {ib.add(ib.mul(row, ib.index(width)), col)});
  });
  endKernel(k, grid(width, kThreads, GridScale::One, 1, rows));
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
    Kernel &k = beginKernel("rope_state", {{"step", i64}, {"state", i64}});
    KernelBuilder &kb = *k.kb;
    Value tid = gpu::ThreadIdOp::create(*k.b, gpu::Dimension::x);
    kb.ifThen(isZero(kb, tid), [&](KernelBuilder &ib) {
      updateNTKLength(ib, rope, k.args["state"], step(k, kStepKeys));
    });
    endKernel(k, grid(1, 1, GridScale::One));
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
  if (rope.getKind() == RoPEKind::Dynamic)
    binds.push_back({"state", i64});
  Kernel &k = beginKernel("rope_table", binds);
  KernelBuilder &kb = *k.kb;
  // A thread per rotated pair, strided over the block for long heads.
  Value tid = gpu::ThreadIdOp::create(*k.b, gpu::Dimension::x);
  Value t = gpu::BlockIdOp::create(*k.b, gpu::Dimension::y);
  kb.forLoop(
      tid, kb.index(half), kThreads, [&](KernelBuilder &ib, ValueRange iv) {
        Value i = iv[0];
        Value inv;
        if (rope.getKind() == RoPEKind::Dynamic) {
          Value seq = ib.toIndex(memref::LoadOp::create(
              ib.builder(), k.args["state"], ValueRange{ib.index(0)}));
          inv = inverseFrequency(ib, rope, dynamicNTKBase(ib, rope, seq), i);
        } else {
          Value table = arenaView(ib, k, f32, shortOffset);
          inv = ib.loadF32(table, {i});
          if (longOffset >= 0) {
            Value longTable = arenaView(ib, k, f32, longOffset);
            Value isLong = arith::CmpIOp::create(
                ib.builder(), arith::CmpIPredicate::ugt, step(k, kStepKeys),
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
  endKernel(k, grid(1, 1, GridScale::One, 1, GridScale::Tokens));
  return {cosName, sinName};
}

//===----------------------------------------------------------------------===//
// Driver
//===----------------------------------------------------------------------===//

void linearsAsProjections(Block &block) {
  for (auto linear : llvm::make_early_inc_range(block.getOps<LinearOp>())) {
    OpBuilder rewriter(linear);
    auto fused = FusedLinearOp::create(
        rewriter, linear.getLoc(), linear.getResultTypes(), linear.getInput(),
        linear.getWeight(), linear.getBias(), Value(), Value(), Value(),
        Value(), Value(), linear.getPacking(), {}, {}, {}, {}, {});
    linear->replaceAllUsesWith(fused->getResults());
    linear.erase();
  }
}

//===----------------------------------------------------------------------===//
// Collectives of a tensor-parallel build
//===----------------------------------------------------------------------===//

void GPULowering::lowerAllReduce(AllReduceOp op) {
  // In place: the result is the input's buffer, summed over the ranks.
  std::string buffer = bufferOf[op.getInput()];
  bufferOf[op.getResult()] = buffer;
  widthOf[op.getResult()] = widthOf[op.getInput()];
  contract::Launch launch;
  launch.collective = contract::Collective::AllReduce;
  launch.floats = featuresOf(op.getResult());
  launch.args = {buffer};
  plan.launches.push_back(std::move(launch));
}

LogicalResult GPULowering::lowerAllGather(AllGatherOp op) {
  if (op.getResult() != returned)
    return op.emitOpError() << "gathers something other than the logits, "
                               "which the GPU lowering does not";
  Type f32 = Float32Type::get(ctx), i64 = IntegerType::get(ctx, 64);
  int64_t part = featuresOf(op.getInput()), whole = featuresOf(op.getResult());
  std::string input = bufferOf[op.getInput()];
  // The ranks' last rows, [ranks][rows][part], then as the logits' rows.
  std::string gathered = newBuffer(whole);
  contract::Launch launch;
  launch.collective = contract::Collective::AllGather;
  launch.floats = part;
  launch.args = {input, gathered};
  plan.launches.push_back(std::move(launch));
  elementwiseKernel(
      "gathered_logits", {{"step", i64}, {gathered, f32}, {"logits", f32}},
      whole,
      [&](KernelBuilder &ib, Kernel &k, Value row, Value col) {
        Value rank = ib.div(col, ib.index(part));
        Value j = arith::RemUIOp::create(ib.builder(), col, ib.index(part));
        Value rows = step(ib, k, kStepRows);
        Value from =
            ib.add(ib.mul(ib.add(ib.mul(rank, rows), row), ib.index(part)), j);
        return ib.loadF32(k.args[gathered], {from});
      },
      "logits", GridScale::Rows);
  return success();
}

void GPULowering::emitLogitsArgmax() {
  Type f32 = Float32Type::get(ctx), i32 = IntegerType::get(ctx, 32),
       i64 = IntegerType::get(ctx, 64);
  // A block a row: each thread the first of its largest over a stride of
  // the row, then the warps' by shuffles and the block's through shared
  // memory, ties to the lower index.
  constexpr int64_t kArgmaxThreads = 1024, kArgmaxWarps = kArgmaxThreads / 32,
                    kArgmaxLoads = 8;
  Kernel &k = beginKernel("logits_argmax",
                          {{"step", i64}, {"logits", f32}, {"argmax", i64}});
  k.threads = kArgmaxThreads;
  KernelBuilder &kb = *k.kb;
  ImplicitLocOpBuilder &b = *k.b;
  Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  Value row = gpu::BlockIdOp::create(b, gpu::Dimension::x);
  Value base = kb.mul(row, kb.index(vocab));
  auto toI32 = [&](KernelBuilder &ib, Value i) -> Value {
    return arith::IndexCastOp::create(ib.builder(), i32, i);
  };
  // (v, i) becomes (ov, oi) where that is larger, or equal at a lower
  // index.
  auto keepBetter = [&](KernelBuilder &ib, Value ov, Value oi, Value &v,
                        Value &i) {
    Value above =
        arith::CmpFOp::create(ib.builder(), arith::CmpFPredicate::OGT, ov, v);
    Value tie = arith::AndIOp::create(
        ib.builder(),
        arith::CmpFOp::create(ib.builder(), arith::CmpFPredicate::OEQ, ov, v),
        arith::CmpIOp::create(ib.builder(), arith::CmpIPredicate::slt, oi, i));
    Value take = arith::OrIOp::create(ib.builder(), above, tie);
    v = arith::SelectOp::create(ib.builder(), take, ov, v);
    i = arith::SelectOp::create(ib.builder(), take, oi, i);
  };
  // Each thread's loads of a step issued together (a block a row: one
  // load at a time left a row's 370 KB at ~3 GB/s, 140 us on an H100).
  SmallVector<Value> mine = kb.forLoop(
      tid, kb.index(vocab), kArgmaxThreads * kArgmaxLoads,
      {kb.f32(-INFINITY), arith::ConstantOp::create(b, b.getI32IntegerAttr(0))},
      [&](KernelBuilder &lb, Value c0, ValueRange acc) {
        SmallVector<Value> cs, vs;
        for (int64_t j = 0; j < kArgmaxLoads; ++j) {
          Value c = lb.add(c0, lb.index(j * kArgmaxThreads));
          Value at = lb.umin(c, lb.index(vocab - 1));
          cs.push_back(c);
          vs.push_back(lb.loadF32(k.args["logits"], {lb.add(base, at)}));
        }
        Value best = acc[0], index = acc[1];
        for (int64_t j = 0; j < kArgmaxLoads; ++j) {
          Value take = arith::AndIOp::create(
              lb.builder(), less(lb, cs[j], lb.index(vocab)),
              arith::CmpFOp::create(lb.builder(), arith::CmpFPredicate::OGT,
                                    vs[j], best));
          best = arith::SelectOp::create(lb.builder(), take, vs[j], best);
          index = arith::SelectOp::create(lb.builder(), take, toI32(lb, cs[j]),
                                          index);
        }
        return SmallVector<Value>{best, index};
      });
  Value v = mine[0], i = mine[1];
  for (int32_t offset : {16, 8, 4, 2, 1}) {
    Value ov = gpu::ShuffleOp::create(b, v, offset, 32, gpu::ShuffleMode::XOR)
                   .getShuffleResult();
    Value oi = gpu::ShuffleOp::create(b, i, offset, 32, gpu::ShuffleMode::XOR)
                   .getShuffleResult();
    keepBetter(kb, ov, oi, v, i);
  }
  Value values = sharedFloats(k, kArgmaxWarps);
  Value indices = sharedBuffer(k, i32, kArgmaxWarps);
  Value lane = arith::RemUIOp::create(b, tid, kb.index(32));
  Value warp = kb.div(tid, kb.index(32));
  kb.ifThen(isZero(kb, lane), [&](KernelBuilder &ib) {
    memref::StoreOp::create(ib.builder(), v, values, ValueRange{warp});
    memref::StoreOp::create(ib.builder(), i, indices, ValueRange{warp});
  });
  gpu::BarrierOp::create(b);
  kb.ifThen(isZero(kb, tid), [&](KernelBuilder &ib) {
    Value bv =
        memref::LoadOp::create(ib.builder(), values, ValueRange{ib.index(0)});
    Value bi =
        memref::LoadOp::create(ib.builder(), indices, ValueRange{ib.index(0)});
    for (int64_t w = 1; w < kArgmaxWarps; ++w) {
      Value ov =
          memref::LoadOp::create(ib.builder(), values, ValueRange{ib.index(w)});
      Value oi = memref::LoadOp::create(ib.builder(), indices,
                                        ValueRange{ib.index(w)});
      keepBetter(ib, ov, oi, bv, bi);
    }
    ib.store(arith::ExtSIOp::create(ib.builder(), i64, bi), k.args["argmax"],
             {row});
  });
  endKernel(k, grid(1, 1, GridScale::Rows), LaunchWhen::Batched);
}

LogicalResult GPULowering::lower(Operation *op) {
  if (isa<WeightOp, ConcatWeightsOp, func::ReturnOp>(op))
    return success();
  LogicalResult lowered =
      llvm::TypeSwitch<Operation *, LogicalResult>(op)
          .Case([&](EmbeddingOp e) -> LogicalResult {
            lowerEmbedding(e);
            return success();
          })
          .Case<FusedLinearOp, LinearOp, LMHeadOp>(
              [&](Operation *p) { return lowerProjection(p); })
          .Case([&](CachedAttentionOp a) { return lowerAttention(a); })
          .Case([&](AddOp a) {
            lowerAdd(a);
            return success();
          })
          .Case([&](AllReduceOp r) {
            lowerAllReduce(r);
            return success();
          })
          .Case([&](AllGatherOp g) { return lowerAllGather(g); })
          // The vision encoder's (lowerVision).
          .Case([&](PatchEmbeddingOp e) -> LogicalResult {
            if (slotLayout(e.getWeight().getType()).quantBits)
              return e.emitOpError()
                     << "has quantized weights, which its GPU kernel does "
                        "not read";
            lowerPatchEmbedding(e);
            return success();
          })
          .Case([&](EncoderAttentionOp a) {
            lowerEncoderAttention(a);
            return success();
          })
          .Case([&](RMSNormOp n) {
            lowerRMSNorm(n);
            return success();
          })
          .Case([&](LayerScaleOp s) {
            lowerLayerScale(s);
            return success();
          })
          .Case([&](PixelShuffleOp s) {
            lowerPixelShuffle(s);
            return success();
          })
          .Default([](Operation *other) {
            return other->emitOpError() << "has no GPU lowering yet";
          });
  if (failed(lowered))
    return failure();
  // An all-reduce's result keeps its input's buffer.
  if (isa<AllReduceOp>(op))
    return success();
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
  cacheElement = kv.getElement();
  vocab = cast<RankedTensorType>(source.getResultTypes()[0]).getDimSize(1);
  returned = cast<func::ReturnOp>(source.getBody().front().getTerminator())
                 .getOperand(0);
  // A tensor-parallel build's row-parallel projections (O, down), which
  // its collectives keep apart from their residual adds.
  linearsAsProjections(source.getBody().front());
  lastUse = lastUses(source.getBody().front());
  for (Operation &op : source.getBody().front()) {
    if (auto linear = dyn_cast<FusedLinearOp>(op)) {
      Type w =
          cast<RankedTensorType>(linear.getWeight().getType()).getElementType();
      halfPrecision = w.isBF16() || w.isF16();
      if (halfPrecision)
        halfElement = w;
    }
  }
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
  emitLogitsArgmax();
  plan.programmaticLaunch = programmaticLaunch;

  // An InternVL model's vision encoder: a second plan, its weights in the
  // same arena, so the manifest is written after both.
  if (auto vision = module.lookupSymbol<func::FuncOp>("vision")) {
    contract::Plan forwardPlan = std::move(plan);
    arena.endDecodeWeights();
    if (failed(lowerVision(vision)))
      return failure();
    plan = std::move(forwardPlan);
  }
  shareKernels();
  eraseUnlaunchedKernels();
  decc::setManifest(module, source, reencodeAt, arena, contract::Target::CUDA,
                    std::move(plan), visionShape, std::move(visionPlan));
  source.erase();
  return success();
}

} // namespace decc::gpulowering

namespace {

using namespace mlir;

struct ConvertDecoderToGPUPass
    : decc::impl::ConvertDecoderToGPUBase<ConvertDecoderToGPUPass> {
  using Base::Base;
  void runOnOperation() override {
    if (!decc::contract::isClusterSize(decodeCluster)) {
      getOperation().emitError()
          << "decode-cluster must be a power of two from 1 to "
          << decc::contract::kMaxClusterBlocks << ", not "
          << int64_t(decodeCluster);
      return signalPassFailure();
    }
    if (gemvUnitsPerBlock < 0 || gemvUnitsPerBlock > 16 ||
        !llvm::isPowerOf2_64(std::max<int64_t>(gemvUnitsPerBlock, 1))) {
      getOperation().emitError()
          << "gemv-units-per-block must be 0 or a power of two up to 16, not "
          << int64_t(gemvUnitsPerBlock);
      return signalPassFailure();
    }
    if (failed(decc::lowerForward<decc::gpulowering::GPULowering>(
            getOperation(), bool(tensorCores), bool(programmaticLaunch),
            bool(warpgroupMma), int64_t(decodeCluster), bool(fusedAppend),
            int64_t(gemvUnitsPerBlock), bool(trace))))
      signalPassFailure();
  }
};

} // namespace
