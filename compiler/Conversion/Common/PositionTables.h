//===- PositionTables.h - compile-time RoPE frequencies and ALiBi slopes -*- C++
//-*-===//
//
// Everything about positions that does not depend on the sequence is
// computed here, once, by the compiler and baked into the object as
// constants. Formulas follow transformers' rope initializers.
//
//===----------------------------------------------------------------------===//

#ifndef DECC_CONVERSION_COMMON_POSITIONTABLES_H
#define DECC_CONVERSION_COMMON_POSITIONTABLES_H

#include "Decoder/DecoderAttrs.h"

#include <vector>

namespace decc {

/// Unscaled inverse frequencies `theta^(-2i/rotary_dim)`, i < rotary_dim/2.
std::vector<float> baseInverseFrequencies(double theta, int64_t rotaryDim);

/// The inverse frequencies of a static RoPE kind (default, linear, yarn,
/// llama3) and, for longrope, of the short (`longFactors = false`) or long
/// table. Dynamic NTK starts from the default table and is recomputed at
/// run time.
std::vector<float> inverseFrequencies(mlir::decoder::RoPEAttr rope,
                                      bool longFactors = false);

/// ALiBi slope of every head for `alibi_bias_max` (MPT / BLOOM).
std::vector<float> alibiSlopes(int64_t numHeads, double alibiBiasMax);

} // namespace decc

#endif // DECC_CONVERSION_COMMON_POSITIONTABLES_H
