//===- Contract.h - what decc and the runtime agree on ----------*- C++ -*-===//
//
// The one place the compiler and the runtime both read: the entry points an
// emitted object defines, the GPU step record, the limits both sides size
// things by, and the spellings of element types and attention backends.
// Plain C++17: the runtime links it without MLIR or LLVM.
//
//===----------------------------------------------------------------------===//

#ifndef DECC_CONTRACT_CONTRACT_H
#define DECC_CONTRACT_CONTRACT_H

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

namespace decc::contract {

//===----------------------------------------------------------------------===//
// Element types and attention backends
//===----------------------------------------------------------------------===//

/// What weights and the KV cache are stored as (activations are f32).
enum class DType { F32, BF16, F16 };

/// "f32", "bf16", "f16".
const char *spelling(DType dtype);
std::optional<DType> parseDType(std::string_view text);
int64_t byteSize(DType dtype);

enum class AttentionBackend { Eager, Flash };

/// "eager", "flash".
const char *spelling(AttentionBackend backend);
/// Every name a backend goes by: decc's own and Hugging Face's
/// `attn_implementation` values (fused attention with the eager semantics:
/// decc compiles them as flash). The one list: the parser below, the
/// messages and the pass option's values are made from it.
struct AttentionBackendName {
  const char *name;
  AttentionBackend backend;
};
inline constexpr AttentionBackendName kAttentionBackendNames[] = {
    {"eager", AttentionBackend::Eager},
    {"flash", AttentionBackend::Flash},
    {"sdpa", AttentionBackend::Flash},
    {"flash_attention_2", AttentionBackend::Flash},
    {"flash_attention_3", AttentionBackend::Flash},
    {"flex_attention", AttentionBackend::Flash}};
std::optional<AttentionBackend> parseAttentionBackend(std::string_view text);
/// The accepted names, comma separated, for messages.
std::string attentionBackendSpellings();

//===----------------------------------------------------------------------===//
// Entry points of an emitted object
//===----------------------------------------------------------------------===//

/// `const char *decc_manifest(void)`: the manifest, JSON (Manifest.h).
constexpr const char *kManifestFunction = "decc_manifest";
/// `const void *decc_gpu_image(unsigned long *size)`: the GPU kernels' cubin
/// (--target=cuda).
constexpr const char *kGPUImageFunction = "decc_gpu_image";
/// The CPU forward pass (--target=cpu), with MLIR's C interface
/// (`_mlir_ciface_decc_forward`): one memref descriptor per argument.
constexpr const char *kForwardFunction = "decc_forward";

/// decc_forward's arguments, in order.
enum ForwardArg {
  kArenaArg,      // i8[arena bytes]: the weights (Manifest::weights)
  kTokensArg,     // i64[tokens]
  kPositionsArg,  // i64[tokens]
  kKCacheArg,     // [layers, kv heads, context, head dim] of the cache dtype;
                  // the bytes of a layer and kv head are the keys in tiles
                  // of kCPUKeyTile, each feature-major (kCPUKeyTile below)
  kVCacheArg,     // [layers, kv heads, context, head dim], key-major
  kStateArg,      // i64[kStateWords]: what RoPE keeps across calls
  kLogitsArg,     // f32[rows, vocab]: the logits of the last rows tokens
  kImageArg,      // f32[image rows, hidden]: what ids vocab + j embed as
                  // (InternVL models; no rows otherwise)
  kBlockTableArg, // i32[1 or tokens, blocks]: where each token's sequence
                  // keeps its keys and values (kCacheBlock below)
  kForwardArgs
};
constexpr int kForwardArgRank[kForwardArgs] = {1, 1, 1, 4, 4, 1, 2, 2, 2};
/// The CPU K cache holds a layer and kv head's keys in tiles of this many
/// keys, [context / kCPUKeyTile][head dim][kCPUKeyTile]: a feature of a
/// tile's keys is one vector, so a query's scores against the tile are
/// FMAs of that vector with the query's feature, with no horizontal sum a
/// key. The runtime's context (the descriptor's size) is a multiple of it.
constexpr int64_t kCPUKeyTile = 16;

/// The CPU KV cache is paged: the context dimension of the caches is a
/// pool of blocks of kCacheBlock positions, and a sequence's key or value
/// at position j is at row `table[r][j / kCacheBlock] * kCacheBlock + j %
/// kCacheBlock` of the pool, r the token's row of the block table: 0 when
/// the table has one row (every token of the call is one sequence's: a
/// prompt, a decode step), else the token's own index (one token of each
/// of several sequences: a batched decode step). A block is a whole
/// number of key tiles, so a tile never straddles two blocks.
constexpr int64_t kCacheBlock = 16;
static_assert(kCacheBlock % kCPUKeyTile == 0, "a block holds whole tiles");
/// The blocks `positions` cache positions take.
constexpr int64_t cacheBlocksFor(int64_t positions) {
  return (positions + kCacheBlock - 1) / kCacheBlock;
}

/// A memref descriptor as MLIR's C interface passes it.
template <typename T, int N> struct MemRefDescriptor {
  T *allocated;
  T *aligned;
  int64_t offset;
  int64_t sizes[N];
  int64_t strides[N];
};

template <ForwardArg A, typename T>
using ForwardArgRef = MemRefDescriptor<T, kForwardArgRank[A]>;
/// The cache's element type is the manifest's (Manifest::cache.dtype).
using CacheRef = ForwardArgRef<kKCacheArg, void>;
using ForwardSignature = void(ForwardArgRef<kArenaArg, uint8_t> *,
                              ForwardArgRef<kTokensArg, int64_t> *,
                              ForwardArgRef<kPositionsArg, int64_t> *,
                              CacheRef *, CacheRef *,
                              ForwardArgRef<kStateArg, int64_t> *,
                              ForwardArgRef<kLogitsArg, float> *,
                              ForwardArgRef<kImageArg, float> *,
                              ForwardArgRef<kBlockTableArg, int32_t> *);

/// The CPU vision encoder of an InternVL model (`_mlir_ciface_decc_vision`,
/// absent from other models' objects): the projected image embeddings of
/// a batch of tiles, `tokens a tile` rows a tile.
constexpr const char *kVisionFunction = "decc_vision";
using VisionSignature =
    void(MemRefDescriptor<uint8_t, 1> *, // the arena, as decc_forward's
         MemRefDescriptor<float, 4> *,   // pixels [tiles, channels, size, size]
         MemRefDescriptor<float, 2> *);  // out [tiles x tokens, hidden]

/// The collectives of a tensor-parallel CPU build (decoder.all_reduce,
/// decoder.all_gather), which the runtime provides over its communicator:
/// the generated code calls them between kernels, every rank the same
/// calls in the same order, with the buffers' addresses as integers.
///   decc_all_reduce(in, out, count): out = the sum over ranks of `count`
///     floats at in (in == out allowed);
///   decc_all_gather(part, whole, rows, cols): rank r's [rows, cols] part
///     becomes columns [r cols, (r + 1) cols) of every rank's
///     [rows, ranks x cols] whole.
///   decc_rank(): the calling process's rank (0 to ranks - 1), which
///     places a rank's heads among the model's (their ALiBi slopes).
constexpr const char *kAllReduceFunction = "decc_all_reduce";
constexpr const char *kRankFunction = "decc_rank";
constexpr const char *kAllGatherFunction = "decc_all_gather";
using AllReduceSignature = void(int64_t, int64_t, int64_t);
using AllGatherSignature = void(int64_t, int64_t, int64_t, int64_t);
using RankSignature = int64_t();

/// How many bytes ahead of its loads a decode step prefetches its float
/// and half-precision weight rows (0: none), which the executable chooses
/// for the CPU it runs on (decc::rt::weightPrefetchBytesFor, or
/// DECC_PREFETCH_BYTES); the generated code asks once a call.
constexpr const char *kPrefetchFunction = "decc_prefetch_bytes";
using PrefetchSignature = int64_t();

/// Words of the RoPE state (dynamic NTK's sticky length; zero at a
/// generation's start).
constexpr int64_t kStateWords = 8;

//===----------------------------------------------------------------------===//
// The GPU step record and limits
//===----------------------------------------------------------------------===//

/// The runtime writes a step record (int64 words) before each forward call;
/// the GPU kernels read the fields they need from it.
enum StepField {
  kStepTokens,      // tokens of this call
  kStepStart,       // the first token's position
  kStepRows,        // logits rows to write
  kStepKeys,        // keys seen after this call (start + tokens)
  kStepContext,     // positions the cache holds
  kStepSplits,      // blocks a decode step's keys are split over
  kStepTableStride, // block_table entries between two tokens' rows: 0 when
                    // every token of the call is one sequence's (row 0)
  kStepJoined,      // 1 when a batched step holds several tokens of one
                    // sequence (a short prompt's): its keys are appended by
                    // the step itself
  kStepWords = 8
};

/// The product of non-negative `factors`, or nullopt when it overflows
/// int64: the one way sizes that come from a file or the command line are
/// multiplied before anything is allocated or indexed with them.
std::optional<int64_t> checkedProduct(std::initializer_list<int64_t> factors);

/// KV-cache positions an executable takes at most (--max-context): far
/// beyond any model's context, and small enough that no size computed from
/// it overflows.
constexpr int64_t kMaxContext = int64_t(1) << 24;

/// A launch's records in the `trace` buffer of a build with kernel traces
/// (decc --gpu-trace): one for each of its first kTraceBlocks blocks, of
/// kTraceWords words, each a %globaltimer ns: the block's start and its
/// wait's first release, each stored as its bitwise complement, its last
/// warp's end, and kTracePhases points of the kernel's own (the decode
/// attention's: its keys folded, its teams merged, its split counted, the
/// splits merged), each the block's last pass there (the kernels take
/// only maxima of a zeroed record, and a block's record is its own: no two
/// blocks contend for a word).
enum TraceField {
  kTraceStart,
  kTraceWait,
  kTraceEnd,
  kTraceFirstPhase,
  kTracePhases = 5,
  kTraceWords = kTraceFirstPhase + kTracePhases
};
constexpr int64_t kTraceBlocks = 4096;
/// Bytes of a launch's records: the `trace` buffer holds one such slice
/// for each launch of the plan, in the plan's order.
constexpr int64_t kTraceLaunchBytes = kTraceBlocks * kTraceWords * 8;

/// A decode step splits its keys over at most this many blocks.
constexpr int64_t kMaxSplits = 128;
/// The most blocks of a thread-block cluster a launch may ask for (16 is
/// sm_90's non-portable limit).
constexpr int64_t kMaxClusterBlocks = 16;
/// A cluster size a launch may have: a power of two up to kMaxClusterBlocks
/// (so it divides kMaxSplits, and a split grid holds whole clusters).
constexpr bool isClusterSize(int64_t blocks) {
  return blocks >= 1 && blocks <= kMaxClusterBlocks &&
         (blocks & (blocks - 1)) == 0;
}

/// Prompts of at least this many tokens run the plan's prefill_large
/// launches (the wgmma matmuls) by default.
constexpr int64_t kLargePrefillTokens = 256;

} // namespace decc::contract

#endif // DECC_CONTRACT_CONTRACT_H
