//===- GPUGemvChains.cpp - a decode step's GEMVs back to back in one kernel ===//
//
// Each decode GEMV ran as a kernel of its own: O, gate/up, down, then the
// next layer's QKV. With programmatic launch a kernel's blocks may load
// their first weights before waiting on the previous kernel, but only once
// they are resident, and a GEMV's resident grid fills the card until its
// last block ends: the next kernel's loads begin after the drain and the
// launch. On an H200 each GEMV kernel cost 1.5-2 us a layer more than its
// bytes (docs/PERF.md), most of a small model's step.
//
// Here consecutive decode GEMVs whose grids and blocks agree become the
// phases of one kernel on one resident grid. Between two phases a
// grid-wide barrier replaces the kernel boundary: a block arrives when its
// warps are done with the earlier phase, and a warp of the later one waits
// where the GEMV waited on its predecessor, after its first weight loads,
// so those stream while the earlier phase's last units finish.
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/GPU/GPULowering.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/IRMapping.h"

#include "llvm/ADT/STLExtras.h"

namespace decc::gpulowering {

namespace {

/// A thread's registers times the threads of a block an SM holds: 65536
/// registers an SM at 128 a thread.
constexpr int64_t kChainRegisters = 65536 / 128;

bool isDependencyWait(Operation *op) {
  auto inlineAsm = dyn_cast<LLVM::InlineAsmOp>(op);
  return inlineAsm && inlineAsm.getAsmString() == kDependencyWaitPtx;
}

bool isLaunchDependents(Operation *op) {
  auto control = dyn_cast<NVVM::GriddepcontrolOp>(op);
  return control &&
         control.getKind() == NVVM::GridDepActionKind::launch_dependents;
}

Value inlinePtx(ImplicitLocOpBuilder &b, TypeRange results, ValueRange operands,
                StringRef ptx, StringRef constraints) {
  auto op = LLVM::InlineAsmOp::create(
      b, results, operands, ptx, constraints, /*has_side_effects=*/true,
      /*is_align_stack=*/false, LLVM::tailcallkind::TailCallKind::None,
      LLVM::AsmDialectAttr(), ArrayAttr());
  return results.empty() ? Value() : op.getResult(0);
}

/// A barrier's state, 128-byte lines of u64s that only grow: kSlots
/// arrival counters (block b adds one to counter b % kSlots), a root
/// counter the block completing a slot adds one to, and kFlags copies of
/// the generation the last block publishes. One counter for every block
/// serialized 528 same-address atomics at each barrier, and every waiting
/// warp polled that line; the measured barrier cost more than the kernel
/// boundary it replaced (docs/PERF.md). Runs follow one another (a run's
/// first arrival comes after the previous run's end), so after E runs
/// every counter holds E times its arrivals a run: no reset.
constexpr int64_t kSlots = 16, kFlags = 32, kLine = 128;
constexpr int64_t kRootLine = kSlots, kFirstFlagLine = kSlots + 1;
constexpr int64_t kBarrierBytes = (kFirstFlagLine + kFlags) * kLine;

Value counterAddress(ImplicitLocOpBuilder &b, Value counter) {
  Value address = memref::ExtractAlignedPointerAsIndexOp::create(b, counter);
  return arith::IndexCastOp::create(b, b.getI64Type(), address);
}

/// Thread 0's arrival: the generation that passes the barrier ($0), from
/// the barrier's lines ($1), this block ($2) and the grid's blocks ($3).
std::string arrivalPtx() {
  std::string ptx = R"({
	.reg .pred %p;
	.reg .b32 %s, %q, %r, %n;
	.reg .b64 %a, %old, %ns, %t;
	rem.u32 %s, $2, SLOTS;
	div.u32 %q, $3, SLOTS;
	rem.u32 %r, $3, SLOTS;
	setp.lt.u32 %p, %s, %r;
	selp.u32 %n, 1, 0, %p;
	add.u32 %n, %n, %q;
	cvt.u64.u32 %ns, %n;
	mul.wide.u32 %a, %s, LINE;
	add.u64 %a, %a, $1;
	atom.acq_rel.gpu.add.u64 %old, [%a], 1;
	div.u64 %t, %old, %ns;
	add.u64 $0, %t, 1;
	add.u64 %old, %old, 1;
	rem.u64 %t, %old, %ns;
	setp.ne.u64 %p, %t, 0;
	@%p bra DECC_ARRIVED_${:uid};
	min.u32 %n, $3, SLOTS;
	cvt.u64.u32 %ns, %n;
	atom.acq_rel.gpu.add.u64 %old, [$1+ROOT], 1;
	add.u64 %old, %old, 1;
	rem.u64 %t, %old, %ns;
	setp.ne.u64 %p, %t, 0;
	@%p bra DECC_ARRIVED_${:uid};
FLAGS
DECC_ARRIVED_${:uid}:
})";
  auto replace = [&](StringRef key, const std::string &with) {
    for (size_t at; (at = ptx.find(key.str())) != std::string::npos;)
      ptx.replace(at, key.size(), with);
  };
  std::string flags;
  for (int64_t i = 0; i < kFlags; ++i)
    flags += "\tst.release.gpu.u64 [$1+" +
             std::to_string((kFirstFlagLine + i) * kLine) + "], $0;\n";
  replace("FLAGS\n", flags);
  replace("SLOTS", std::to_string(kSlots));
  replace("LINE", std::to_string(kLine));
  replace("ROOT", std::to_string(kRootLine * kLine));
  return ptx;
}

/// Every thread of the block, after the earlier phase; returns the
/// generation that passes the barrier (kept in `slot`, one u64 of shared
/// memory, for the block).
Value arrive(ImplicitLocOpBuilder &b, Value address, Value slot) {
  KernelBuilder kb(b);
  Type i32 = b.getI32Type();
  // bar.sync orders the block's stores before thread 0's release.
  gpu::BarrierOp::create(b);
  Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  kb.ifThen(isZero(kb, tid), [&](KernelBuilder &ib) {
    ImplicitLocOpBuilder &tb = ib.builder();
    Value block = arith::IndexCastOp::create(
        tb, i32, gpu::BlockIdOp::create(tb, gpu::Dimension::x));
    Value blocks = arith::IndexCastOp::create(
        tb, i32, gpu::GridDimOp::create(tb, gpu::Dimension::x));
    Value generation =
        inlinePtx(tb, {tb.getI64Type()}, {address, block, blocks},
                  arrivalPtx(), "=l,l,r,r,~{memory}");
    memref::StoreOp::create(tb, generation, slot, ValueRange{ib.index(0)});
  });
  gpu::BarrierOp::create(b);
  return memref::LoadOp::create(b, slot, ValueRange{kb.index(0)});
}

/// The flag this thread's warp polls: one of kFlags, so that ~64 warps
/// share a line, not all of them.
Value flagAddress(ImplicitLocOpBuilder &b, Value address) {
  KernelBuilder kb(b);
  Value warp = kb.add(
      kb.mul(gpu::BlockIdOp::create(b, gpu::Dimension::x),
             kb.div(gpu::BlockDimOp::create(b, gpu::Dimension::x),
                    kb.index(32))),
      kb.div(gpu::ThreadIdOp::create(b, gpu::Dimension::x), kb.index(32)));
  Value line = kb.add(arith::RemUIOp::create(b, warp, kb.index(kFlags)),
                      kb.index(kFirstFlagLine));
  Value offset = arith::IndexCastOp::create(b, b.getI64Type(),
                                            kb.mul(line, kb.index(kLine)));
  return arith::AddIOp::create(b, address, offset);
}

/// Spins until the flag holds the generation. Every lane polls (one
/// request a warp), each with acquire, so that its later loads see what
/// the blocks wrote before arriving.
void waitFor(ImplicitLocOpBuilder &b, Value flag, Value generation) {
  // One inline block, not a loop of the IR: the GEMV's first weight loads
  // and its arithmetic stay in one basic block around it, as they were
  // around the griddepcontrol.wait it replaces.
  inlinePtx(b, {}, {flag, generation},
            "{\n\t.reg .pred %p;\n\t.reg .b64 %v;\n"
            "DECC_SPIN_${:uid}:\n\t"
            "ld.acquire.gpu.u64 %v, [$0];\n\t"
            "setp.lt.u64 %p, %v, $1;\n\t"
            "@!%p bra DECC_PASSED_${:uid};\n\t"
            "nanosleep.u32 32;\n\t"
            "bra DECC_SPIN_${:uid};\n"
            "DECC_PASSED_${:uid}:\n}",
            "l,l,~{memory}");
}

bool hasArg(const contract::Launch &l, StringRef name) {
  return llvm::is_contained(l.args, name);
}

} // namespace

bool GPULowering::canChain(const contract::Launch &a, const contract::Launch &b,
                           bool adjacent) const {
  if (!chainableGemvs.contains(a.kernel) || !chainableGemvs.contains(b.kernel))
    return false;
  // A decode-only launch may move past prompt-only ones; one that every
  // call runs may not.
  if (a.when != b.when || (a.when == LaunchWhen::Always && !adjacent))
    return false;
  if (a.block != b.block || a.sharedBytes || b.sharedBytes || a.cluster != 1 ||
      b.cluster != 1)
    return false;
  for (const contract::Grid *g : {&a.grid, &b.grid})
    if (!g->resident || g->times != GridScale::One || g->y != 1)
      return false;
  // One layer's slab of the caches a launch.
  return !(hasArg(a, "k_cache") && hasArg(b, "k_cache") &&
           a.cacheLayer != b.cacheLayer);
}

contract::Launch GPULowering::chain(const contract::Launch &a,
                                    const contract::Launch &next) {
  auto first = kernels.lookupSymbol<gpu::GPUFuncOp>(a.kernel);
  auto second = kernels.lookupSymbol<gpu::GPUFuncOp>(next.kernel);
  // The first kernel's bindings, the second's it lacks, then the counter
  // (a chain of three phases keeps the one it has).
  std::vector<std::string> names = a.args;
  SmallVector<Type> types(first.getArgumentTypes());
  for (auto [name, type] : llvm::zip(next.args, second.getArgumentTypes())) {
    if (llvm::is_contained(names, name))
      continue;
    names.push_back(name);
    types.push_back(type);
  }
  bool chained = llvm::any_of(names, [](const std::string &n) {
    return StringRef(n).starts_with("barrier:");
  });
  if (!chained) {
    std::string counter = "barrier:" + std::to_string(barrierCounters++);
    plan.buffers.push_back(
        {counter, contract::PlanBuffer::Size::Fixed, kBarrierBytes / 4});
    names.push_back(counter);
    types.push_back(MemRefType::get({kFlat}, IntegerType::get(ctx, 64)));
  }

  OpBuilder top(ctx);
  top.setInsertionPoint(first);
  std::string symbol = "gemvs_" + std::to_string(kernelCount++);
  auto func = gpu::GPUFuncOp::create(top, first.getLoc(), symbol,
                                     top.getFunctionType(types, {}));
  func->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), top.getUnitAttr());
  // ptxas gave the joined kernel far more registers than its heaviest
  // phase alone (InternVL2-2B's O + gate/up: 168 against 108, 12 warps an
  // SM instead of 16): asked for 128 a thread at most, the most a decode
  // GEMV phase needs on the five real shapes but the 7B's QKV; where ptxas
  // can only meet that by spilling, the driver assembles the kernel
  // without the cap (compiler/Target/RegisterCaps.h).
  Type i32 = IntegerType::get(ctx, 32);
  func->setAttr("nvvm.maxntid",
                DenseI32ArrayAttr::get(ctx, {int32_t(a.block), 1, 1}));
  func->setAttr("nvvm.minctasm",
                IntegerAttr::get(i32, std::max<int64_t>(
                                          1, kChainRegisters / a.block)));
  auto argNamed = [&](StringRef name) {
    return func.getArgument(
        unsigned(llvm::find(names, name.str()) - names.begin()));
  };
  StringRef alignName = LLVM::LLVMDialect::getAlignAttrName();
  auto addShared = [&](Type type, Attribute align) {
    Value v = func.addWorkgroupAttribution(type, func.getLoc());
    if (align)
      func.setWorkgroupAttributionAttr(func.getNumWorkgroupAttributions() - 1,
                                       alignName, align);
    return v;
  };

  ImplicitLocOpBuilder b(first.getLoc(), ctx);
  b.setInsertionPointToStart(&func.getBody().front());
  Value counter = argNamed(names.back());
  for (const std::string &n : names)
    if (StringRef(n).starts_with("barrier:"))
      counter = argNamed(n);
  Value address = counterAddress(b, counter);
  // Both phases' weight views made absolute, then rebased as one kernel.
  Value arena = argNamed("arena");
  // The later phase's warps poll `flag` for `target`.
  Value flag;
  auto cloneBody = [&](gpu::GPUFuncOp from, const contract::Launch &l,
                       Value target) {
    IRMapping map;
    for (auto [i, name] : llvm::enumerate(l.args))
      map.map(from.getArgument(unsigned(i)), argNamed(name));
    for (auto [i, shared] : llvm::enumerate(from.getWorkgroupAttributions()))
      map.map(shared, addShared(shared.getType(),
                                from.getWorkgroupAttributionAttr(
                                    unsigned(i), alignName)));
    assert(from.getBody().hasOneBlock() && "GEMV kernels are structured");
    for (Operation &op : from.getBody().front().without_terminator()) {
      if (target && isLaunchDependents(&op))
        continue;
      Operation *copy = b.clone(op, map);
      SmallVector<Operation *> waits;
      copy->walk([&](Operation *inner) {
        if (auto view = dyn_cast<memref::ViewOp>(inner))
          if (view.getSource() == arena) {
            OpBuilder vb(view);
            int64_t shift = *getConstantIntValue(view.getByteShift());
            view.getByteShiftMutable().assign(arith::ConstantIndexOp::create(
                vb, view.getLoc(), shift + l.arenaOffset));
          }
        if (target && isDependencyWait(inner))
          waits.push_back(inner);
      });
      for (Operation *wait : waits) {
        ImplicitLocOpBuilder wb(wait->getLoc(), wait);
        waitFor(wb, flag, target);
        wait->erase();
      }
    }
  };
  cloneBody(first, a, Value());
  Value slot =
      addShared(MemRefType::get({1}, IntegerType::get(ctx, 64), AffineMap(),
                                gpu::AddressSpaceAttr::get(
                                    ctx, gpu::GPUDialect::
                                             getWorkgroupAddressSpace())),
                IntegerAttr::get(IntegerType::get(ctx, 64), 8));
  Value target = arrive(b, address, slot);
  flag = flagAddress(b, address);
  Operation *secondStart = target.getDefiningOp();
  cloneBody(second, next, target);
  gpu::ReturnOp::create(b);
  // The later phase reads its thread's place afresh, so LLVM cannot share
  // what it computes from it with the earlier phase: values shared so would
  // live across the earlier phase's whole loop (ptxas gave InternVL2-2B's
  // O + gate/up + down 168 registers, and spilled under 128).
  SmallVector<Operation *> ids;
  for (Operation *op = secondStart->getNextNode(); op; op = op->getNextNode())
    op->walk([&](Operation *inner) {
      if (isa<gpu::ThreadIdOp, gpu::BlockIdOp, gpu::GridDimOp>(inner))
        ids.push_back(inner);
    });
  for (Operation *id : ids) {
    ImplicitLocOpBuilder ib(id->getLoc(), id);
    StringRef reg = isa<gpu::ThreadIdOp>(id)  ? "%tid.x"
                    : isa<gpu::BlockIdOp>(id) ? "%ctaid.x"
                                              : "%nctaid.x";
    Value v = inlinePtx(ib, {ib.getI32Type()}, {},
                        ("mov.u32 $0, " + reg + ";").str(), "=r");
    id->getResult(0).replaceAllUsesWith(
        arith::IndexCastUIOp::create(ib, ib.getIndexType(), v));
    id->erase();
  }

  auto blocks = [](const contract::Grid &g) {
    return (g.units + g.perBlock - 1) / g.perBlock;
  };
  contract::Launch l = a;
  l.kernel = symbol;
  l.grid.units = std::max(blocks(a.grid), blocks(next.grid));
  l.grid.perBlock = 1;
  l.grid.barrier = true;
  l.args = names;
  if (!hasArg(a, "k_cache"))
    l.cacheLayer = next.cacheLayer;
  l.arenaOffset = rebaseArenaViews(func, arena);
  first.erase();
  second.erase();
  chainableGemvs.insert(symbol);
  return l;
}

void GPULowering::chainDecodeGemvs() {
  if (gemvPhases <= 1 || !programmaticLaunch)
    return;
  std::vector<contract::Launch> kept;
  // The last launch a decode step runs (an index into `kept`) and the
  // phases its kernel has.
  std::optional<size_t> last;
  int64_t phases = 0;
  for (contract::Launch &l : plan.launches) {
    bool decodes = l.when == LaunchWhen::Always || l.when == LaunchWhen::Decode;
    if (!decodes) {
      kept.push_back(std::move(l));
      continue;
    }
    if (last && phases < gemvPhases &&
        canChain(kept[*last], l, *last + 1 == kept.size())) {
      kept[*last] = chain(kept[*last], l);
      ++phases;
      continue;
    }
    kept.push_back(std::move(l));
    last = kept.size() - 1;
    phases = 1;
  }
  plan.launches = std::move(kept);
}

} // namespace decc::gpulowering
