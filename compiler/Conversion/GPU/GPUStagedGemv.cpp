//===- GPUStagedGemv.cpp - decode GEMV weights streamed by bulk copies ----===//
//
// On sm_90 a decode GEMV's weights can reach the warps through shared
// memory: the block's warps form groups (a group shares a unit, each warp a
// part of its rows, as the register GEMV's W warps a unit do), each group
// owns a ring of buffers of one unit's rows, and its leader refills a
// buffer with a bulk copy (cp.async.bulk, the TMA engine with no tensor
// map) as soon as the group has read it, `slots` units ahead. The copies
// cost no registers, so a group keeps tens of kilobytes in flight where the
// register GEMV kept 2 KB a warp. The grid is resident (two blocks an SM),
// each group walking the units a grid apart; the first `slots` units' copies
// are issued before the dependency wait. Measured on an H200 (docs/PERF.md):
// slower than the register GEMV on every shape, 3-24% a decode step: a
// group takes its units one after another, each a chain of latencies (the
// mbarrier, the shared-memory reads, the reduction, the epilogue), where the
// register GEMV's many independent warps overlap theirs. Off by default
// (--gpu-staged-gemv).
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/GPU/GPUHopper.h"
#include "compiler/Conversion/GPU/GPULowering.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"

namespace decc::gpulowering {

namespace {
/// Shared memory a block may take: two blocks fit an SM (228 KB), so a
/// block of the next kernel can start where one of this kernel ends.
constexpr int64_t kRingBudget = 96 * 1024;
/// Blocks of the grid: two an SM of a 132-SM card, 8 warps each.
constexpr int64_t kBlocksPerSM = 2, kSMs = 132, kBlockWarps = 8;
/// Bytes of a unit each of its warps reads: more warps a unit when units
/// are large (measured on an H200: a warp a 16 KB unit, four warps an SM,
/// streamed the down projection at 31% of the bandwidth).
constexpr int64_t kBytesPerWarp = 4096;
constexpr int64_t kMaxSlots = 8;
} // namespace

std::optional<StagedGemvPlan> stagedGemvPlan(int64_t units, int64_t rowsPerUnit,
                                             int64_t width,
                                             int64_t elementBytes) {
  StagedGemvPlan plan;
  int64_t ringBudget = kRingBudget, bytesPerWarp = kBytesPerWarp;
  plan.rowBytes = width * elementBytes;
  plan.unitBytes = rowsPerUnit * plan.rowBytes;
  // A bulk copy moves whole 16-byte pieces; a group needs two buffers.
  if (plan.rowBytes % 16 != 0 || 2 * plan.unitBytes > ringBudget || units <= 0)
    return std::nullopt;
  plan.warpsPerUnit = 1;
  while (plan.warpsPerUnit < kBlockWarps &&
         plan.unitBytes >= 2 * plan.warpsPerUnit * bytesPerWarp)
    plan.warpsPerUnit *= 2;
  plan.groups = std::min(kBlockWarps / plan.warpsPerUnit,
                         ringBudget / (2 * plan.unitBytes));
  plan.slots = std::clamp<int64_t>(ringBudget / (plan.groups * plan.unitBytes),
                                   2, kMaxSlots);
  plan.blocks =
      std::min(kBlocksPerSM * kSMs, (units + plan.groups - 1) / plan.groups);
  return plan;
}

void GPULowering::forEachStagedUnit(
    Kernel &k, const StagedGemvPlan &plan, int64_t units, Value weights,
    UnitRowsFn rowsOf,
    llvm::function_ref<void(KernelBuilder &, Value u, const StagedUnit &)>
        body) {
  KernelBuilder &kb = *k.kb;
  ImplicitLocOpBuilder &b = kb.builder();
  k.threads = plan.threads();
  k.sharedBytes = plan.sharedBytes();
  Value tid = gpu::ThreadIdOp::create(b, gpu::Dimension::x);
  Value lane = arith::RemUIOp::create(b, tid, kb.index(32));
  Value warp = kb.div(tid, kb.index(32));
  Value group = kb.div(warp, kb.index(plan.warpsPerUnit));
  StagedUnit where;
  where.sub = arith::RemUIOp::create(b, warp, kb.index(plan.warpsPerUnit));
  where.partialsOffset = kb.mul(group, kb.index(plan.warpsPerUnit * 8));
  // Named barrier 0 is the block's; a group takes 1 + its index.
  where.groupBarrier =
      arith::IndexCastOp::create(b, b.getI32Type(), kb.add(group, kb.index(1)));
  Value block = gpu::BlockIdOp::create(b, gpu::Dimension::x);
  int64_t gridGroups = plan.blocks * plan.groups;
  Value first = kb.add(kb.mul(block, kb.index(plan.groups)), group);
  // This group's units: first, first + gridGroups, ... below `units`.
  Value count = arith::SelectOp::create(
      b, less(kb, first, kb.index(units)),
      kb.add(kb.div(kb.sub(kb.index(units - 1), first), kb.index(gridGroups)),
             kb.index(1)),
      kb.index(0));
  Value shared = dynamicSharedMemory(kb, kernels);
  auto slotOf = [&](KernelBuilder &sb, Value j) {
    Value slot = arith::RemUIOp::create(sb.builder(), j, sb.index(plan.slots));
    return sb.add(sb.mul(group, sb.index(plan.slots)), slot);
  };
  auto buffer = [&](KernelBuilder &sb, Value j) {
    return sharedAt(sb, shared,
                    sb.mul(slotOf(sb, j), sb.index(plan.unitBytes)));
  };
  auto barrier = [&](KernelBuilder &sb, Value j) {
    return sharedAt(
        sb, shared,
        sb.add(sb.index(plan.ringBytes()), sb.mul(slotOf(sb, j), sb.index(8))));
  };
  auto unitAt = [&](KernelBuilder &sb, Value j) {
    return sb.add(first, sb.mul(j, sb.index(gridGroups)));
  };
  Value base = addressOf(kb, weights);
  // The group's leader: unit j's rows into its buffer, the bytes expected
  // on its mbarrier (the arrival of the phase).
  auto issue = [&](KernelBuilder &sb, Value j) {
    UnitRows rows = rowsOf(sb, unitAt(sb, j));
    Value bar = barrier(sb, j), dst = buffer(sb, j);
    mbarrierArriveExpectTx(sb, bar,
                           sb.mul(rows.count, sb.index(plan.rowBytes)));
    auto copyRow = [&](KernelBuilder &cb, Value row, Value to) {
      Value offset =
          arith::IndexCastOp::create(cb.builder(), cb.builder().getI64Type(),
                                     cb.mul(row, cb.index(plan.rowBytes)));
      bulkCopyToShared(cb, to,
                       arith::AddIOp::create(cb.builder(), base, offset),
                       cb.index(plan.rowBytes), bar);
    };
    copyRow(sb, rows.first, dst);
    if (plan.unitBytes > plan.rowBytes)
      sb.ifThen(less(sb, sb.index(1), rows.count), [&](KernelBuilder &cb) {
        copyRow(cb, rows.second, sharedAt(cb, dst, plan.rowBytes));
      });
  };
  Value leader =
      arith::AndIOp::create(b, isZero(kb, lane), isZero(kb, where.sub));
  kb.ifThen(leader, [&](KernelBuilder &ib) {
    for (int64_t s = 0; s < plan.slots; ++s)
      mbarrierInit(ib, barrier(ib, ib.index(s)), 1);
    NVVM::FenceMbarrierInitOp::create(ib.builder());
    // The first buffers fill while the previous kernel drains: the
    // weights are no kernel's output.
    for (int64_t s = 0; s < plan.slots; ++s)
      ib.ifThen(less(ib, ib.index(s), count),
                [&](KernelBuilder &cb) { issue(cb, cb.index(s)); });
  });
  // Every thread sees its group's mbarriers initialized.
  gpu::BarrierOp::create(b);
  emitDependencyWait(kb);
  kb.forLoop(kb.index(0), count, 1, [&](KernelBuilder &lb, ValueRange iv) {
    Value j = iv[0];
    Value phase = arith::AndIOp::create(
        lb.builder(), lb.div(j, lb.index(plan.slots)), lb.index(1));
    mbarrierWait(lb, barrier(lb, j), phase);
    Value u = unitAt(lb, j);
    StagedUnit at = where;
    at.stage = buffer(lb, j);
    at.firstRow = rowsOf(lb, u).first;
    body(lb, u, at);
    // Every warp of the group has read the buffer before its leader
    // refills it: the GEMV's own barrier orders that when the unit has
    // several warps, a warp sync when it has one.
    if (plan.warpsPerUnit == 1)
      syncWarp(lb);
    Value next = lb.add(j, lb.index(plan.slots));
    lb.ifThen(
        arith::AndIOp::create(lb.builder(), leader, less(lb, next, count)),
        [&](KernelBuilder &cb) {
          fenceProxyAsyncShared(cb);
          issue(cb, next);
        });
  });
}

} // namespace decc::gpulowering
