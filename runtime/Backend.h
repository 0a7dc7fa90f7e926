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
};

std::unique_ptr<Backend> createCPUBackend(const Manifest &manifest,
                                          ForwardFn forward,
                                          int64_t maxContext);

/// The CUDA driver is loaded at run time (libcuda.so.1): without a GPU or a
/// driver this throws an Error saying so.
std::unique_ptr<Backend> createCUDABackend(const Manifest &manifest,
                                           const void *image,
                                           int64_t maxContext);

} // namespace decc::rt

#endif // DECC_RUNTIME_BACKEND_H
