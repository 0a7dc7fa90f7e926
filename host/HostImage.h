//===- HostImage.h - --image: a picture as the encoder's tiles --*- C++ -*-===//
//
// In its own library (DeccHostImage), linked with the image decoders into
// the executables of models with a vision encoder only; text models'
// executables need no image libraries, and there loadImageTiles is null.
//
//===----------------------------------------------------------------------===//

#ifndef DECC_HOST_HOSTIMAGE_H
#define DECC_HOST_HOSTIMAGE_H

#include "contract/Manifest.h"

#include <cstdint>
#include <string>
#include <vector>

namespace decc::host {

/// A picture as InternVL's preprocessing cuts it.
struct ImageTiles {
  int64_t tiles = 0;
  /// [tiles, channels, size, size], normalized.
  std::vector<float> pixels;
  /// "image 451x300: 2 x 1 tiles + thumbnail = 3 tiles" (--print-prompt).
  std::string summary;
};

/// Decodes `path` (JPEG or PNG) and tiles it for `vision`, with at most
/// `maxTiles` tiles when positive (else the model's own budget).
__attribute__((weak)) ImageTiles
loadImageTiles(const std::string &path, const contract::VisionShape &vision,
               int64_t maxTiles);

} // namespace decc::host

#endif // DECC_HOST_HOSTIMAGE_H
