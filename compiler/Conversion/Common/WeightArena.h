//===- WeightArena.h - where each weight lives ------------------*- C++ -*-===//
//
// Both backends keep every weight in one arena the runtime fills once. This
// assigns each weight (a `decoder.weight` or `decoder.concat_weights`) its
// offset and records the manifest entry that tells the runtime how to fill
// it: which checkpoint tensors, stacked how, in which row layout and dtype.
//
//===----------------------------------------------------------------------===//

#ifndef DECC_CONVERSION_COMMON_WEIGHTARENA_H
#define DECC_CONVERSION_COMMON_WEIGHTARENA_H

#include "contract/Manifest.h"

#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Value.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"

#include <map>
#include <optional>
#include <vector>

namespace decc {

using contract::KVGroupedLayout;

/// The contract's spelling of a weight or cache element type (f32, bf16 or
/// f16).
contract::DType dtypeOf(mlir::Type element);

/// The arena slot a weight tensor of `type` takes, its offset and parts
/// aside: shape, dtype and, for a #decoder.quantized encoding, the bits and
/// group size from which contract::WeightSlot lays out its bytes, its
/// groups' terms as f16 scales and u8 zero points or, `f32GroupTerms`
/// (the CPU kernels'), as f32 scales and offsets.
contract::WeightSlot slotLayout(mlir::RankedTensorType type,
                                bool f32GroupTerms = false);

class WeightArena {
public:
  static constexpr int64_t kAlignment = 64;

  /// `f32GroupTerms`: quantized slots keep their groups' terms as f32
  /// (slotLayout).
  explicit WeightArena(bool f32GroupTerms = false)
      : f32GroupTerms(f32GroupTerms) {}

  /// slotLayout for this arena's kernels.
  contract::WeightSlot layoutOf(mlir::RankedTensorType type) const {
    return slotLayout(type, f32GroupTerms);
  }

  /// The byte offset of `weight`, assigning one on first use. `gathered`
  /// says the caller only gathers rows from it (an embedding), so a decode
  /// step does not stream it.
  int64_t offsetOf(mlir::Value weight,
                   std::optional<KVGroupedLayout> layout = std::nullopt,
                   bool gathered = false);

  /// The byte offset of a table of constants (RoPE frequencies, ALiBi
  /// slopes) the runtime writes into the arena as the manifest lists them.
  int64_t constantOffset(llvm::ArrayRef<float> values);

  /// Weights given offsets from here on are not streamed by a decode step
  /// (an InternVL model's vision encoder, read once an image).
  void endDecodeWeights() { countStreamed = false; }

  int64_t size() const { return bytes; }
  /// Bytes of weights a decode step streams.
  int64_t streamedBytes() const;
  /// The arena's size, the bytes a decode step streams and the slots.
  void addToManifest(contract::Manifest &manifest);

private:
  bool f32GroupTerms;
  bool countStreamed = true;
  int64_t bytes = 0;
  llvm::DenseMap<mlir::Value, int64_t> offsets, sizes;
  llvm::DenseSet<mlir::Value> streamed;
  std::vector<contract::WeightSlot> slots;
  std::map<std::vector<uint32_t>, int64_t> constants;
};

} // namespace decc

#endif // DECC_CONVERSION_COMMON_WEIGHTARENA_H
