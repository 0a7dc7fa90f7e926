//===- GPULowering.h - the state of convert-decoder-to-gpu ------*- C++ -*-===//
//
// Shared by the files of the GPU lowering (DecoderToGPU.cpp: the plan,
// embedding, RoPE tables and the driver; GPUProjection.cpp; GPUAttention.cpp).
//
//===----------------------------------------------------------------------===//

#ifndef DECC_CONVERSION_GPU_GPULOWERING_H
#define DECC_CONVERSION_GPU_GPULOWERING_H

#include "compiler/Conversion/Common/Activations.h"
#include "compiler/Conversion/Common/KernelBuilder.h"
#include "compiler/Conversion/Common/LoweringCommon.h"
#include "compiler/Conversion/Common/WeightArena.h"

#include "Decoder/DecoderOps.h"

#include "contract/Manifest.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

#include "llvm/ADT/StringMap.h"
#include "llvm/Support/JSON.h"

#include <memory>
#include <vector>

namespace decc::gpulowering {

using namespace mlir;
using namespace mlir::decoder;
using contract::GridScale;
using contract::kMaxSplits;
using contract::kStepContext;
using contract::kStepJoined;
using contract::kStepKeys;
using contract::kStepRows;
using contract::kStepSplits;
using contract::kStepTableStride;
using contract::kStepTokens;
using contract::LaunchWhen;
using contract::StepField;

/// Elements of a flat buffer as kernels see it: the size is irrelevant
/// (kernels index by hand) but must be static for bare-pointer arguments.
constexpr int64_t kFlat = int64_t(1) << 40;
constexpr int64_t kWarpsPerBlock = 4;
constexpr int64_t kThreads = 32 * kWarpsPerBlock;
/// Warps an SM a decode GEMV is asked to fit where it needs more registers
/// (GPULowering::requestOccupancy).
constexpr int64_t kGemvWarpsPerSM = 16;
/// What a kernel argument is bound to, as the plan names it.
struct Binding {
  std::string name; // arena, step, tokens, positions, k_cache, v_cache,
                    // state, logits, or buf:N
  Type element;
};

/// A weight matrix stored quantized (contract::WeightSlot's layout), as
/// the kernels read it: `bits` 8 or 4 (0: floats), the integers row by row
/// (`rowBytes` a row), the f16 scales and, with 4 bits, the u8 zero points,
/// [rows][groups] each.
struct QuantizedWeight {
  int64_t bits = 0, groupSize = 0, rowBytes = 0, groups = 0;
  Value scales, zeros;
  /// Index into `scales` and `zeros` of (row, col)'s group.
  Value groupOf(KernelBuilder &kb, Value row, Value col) const {
    return kb.add(kb.mul(row, kb.index(groups)),
                  kb.div(col, kb.index(groupSize)));
  }
};

/// Weight (row, col) of a quantized matrix whose integers `bytes` holds,
/// dequantized to f32: q * scale (8 bits), (q - zero) * scale (4 bits).
Value dequantizedAt(KernelBuilder &kb, Value bytes, const QuantizedWeight &q,
                    Value row, Value col);

/// What a decode GEMV reads: the activations, the weight rows, and the
/// fused norm's weight and bias (null: none). Quantized weights (`quant`):
/// `weight` is their bytes.
struct GemvInput {
  Value x, weight, gamma, beta;
  int64_t width; // input features
  std::optional<NormKind> norm;
  double eps;
  /// The warps of a block that share one unit (1, 2 or 4), this warp's
  /// place among them, and shared memory for their partial sums (W > 1).
  int64_t warpsPerUnit = 1;
  Value sub, partials;
  /// The kernel waits on its predecessor inside the GEMV: the first step's
  /// weight loads are issued before the wait, so they stream while the
  /// previous kernel drains.
  bool waitInside = false;
  QuantizedWeight quant;
};

/// How a quantized decode GEMV runs on tensor cores (GPUGemvMma.cpp): units
/// of `tiles` tiles of 16 weight rows (SwiGLU: half gate, half up), each
/// lane loading `loadBytes` of a row at a time, 4 lanes a block of a row;
/// `warps` warps a unit take `unroll` blocks a step, `steps` steps.
struct MmaGemvPlan {
  int64_t tiles = 0, loadBytes = 0, blocks = 0, units = 0, rowLimit = 0;
  int64_t warps = 1, unroll = 1, steps = 1;
  /// Units a block (each its own `warps` warps), which build B once for
  /// all of them.
  int64_t unitsPerBlock = 1;
  /// Steps whose loads are in flight before the first step's arithmetic.
  int64_t ahead = 1;
  bool swiglu = false;
  /// An appending projection (QKV) whose units pair their two tiles' rows
  /// as RoPE pairs (rows r, r + half of a head) or, unrotated, as two runs
  /// of 16 rows: it rotates and appends itself (GPULowering::mmaAppendUnit).
  bool appends = false;
};
/// The columns of B a tensor-core GEMV fills for each x (its roles): x
/// times gamma, and LayerNorm's gamma and beta.
int64_t mmaGemvRoles(std::optional<NormKind> norm, bool normBias);
/// The plan for a projection of `width` inputs and results of `outWidths`
/// rows quantized to `bits` in groups of `groupSize`, or none when its
/// groups are narrower than a block of 4 lanes' 4-byte loads.
/// `unitsPerBlock` > 0 asks for that many units of several warps a block
/// (at most 16 warps).
std::optional<MmaGemvPlan> planMmaGemv(int64_t bits, int64_t groupSize,
                                       int64_t width,
                                       ArrayRef<int64_t> outWidths, bool swiglu,
                                       int64_t unitsPerBlock = 0);
/// Dynamic shared memory of a tensor-core GEMV's B fragments for `width`
/// inputs (`perRow`: 1, or 2-3 with LayerNorm's sums).
int64_t mmaGemvSharedBytes(int64_t width, int64_t perRow);
/// What a thread does with output `o` of its unit: the finished dots of its
/// rows (SwiGLU: gate, up).
using MmaEpilogue =
    llvm::function_ref<void(KernelBuilder &, Value o, ArrayRef<Value> ys)>;

/// Loads of what a projection's epilogue reads (a residual, RoPE's cos and
/// sin), emitted by the dot products right after their wait on the
/// previous kernel, before the first step's arithmetic, so that their
/// latency hides behind the dot product's, not after it.
using EpilogueLoads = llvm::function_ref<void(KernelBuilder &)>;

/// One kernel being built.
struct Kernel {
  gpu::GPUFuncOp func;
  std::unique_ptr<ImplicitLocOpBuilder> b;
  std::unique_ptr<KernelBuilder> kb;
  llvm::StringMap<Value> args;
  std::vector<std::string> bindings;
  int64_t threads = kThreads;
  /// Dynamic shared memory of a launch.
  int64_t sharedBytes = 0;
  /// The layer whose slab of the K and V caches the kernel's k_cache and
  /// v_cache point at (-1: none): kernels index the cache as if it were
  /// layer 0, so every layer's kernel can be the same.
  int64_t cacheLayer = -1;
  /// The kernel emits its griddepcontrol.wait itself (beginKernel).
  bool waitInside = false;
  /// Blocks in y of a thread-block cluster (1: none).
  int64_t cluster = 1;
  /// A batched decode step skips it (contract::Launch::skipInBatched).
  bool skipInBatched = false;
};

/// What a projection's epilogue does with its products, whichever kernel
/// computes them (the decode GEMV, the epilogue over a matmul's products,
/// the wgmma matmul's accumulators).
struct ProjectionEpilogue {
  enum class Kind {
    Plain,  // bias, an activation or a residual; one result
    SwiGLU, // rows [gate | up], silu(gate) * up
    Append  // rows [q | k | v]: q rotated into outs[0], k rotated and v
            // written into the cache
  } kind = Kind::Plain;
  SmallVector<std::string> outs;
  SmallVector<int64_t> outWidths;
  std::string residual, cosName, sinName;
  int64_t biasOffset = -1; // arena bytes; -1: no bias
  double clip = 0;         // 0: none
  std::optional<Activation> activation;
  int64_t qHeads = 0, half = 0, layer = 0; // Append: half of the rotary dim
  int64_t weightRows = 0, inWidth = 0;
};

/// GELU (erf or tanh) of `y`, a scalar or a vector of f32.
Value applyActivation(KernelBuilder &kb, Value y, Activation activation);

class GPULowering {
public:
  GPULowering(ModuleOp module, func::FuncOp source, bool tensorCores,
              bool programmaticLaunch, bool warpgroupMma, int64_t decodeCluster,
              bool fusedAppend, int64_t gemvUnitsPerBlock, bool trace)
      : module(module), source(source), ctx(module.getContext()),
        tensorCores(tensorCores), programmaticLaunch(programmaticLaunch),
        warpgroupMma(warpgroupMma), decodeCluster(decodeCluster),
        fusedAppend(fusedAppend), gemvUnitsPerBlock(gemvUnitsPerBlock),
        trace(trace) {}
  LogicalResult run();

private:
  // Kernels and the plan.
  /// With programmatic launch the kernel begins with griddepcontrol's
  /// launch_dependents and wait; `waitInside`: the kernel emits the wait
  /// itself (see emitDependencyWait), after loads of what no earlier kernel
  /// of the step writes (the weights).
  Kernel &beginKernel(StringRef name, ArrayRef<Binding> bindings,
                      bool waitInside = false);
  /// griddepcontrol.wait where `kb` inserts, when the launch is
  /// programmatic: what the previous kernels wrote is visible after it.
  /// With `trace`, its release is recorded unless `recordWait` is false.
  void emitDependencyWait(KernelBuilder &kb, bool recordWait = true);
  /// The times a block records with `trace` (contract::TraceField): its
  /// start, its wait's release, its warps' end, a point of the kernel's own.
  enum class TraceMark { Start, Wait, End, Phase };
  /// %globaltimer into this block's record of `k`'s trace: the first start
  /// and wait, the last warp's end; for a Phase, `phase` (below
  /// contract::kTracePhases), recorded by the threads that pass there (the
  /// block's last pass kept).
  void recordTime(KernelBuilder &kb, Kernel &k, TraceMark mark,
                  int64_t phase = 0);
  /// With `trace`: this point of the kernel being built as its phase
  /// `phase`, else nothing.
  void tracePhase(KernelBuilder &kb, int64_t phase);
  void endKernel(Kernel &k, contract::Grid grid,
                 LaunchWhen when = LaunchWhen::Always);
  /// Asks ptxas to fit `blocksPerSM` blocks of k.threads an SM (a register
  /// cap: nvvm.maxntid and nvvm.minctasm), which the driver drops where
  /// ptxas meets it only by spilling. With `raiseOnly`, the kernel keeps no
  /// bounds unless they raise its occupancy (kOccupancyRequestAttr: the
  /// driver lowers the kernels again with the bounds where the kernel holds
  /// fewer blocks without them, and keeps them where ptxas meets them;
  /// compiler/Driver/GPUKernels.h).
  void requestOccupancy(Kernel &k, int64_t blocksPerSM, bool raiseOnly = false);
  static contract::Grid grid(int64_t units, int64_t perBlock, GridScale times,
                             int64_t y = 1, GridScale yTimes = GridScale::One,
                             int64_t yTile = 1);
  /// `units` in blocks of `perBlock`, whose kernel strides over them by
  /// the blocks it is launched with (contract::Grid::resident).
  static contract::Grid residentGrid(int64_t units, int64_t perBlock);
  /// Erases every kernel that repeats an earlier one's code and points
  /// its launches at that one.
  void shareKernels();
  Value step(Kernel &k, StepField field);
  /// The layer to index the K/V caches with in `k`, a constant 0: the
  /// launch binds k_cache and v_cache to `layer`'s slab.
  Value cacheLayer(KernelBuilder &kb, Kernel &k, int64_t layer);
  /// The first cache row of `kvHead` in `layer` (rows of `context`
  /// positions), as `k` indexes the caches.
  Value kvHeadRow0(KernelBuilder &kb, Kernel &k, int64_t layer, Value kvHead,
                   Value context);
  /// The field, read where `kb` inserts.
  Value step(KernelBuilder &kb, Kernel &k, StepField field);
  /// The cache is paged (contract::kCacheBlock): token t's sequence keeps
  /// position j at row table[t * stride + j / block] * block + j % block of
  /// a kv head's rows. `pageRow` is t * stride (kStepTableStride), once a
  /// token; `cacheRowOf` the row of position `pos` through it.
  Value pageRow(KernelBuilder &kb, Kernel &k, Value token);
  Value cacheRowOf(KernelBuilder &kb, Kernel &k, Value pageRow, Value pos);
  /// `n` floats of the kernel's shared memory (a workgroup attribution).
  Value sharedFloats(Kernel &k, int64_t n);
  /// `n` elements of `element` in the kernel's shared memory.
  Value sharedBuffer(Kernel &k, Type element, int64_t n);
  /// The arena bytes at `offset` as a flat buffer of `element`.
  Value arenaView(KernelBuilder &kb, Kernel &k, Type element, int64_t offset);
  /// The weight `weight` whose slot begins at `offset` as a view of the
  /// arena: its elements, or for a #decoder.quantized tensor its bytes,
  /// with `quant` set to its scales' and zero points' views (bits 0 for a
  /// float weight).
  Value weightView(KernelBuilder &kb, Kernel &k, Value weight, int64_t offset,
                   QuantizedWeight &quant);
  std::string newBuffer(int64_t width);
  void release(Value v);
  Value warpSum(KernelBuilder &kb, Value v);

  // Ops.
  LogicalResult lower(Operation *op);
  /// A kernel of a thread an element of `width` columns and a block row a
  /// row (`rows`: the step's tokens, or its logits rows), storing
  /// `element(row, col)` into `out`.
  void elementwiseKernel(
      StringRef name, ArrayRef<Binding> bindings, int64_t width,
      llvm::function_ref<Value(KernelBuilder &, Kernel &, Value, Value)>
          element,
      const std::string &out, GridScale rows = GridScale::Tokens);
  void lowerEmbedding(EmbeddingOp op);
  LogicalResult lowerProjection(Operation *op);
  /// What an append projection's units need: its layer, q heads, units per
  /// rotated head (d - half), half the rotary dimension, the q buffer and
  /// the RoPE tables.
  struct AppendShape {
    int64_t layer, qHeads, unitsPerRotated, half;
    std::string q, cos, sin;
  };
  /// The dot products of weight rows with token t's input, finished;
  /// `loads` (may be null) emitted once on the way.
  using DotsFn = llvm::function_ref<SmallVector<Value>(
      KernelBuilder &, Value t, ArrayRef<Value> rows, EpilogueLoads loads)>;
  /// Stores a result (once per unit: by lane 0 of a GEMV's warp).
  using StoreFn =
      llvm::function_ref<void(KernelBuilder &, Value v, Value memref, Value)>;
  /// What a projection's GEMV (decode) and epilogue (prefill) kernels are
  /// made from (lowerProjection gathers it).
  struct ProjectionKernels {
    FusedLinearOp op;
    SmallVector<Binding> binds, prefillBinds;
    SmallVector<std::string> outs;
    SmallVector<int64_t> outWidths;
    std::string x, residual, halfOut, products;
    int64_t wOffset, bOffset, inWidth, units, weightRows;
    double clip;
    bool append, toLogits;
    AppendShape shape;
    /// A batched step has the LM head as a matmul of its own, so it skips
    /// this projection's GEMV.
    bool batchedHead = false;
    /// Rows of `products` a token: the matmul's partial sums (a decode
    /// step's one token writes and reads only the first).
    int64_t productSplits = 1;
  };
  /// The decode GEMV (`fromProducts` false: a warp per unit, tokens in a
  /// loop) or the prefill epilogue over the matmul's products (a thread per
  /// unit, a block row per token), launched `when`.
  void emitProjectionKernel(const ProjectionKernels &p, bool fromProducts,
                            LaunchWhen when);
  /// The tensor-core plan of `p`'s decode GEMV (quantized weights whose
  /// groups allow it), or none.
  std::optional<MmaGemvPlan> decodeMmaPlan(const ProjectionKernels &p) const;
  /// Unit `firstRow` of a quantized projection on tensor cores for token
  /// t, through its epilogue (GPUProjection.cpp).
  void mmaUnit(KernelBuilder &tb, Kernel &k, const ProjectionKernels &p,
               const MmaGemvPlan &plan, const GemvInput &gemv, Value lane,
               Value t, Value firstRow, const std::string &out0,
               llvm::function_ref<Value(KernelBuilder &, Value, Value)> finish);
  /// Unit u of a tensor-core append projection (plan.appends) for token t:
  /// its rows' dots rotated (or not) and stored as appendUnit does.
  void mmaAppendUnit(
      KernelBuilder &tb, Kernel &k, const ProjectionKernels &p,
      const MmaGemvPlan &plan, const GemvInput &gemv, Value lane, Value t,
      Value u, llvm::function_ref<Value(KernelBuilder &, Value, Value)> finish);
  /// Unit u of an append projection for token t: q heads rotated into the
  /// q buffer, k heads rotated and v features written into the caches.
  void appendUnit(KernelBuilder &tb, Kernel &k, const AppendShape &shape,
                  Value u, Value t, DotsFn dots, StoreFn storeLane0);
  /// What every append of token t needs: the token, the cache row of its
  /// position (through the block table), the cache's layer and context
  /// (appendPlace, once a unit).
  struct AppendPlace {
    Value t, cacheRow, layer, context;
  };
  AppendPlace appendPlace(KernelBuilder &kb, Kernel &k,
                          const AppendShape &shape, Value t);
  /// Where feature i of head `head` goes (slot 0: the q buffer, 1: the K
  /// cache, 2: the V cache): the memref and the index.
  std::pair<Value, Value> appendTarget(KernelBuilder &lb, Kernel &k,
                                       const AppendShape &shape,
                                       const AppendPlace &at, int slot,
                                       Value head, Value i);
  /// The dot products of weight rows `rows` with token t's input (the norm
  /// prologue folded in), each passed through `finish(s, row)`, in every
  /// lane: a warp's GEMV step (GPUGemv.cpp).
  SmallVector<Value>
  gemvDots(KernelBuilder &lb, const GemvInput &in, Value lane, Value t,
           ArrayRef<Value> rows,
           llvm::function_ref<Value(KernelBuilder &, Value, Value)> finish,
           EpilogueLoads loads = {});
  /// The quantized decode GEMV of one unit for token t on tensor cores:
  /// `tileRows` the first row of each tile; each of the block's threads
  /// then runs `epilogue` on its outputs (GPUGemvMma.cpp). `in.partials`
  /// holds warps x (tiles 16 x 3 + 2) floats.
  void mmaGemv(KernelBuilder &lb, const GemvInput &in, const MmaGemvPlan &plan,
               Value lane, Value t, ArrayRef<Value> tileRows,
               llvm::function_ref<Value(KernelBuilder &, Value, Value)> finish,
               MmaEpilogue epilogue);
  /// Warps of the decode GEMV per output unit (a unit a block when > 1).
  static int64_t gemvWarpsPerUnit(int64_t units);
  /// Whether a prefill of `op` runs its products on tensor cores.
  bool hasPrefillMatmul(FusedLinearOp op) const;
  /// The buffer a prefill's producer of `v` writes `v` into already rounded
  /// to the weights' half precision, when `v`'s one consumer is a
  /// projection without a norm that multiplies it so (the SwiGLU/GELU
  /// output into the down projection, attention into O): the consumer then
  /// needs no prepare_activations kernel. Empty when not. The buffer is the
  /// consumer's to free.
  std::string halfPrefillBufferFor(Value v);
  /// f32 builds: kernels writing the input of `op`, normalized by its fused
  /// norm, as bf16 hi + lo (GPUMatmul.cpp), launched `when`; returns the
  /// buffer.
  std::string prepareSplitActivations(FusedLinearOp op,
                                      LaunchWhen when = LaunchWhen::Prefill);
  /// The mma.sync matmul writing the raw products norm(x) . W[n] of all
  /// `rows` weight rows from `input` (split, or `half`: in the weights' half
  /// precision) into `into`, or into a new buffer when that is empty;
  /// returns the buffer (a new one is the caller's to free after the
  /// epilogue). A new buffer holds `*splitsOut` rows of products a token
  /// (token t's in rows t * splits .. t * splits + splits - 1), partial sums
  /// over shares of the columns that its reader adds; `into` gets one.
  /// The shares of the columns a matmul built with `splits` uses in a call
  /// of `nTokens` tokens: `splits` for one token tile, else 1.
  static Value matmulShares(KernelBuilder &kb, Value nTokens, int64_t splits);
  std::string matmulProducts(FusedLinearOp op, const std::string &input,
                             bool half, int64_t wOffset, int64_t rows,
                             LaunchWhen when, std::string into = "",
                             int64_t *splitsOut = nullptr);
  /// Weight rows per block of `e`'s wgmma matmul (BN), or 0 when the
  /// projection keeps the mma.sync matmul (GPUWgmmaMatmul.cpp).
  int64_t wgmmaTileRows(const ProjectionEpilogue &e) const;
  /// A TMA descriptor the runtime encodes: `inner` x `outer` elements of
  /// `element` at `offset` bytes into `buffer` (outer -n: n rows a position
  /// of the context), boxes of 64 x `boxOuter`, from `cacheLayer`'s slab of
  /// a cache when not -1; returns its binding name.
  std::string tensorMap(StringRef buffer, int64_t offset, Type element,
                        int64_t inner, int64_t outer, int64_t boxOuter,
                        int64_t cacheLayer = -1);
  /// The wgmma matmul of a prefill projection with its epilogue fused;
  /// `prepared` holds the activations in the weights' half precision.
  void emitWgmmaProjection(FusedLinearOp op, const ProjectionEpilogue &e,
                           ArrayRef<Binding> epilogueBindings,
                           const std::string &prepared, int64_t wOffset,
                           int64_t bn, LaunchWhen when);
  void wgmmaEpilogue(KernelBuilder &kb, Kernel &k, FusedLinearOp op,
                     const ProjectionEpilogue &e, Value acc, int64_t bn,
                     Value t, Value m0, Value n0);
  void appendEpilogue(
      KernelBuilder &kb, Kernel &k, const ProjectionEpilogue &e, int64_t bn,
      Value token, Value n0, Value q2,
      llvm::function_ref<Value(KernelBuilder &, int64_t, Value)> products);
  /// A kernel writing the input of `op`, normalized by its fused norm, in
  /// the weights' half precision, launched `when`; returns the buffer.
  std::string prepareHalfActivations(FusedLinearOp op,
                                     LaunchWhen when = LaunchWhen::Prefill);
  LogicalResult lowerAttention(CachedAttentionOp op);
  /// Flash attention of a decode step: the keys split over blocks, a block
  /// per (kv head, split) for the whole query group, the splits merged by
  /// the last block (GPUDecodeAttention.cpp); and of a batched step, a
  /// block per (token, kv head, split), into `batchedOut`.
  void decodeAttention(CachedAttentionOp op, const std::string &q,
                       const std::string &out, const std::string &batchedOut,
                       Type batchedOutElement, int64_t slopesOffset);
  void emitDecodeAttention(CachedAttentionOp op, const std::string &q,
                           const std::string &out, Type outElement,
                           const std::string &partials,
                           const std::string &counters, int64_t slopesOffset,
                           bool batched);
  /// Flash attention of a prefill on tensor cores (`bindings`: the row
  /// kernel's arguments), launched `when`.
  void flashPrefillMma(CachedAttentionOp op, ArrayRef<Binding> bindings,
                       const std::string &q, const std::string &out,
                       int64_t slopesOffset, LaunchWhen when);
  /// Whether a long prompt's attention with heads of `headDim` features
  /// takes flashPrefillTiled (half precision, the K/V tiles fit in static
  /// shared memory).
  bool canTileAttention(int64_t headDim) const;
  /// Whether the vision encoder's attention takes encoderAttentionTiled.
  bool canTileEncoderAttention(int64_t headDim) const;
  /// Flash attention of a long prompt, K/V tiles shared by a block of 64
  /// queries (GPUAttentionTiled.cpp).
  void flashPrefillTiled(CachedAttentionOp op, ArrayRef<Binding> bindings,
                         const std::string &q, const std::string &out,
                         int64_t slopesOffset);
  /// Whether a long prompt's attention with heads of `headDim` features
  /// takes flashPrefillWgmma (sm_90a, half precision).
  bool canWgmmaAttention(int64_t headDim) const;
  /// Flash attention of a long prompt on wgmma, K/V tiles streamed by TMA
  /// to two consumer warpgroups of 64 queries (GPUAttentionWgmma.cpp).
  void flashPrefillWgmma(CachedAttentionOp op, ArrayRef<Binding> bindings,
                         const std::string &q, const std::string &out,
                         int64_t slopesOffset);
  /// The cos and sin buffers of `rope` for this call's positions, made by
  /// kernels launched at the first use.
  std::pair<std::string, std::string> ropeTables(RoPEAttr rope);

  // The vision encoder (GPUVision.cpp).
  /// `@vision` into visionPlan and visionShape, after the forward pass.
  LogicalResult lowerVision(func::FuncOp vision);
  /// A new buffer for `result` (its features a row).
  std::string defineBuffer(Value result);
  void lowerPatchEmbedding(PatchEmbeddingOp op);
  void lowerEncoderAttention(EncoderAttentionOp op);
  /// The encoder's attention on tensor cores (GPUAttention.cpp): `q`,
  /// `keys`, `values` and `out` rows of heads x d.
  void encoderAttentionMma(EncoderAttentionOp op, const std::string &q,
                           const std::string &keys, const std::string &values,
                           const std::string &out);
  void encoderAttentionTiled(EncoderAttentionOp op, const std::string &q,
                             const std::string &keys, const std::string &values,
                             const std::string &out);
  void lowerRMSNorm(RMSNormOp op);
  void lowerLayerScale(LayerScaleOp op);
  void lowerAdd(AddOp op);
  void lowerPixelShuffle(PixelShuffleOp op);
  void lowerAllReduce(AllReduceOp op);
  /// The LM head's vocabulary slices gathered into the logits.
  LogicalResult lowerAllGather(AllGatherOp op);
  /// The greedy token of each logits row of a batched step (the first of
  /// its largest, as the host's argmax), into "argmax": a server's greedy
  /// steps copy back a token a sequence instead of its logits.
  void emitLogitsArgmax();
  /// Erases the kernels no launch of either plan runs (the vision
  /// projections' decode GEMVs).
  void eraseUnlaunchedKernels();

  ModuleOp module;
  func::FuncOp source;
  MLIRContext *ctx;
  /// Prefill on tensor cores (the pass's tensor-cores option).
  bool tensorCores;
  /// griddepcontrol at each kernel's start (the pass's programmatic-launch).
  bool programmaticLaunch;
  /// Large prefills on wgmma + TMA (the pass's warpgroup-mma; sm_90a).
  bool warpgroupMma;
  /// Blocks a cluster of the decode attention (the pass's decode-cluster).
  int64_t decodeCluster;
  /// The pass's fused-append: a quantized QKV on tensor cores rotates and
  /// appends itself (mmaAppendUnit).
  bool fusedAppend;
  /// Units a block of a tensor-core GEMV whose units have several warps
  /// (the pass's gemv-units-per-block; 0: planMmaGemv's choice).
  int64_t gemvUnitsPerBlock;
  /// Every kernel records when its blocks start, wait and end (the pass's
  /// trace).
  bool trace;
  /// The weights are bf16 or f16: the build is held to the reference
  /// implementation's half-precision run, not to f32.
  bool halfPrecision = false;
  /// Their type then (bf16 or f16), what the tensor cores multiply.
  Type halfElement;
  /// The plan being built (its buffers, tensor maps and launches).
  contract::Plan plan;
  /// The vision encoder's, when the module has one.
  std::optional<contract::VisionPlan> visionPlan;
  std::optional<contract::VisionShape> visionShape;
  llvm::StringMap<std::string> tensorMapNames;
  gpu::GPUModuleOp kernels;
  decc::WeightArena arena;
  std::vector<std::unique_ptr<Kernel>> open;
  DenseMap<Value, std::string> bufferOf;
  /// Values a prefill writes in half precision (halfPrefillBufferFor).
  DenseMap<Value, std::string> halfPrefillBufferOf;
  DenseMap<Value, int64_t> widthOf;
  DenseMap<Value, Operation *> lastUse;
  /// Layer scales the residual add after them applies (lowerLayerScale).
  DenseMap<Value, LayerScaleOp> scaleInAdd;
  std::vector<std::pair<std::string, int64_t>> freeBuffers; // name, width
  DenseMap<Attribute, std::pair<std::string, std::string>> ropeBuffers;
  /// What the KV cache holds (the kernels compute in f32).
  Type cacheElement;
  /// Eager attention's scores (every layer has the same heads).
  std::string scoresBuffer;
  Value returned;
  int64_t cacheLayers = 0, cacheKVHeads = 0, cacheHeadDim = 0, vocab = 0;
  int64_t reencodeAt = 0;
  unsigned kernelCount = 0;
};

inline int64_t featuresOf(Value v) { return featuresPerToken(v); }

/// Every decoder.linear of `block` as a decoder.fused_linear without
/// prologue or epilogue, which the projection kernels take.
void linearsAsProjections(Block &block);

/// Lane and warp of this thread, and the global warp index.
struct WarpIds {
  Value lane, warp;
};
WarpIds warpIds(KernelBuilder &kb);
Value isZero(KernelBuilder &kb, Value i);
/// The sum (or max) of `v` over the lanes that XOR butterflies with
/// `offsets` reach; every such lane gets it.
Value shuffleReduce(KernelBuilder &kb, Value v, ArrayRef<int32_t> offsets,
                    bool isMax);
/// Butterfly offsets over a whole warp, and over the quad of lanes that
/// holds one row of an mma fragment.
constexpr int32_t kWholeWarp[] = {16, 8, 4, 2, 1};
constexpr int32_t kQuad[] = {1, 2};
Value less(KernelBuilder &kb, Value a, Value b);
/// The i1 `cond` negated.
Value negate(KernelBuilder &kb, Value cond);
/// `v` of lane `lane` (an index below 32), in every lane.
Value shuffleFrom(KernelBuilder &kb, Value v, Value lane);
/// For each set s of `weights` (a value per lane): acc[s][j] += the sum
/// over i < count (at most 32) of w_s,i * element(row_i, j), w_s,i what
/// weights[s] holds in lane i; each element is loaded once for every set.
/// 8 terms at a time, unrolled so that their loads overlap. `rowOf` clamps
/// an i past `count` to a real row (its weight is 0).
SmallVector<Value> sumWeightedByLane(
    KernelBuilder &kb, ValueRange weights, Value count, ValueRange acc,
    llvm::function_ref<Value(KernelBuilder &, Value)> rowOf,
    llvm::function_ref<Value(KernelBuilder &, Value, int64_t)> element);

} // namespace decc::gpulowering

#endif // DECC_CONVERSION_GPU_GPULOWERING_H
