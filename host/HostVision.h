//===- HostVision.h - an executable's vision encoder ------------*- C++ -*-===//
//
// InternVL models: decc_vision run on tiles of normalized pixels.
//
//===----------------------------------------------------------------------===//

#ifndef DECC_HOST_HOSTVISION_H
#define DECC_HOST_HOSTVISION_H

#include "contract/Contract.h"
#include "contract/Manifest.h"
#include "runtime/Model.h"

#include <cstdint>
#include <string>
#include <vector>

namespace decc::host {

struct ImageTiles;

/// manifest.vision, or an Error saying `what` (the option or command)
/// needs a model with a vision encoder.
const contract::VisionShape &visionOf(const contract::Manifest &manifest,
                                      const std::string &what);

/// `path` decoded and tiled for the model (at most `maxTiles` tiles when
/// positive): loadImageTiles after checking the model has an encoder and
/// the executable the image decoders.
ImageTiles readImage(const contract::Manifest &manifest,
                     const std::string &path, int64_t maxTiles,
                     const std::string &what);

/// The image embeddings of `tiles` tiles of `pixels` ([tiles, channels,
/// size, size] as manifest.vision says): tiles x tokensPerTile rows of
/// hidden floats: `encoder` (decc_vision) on the CPU, the backend's
/// kernels on CUDA. Throws decc::rt::Error when the model has no encoder.
std::vector<float> encodeTiles(const contract::Manifest &manifest,
                               contract::VisionSignature *encoder,
                               rt::Model &model,
                               const std::vector<float> &pixels, int64_t tiles);

/// The `pixel_values` of safetensors file `path` (decc-image
/// --pixel-values), checked against manifest.vision; `tiles` is set to
/// their count.
std::vector<float> readPixelFile(const contract::Manifest &manifest,
                                 const std::string &path, int64_t &tiles);

/// --dump-image-embeddings OUT: `embeds` of `tiles` tiles written as
/// `vit_embeds` [tiles, tokens, hidden].
void dumpImageEmbeddings(const contract::Manifest &manifest,
                         const std::vector<float> &embeds, int64_t tiles,
                         const std::string &out);

/// The image tokens `tiles` tiles take in a prompt.
int64_t imageTokens(const contract::Manifest &manifest, int64_t tiles);

/// `text` with InternVL's image tokens where it says `<image>` (else before
/// it, on a line of their own): `<img>`, `tokens` x `<IMG_CONTEXT>` (or,
/// `abbreviated`, the count), `</img>`.
std::string withImageTokens(std::string text, int64_t tokens, bool abbreviated);

} // namespace decc::host

#endif // DECC_HOST_HOSTVISION_H
