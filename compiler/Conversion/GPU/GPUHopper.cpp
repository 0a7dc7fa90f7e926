//===- GPUHopper.cpp - sm_90 building blocks: TMA, mbarrier, wgmma --------===//

#include "compiler/Conversion/GPU/GPUHopper.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

using namespace mlir;

namespace decc::gpulowering {

namespace {
constexpr char kSharedSymbol[] = "decc_dynamic_shared";
constexpr unsigned kSharedSpace = 3, kSharedClusterSpace = 7;

Value i32(KernelBuilder &kb, int64_t v) {
  return arith::ConstantOp::create(kb.builder(),
                                   kb.builder().getI32IntegerAttr(int32_t(v)));
}
Value toI32(KernelBuilder &kb, Value v) {
  if (v.getType().isInteger(32))
    return v;
  return arith::IndexCastOp::create(kb.builder(), kb.builder().getI32Type(), v);
}
} // namespace

Value dynamicSharedMemory(KernelBuilder &kb, gpu::GPUModuleOp module) {
  MLIRContext *ctx = module.getContext();
  auto array = LLVM::LLVMArrayType::get(IntegerType::get(ctx, 8), 0);
  if (!module.lookupSymbol(kSharedSymbol)) {
    OpBuilder top(ctx);
    top.setInsertionPointToStart(module.getBody());
    // External and sized 0: PTX `.extern .shared .align 1024 .b8 x[]`, the
    // launch's dynamic shared memory.
    LLVM::GlobalOp::create(top, module.getLoc(), array, /*isConstant=*/false,
                           LLVM::Linkage::External, kSharedSymbol, Attribute(),
                           kSwizzleAtomBytes, kSharedSpace);
  }
  auto ptr = LLVM::LLVMPointerType::get(ctx, kSharedSpace);
  return LLVM::AddressOfOp::create(kb.builder(), ptr, kSharedSymbol);
}

Value sharedAt(KernelBuilder &kb, Value base, Value bytes) {
  ImplicitLocOpBuilder &b = kb.builder();
  return LLVM::GEPOp::create(b, base.getType(), b.getI8Type(), base,
                             ValueRange{toI32(kb, bytes)});
}

Value sharedAt(KernelBuilder &kb, Value base, int64_t bytes) {
  if (bytes == 0)
    return base;
  return sharedAt(kb, base, i32(kb, bytes));
}

Value genericPointer(KernelBuilder &kb, Value memref) {
  ImplicitLocOpBuilder &b = kb.builder();
  Value address = memref::ExtractAlignedPointerAsIndexOp::create(b, memref);
  Value i64 = arith::IndexCastOp::create(b, b.getI64Type(), address);
  return LLVM::IntToPtrOp::create(b, LLVM::LLVMPointerType::get(b.getContext()),
                                  i64);
}

SharedRing sharedRing(KernelBuilder &kb, gpu::GPUModuleOp m, int64_t first,
                      int64_t stageBytes, int64_t stages) {
  ImplicitLocOpBuilder &b = kb.builder();
  // The stages on the swizzle's 1024-byte period whatever the base.
  Value raw = dynamicSharedMemory(kb, m);
  Value rawAddress = LLVM::PtrToIntOp::create(b, b.getI32Type(), raw);
  Value pad =
      arith::AndIOp::create(b, arith::SubIOp::create(b, i32(kb, 0), rawAddress),
                            i32(kb, kSwizzleAtomBytes - 1));
  return {sharedAt(kb, raw, pad), first, stageBytes, stages};
}

int64_t SharedRing::sharedBytes() const {
  return first + stages * stageBytes + 2 * stages * 8 + kSwizzleAtomBytes;
}

Value SharedRing::slot(KernelBuilder &kb, Value round) const {
  return arith::RemUIOp::create(kb.builder(), round, kb.index(stages));
}

Value SharedRing::parity(KernelBuilder &kb, Value round) const {
  return arith::AndIOp::create(kb.builder(), kb.div(round, kb.index(stages)),
                               kb.index(1));
}

Value SharedRing::stage(KernelBuilder &kb, Value slot) const {
  return sharedAt(kb, base,
                  kb.add(kb.index(first), kb.mul(slot, kb.index(stageBytes))));
}

Value SharedRing::full(KernelBuilder &kb, Value slot) const {
  return sharedAt(
      kb, base,
      kb.add(kb.index(first + stages * stageBytes), kb.mul(slot, kb.index(8))));
}

Value SharedRing::empty(KernelBuilder &kb, Value slot) const {
  return sharedAt(kb, base,
                  kb.add(kb.index(first + stages * stageBytes + 8 * stages),
                         kb.mul(slot, kb.index(8))));
}

void SharedRing::init(KernelBuilder &kb, Value tid, int64_t consumers) const {
  Value isFirst = arith::CmpIOp::create(kb.builder(), arith::CmpIPredicate::eq,
                                        tid, kb.index(0));
  kb.ifThen(isFirst, [&](KernelBuilder &ib) {
    for (int64_t s = 0; s < stages; ++s) {
      mbarrierInit(ib, full(ib, ib.index(s)), 1);
      mbarrierInit(ib, empty(ib, ib.index(s)), consumers);
    }
    NVVM::FenceMbarrierInitOp::create(ib.builder());
  });
  gpu::BarrierOp::create(kb.builder());
}

void SharedRing::produceRounds(
    KernelBuilder &kb, Value tid, Value rounds,
    function_ref<void(KernelBuilder &, Value, Value, Value)> fill) const {
  Value isFirst = arith::CmpIOp::create(kb.builder(), arith::CmpIPredicate::eq,
                                        tid, kb.index(0));
  kb.ifThen(isFirst, [&](KernelBuilder &ib) {
    ib.forLoop(ib.index(0), rounds, 1, [&](KernelBuilder &lb, ValueRange iv) {
      // Wait until the consumers released the stage (on the phase before
      // this round's: the first round's wait passes at once), then expect
      // the stage's bytes.
      Value round = iv[0];
      Value s = slot(lb, round);
      Value again =
          arith::XOrIOp::create(lb.builder(), parity(lb, round), lb.index(1));
      mbarrierWait(lb, empty(lb, s), again);
      Value bar = full(lb, s);
      mbarrierArriveExpectTx(lb, bar, stageBytes);
      fill(lb, round, stage(lb, s), bar);
    });
  });
}

WarpRoles specializeWarps(KernelBuilder &kb, Value isProducer,
                          uint32_t producerRegisters,
                          uint32_t consumerRegisters) {
  ImplicitLocOpBuilder &b = kb.builder();
  auto roles = scf::IfOp::create(b, isProducer, /*withElse=*/true);
  WarpRoles w;
  w.producer = std::make_unique<ImplicitLocOpBuilder>(
      b.getLoc(), roles.getThenBodyBuilder());
  w.consumer = std::make_unique<ImplicitLocOpBuilder>(
      b.getLoc(), roles.getElseBodyBuilder());
  NVVM::SetMaxRegisterOp::create(*w.producer, producerRegisters,
                                 NVVM::SetMaxRegisterAction::decrease);
  NVVM::SetMaxRegisterOp::create(*w.consumer, consumerRegisters,
                                 NVVM::SetMaxRegisterAction::increase);
  return w;
}

void mbarrierInit(KernelBuilder &kb, Value bar, int64_t count) {
  NVVM::MBarrierInitOp::create(kb.builder(), bar, i32(kb, count), Value());
}

void mbarrierArriveExpectTx(KernelBuilder &kb, Value bar, int64_t bytes) {
  NVVM::MBarrierArriveExpectTxOp::create(
      kb.builder(), Type(), bar, i32(kb, bytes), NVVM::MemScopeKind::CTA,
      /*relaxed=*/false, Value());
}

void mbarrierArrive(KernelBuilder &kb, Value bar) {
  NVVM::MBarrierArriveOp::create(kb.builder(), Type(), bar, Value());
}

void mbarrierWait(KernelBuilder &kb, Value bar, Value parity) {
  NVVM::MBarrierTryWaitParityOp::create(kb.builder(), bar, toI32(kb, parity),
                                        i32(kb, 0));
}

void tmaLoad2D(KernelBuilder &kb, Value dst, Value map, Value bar, Value x,
               Value y) {
  ImplicitLocOpBuilder &b = kb.builder();
  // The copy's destination is named in the cluster's window; a CTA's own
  // shared memory is part of it (a cluster of one here).
  Value cluster = LLVM::AddrSpaceCastOp::create(
      b, LLVM::LLVMPointerType::get(b.getContext(), kSharedClusterSpace), dst);
  NVVM::CpAsyncBulkTensorGlobalToSharedClusterOp::create(
      b, cluster, map, ValueRange{toI32(kb, x), toI32(kb, y)}, bar,
      ValueRange{}, Value(), Value(), NVVM::TMALoadMode::TILE,
      /*isCTAOnly=*/false, NVVM::CTAGroupKindAttr(), Value());
}

Value wgmmaDescriptor(KernelBuilder &kb, Value tile, int64_t leadingBytes) {
  ImplicitLocOpBuilder &b = kb.builder();
  Type i64 = b.getI64Type();
  auto c = [&](uint64_t v) {
    return arith::ConstantOp::create(b, b.getI64IntegerAttr(int64_t(v)));
  };
  Value address = LLVM::PtrToIntOp::create(b, i64, tile);
  // Bits 0-13: the shared address >> 4; 16-29: leading-dimension byte
  // offset >> 4; 32-45: stride between 8-row groups >> 4; 62-63: layout,
  // 1 = 128B swizzle. With the swizzle the leading offset steps between
  // 64-element atoms of N in an MN-major tile and is unused in a K-major
  // one (CUTLASS's canonical layouts: MN-major ((T,8,m),(8,k)) :
  // ((1,T,LBO),(8T,SBO))).
  Value start = arith::AndIOp::create(
      b, arith::ShRUIOp::create(b, address, c(4)), c(0x3FFF));
  uint64_t fixed = (uint64_t((leadingBytes >> 4) & 0x3FFF) << 16) |
                   (uint64_t(kSwizzleAtomBytes >> 4) << 32) |
                   (uint64_t(1) << 62);
  return arith::OrIOp::create(b, i64, start, c(fixed));
}

Value advanceDescriptor(KernelBuilder &kb, Value desc, int64_t bytes) {
  if (bytes == 0)
    return desc;
  ImplicitLocOpBuilder &b = kb.builder();
  return arith::AddIOp::create(
      b, desc, arith::ConstantOp::create(b, b.getI64IntegerAttr(bytes >> 4)));
}

Type wgmmaAccumulatorType(MLIRContext *ctx, int64_t n) {
  SmallVector<Type> fields(size_t(n / 2), Float32Type::get(ctx));
  return LLVM::LLVMStructType::getLiteral(ctx, fields);
}

Value wgmmaZero(KernelBuilder &kb, int64_t n) {
  ImplicitLocOpBuilder &b = kb.builder();
  Type type = wgmmaAccumulatorType(b.getContext(), n);
  Value acc = LLVM::UndefOp::create(b, type);
  Value zero = kb.f32(0.0);
  for (int64_t i = 0; i < n / 2; ++i)
    acc = LLVM::InsertValueOp::create(b, acc, zero, i);
  return acc;
}

Value wgmma(KernelBuilder &kb, Value descA, Value descB, Value acc, int64_t n,
            Type element, bool accumulate) {
  ImplicitLocOpBuilder &b = kb.builder();
  NVVM::WGMMATypes t =
      element.isBF16() ? NVVM::WGMMATypes::bf16 : NVVM::WGMMATypes::f16;
  // row / col: A is M x K and B is K x N, both K-major (no transpose).
  return NVVM::WgmmaMmaAsyncOp::create(
      b, acc.getType(), acc, descA, descB,
      NVVM::MMAShapeAttr::get(b.getContext(), 64, int(n), 16), t, t,
      NVVM::WGMMATypes::f32,
      accumulate ? NVVM::WGMMAScaleOut::one : NVVM::WGMMAScaleOut::zero,
      NVVM::WGMMAScaleIn::one, NVVM::WGMMAScaleIn::one, NVVM::MMALayout::row,
      NVVM::MMALayout::col, NVVM::MMAIntOverflowAttr());
}

Value wgmmaRegisterA(KernelBuilder &kb, ArrayRef<Value> a, Value descB,
                     Value acc, int64_t n, Type element, bool transposeB) {
  ImplicitLocOpBuilder &b = kb.builder();
  int64_t outs = n / 2;
  std::string ptx;
  llvm::raw_string_ostream os(ptx);
  os << "wgmma.mma_async.sync.aligned.m64n" << n << "k16.f32."
     << (element.isBF16() ? "bf16.bf16" : "f16.f16") << " {";
  for (int64_t i = 0; i < outs; ++i)
    os << (i ? ", $" : "$") << i;
  os << "}, {$" << outs << ", $" << outs + 1 << ", $" << outs + 2 << ", $"
     << outs + 3 << "}, $" << outs + 4 << ", 1, 1, 1, " << (transposeB ? 1 : 0)
     << ";";
  // Outputs in f32 registers, A's four words, B's descriptor, then the
  // accumulator's input tied to the outputs.
  std::string constraints;
  for (int64_t i = 0; i < outs; ++i)
    constraints += "=f,";
  constraints += "r,r,r,r,l";
  SmallVector<Value> operands(a.begin(), a.end());
  operands.push_back(descB);
  for (int64_t i = 0; i < outs; ++i) {
    constraints += "," + std::to_string(i);
    operands.push_back(LLVM::ExtractValueOp::create(b, acc, i));
  }
  return LLVM::InlineAsmOp::create(b, acc.getType(), operands, ptx, constraints,
                                   /*has_side_effects=*/true,
                                   /*is_align_stack=*/false,
                                   LLVM::tailcallkind::TailCallKind::None,
                                   LLVM::AsmDialectAttr(), ArrayAttr())
      .getResult(0);
}

void fenceProxyAsyncShared(KernelBuilder &kb) {
  ImplicitLocOpBuilder &b = kb.builder();
  NVVM::FenceProxyOp::create(
      b,
      NVVM::ProxyKindAttr::get(b.getContext(), NVVM::ProxyKind::async_shared),
      NVVM::SharedSpaceAttr::get(b.getContext(),
                                 NVVM::SharedSpace::shared_cta));
}

void namedBarrier(KernelBuilder &kb, Value id, int64_t threads) {
  NVVM::BarrierOp::create(kb.builder(), Type(), toI32(kb, id), i32(kb, threads),
                          NVVM::BarrierReductionAttr(), Value());
}

void namedBarrierArrive(KernelBuilder &kb, Value id, int64_t threads) {
  NVVM::BarrierArriveOp::create(kb.builder(), toI32(kb, id), i32(kb, threads));
}

Value wgmmaElement(KernelBuilder &kb, Value acc, int64_t i) {
  return LLVM::ExtractValueOp::create(kb.builder(), acc, i);
}

void clusterBarrier(KernelBuilder &kb) {
  // barrier.cluster.arrive and .wait default to release and acquire.
  NVVM::ClusterArriveOp::create(kb.builder(), kb.builder().getUnitAttr());
  NVVM::ClusterWaitOp::create(kb.builder(), kb.builder().getUnitAttr());
}

Value clusterShared(KernelBuilder &kb, Value memref, Value rank) {
  ImplicitLocOpBuilder &b = kb.builder();
  Value address = memref::ExtractAlignedPointerAsIndexOp::create(b, memref);
  Value i64 = arith::IndexCastOp::create(b, b.getI64Type(), address);
  Value local = LLVM::IntToPtrOp::create(
      b, LLVM::LLVMPointerType::get(b.getContext(), kSharedSpace), i64);
  return NVVM::MapaOp::create(
      b, LLVM::LLVMPointerType::get(b.getContext(), kSharedClusterSpace), local,
      toI32(kb, rank));
}

Value loadClusterF32(KernelBuilder &kb, Value base, Value index) {
  ImplicitLocOpBuilder &b = kb.builder();
  Value at = LLVM::GEPOp::create(b, base.getType(), b.getF32Type(), base,
                                 ValueRange{toI32(kb, index)});
  return LLVM::LoadOp::create(b, b.getF32Type(), at, /*alignment=*/4);
}

} // namespace decc::gpulowering
