//===- WeightLoader.h - fill the weight arena from a manifest ---*- C++ -*-===//

#ifndef DECC_RUNTIME_WEIGHTLOADER_H
#define DECC_RUNTIME_WEIGHTLOADER_H

#include "contract/Manifest.h"
#include "runtime/Safetensors.h"

#include <cstdint>

namespace decc::rt {

using contract::Manifest;
using contract::WeightPart;
using contract::WeightSlot;

/// Fills `arena` (manifest.arenaBytes) from the checkpoint in `dir`:
/// each slot's parts are checked against the checkpoint (a missing tensor
/// or a wrong shape is an Error naming it), converted to the slot's dtype
/// and re-laid out; a sharded part (tensor parallelism) is rank `rank`'s
/// ranges of its tensor, and only they are read. Returns the number of
/// checkpoint bytes read.
int64_t loadWeights(const Manifest &manifest, const std::string &dir,
                    uint8_t *arena, int64_t rank = 0);

/// Fills `arena` with reproducible random weights (uniform, scaled by
/// 1/sqrt(fan-in); norm weights 1), for benchmarks without a checkpoint:
/// rank `rank`'s of a tensor-parallel model, the same values as the model
/// has whole.
void randomWeights(const Manifest &manifest, uint64_t seed, uint8_t *arena,
                   int64_t rank = 0);

/// Writes the floats a quantized build's arena stands for (each quantized
/// slot dequantized, the others as they are) as one f32 safetensors file
/// at `path`, under the checkpoint's tensor names and layouts: the
/// checkpoint on which an f32 build computes what the quantized build does.
void writeDequantized(const Manifest &manifest, const uint8_t *arena,
                      const std::string &path);

/// f32 -> bf16 with round-to-nearest-even, and -> IEEE half.
uint16_t toBF16(float f);
uint16_t toF16(float f);

} // namespace decc::rt

#endif // DECC_RUNTIME_WEIGHTLOADER_H
