//===- AwqCheckpoint.cpp - AWQ-quantized projections ----------------------===//

#include "runtime/AwqCheckpoint.h"

#include "runtime/Error.h"

#include <cstring>

namespace decc::rt {

namespace {

/// The tensor `name` with `dtype` and `shape`, or an Error saying what
/// AWQ's format has there.
const TensorView &expect(Checkpoint &checkpoint, const std::string &name,
                         DType dtype, const std::vector<int64_t> &shape,
                         const std::string &what) {
  const TensorView &t = checkpoint.get(name);
  if (t.dtype != dtype)
    throw Error("weight '" + name + "' is " + toString(t.dtype) + " in " +
                t.file + "; AWQ's " + what + " is " + toString(dtype));
  if (t.shape != shape)
    throw Error("weight '" + name + "' has shape " + t.shapeString() + " in " +
                t.file + " but the model needs " + shapeString(shape) +
                " (AWQ's " + what + ")");
  return t;
}

uint32_t wordAt(const TensorView &t, int64_t i) {
  uint32_t w;
  std::memcpy(&w, t.data + 4 * i, 4);
  return w;
}

/// Unpacks a [n, out / 8] int32 tensor into `rows` [out][n] bytes.
void unpackColumns(const TensorView &t, int64_t n, int64_t out,
                   std::vector<uint8_t> &rows) {
  int64_t words = out / 8;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t w = 0; w < words; ++w) {
      uint32_t v = wordAt(t, i * words + w);
      for (int k = 0; k < 8; ++k)
        rows[size_t((w * 8 + kAwqOrder[k]) * n + i)] =
            uint8_t((v >> (4 * k)) & 15);
    }
}

} // namespace

std::optional<std::string> awqPrefix(Checkpoint &checkpoint,
                                     const contract::WeightPart &part) {
  const std::string suffix = ".weight";
  const std::string &name = part.tensor;
  if (name.size() <= suffix.size() ||
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0 ||
      checkpoint.find(name))
    return std::nullopt;
  std::string prefix = name.substr(0, name.size() - suffix.size());
  if (!checkpoint.find(prefix + ".qweight"))
    return std::nullopt;
  return prefix;
}

QuantizedRows readAwqPart(Checkpoint &checkpoint, const std::string &prefix,
                          const contract::WeightPart &part, int64_t groupSize,
                          int64_t &bytesRead) {
  int64_t out = part.shape.at(0), in = part.shape.at(1);
  if (out % 8 != 0)
    throw Error("weight '" + prefix + "' has " + std::to_string(out) +
                " output rows; AWQ packs 8 a word");
  if (in % groupSize != 0)
    throw Error("weight '" + prefix + "': its " + std::to_string(in) +
                " input columns are not whole groups of " +
                std::to_string(groupSize) + " (AWQ)");
  int64_t groups = in / groupSize;
  const TensorView &qweight = expect(checkpoint, prefix + ".qweight",
                                     DType::I32, {in, out / 8}, "qweight");
  const TensorView &qzeros = expect(checkpoint, prefix + ".qzeros", DType::I32,
                                    {groups, out / 8}, "qzeros");
  const TensorView &scales = expect(checkpoint, prefix + ".scales", DType::F16,
                                    {groups, out}, "scales");
  bytesRead += int64_t(qweight.bytes + qzeros.bytes + scales.bytes);

  QuantizedRows r;
  r.rows = out;
  r.cols = in;
  r.groups = groups;
  r.q.resize(size_t(out * in));
  r.zeros.resize(size_t(out * groups));
  r.scales.resize(size_t(out * groups));
  unpackColumns(qweight, in, out, r.q);
  unpackColumns(qzeros, groups, out, r.zeros);
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t o = 0; o < out; ++o)
      std::memcpy(&r.scales[size_t(o * groups + g)],
                  scales.data + 2 * (g * out + o), 2);
  return r;
}

} // namespace decc::rt
