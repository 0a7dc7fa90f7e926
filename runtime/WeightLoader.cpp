//===- WeightLoader.cpp - fill the weight arena from a manifest -----------===//

#include "runtime/WeightLoader.h"

#include "runtime/AwqCheckpoint.h"
#include "runtime/Error.h"
#include "runtime/Fnv1a.h"
#include "runtime/Quantize.h"

#include <cmath>
#include <cstring>
#include <functional>
#include <set>

namespace decc::rt {

uint16_t toBF16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffff) > 0x7f800000)
    return uint16_t((bits >> 16) | 0x40); // quiet NaN
  bits += 0x7fff + ((bits >> 16) & 1);
  return uint16_t(bits >> 16);
}

uint16_t toF16(float f) {
  // _Float16 conversion is exact IEEE round-to-nearest-even.
  _Float16 h = static_cast<_Float16>(f);
  uint16_t bits;
  std::memcpy(&bits, &h, 2);
  return bits;
}

namespace {

/// Writes `values` (f32, in kernel row order) as `dtype` at `out`.
void store(const float *values, int64_t n, contract::DType dtype,
           uint8_t *out) {
  switch (dtype) {
  case contract::DType::F32:
    std::memcpy(out, values, n * sizeof(float));
    return;
  case contract::DType::BF16:
    for (int64_t i = 0; i < n; ++i) {
      uint16_t v = toBF16(values[i]);
      std::memcpy(out + 2 * i, &v, 2);
    }
    return;
  case contract::DType::F16:
    for (int64_t i = 0; i < n; ++i) {
      uint16_t v = toF16(values[i]);
      std::memcpy(out + 2 * i, &v, 2);
    }
    return;
  }
}

/// Rows of InternLM2's wqkv, grouped [q x group | k | v] per KV head, into
/// [all q | all k | all v] (`ungroup`), or back (the dequantized checkpoint).
template <typename T>
std::vector<T> permuteKVGroupedRows(const std::vector<T> &in, int64_t cols,
                                    const contract::KVGroupedLayout &l,
                                    bool ungroup) {
  std::vector<T> out(in.size());
  int64_t group = l.qHeads / l.kvHeads, d = l.headDim;
  // Head `grouped` of the checkpoint's order is head `flat` of the arena's.
  auto copyHead = [&](int64_t grouped, int64_t flat) {
    int64_t src = ungroup ? grouped : flat, dst = ungroup ? flat : grouped;
    std::memcpy(&out[dst * d * cols], &in[src * d * cols],
                d * cols * sizeof(T));
  };
  for (int64_t g = 0; g < l.kvHeads; ++g) {
    int64_t base = g * (group + 2);
    for (int64_t i = 0; i < group; ++i)
      copyHead(base + i, g * group + i);
    copyHead(base + group, l.qHeads + g);
    copyHead(base + group + 1, l.qHeads + l.kvHeads + g);
  }
  return out;
}

int64_t rowsOf(const std::vector<int64_t> &shape) {
  return shape.empty() ? 1 : shape[0];
}

int64_t elementsOf(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

/// A 4-bit slot whose parts the checkpoint stores in AWQ's format, read as
/// they are stored (no second quantization); false if it stores floats.
bool loadAwqSlot(Checkpoint &checkpoint, const WeightSlot &slot, uint8_t *arena,
                 int64_t &bytesRead) {
  if (slot.quantBits != 4 || slot.parts.empty())
    return false;
  std::vector<std::optional<std::string>> prefixes;
  for (const WeightPart &part : slot.parts)
    prefixes.push_back(awqPrefix(checkpoint, part));
  if (!prefixes.front())
    return false;
  for (const WeightPart &part : slot.parts)
    if (part.shard)
      throw Error("weight '" + part.tensor +
                  "' is stored in AWQ's format, which is not split over "
                  "ranks yet; quantize a float checkpoint at load instead");
  QuantizedRows whole;
  for (size_t i = 0; i < slot.parts.size(); ++i) {
    const WeightPart &part = slot.parts[i];
    if (!prefixes[i])
      throw Error("weight '" + part.tensor + "' is not in AWQ's format (" +
                  (checkpoint.find(part.tensor) ? "floats" : "missing") +
                  ") but '" + slot.parts.front().tensor +
                  "', which the model stacks with it, is");
    QuantizedRows rows =
        readAwqPart(checkpoint, *prefixes[i], part, slot.groupSize, bytesRead);
    if (part.kvGrouped) {
      rows.q = permuteKVGroupedRows(rows.q, rows.cols, *part.kvGrouped,
                                    /*ungroup=*/true);
      rows.zeros = permuteKVGroupedRows(rows.zeros, rows.groups,
                                        *part.kvGrouped, /*ungroup=*/true);
      rows.scales = permuteKVGroupedRows(rows.scales, rows.groups,
                                         *part.kvGrouped, /*ungroup=*/true);
    }
    whole.append(rows);
  }
  storeInt4Slot(slot, whole, arena + slot.offset);
  return true;
}

/// The stored tensor's shape a part needs: its own, or for a shard, with
/// the sharded dimension as the ranks' ranges span it.
std::vector<int64_t> storedShape(const WeightPart &part) {
  std::vector<int64_t> shape = part.shape;
  if (part.shard)
    shape[size_t(part.shard->dim)] = part.shard->storedSize();
  return shape;
}

/// Rank `rank`'s [begin, end) pairs along a sharded part's dimension.
std::vector<int64_t> rankRangesOf(const WeightPart &part, int64_t rank) {
  const contract::WeightShard &shard = *part.shard;
  int64_t size = part.shape[size_t(shard.dim)];
  int64_t ranks = shard.ranks(size);
  if (rank < 0 || rank >= ranks)
    throw Error("weight '" + part.tensor + "' is split over " +
                std::to_string(ranks) + " ranks; there is no rank " +
                std::to_string(rank));
  return shard.rankRanges(rank, size);
}

/// Rank `rank`'s shard of `t` as f32: for every index before the sharded
/// dimension, the rank's ranges along it in turn (each a contiguous run
/// of the stored tensor). Only those bytes are read.
std::vector<float> shardValues(const TensorView &t, const WeightPart &part,
                               int64_t rank, int64_t &bytesRead) {
  size_t dim = size_t(part.shard->dim);
  std::vector<int64_t> mine = rankRangesOf(part, rank);
  int64_t outer = 1, inner = 1;
  for (size_t d = 0; d < dim; ++d)
    outer *= t.shape[d];
  for (size_t d = dim + 1; d < t.shape.size(); ++d)
    inner *= t.shape[d];
  int64_t element = int64_t(byteSize(t.dtype));
  std::vector<float> values(size_t(elementsOf(part.shape)));
  float *out = values.data();
  for (int64_t i = 0; i < outer; ++i)
    for (size_t k = 0; k < mine.size(); k += 2) {
      int64_t n = (mine[k + 1] - mine[k]) * inner;
      TensorView run = t;
      run.data = t.data + ((i * t.shape[dim] + mine[k]) * inner) * element;
      run.shape = {n};
      run.bytes = size_t(n * element);
      convertToF32(run, out);
      out += n;
      bytesRead += n * element;
    }
  return values;
}

/// Fills the arena's slots: constants as listed; a slot `own` fills (an
/// AWQ checkpoint's, random weights' norms) as it does; else each part's
/// floats as `partValues` gives them, in the stored tensor's order (a
/// rank's shard of it), KV-grouped rows regrouped, stored as the slot's
/// dtype or, a quantized slot, quantized whole.
void fillSlots(
    const Manifest &manifest, uint8_t *arena,
    const std::function<bool(const WeightSlot &)> &own,
    const std::function<std::vector<float>(const WeightPart &)> &partValues) {
  for (const WeightSlot &slot : manifest.weights) {
    uint8_t *out = arena + slot.offset;
    if (!slot.values.empty()) {
      store(slot.values.data(), int64_t(slot.values.size()), slot.dtype, out);
      continue;
    }
    if (own(slot))
      continue;
    std::vector<float> whole;
    if (slot.quantBits)
      whole.reserve(size_t(slot.numElements()));
    int64_t filled = 0;
    for (const WeightPart &part : slot.parts) {
      std::vector<float> values = partValues(part);
      if (part.kvGrouped)
        values = permuteKVGroupedRows(
            values, elementsOf(part.shape) / rowsOf(part.shape),
            *part.kvGrouped, /*ungroup=*/true);
      filled += int64_t(values.size());
      if (slot.quantBits) {
        whole.insert(whole.end(), values.begin(), values.end());
        continue;
      }
      store(values.data(), int64_t(values.size()), slot.dtype, out);
      out += int64_t(values.size()) * contract::byteSize(slot.dtype);
    }
    if (filled != slot.numElements())
      throw Error("weight slot at " + std::to_string(slot.offset) + " has " +
                  std::to_string(slot.numElements()) +
                  " values but its parts " + std::to_string(filled));
    if (slot.quantBits)
      quantizeSlot(slot, whole.data(), arena + slot.offset);
  }
}

} // namespace

int64_t loadWeights(const Manifest &manifest, const std::string &dir,
                    uint8_t *arena, int64_t rank) {
  Checkpoint checkpoint = Checkpoint::open(dir);
  int64_t bytesRead = 0;
  fillSlots(
      manifest, arena,
      [&](const WeightSlot &slot) {
        return loadAwqSlot(checkpoint, slot, arena, bytesRead);
      },
      [&](const WeightPart &part) {
        const TensorView &t = checkpoint.get(part.tensor);
        std::vector<int64_t> stored = storedShape(part);
        if (t.shape != stored)
          throw Error("weight '" + part.tensor + "' has shape " +
                      t.shapeString() + " in " + t.file +
                      " but the model needs " + shapeString(stored));
        if (t.dtype != DType::F32 && t.dtype != DType::BF16 &&
            t.dtype != DType::F16)
          throw Error("weight '" + part.tensor + "' is " + toString(t.dtype) +
                      " in " + t.file + "; expected f32, bf16 or f16");
        if (part.shard)
          return shardValues(t, part, rank, bytesRead);
        std::vector<float> values(size_t(t.numElements()));
        convertToF32(t, values.data());
        bytesRead += int64_t(t.bytes);
        return values;
      });
  return bytesRead;
}

/// splitmix64's k-th output (k from 1) of a stream seeded with `seed`: the
/// generator is a counter (seed + k * golden) through a mixer, so any
/// element can be drawn on its own and a model's weights in parallel.
static uint64_t splitmix64At(uint64_t seed, uint64_t k) {
  uint64_t z = seed + k * 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void randomWeights(const Manifest &manifest, uint64_t seed, uint8_t *arena,
                   int64_t rank) {
  // Each checkpoint tensor is drawn as if it were in a checkpoint, element
  // i of it the i-th of a stream of its own (the seed and its name), and
  // then loaded as loadWeights loads a tensor: a rank's shard of it, its
  // rows regrouped. So a tensor's values do not depend on the slots that
  // hold it or on the rank that loads which of its ranges: a model split
  // over ranks runs the weights it runs whole, and a tied head its
  // embedding's.
  fillSlots(
      manifest, arena,
      [&](const WeightSlot &slot) {
        // Norm weights and biases 1 (activations stay in range).
        if (slot.shape.size() != 1)
          return false;
        std::vector<float> ones(size_t(slot.numElements()), 1.0f);
        store(ones.data(), slot.numElements(), slot.dtype, arena + slot.offset);
        return true;
      },
      [&](const WeightPart &part) {
        std::vector<int64_t> stored = storedShape(part);
        // Uniform in [-1, 1) / sqrt(fan-in), the stored tensor's.
        float bound = 1.0f / std::sqrt(float(stored.back()));
        float scale = 2.0f * bound / 16777216.0f;
        uint64_t stream = seed ^ fnv1a(part.tensor);
        // The part's indices along its sharded dimension (0 unsharded) in
        // the stored tensor's.
        size_t dim = part.shard ? size_t(part.shard->dim) : 0;
        std::vector<int64_t> along;
        if (part.shard) {
          std::vector<int64_t> mine = rankRangesOf(part, rank);
          for (size_t k = 0; k < mine.size(); k += 2)
            for (int64_t i = mine[k]; i < mine[k + 1]; ++i)
              along.push_back(i);
        } else {
          for (int64_t i = 0; i < part.shape[0]; ++i)
            along.push_back(i);
        }
        int64_t inner = 1;
        for (size_t d = dim + 1; d < stored.size(); ++d)
          inner *= stored[d];
        int64_t count = elementsOf(part.shape);
        std::vector<float> values(static_cast<size_t>(count));
        // A run of `inner` elements at a time: contiguous in both.
        int64_t runs = count / inner, perOuter = int64_t(along.size());
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < runs; ++r) {
          int64_t first =
              ((r / perOuter) * stored[dim] + along[size_t(r % perOuter)]) *
              inner;
          float *out = values.data() + r * inner;
          for (int64_t i = 0; i < inner; ++i)
            out[i] =
                float(splitmix64At(stream, uint64_t(first + i) + 1) >> 40) *
                    scale -
                bound;
        }
        return values;
      });
}

void writeDequantized(const Manifest &manifest, const uint8_t *arena,
                      const std::string &path) {
  bool quantized = false;
  for (const WeightSlot &slot : manifest.weights)
    quantized |= slot.quantBits != 0;
  if (!quantized)
    throw Error(
        "--write-dequantized needs a quantized build (--dtype int8 or int4); "
        "this one's weights are " +
        std::string(contract::spelling(manifest.model->dtype)));
  std::vector<OwnedTensor> tensors;
  std::set<std::string> written;
  for (const WeightSlot &slot : manifest.weights) {
    if (!slot.values.empty())
      continue;
    // A quantized build's other slots are f32, and its embedding table bf16.
    if (!slot.quantBits && slot.dtype == contract::DType::F16)
      throw Error("--write-dequantized: weight '" +
                  (slot.parts.empty() ? std::string() : slot.parts[0].tensor) +
                  "' is f16");
    std::vector<float> values(size_t(slot.numElements()));
    if (slot.quantBits) {
      dequantizeSlot(slot, arena + slot.offset, values.data());
    } else if (slot.dtype == contract::DType::BF16) {
      for (size_t i = 0; i < values.size(); ++i) {
        uint16_t bits;
        std::memcpy(&bits, arena + slot.offset + 2 * i, 2);
        values[i] = bf16ToF32(bits);
      }
    } else {
      std::memcpy(values.data(), arena + slot.offset, values.size() * 4);
    }
    int64_t at = 0;
    for (const WeightPart &part : slot.parts) {
      int64_t n = elementsOf(part.shape);
      std::vector<float> mine(values.begin() + at, values.begin() + at + n);
      at += n;
      // A tied table is one tensor, whichever slot comes first.
      if (!written.insert(part.tensor).second)
        continue;
      if (part.kvGrouped)
        mine = permuteKVGroupedRows(mine, n / rowsOf(part.shape),
                                    *part.kvGrouped, /*ungroup=*/false);
      OwnedTensor t{part.tensor, DType::F32, part.shape, {}};
      t.bytes.resize(mine.size() * 4);
      std::memcpy(t.bytes.data(), mine.data(), t.bytes.size());
      tensors.push_back(std::move(t));
    }
  }
  writeSafetensors(path, tensors);
}

} // namespace decc::rt
