//===- CPULowering.h - the state of convert-decoder-to-cpu ------*- C++ -*-===//
//
// Shared by the files of the CPU lowering (DecoderToCPU.cpp: setup,
// embedding, norms, elementwise ops and the driver; CPUProjection.cpp;
// CPUAttention.cpp).
//
//===----------------------------------------------------------------------===//

#ifndef DECC_CONVERSION_CPU_CPULOWERING_H
#define DECC_CONVERSION_CPU_CPULOWERING_H

#include "compiler/Conversion/Common/Activations.h"
#include "compiler/Conversion/Common/KernelBuilder.h"
#include "compiler/Conversion/Common/LoweringCommon.h"
#include "compiler/Conversion/Common/WeightArena.h"

#include "Decoder/DecoderOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

#include "llvm/ADT/StringMap.h"

#include <memory>
#include <optional>

namespace decc::cpulowering {

using namespace mlir;
using namespace mlir::decoder;

/// Where feature i of key j of a layer's kv head g is in the K cache's
/// tiles (ForwardLowering::keyTiles).
SmallVector<Value> keyTileIndex(KernelBuilder &kb, Value layer, Value g,
                                Value j, Value i);

/// Where position j of token t's sequence is in the paged KV cache's pool
/// of positions (contract::kCacheBlock): through `table`'s row for t.
Value cacheSlot(KernelBuilder &kb, Value table, Value t, Value j);

constexpr int64_t kArenaAlignment = WeightArena::kAlignment;

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
  /// `layer` as a value of decc_forward (ForwardLowering::layerIndex).
  Value layerIndex;
  /// The paged cache's block table (decc_forward's).
  Value blockTable;
};

/// A chunk of a prompt's bf16 inputs as the right tiles of AMX's
/// tdpbf16ps (CPUTileMatmul.cpp): `pairs` [column pair][token of the
/// chunk] i32, `tiles` the same bytes as [column pair][2 x token] bf16,
/// `raw` their allocation. Static shapes: every tile's address is a base
/// and a constant.
struct TilePairs {
  Value raw, pairs, tiles;
};
/// Whether a projection of bf16 `weight` ([rows][inWidth]) on bf16 inputs
/// `x` goes in tiles: whole tiles of columns (32) and of pairs of rows.
bool tileMatmulFits(Value weight, Value x, int64_t inWidth);
/// The row length (in 32-bit elements) of a chunk's TilePairs and sums: 16
/// past the chunk, so that a tile's 16 rows do not fall in the same few L1
/// sets (a chunk of 512 is 2 KiB a row, and a tile's rows 2 KiB apart
/// met in 2 of L1's 64 sets).
int64_t tileRowStride(int64_t chunk);
/// TilePairs for `chunk` tokens (a multiple of 32) of `inWidth` columns.
TilePairs allocTilePairs(KernelBuilder &kb, int64_t inWidth, int64_t chunk);
/// The input rows [from, end) of `x` ([tokens][inWidth] bf16) into `p`.
void packTilePairs(KernelBuilder &kb, const TilePairs &p, Value x, Value from,
                   Value end, int64_t inWidth);
/// sums[feature][t - from] = weight[feature] . x[t] for the tokens [from,
/// end) and every row of `weight`, on AMX tiles, in parallel over pairs of
/// row tiles; `inputs` holds the chunk's inputs (packTilePairs), `sums` is
/// [rows][tileRowStride(chunk)] f32, chunk >= end - from rounded up to 32.
void emitTileMatmul(KernelBuilder &kb, Value weight, const TilePairs &inputs,
                    Value sums, Value from, Value end, int64_t inWidth);

class ForwardLowering {
public:
  ForwardLowering(ModuleOp module, func::FuncOp source, bool bf16Dot,
                  int64_t quantizedLanes, int64_t sliceInputBytes,
                  int64_t sliceTokens, bool amx, int64_t dequantizePromptTokens,
                  bool int16Dots)
      : module(module), source(source), ctx(module.getContext()),
        bf16Dot(bf16Dot), quantizedLanes(quantizedLanes),
        sliceInputBytes(sliceInputBytes), sliceTokens(sliceTokens),
        amx(amx && bf16Dot), dequantizePromptTokens(dequantizePromptTokens),
        int16Dots(int16Dots) {}

  LogicalResult run();

private:
  /// Lowers `vision` (VisionBuilder's @vision) into decc_vision, its
  /// weights in the same arena and its kernels shared with the forward
  /// pass's where they print alike (CPUVision.cpp).
  LogicalResult lowerVision(func::FuncOp vision);
  void lowerPatchEmbedding(PatchEmbeddingOp op);
  void lowerEncoderAttention(EncoderAttentionOp op);
  void lowerLayerScale(LayerScaleOp op);
  void lowerPixelShuffle(PixelShuffleOp op);

  // Setup.
  void createEntryFunction();
  /// A C-interface function `name(args)` inserted before `at`, which
  /// becomes `entry`, with `b` at the start of its body; its entry block.
  Block *beginEntry(func::FuncOp at, StringRef name, ArrayRef<Type> args);
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
  /// The collectives: calls of the runtime's (contract::kAllReduceFunction,
  /// kAllGatherFunction) between kernels.
  void lowerAllReduce(AllReduceOp op);
  void lowerAllGather(AllGatherOp op);
  /// `name(args)`, an external function of i64 arguments and `result`
  /// (none if null) declared once; its result.
  Value callRuntime(StringRef name, ArrayRef<Value> args, Type result = {});
  /// Where a projection writes the logits the caller asked for (the last
  /// dim(%logits, 0) tokens' rows): %logits, or for a rank's share that an
  /// all_gather returns, a buffer of those rows.
  Value logitsTarget(Value result, int64_t width);

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
  /// The epilogues of a projection's rows: q/k rotated and k/v appended to
  /// the cache, SwiGLU's gate and up, or plain rows (bias, activation,
  /// residual, the logits).
  struct ProjectionRows;
  void emitAppendProjection(const Projection &p, const ProjectionRows &dots);
  void emitSwiGLUProjection(const Projection &p, const ProjectionRows &dots);
  /// SwiGLU on a tile matmul's sums ([feature][token], dots.tileSums), in
  /// blocks of 16 features x 16 tokens transposed in registers.
  void emitTileSwiGLU(const ProjectionRows &dots, Value out, int64_t width);
  void emitPlainProjection(const Projection &p, const ProjectionRows &dots,
                           bool toLogits);
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
  /// One query row `t` and head `h` of a vision encoder attending to keys
  /// [first, end) of `keys`/`values` ([rows, heads, d]), the cache's
  /// blocked online softmax, the result into `out`.
  void emitEncoderHead(KernelBuilder &kb, Value query, Value keys, Value values,
                       Value out, Value t, Value h, Value first, Value end,
                       int64_t d, double scale);

  /// Moves the code lowering one op appended after `after` (the kernel)
  /// into a function of its own, its arguments the values it uses from
  /// decc_forward, and calls it there; a kernel identical to an earlier
  /// one (another layer's, the same shapes) is not emitted again.
  void outlineKernel(Operation *after);
  /// The layer index as a value of decc_forward, so that the layers'
  /// kernels differ in their arguments only.
  Value layerIndex(int64_t layer);
  /// The K cache as [layers][kv heads][context / kCPUKeyTile][head dim]
  /// [kCPUKeyTile] (contract::kCPUKeyTile), at kb's insertion point.
  Value keyTiles(KernelBuilder &kb);

  // Buffers.
  /// [rows, width] (rows: numTokens when null).
  Value alloc(int64_t width, Type element = {}, Value rows = {});
  Value bufferOf(Value v) { return buffers.lookup(v); }
  /// `v`'s buffer, allocated before the kernel that writes it: [numTokens,
  /// width], or [rows, width] (rows made before the kernel too).
  Value define(Value v, int64_t width, Value rows = {});
  /// dim(%logits, 0): the rows the caller asked logits for, made before
  /// the kernel with its outputs' allocations.
  Value callerRows();
  Value weightView(Value weight,
                   std::optional<KVGroupedLayout> layout = std::nullopt);
  /// A quantized weight's encoding, or null for floats.
  static QuantizedAttr quantizationOf(Value weight);
  /// How the kernels read a quantized weight (bits 0 for floats): its
  /// scales ([rows][groups] f16) and, with 4 bits, zero points ([rows]
  /// [groups] i8), in contract::WeightSlot's layout.
  QuantizedDots
  quantizedDots(Value weight,
                std::optional<KVGroupedLayout> layout = std::nullopt);
  /// A view of `shape` x `element` at `byteOffset` into weight's slot.
  Value slotView(Value weight, std::optional<KVGroupedLayout> layout,
                 int64_t byteOffset, ArrayRef<int64_t> shape, Type element);
  Value constantTable(StringRef name, ArrayRef<float> values);
  RoPETable ropeTable(RoPEAttr rope);
  Value keysSeen(); // max(pos) + 1
  /// ALiBi's slopes of the op's heads: of a rank's share of the model's
  /// heads (alibi_heads), the model's from rank x heads on.
  Value alibiSlopes(AttentionConfigAttr config);
  /// How far ahead (bytes, index) a decode step's float and half-precision
  /// rows are prefetched: the runtime's choice for the CPU it runs on
  /// (contract::kPrefetchFunction), asked once a call.
  Value weightPrefetchBytes();
  /// The threads a parallel loop of the call runs on (omp_get_max_threads),
  /// asked once a call: a prompt's panels are dealt out evenly over them.
  Value threadCount();
  void freeDeadOperands(Operation *op);

  ModuleOp module;
  func::FuncOp source;
  MLIRContext *ctx;
  /// bf16 projections multiply bf16 inputs with AVX512-BF16 dot products
  /// (the pass's bf16-dot).
  bool bf16Dot;
  int64_t quantizedLanes;
  /// A block of tokens' input bytes past which a prompt's projection goes
  /// in slices of columns (the pass's slice-input-bytes).
  int64_t sliceInputBytes;
  /// Tokens a sliced projection keeps the sums of at a time (slice-tokens).
  int64_t sliceTokens;
  /// A prompt's bf16 projections as AMX tile matmuls (the pass's amx).
  bool amx;
  /// Tokens from which a call's quantized projections run on their weights
  /// dequantized to f32 (the pass's dequantize-prompt-tokens; 0: never).
  int64_t dequantizePromptTokens;
  /// int4 decode dot products on inputs rounded to int16 (int16-dots).
  bool int16Dots;
  func::FuncOp entry;
  std::unique_ptr<ImplicitLocOpBuilder> b;

  Value arenaArg, tokens, positions, kCache, vCache, state, logits, blockTable;
  /// Rows of the activations: the tokens of a forward call; in
  /// decc_vision, tiles x the rows a tile has at that point.
  Value numTokens;
  Value returned;
  /// A tensor-parallel LM head's share of the logits, which an all_gather
  /// makes the returned logits (null otherwise).
  Value gatheredPart;
  /// decc_vision's tiles, and its shape for the manifest.
  Value tiles;
  std::optional<contract::VisionShape> visionShape;
  int64_t cacheLayers = 0, cacheKVHeads = 0, cacheHeadDim = 0;

  DenseMap<Value, Value> buffers;
  DenseSet<Value> owned;
  DenseMap<Value, Operation *> lastUse;
  DenseMap<Value, Value> weightViews;
  DenseMap<int64_t, Value> layerIndices;
  /// The outputs' allocations, which stay in decc_forward when a kernel is
  /// outlined.
  DenseSet<Operation *> outputAllocs;
  /// Kernels by their text (signature and body), and how many there are.
  llvm::StringMap<func::FuncOp> kernels;
  unsigned kernelCount = 0;
  DenseMap<Attribute, RoPETable> ropeTables;
  Value keysSeenValue, rankValue, prefetchBytesValue, threadsValue;
  /// Quantized groups' terms as f32 (contract::WeightSlot::f32GroupTerms):
  /// a group's end in the dot products is then a broadcast and two FMAs.
  decc::WeightArena arena{/*f32GroupTerms=*/true};
  /// Set while the embedding asks for its table: a decode step gathers one
  /// row of it rather than streaming it.
  bool isGathered = false;
  int64_t reencodeAt = 0;
  unsigned tableCount = 0;
};

inline int64_t widthOf(Value v) { return featuresPerToken(v); }

} // namespace decc::cpulowering

#endif // DECC_CONVERSION_CPU_CPULOWERING_H
