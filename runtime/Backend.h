//===- Backend.h - where a compiled model's forward pass runs ---*- C++ -*-===//

#ifndef DECC_RUNTIME_BACKEND_H
#define DECC_RUNTIME_BACKEND_H

#include "contract/Manifest.h"

#include <cstdint>
#include <memory>
#include <vector>

namespace decc::rt {

using contract::Manifest;
using contract::WeightPart;
using contract::WeightSlot;

/// The manifest an executable embeds, read once; throws Error when it is
/// malformed or of another version.
Manifest readManifest(const char *json);

/// The CPU entry point decc generates (`decc_forward`, C interface).
using ForwardFn = contract::ForwardSignature *;

/// One forward call over sequences kept in a paged KV cache
/// (contract::kCacheBlock): token i at `positions[i]` of the sequence whose
/// blocks are row i of `table` (row 0 for every token when the table has
/// one row: one sequence's tokens), `width` blocks a row.
struct PagedCall {
  const std::vector<int64_t> &tokens, &positions;
  const std::vector<int32_t> &table;
  int64_t width;
  /// The logits of the last `rows` tokens.
  int64_t rows;
  /// The RoPE state words (contract::kStateWords) of the call's sequences.
  int64_t *state;
  /// When set, the greedy token of each logits row (the first of its
  /// largest logits, argmax) is written here; the logits may then be null
  /// where the backend finds the tokens itself (Backend::greedyOnDevice).
  int64_t *greedy = nullptr;
};

/// The rows of `call`'s block table (1: every token is one sequence's, or
/// one a token); throws an Error when its tokens, positions, table and
/// logits rows disagree.
int64_t pagedTableRows(const PagedCall &call);

class Backend {
public:
  virtual ~Backend();
  /// Host memory the weights are loaded into (manifest.arenaBytes).
  virtual uint8_t *arena() = 0;
  /// Called once the arena is filled (the GPU copies it to the device).
  virtual void weightsLoaded() {}
  /// Forgets the state one generation leaves (the RoPE state).
  virtual void reset() = 0;
  /// Runs `tokens` at positions `start...`, appending to the KV cache, and
  /// writes the logits of the last `rows` tokens.
  virtual void forward(const std::vector<int64_t> &tokens, int64_t start,
                       int64_t rows, float *logits) = 0;
  /// The image rows ids `vocab + j` embed as (`count` rows of the
  /// embedding's width, owned by the caller), for the forward calls after;
  /// only backends of models with a vision encoder have it.
  virtual void setImageRows(const float *rows, int64_t count);
  /// The image embeddings of `tiles` tiles of normalized pixels ([tiles,
  /// channels, size, size]): tiles x tokens a tile rows of the embedding's
  /// width. Backends whose vision encoder is kernels of their own (CUDA's
  /// VisionPlan) have it; the CPU's decc_vision is the host's to call.
  virtual std::vector<float> encodeTiles(const std::vector<float> &pixels,
                                         int64_t tiles);
  /// Blocks of the paged KV cache (contract::kCacheBlock positions each)
  /// forwardPaged's tables index; 0 where the backend has none.
  virtual int64_t cacheBlocks() const { return 0; }
  /// `call` over the paged cache; the blocks are the caller's to hand out.
  /// Never for a backend without cacheBlocks(). Text only: image rows are
  /// not read. A call's greedy tokens come from its backend where
  /// greedyOnDevice(), else from its logits (Model::forwardPaged).
  virtual void forwardPaged(const PagedCall &call, float *logits);
  /// Whether forwardPaged finds a call's greedy tokens itself, so that a
  /// caller that wants only those need not have the logits copied back.
  virtual bool greedyOnDevice() const { return false; }
};

/// `cachePositions` (at least maxContext; rounded up to whole blocks) is
/// the paged KV cache's size; forward() uses its first maxContext
/// positions as one sequence's.
std::unique_ptr<Backend> createCPUBackend(const Manifest &manifest,
                                          ForwardFn forward, int64_t maxContext,
                                          int64_t cachePositions = 0);

/// The CUDA driver is loaded at run time (libcuda.so.1): without a GPU or a
/// driver this throws an Error saying so. `cachePositions`, as for the CPU:
/// a paged pool (rounded up to whole blocks, at least maxContext).
std::unique_ptr<Backend> createCUDABackend(const Manifest &manifest,
                                           const void *image,
                                           int64_t maxContext,
                                           int64_t cachePositions = 0);

} // namespace decc::rt

#endif // DECC_RUNTIME_BACKEND_H
