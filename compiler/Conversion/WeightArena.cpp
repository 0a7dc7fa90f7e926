//===- WeightArena.cpp - where each weight lives, and the manifest --------===//

#include "compiler/Conversion/WeightArena.h"

#include "Decoder/DecoderOps.h"

using namespace mlir;
using namespace mlir::decoder;

namespace decc {

int64_t WeightArena::offsetOf(Value weight,
                              std::optional<KVGroupedLayout> layout,
                              bool gathered) {
  if (!gathered)
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

  int64_t size = type.getNumElements() * (type.getElementTypeBitWidth() / 8);
  int64_t offset = bytes;
  offsets[weight] = offset;
  sizes[weight] = size;
  bytes += llvm::alignTo(size, kAlignment);

  llvm::json::Array partsJson;
  for (WeightOp part : parts) {
    llvm::json::Object entry{
        {"tensor", part.getName().str()},
        {"shape", llvm::json::Array(part.getResult().getType().getShape())}};
    if (layout)
      entry["layout"] = llvm::json::Object{{"kind", "kv_grouped"},
                                           {"q_heads", layout->qHeads},
                                           {"kv_heads", layout->kvHeads},
                                           {"head_dim", layout->headDim}};
    partsJson.push_back(std::move(entry));
  }
  Type element = type.getElementType();
  entries.push_back(
      llvm::json::Object{{"offset", offset},
                         {"shape", llvm::json::Array(type.getShape())},
                         {"dtype", element.isF32()    ? "f32"
                                   : element.isBF16() ? "bf16"
                                                      : "f16"},
                         {"parts", std::move(partsJson)}});
  return offset;
}

int64_t WeightArena::constantOffset(ArrayRef<float> values) {
  int64_t offset = bytes;
  bytes += llvm::alignTo(int64_t(values.size()) * 4, kAlignment);
  llvm::json::Array list;
  for (float v : values)
    list.push_back(double(v));
  entries.push_back(
      llvm::json::Object{{"offset", offset},
                         {"shape", llvm::json::Array{int64_t(values.size())}},
                         {"dtype", "f32"},
                         {"values", std::move(list)},
                         {"parts", llvm::json::Array{}}});
  return offset;
}

int64_t WeightArena::streamedBytes() const {
  int64_t total = 0;
  for (Value w : streamed)
    total += sizes.lookup(w);
  return total;
}

void WeightArena::addToManifest(llvm::json::Object &manifest) {
  manifest["arena_bytes"] = bytes;
  manifest["streamed_bytes_per_token"] = streamedBytes();
  manifest["weights"] = std::move(entries);
}

} // namespace decc
