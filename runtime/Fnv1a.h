//===- Fnv1a.h - 64-bit FNV-1a fingerprints ---------------------*- C++ -*-===//
//
// A fingerprint of bytes, not a cryptographic hash: what the ranks of a
// tensor-parallel job compare, a random-weight tensor's stream, an image
// tile's pixels. The offset basis is the one test/references/
// image_reference.py uses, to which decc-image's tile fingerprints are held.
//
//===----------------------------------------------------------------------===//

#ifndef DECC_RUNTIME_FNV1A_H
#define DECC_RUNTIME_FNV1A_H

#include <cstdint>
#include <string_view>

namespace decc::rt {

constexpr uint64_t kFnv1aBasis = 1469598103934665603ull;

/// `h` (the basis, to start) with `bytes` mixed in.
inline uint64_t fnv1a(std::string_view bytes, uint64_t h = kFnv1aBasis) {
  for (unsigned char c : bytes)
    h = (h ^ c) * 1099511628211ull;
  return h;
}

} // namespace decc::rt

#endif // DECC_RUNTIME_FNV1A_H
