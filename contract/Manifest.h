//===- Manifest.h - what an emitted executable says about itself -*- C++
//-*-===//
//
// Every object decc emits carries a manifest (`decc_manifest()`, JSON): the
// layout of the weight arena (for each kernel operand, which checkpoint
// tensors fill it, in which row layout and dtype), the KV cache, the model's
// constants and, for CUDA, the launch plan. The lowerings fill these structs,
// the IR carries them as the module's `decc.manifest` attribute, the driver
// completes them and writes the JSON, and the runtime reads it back once
// into the same structs. ManifestJson.cpp is the only code that knows the
// JSON keys.
//
//===----------------------------------------------------------------------===//

#ifndef DECC_CONTRACT_MANIFEST_H
#define DECC_CONTRACT_MANIFEST_H

#include "contract/Contract.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace decc::contract {

/// Bumped whenever a field's meaning changes; a runtime refuses a manifest
/// of another version rather than misread it.
constexpr int64_t kManifestVersion = 2;

/// InternLM2's wqkv: checkpoint rows grouped per KV head as
/// [q x group | k | v]; the arena holds them as [q | k | v].
struct KVGroupedLayout {
  int64_t qHeads = 0, kvHeads = 0, headDim = 0;
};

/// A tensor-parallel shard of a checkpoint tensor (decoder.weight's
/// shard_dim and shard_ranges): every rank in turn lists the same number of
/// [begin, end) ranges of dimension `dim` of the stored tensor, whose
/// concatenation along `dim` is the part that rank loads.
struct WeightShard {
  int64_t dim = 0;
  std::vector<int64_t> ranges;
  /// The ranks the ranges are listed for (their lengths over the part's
  /// size along `dim`).
  int64_t ranks(int64_t partSize) const;
  /// Rank `rank`'s [begin, end) pairs, flattened.
  std::vector<int64_t> rankRanges(int64_t rank, int64_t partSize) const;
  /// The stored tensor's size along `dim`: the largest end (the ranks
  /// together cover the dimension).
  int64_t storedSize() const;
};

struct WeightPart {
  std::string tensor;
  /// The part's shape in the slot (a shard's: one rank's).
  std::vector<int64_t> shape;
  std::optional<KVGroupedLayout> kvGrouped;
  std::optional<WeightShard> shard;
};

/// One kernel operand: `parts` stacked along rows, stored at `offset` of the
/// arena as `dtype`; or a table of constants the compiler computed (RoPE
/// frequencies, ALiBi slopes), written as is.
struct WeightSlot {
  int64_t offset = 0;
  std::vector<int64_t> shape;
  DType dtype = DType::F32;
  std::vector<WeightPart> parts;
  std::vector<float> values;
  /// Weight-only quantization (#decoder.quantized): bits a value (0: the
  /// slot holds `dtype` floats) and columns a group. The slot holds the
  /// integers row by row (`shape` is [rows, cols]), rowBytes() a row, then,
  /// scalesOffset() bytes in, the scales ([rows][groups]), and with 4
  /// bits, zerosOffset() bytes in, the zero points ([rows][groups]).
  /// 8 bits: q * scale, q in [-127, 127]. 4 bits: (q - zero) * scale, q and
  /// zero in [0, 15], two a byte: each run of 16 columns of a row is 8
  /// bytes, byte i holding column i (low nibble) and column i + 8 (high),
  /// so that one 8-byte load widens into two 8-lane vectors of
  /// consecutive columns with a mask and a shift.
  int64_t quantBits = 0, groupSize = 0;
  /// How a group's terms are stored. false (the GPU kernels'): the scales
  /// as f16 and the zero points as u8. true (the CPU kernels'): the same
  /// values as f32, the scale and, where the zero points would be, the
  /// group's offset -zero * scale, so that (q - zero) * scale = q * scale
  /// + offset (exact: both products fit f32's mantissa) and a group of a
  /// dot product ends in a broadcast and two FMAs where widening an f16
  /// and a byte and negating took three times the instructions.
  bool f32GroupTerms = false;
  int64_t numElements() const;
  /// Groups of a row (quantized slots).
  int64_t groups() const;
  /// Bytes of a row's integers (quantized slots).
  int64_t rowBytes() const;
  /// Bytes from the slot's offset to its scales (quantized slots).
  int64_t scalesOffset() const;
  /// Bytes from the slot's offset to its zero points or, f32GroupTerms,
  /// its offsets (4-bit slots).
  int64_t zerosOffset() const;
  /// Bytes of one group's scale (and of its zero point or offset, 4 bits).
  int64_t scaleBytes() const { return f32GroupTerms ? 4 : 2; }
  int64_t zeroBytes() const { return f32GroupTerms ? 4 : 1; }
  /// Where column `c` of a 4-bit row lives: its byte in the row, and the
  /// shift of its nibble in that byte.
  static int64_t int4Byte(int64_t c) { return c / 16 * 8 + c % 8; }
  static int int4Shift(int64_t c) { return c % 16 >= 8 ? 4 : 0; }
  /// Bytes the slot takes in the arena.
  int64_t bytes() const;
};

struct CacheShape {
  int64_t layers = 0, kvHeads = 0, headDim = 0;
  DType dtype = DType::F32;
  /// Bytes of K and V together for `context` positions.
  int64_t bytes(int64_t context) const;
  /// bytes(), or nullopt when it would overflow (checkedProduct).
  std::optional<int64_t> checkedBytes(int64_t context) const;
};

enum class Target { CPU, CUDA };

/// What the driver knows of the build: the config and the options.
struct ModelFacts {
  std::string modelType, config;
  DType dtype = DType::F32;
  AttentionBackend attention = AttentionBackend::Flash;
  std::string cpu, gpuArch;
  /// The CPU kernels use AMX tiles: the runtime asks Linux for their state
  /// (arch_prctl ARCH_REQ_XCOMP_PERM) before the first call.
  bool amx = false;
  int64_t maxPositions = 0;
  int64_t bos = -1;
  std::vector<int64_t> eos;
  /// --dtype int8/int4: the projections' bits and group (0: float weights).
  int64_t quantBits = 0, groupSize = 0;
};

//===----------------------------------------------------------------------===//
// The CUDA launch plan: the kernels in order, on one stream
//===----------------------------------------------------------------------===//

/// When a launch runs: every call, decode steps (one token, one row),
/// calls of several tokens, or those below / from the large-prefill length,
/// or batched decode steps (one token of each of several sequences, each
/// through its own row of the block table; they also run the launches of
/// their token count's prefill).
enum class LaunchWhen {
  Always,
  Decode,
  Prefill,
  PrefillSmall,
  PrefillLarge,
  Batched
};

/// What a grid dimension is multiplied by: 1, this call's tokens, its
/// logits rows, or kMaxSplits.
enum class GridScale { One, Tokens, Rows, Splits };

/// Blocks in x: ceil(units * scale(times) / perBlock); in y:
/// y * ceil(scale(yTimes) / yTile). A `resident` grid's kernel strides over
/// its units by the blocks it is launched with, so the runtime may launch
/// fewer in x: at most as many as the card holds at once (one wave), or a
/// share of them that leaves room for the next kernel's blocks.
struct Grid {
  int64_t units = 1, perBlock = 1;
  GridScale times = GridScale::One;
  int64_t y = 1;
  GridScale yTimes = GridScale::One;
  int64_t yTile = 1;
  bool resident = false;
};

/// What a launch of a tensor-parallel build does instead of a kernel: a
/// collective over the ranks (NCCL). AllReduce: each token's `floats` floats
/// of args[0] summed over the ranks, in place. AllGather: the last rows
/// (the step's logits rows) of args[0] ([tokens, floats]) from every rank
/// into args[1] as [ranks][rows][floats].
enum class Collective { None, AllReduce, AllGather };

/// A kernel launch. Each of `args` names what the kernel gets as a pointer:
/// "arena", "step" (the step record), "tokens", "positions", "k_cache",
/// "v_cache", "state", "logits", a plan buffer or a tensor map.
struct Launch {
  std::string kernel;
  Grid grid;
  int64_t block = 128;
  std::vector<std::string> args;
  LaunchWhen when = LaunchWhen::Always;
  int64_t sharedBytes = 0; // dynamic shared memory
  /// Bytes past the arena's start that "arena" points at in this launch,
  /// and the layer whose slab of the caches "k_cache" and "v_cache" point
  /// at: the kernel addresses its layer's weights and cache relative to
  /// them, so one kernel serves every layer of a shape.
  int64_t arenaOffset = 0, cacheLayer = 0;
  /// Blocks in y that form a thread-block cluster (1: none); a power of two
  /// of at most kMaxClusterBlocks. A grid scaled by the splits then has a
  /// multiple of it in y, and every step's splits are a multiple of it.
  int64_t cluster = 1;
  /// Whether a batched decode step skips the kernel: a prompt's attention
  /// (it takes the call's tokens as one sequence's consecutive positions,
  /// its queries tiled over shared keys), or the LM head's GEMV where the
  /// step has the head as a matmul of its own.
  bool skipInBatched = false;
  /// A collective in place of the kernel (which is then ""), over `floats`
  /// floats a row.
  Collective collective = Collective::None;
  int64_t floats = 0;
};

/// Device memory for activations and scratch, sized for the context.
struct PlanBuffer {
  enum class Size {
    PerToken,    // floats x context
    PerTokenKey, // floats x context x context (eager scores)
    Fixed        // floats
  };
  std::string name;
  Size size = Size::PerToken;
  int64_t floats = 0;
  /// Bytes of the buffer for `context` positions.
  int64_t bytes(int64_t context) const;
  /// bytes(), or nullopt when it would overflow (checkedProduct).
  std::optional<int64_t> checkedBytes(int64_t context) const;
};

/// A TMA descriptor over a 2-D row-major half-precision matrix of `inner`
/// x `outer` elements at `offset` bytes into `buffer` (outer -n: n rows a
/// position of the context), with 128-byte swizzled boxes of `boxInner` x
/// `boxOuter`. With `cacheLayer` >= 0 the buffer is k_cache or v_cache and
/// the matrix starts at that layer's slab, as a launch's cache_layer moves
/// its cache arguments.
struct TensorMapSpec {
  std::string name, buffer;
  int64_t offset = 0;
  DType dtype = DType::BF16;
  int64_t inner = 0, outer = 0, boxInner = 0, boxOuter = 0;
  int64_t cacheLayer = -1;
};

struct Plan {
  std::vector<PlanBuffer> buffers;
  std::vector<TensorMapSpec> tensorMaps;
  std::vector<Launch> launches;
  int64_t largePrefillTokens = kLargePrefillTokens;
  /// Kernels wait on their predecessor (griddepcontrol), so they may be
  /// launched with programmatic stream serialization.
  bool programmaticLaunch = false;
};

/// An InternVL model's vision encoder (the CPU's decc_vision, CUDA's
/// VisionPlan): tiles of
/// `channels x imageSize x imageSize` normalized pixels in, `tokensPerTile`
/// rows of `hidden` features a tile out; a picture is cut into minTiles to
/// maxTiles tiles, and a thumbnail (the driver's, from the config).
struct VisionShape {
  int64_t channels = 3, imageSize = 0, tokensPerTile = 0, hidden = 0;
  int64_t minTiles = 1, maxTiles = 1;
  bool thumbnail = false;
};

/// A CUDA build's vision encoder: kernels over the weight arena, run on one
/// stream in order. The launches before `projectorFrom` see a step record
/// whose tokens are the encoder's rows (`sequence` a tile: the class token
/// and the patches), the rest one whose tokens are the pixel-shuffled rows
/// (VisionShape::tokensPerTile a tile). They bind "arena", "step", "pixels"
/// (the tiles' normalized pixels, f32) and the plan's buffers, sized for
/// the most rows of a picture; `output` holds the image embeddings after
/// the last launch.
struct VisionPlan {
  Plan plan;
  int64_t projectorFrom = 0, sequence = 0;
  std::string output;
};

struct Manifest {
  int64_t version = kManifestVersion;
  Target target = Target::CPU;
  int64_t arenaBytes = 0;
  /// Weight bytes one decode step streams (all but gathered tables).
  int64_t streamedBytesPerToken = 0;
  std::vector<WeightSlot> weights;
  CacheShape cache;
  int64_t vocab = 0;
  /// Phi-3 longrope: when the sequence first reaches this length the cache
  /// is dropped and the whole sequence re-encoded (0: never).
  int64_t reencodeAtLength = 0;
  /// A call whose furthest position reaches this length rotates with
  /// tables that depend on it (longrope's long factors, dynamic NTK's
  /// base): the sequences of a batched decode step must all be shorter.
  /// 0: no such length.
  int64_t batchedLength = 0;
  /// Set by the driver; absent in the IR of a lowering run alone.
  std::optional<ModelFacts> model;
  /// Target::CUDA only.
  std::optional<Plan> plan;
  /// Models with a vision encoder only.
  std::optional<VisionShape> vision;
  /// Target::CUDA models with a vision encoder only.
  std::optional<VisionPlan> visionPlan;
};

/// The manifest as JSON text.
std::string toJson(const Manifest &manifest);

/// Reads `text` into `manifest`; on failure returns false with `error`
/// saying what is wrong ("manifest: ..."), a manifest of another version
/// included.
bool parseManifest(std::string_view text, Manifest &manifest,
                   std::string &error);

} // namespace decc::contract

#endif // DECC_CONTRACT_MANIFEST_H
