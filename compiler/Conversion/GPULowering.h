//===- GPULowering.h - the state of convert-decoder-to-gpu ------*- C++ -*-===//
//
// Shared by the files of the GPU lowering (DecoderToGPU.cpp: the plan,
// embedding, RoPE tables and the driver; GPUProjection.cpp; GPUAttention.cpp).
//
//===----------------------------------------------------------------------===//

#ifndef DECC_CONVERSION_GPULOWERING_H
#define DECC_CONVERSION_GPULOWERING_H

#include "compiler/Conversion/KernelBuilder.h"
#include "compiler/Conversion/LoweringCommon.h"
#include "compiler/Conversion/WeightArena.h"

#include "Decoder/DecoderOps.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

#include "llvm/ADT/StringMap.h"
#include "llvm/Support/JSON.h"

#include <memory>
#include <vector>

namespace decc::gpulowering {

using namespace mlir;
using namespace mlir::decoder;

/// Elements of a flat buffer as kernels see it: the size is irrelevant
/// (kernels index by hand) but must be static for bare-pointer arguments.
constexpr int64_t kFlat = int64_t(1) << 40;
constexpr int64_t kWarpsPerBlock = 4;
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

/// What a decode GEMV reads: the activations, the weight rows, and the
/// fused norm's weight and bias (null: none).
struct GemvInput {
  Value x, weight, gamma, beta;
  int64_t width; // input features
  std::optional<NormKind> norm;
  double eps;
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
  GPULowering(ModuleOp module, func::FuncOp source, bool tensorCores,
              bool programmaticLaunch)
      : module(module), source(source), ctx(module.getContext()),
        tensorCores(tensorCores), programmaticLaunch(programmaticLaunch) {}
  LogicalResult run();

private:
  // Kernels and the plan.
  Kernel &beginKernel(StringRef name, ArrayRef<Binding> bindings);
  void endKernel(Kernel &k, llvm::json::Object grid, StringRef when = "always");
  static llvm::json::Object grid(int64_t units, int64_t perBlock,
                                 StringRef times, int64_t y = 1,
                                 StringRef yTimes = "one", int64_t yTile = 1);
  Value step(Kernel &k, StepField field);
  /// The arena bytes at `offset` as a flat buffer of `element`.
  Value arenaView(KernelBuilder &kb, Kernel &k, Type element, int64_t offset);
  std::string newBuffer(int64_t width);
  void release(Value v);
  Value warpSum(KernelBuilder &kb, Value v);

  // Ops.
  LogicalResult lower(Operation *op);
  void lowerEmbedding(EmbeddingOp op);
  LogicalResult lowerProjection(Operation *op);
  /// The dot products of weight rows `rows` with token t's input (the norm
  /// prologue folded in), each passed through `finish(s, row)`, in every
  /// lane: a warp's GEMV step (GPUGemv.cpp).
  SmallVector<Value>
  gemvDots(KernelBuilder &lb, const GemvInput &in, Value lane, Value t,
           ArrayRef<Value> rows,
           llvm::function_ref<Value(KernelBuilder &, Value, Value)> finish);
  /// Whether a prefill of `op` runs its products on tensor cores.
  bool hasPrefillMatmul(FusedLinearOp op) const;
  /// Prefill kernels (the norm statistics, the matmul) writing the raw
  /// products norm(x) . W[n] of all `rows` weight rows; returns their buffer
  /// (the caller frees it after the epilogue).
  std::string prefillProducts(FusedLinearOp op, int64_t wOffset, int64_t rows);
  LogicalResult lowerAttention(CachedAttentionOp op);
  /// Flash attention of a prefill on tensor cores (`bindings`: the row
  /// kernel's arguments).
  void flashPrefillMma(CachedAttentionOp op, ArrayRef<Binding> bindings,
                       const std::string &q, const std::string &out,
                       int64_t slopesOffset);
  /// The cos and sin buffers of `rope` for this call's positions, made by
  /// kernels launched at the first use.
  std::pair<std::string, std::string> ropeTables(RoPEAttr rope);

  ModuleOp module;
  func::FuncOp source;
  MLIRContext *ctx;
  /// Prefill on tensor cores (the pass's tensor-cores option).
  bool tensorCores;
  /// griddepcontrol at each kernel's start (the pass's programmatic-launch).
  bool programmaticLaunch;
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

inline int64_t featuresOf(Value v) { return featuresPerToken(v); }

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

} // namespace decc::gpulowering

#endif // DECC_CONVERSION_GPULOWERING_H
