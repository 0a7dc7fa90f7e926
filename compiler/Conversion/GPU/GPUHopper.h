//===- GPUHopper.h - sm_90 building blocks: TMA, mbarrier, wgmma -*- C++
//-*-===//
//
// The prefill matmul on sm_90a is built from NVVM ops directly: the bulk
// tensor copy engine (TMA) fills shared memory and completes on an
// mbarrier, and warpgroup MMAs (wgmma) read their operands from it through
// matrix descriptors. MLIR 22's nvgpu ops cover the same ground, but
// nvgpu.warpgroup.generate.descriptor fixes the leading-byte offset from
// the tensor map's type and nvgpu.tma.async.load wants a descriptor from
// MLIR's CUDA runtime wrappers, which decc does not link; the NVVM ops keep
// every descriptor bit and every address in the lowering's hands.
//
// Operand tiles are K-major with 128-byte rows (64 bf16/f16 elements) and
// the 128-byte swizzle: TMA writes them that way when its tensor map says
// CU_TENSOR_MAP_SWIZZLE_128B, and wgmma reads them that way when the
// descriptor's layout is 1. Each tile starts on a 1024-byte boundary (8
// rows, the swizzle's period).
//
//===----------------------------------------------------------------------===//

#ifndef DECC_CONVERSION_GPU_GPUHOPPER_H
#define DECC_CONVERSION_GPU_GPUHOPPER_H

#include "compiler/Conversion/Common/KernelBuilder.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"

#include <memory>

namespace decc::gpulowering {

/// Bytes of a swizzled tile row: 64 half-precision elements.
constexpr int64_t kSwizzleRowBytes = 128;
/// The swizzle's period: a tile starts at a multiple of it.
constexpr int64_t kSwizzleAtomBytes = 1024;

/// `!llvm.ptr<3>` to the start of the launch's dynamic shared memory, an
/// extern array of the gpu.module aligned to the swizzle's period.
mlir::Value dynamicSharedMemory(KernelBuilder &kb, mlir::gpu::GPUModuleOp m);
/// `base` + `bytes`.
mlir::Value sharedAt(KernelBuilder &kb, mlir::Value base, mlir::Value bytes);
mlir::Value sharedAt(KernelBuilder &kb, mlir::Value base, int64_t bytes);
/// A flat memref argument (bare pointer) as a generic `!llvm.ptr`.
mlir::Value genericPointer(KernelBuilder &kb, mlir::Value memref);

/// A ring of `stages` shared-memory stages of `stageBytes` each, `first`
/// bytes into the launch's dynamic shared memory (aligned to the swizzle's
/// period), then a `full` mbarrier a stage (one arrival: the producer's,
/// with the bytes TMA brings) and an `empty` one (the consumers'). Round i
/// of the ring uses stage i mod stages with phase (i / stages) mod 2.
struct SharedRing {
  mlir::Value base;
  int64_t first = 0, stageBytes = 0, stages = 0;

  /// Dynamic shared memory a launch needs for the ring, what lies before
  /// it and the alignment slack.
  int64_t sharedBytes() const;
  mlir::Value slot(KernelBuilder &kb, mlir::Value round) const;
  mlir::Value parity(KernelBuilder &kb, mlir::Value round) const;
  mlir::Value stage(KernelBuilder &kb, mlir::Value slot) const;
  mlir::Value full(KernelBuilder &kb, mlir::Value slot) const;
  mlir::Value empty(KernelBuilder &kb, mlir::Value slot) const;
  /// Thread `tid` 0 initializes the mbarriers (`consumers` threads release
  /// a stage), then the whole block waits for it.
  void init(KernelBuilder &kb, mlir::Value tid, int64_t consumers) const;
  /// The producer's loop: thread `tid` 0 fills rounds 0 .. `rounds` - 1,
  /// each once the consumers released its stage, the stage's `full`
  /// mbarrier expecting its bytes; `fill` issues the round's copies into
  /// the stage, completing on `bar`.
  void
  produceRounds(KernelBuilder &kb, mlir::Value tid, mlir::Value rounds,
                llvm::function_ref<void(KernelBuilder &, mlir::Value round,
                                        mlir::Value stage, mlir::Value bar)>
                    fill) const;
};

/// The two roles of a warp-specialized kernel: where `isProducer` holds,
/// the warps give up registers down to `producerRegisters`, elsewhere they
/// take up to `consumerRegisters` (the kernel's entry cap, nvvm.maxntid,
/// lets setmaxnreg move them); builders at the start of each role's code.
struct WarpRoles {
  std::unique_ptr<mlir::ImplicitLocOpBuilder> producer, consumer;
};
WarpRoles specializeWarps(KernelBuilder &kb, mlir::Value isProducer,
                          uint32_t producerRegisters,
                          uint32_t consumerRegisters);
/// The ring at `first` bytes of dynamic shared memory of a kernel of `m`.
SharedRing sharedRing(KernelBuilder &kb, mlir::gpu::GPUModuleOp m,
                      int64_t first, int64_t stageBytes, int64_t stages);

/// The mbarrier at `bar` (8 bytes of shared memory) expects `count`
/// arrivals per phase; fence.mbarrier.init makes it visible to TMA.
void mbarrierInit(KernelBuilder &kb, mlir::Value bar, int64_t count);
/// Arrives once and adds `bytes` to the transactions the phase waits for.
void mbarrierArriveExpectTx(KernelBuilder &kb, mlir::Value bar, int64_t bytes);
void mbarrierArrive(KernelBuilder &kb, mlir::Value bar);
/// Waits until the phase of parity `parity` (i32: 0 or 1) has completed.
void mbarrierWait(KernelBuilder &kb, mlir::Value bar, mlir::Value parity);

/// TMA: the box at (x, y) (innermost first, elements) of the 2-D tensor
/// map at `map` (generic pointer to a CUtensorMap in global memory) into
/// shared memory at `dst`, completing on `bar`.
void tmaLoad2D(KernelBuilder &kb, mlir::Value dst, mlir::Value map,
               mlir::Value bar, mlir::Value x, mlir::Value y);

/// The wgmma matrix descriptor (i64) of a 128-byte-swizzled tile at
/// `tile`: start address >> 4, stride between 8-row groups 1024 bytes,
/// layout 1 (128-byte swizzle). K-major (the default): a k step of 16
/// elements adds 32 bytes, the leading offset unused (16 by convention).
/// MN-major (B stored as K rows of N contiguous elements: V's keys x
/// features, as TMA writes boxes of 64 x rows): the next 64 elements of N
/// lie `leadingBytes` further (the next box), and a k step of 16 rows adds
/// 2048 bytes.
mlir::Value wgmmaDescriptor(KernelBuilder &kb, mlir::Value tile,
                            int64_t leadingBytes = 16);
/// `desc` moved `bytes` further into shared memory.
mlir::Value advanceDescriptor(KernelBuilder &kb, mlir::Value desc,
                              int64_t bytes);

/// The accumulator of an m64nN f32 wgmma: a struct of N / 2 f32 per thread.
mlir::Type wgmmaAccumulatorType(mlir::MLIRContext *ctx, int64_t n);
mlir::Value wgmmaZero(KernelBuilder &kb, int64_t n);
/// acc + A.B, m64nNk16, A and B K-major in shared memory, `element` bf16 or
/// f16, f32 accumulation; `accumulate` false: A.B, `acc` only typed.
mlir::Value wgmma(KernelBuilder &kb, mlir::Value descA, mlir::Value descB,
                  mlir::Value acc, int64_t n, mlir::Type element,
                  bool accumulate = true);
/// acc + A.B, m64nNk16, with A in registers: `a` four i32 registers of
/// `element` pairs, warp w of the warpgroup holding rows 16w .. 16w + 15 in
/// mma.m16n8k16's A layout (GPUMma.h). B comes from shared memory through
/// `descB`, MN-major when `transposeB`. Inline PTX: nvvm.wgmma.mma_async
/// takes A only as a descriptor.
mlir::Value wgmmaRegisterA(KernelBuilder &kb, llvm::ArrayRef<mlir::Value> a,
                           mlir::Value descB, mlir::Value acc, int64_t n,
                           mlir::Type element, bool transposeB);
/// Makes this thread's generic-proxy writes to shared memory visible to
/// the async proxy (wgmma operands, TMA), after a barrier among the
/// threads that wrote them.
void fenceProxyAsyncShared(KernelBuilder &kb);
/// bar.sync `id` (index or i32), `threads`: a barrier among some warps of
/// the block.
void namedBarrier(KernelBuilder &kb, mlir::Value id, int64_t threads);
/// bar.arrive `id`, `threads`: counts this thread at the barrier without
/// waiting for it.
void namedBarrierArrive(KernelBuilder &kb, mlir::Value id, int64_t threads);
/// Element `i` of an accumulator: with lane = 4g + q of warp w of the
/// warpgroup, i = 4j + 2h + e holds row 16w + g + 8h, column 8j + 2q + e.
mlir::Value wgmmaElement(KernelBuilder &kb, mlir::Value acc, int64_t i);

/// Every thread of the thread-block cluster arrives (release) and waits
/// (acquire): shared-memory writes of any block before it are visible to
/// every block's reads after it. A launch without clusters is a cluster of
/// one block, where it is a block barrier.
void clusterBarrier(KernelBuilder &kb);
/// The workgroup buffer `memref` of the cluster's block `rank` (i32 or
/// index), as a `!llvm.ptr<7>` (shared::cluster) to its first element.
mlir::Value clusterShared(KernelBuilder &kb, mlir::Value memref,
                          mlir::Value rank);
/// The f32 at element `index` of a clusterShared buffer.
mlir::Value loadClusterF32(KernelBuilder &kb, mlir::Value base,
                           mlir::Value index);

} // namespace decc::gpulowering

#endif // DECC_CONVERSION_GPU_GPUHOPPER_H
