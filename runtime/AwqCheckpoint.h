//===- AwqCheckpoint.h - AWQ-quantized projections --------------*- C++ -*-===//
//
// AutoAWQ's GEMM format, in which OpenGVLab publishes InternVL quantized:
// a linear layer `X` of [out, in] floats is stored as `X.qweight` (int32
// [in, out / 8]), `X.qzeros` (int32 [in / group, out / 8]) and `X.scales`
// (f16 [in / group, out]), a weight being (q - zero) x scale. A word holds
// 8 output columns, 4 bits each, nibble k holding column 8w + kAwqOrder[k].
// Read into rows (decc's [out][in] layout) and stored in an int4 slot as
// they are: the integers are the checkpoint's, not quantized again.
//
//===----------------------------------------------------------------------===//

#ifndef DECC_RUNTIME_AWQCHECKPOINT_H
#define DECC_RUNTIME_AWQCHECKPOINT_H

#include "contract/Manifest.h"
#include "runtime/Quantize.h"
#include "runtime/Safetensors.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace decc::rt {

/// Which output column of a word each nibble holds (AutoAWQ's AWQ_ORDER).
constexpr int kAwqOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};

/// The AWQ prefix of `part` ("X" for "X.weight") when the checkpoint
/// stores it as X.qweight and not as floats.
std::optional<std::string> awqPrefix(Checkpoint &checkpoint,
                                     const contract::WeightPart &part);

/// Reads the AWQ tensors of `prefix`, which stand for `part` ([out, in]),
/// in groups of `groupSize` input columns, checking every tensor's dtype
/// and shape (an Error naming it otherwise). `bytesRead` grows by their
/// size.
QuantizedRows readAwqPart(Checkpoint &checkpoint, const std::string &prefix,
                          const contract::WeightPart &part, int64_t groupSize,
                          int64_t &bytesRead);

} // namespace decc::rt

#endif // DECC_RUNTIME_AWQCHECKPOINT_H
