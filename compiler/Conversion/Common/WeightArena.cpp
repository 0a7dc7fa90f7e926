//===- WeightArena.cpp - where each weight lives --------------------------===//

#include "compiler/Conversion/Common/WeightArena.h"

#include "Decoder/DecoderOps.h"

using namespace mlir;
using namespace mlir::decoder;

namespace decc {

contract::DType dtypeOf(Type element) {
  if (element.isBF16())
    return contract::DType::BF16;
  if (element.isF16())
    return contract::DType::F16;
  return contract::DType::F32;
}

contract::WeightSlot slotLayout(RankedTensorType type, bool f32GroupTerms) {
  contract::WeightSlot slot;
  slot.shape.assign(type.getShape().begin(), type.getShape().end());
  slot.dtype = dtypeOf(type.getElementType());
  if (auto quantized = dyn_cast_or_null<QuantizedAttr>(type.getEncoding())) {
    slot.dtype = contract::DType::F32;
    slot.quantBits = quantized.getBits();
    slot.groupSize = quantized.getGroupSize();
    slot.f32GroupTerms = f32GroupTerms;
  }
  return slot;
}

int64_t WeightArena::offsetOf(Value weight,
                              std::optional<KVGroupedLayout> layout,
                              bool gathered) {
  if (!gathered && countStreamed)
    streamed.insert(weight);
  auto it = offsets.find(weight);
  if (it != offsets.end())
    return it->second;

  auto type = cast<RankedTensorType>(weight.getType());
  SmallVector<WeightOp> parts;
  if (auto single = weight.getDefiningOp<WeightOp>())
    parts.push_back(single);
  else
    for (Value part : weight.getDefiningOp<ConcatWeightsOp>().getParts())
      parts.push_back(part.getDefiningOp<WeightOp>());

  contract::WeightSlot slot = layoutOf(type);
  int64_t size = slot.bytes();
  int64_t offset = bytes;
  offsets[weight] = offset;
  sizes[weight] = size;
  bytes += llvm::alignTo(size, kAlignment);
  slot.offset = offset;
  for (WeightOp part : parts) {
    ArrayRef<int64_t> shape = part.getResult().getType().getShape();
    std::optional<contract::WeightShard> shard;
    if (std::optional<int64_t> dim = part.getShardDim()) {
      ArrayRef<int64_t> ranges = *part.getShardRanges();
      shard = contract::WeightShard{*dim, {ranges.begin(), ranges.end()}};
    }
    slot.parts.push_back(contract::WeightPart{part.getName().str(),
                                              {shape.begin(), shape.end()},
                                              layout,
                                              std::move(shard)});
  }
  slots.push_back(std::move(slot));
  return offset;
}

int64_t WeightArena::constantOffset(ArrayRef<float> values) {
  // One copy of a table however many layers ask for it (ALiBi's slopes).
  // (By bits: a float's order is no strict weak order with NaN.)
  std::vector<uint32_t> key;
  for (float v : values)
    key.push_back(llvm::bit_cast<uint32_t>(v));
  auto [it, fresh] = constants.try_emplace(std::move(key), bytes);
  if (!fresh)
    return it->second;
  int64_t offset = bytes;
  bytes += llvm::alignTo(int64_t(values.size()) * 4, kAlignment);
  contract::WeightSlot slot;
  slot.offset = offset;
  slot.shape = {int64_t(values.size())};
  slot.values.assign(values.begin(), values.end());
  slots.push_back(std::move(slot));
  return offset;
}

int64_t WeightArena::streamedBytes() const {
  int64_t total = 0;
  for (Value w : streamed)
    total += sizes.lookup(w);
  return total;
}

void WeightArena::addToManifest(contract::Manifest &manifest) {
  manifest.arenaBytes = bytes;
  manifest.streamedBytesPerToken = streamedBytes();
  manifest.weights = std::move(slots);
}

} // namespace decc
