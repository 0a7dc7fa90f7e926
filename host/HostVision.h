//===- HostVision.h - an executable's vision encoder ------------*- C++ -*-===//
//
// InternVL models: decc_vision run on tiles of normalized pixels.
//
//===----------------------------------------------------------------------===//

#ifndef DECC_HOST_HOSTVISION_H
#define DECC_HOST_HOSTVISION_H

#include "contract/Contract.h"
#include "contract/Manifest.h"

#include <cstdint>
#include <string>
#include <vector>

namespace decc::host {

/// The image embeddings of `tiles` tiles of `pixels` ([tiles, channels,
/// size, size] as manifest.vision says): tiles x tokensPerTile rows of
/// hidden floats. Throws decc::rt::Error when the model has no encoder.
std::vector<float> encodeTiles(const contract::Manifest &manifest,
                               contract::VisionSignature *encoder,
                               uint8_t *arena, const std::vector<float> &pixels,
                               int64_t tiles);

/// The `pixel_values` of safetensors file `path` (decc-image
/// --pixel-values) encoded; `tiles` is set to their count.
std::vector<float> encodePixelFile(const contract::Manifest &manifest,
                                   contract::VisionSignature *encoder,
                                   uint8_t *arena, const std::string &path,
                                   int64_t &tiles);

/// --pixel-values IN --dump-image-embeddings OUT: IN's `pixel_values`
/// encoded, written to OUT as `vit_embeds` [tiles, tokens, hidden].
void dumpImageEmbeddings(const contract::Manifest &manifest,
                         contract::VisionSignature *encoder, uint8_t *arena,
                         const std::string &in, const std::string &out);

} // namespace decc::host

#endif // DECC_HOST_HOSTVISION_H
