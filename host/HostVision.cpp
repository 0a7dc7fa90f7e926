//===- HostVision.cpp - an executable's vision encoder --------------------===//

#include "host/HostVision.h"

#include "host/HostImage.h"

#include "runtime/Error.h"
#include "runtime/Safetensors.h"

#include <cstring>

namespace decc::host {

using namespace decc::rt;

const contract::VisionShape &visionOf(const contract::Manifest &manifest,
                                      const std::string &what) {
  if (!manifest.vision)
    throw Error(what + ": this model has no vision encoder (an InternVL "
                       "config with vision_config has one)");
  return *manifest.vision;
}

ImageTiles readImage(const contract::Manifest &manifest,
                     const std::string &path, int64_t maxTiles,
                     const std::string &what) {
  const contract::VisionShape &v = visionOf(manifest, what);
  if (!&loadImageTiles)
    throw Error(what + ": this executable was linked without the image "
                       "decoders");
  return loadImageTiles(path, v, maxTiles);
}

std::vector<float> encodeTiles(const contract::Manifest &manifest,
                               contract::VisionSignature *encoder,
                               rt::Model &model,
                               const std::vector<float> &pixels,
                               int64_t tiles) {
  const contract::VisionShape &v = visionOf(manifest, "the vision encoder");
  // A CUDA build's encoder is kernels the backend runs.
  if (manifest.visionPlan)
    return model.encodeTiles(pixels, tiles);
  uint8_t *arena = model.arena();
  if (!encoder)
    throw Error("the vision encoder: decc_vision is missing from this "
                "executable");
  std::vector<float> out(size_t(tiles * v.tokensPerTile * v.hidden));
  contract::MemRefDescriptor<uint8_t, 1> arenaRef{
      arena, arena, 0, {manifest.arenaBytes}, {1}};
  float *in = const_cast<float *>(pixels.data());
  int64_t s = v.imageSize;
  contract::MemRefDescriptor<float, 4> pixelsRef{
      in, in, 0, {tiles, v.channels, s, s}, {v.channels * s * s, s * s, s, 1}};
  contract::MemRefDescriptor<float, 2> outRef{
      out.data(),
      out.data(),
      0,
      {tiles * v.tokensPerTile, v.hidden},
      {v.hidden, 1}};
  encoder(&arenaRef, &pixelsRef, &outRef);
  return out;
}

std::vector<float> readPixelFile(const contract::Manifest &manifest,
                                 const std::string &path, int64_t &tiles) {
  const contract::VisionShape &v = visionOf(manifest, "--pixel-values");
  std::unique_ptr<SafetensorsFile> file = SafetensorsFile::open(path);
  const TensorView &t = file->get("pixel_values");
  std::vector<int64_t> want = {t.shape.empty() ? 0 : t.shape[0], v.channels,
                               v.imageSize, v.imageSize};
  if (t.dtype != DType::F32 || t.shape != want || t.shape[0] < 1)
    throw Error(path + ": pixel_values must be F32 [tiles, " +
                std::to_string(v.channels) + ", " +
                std::to_string(v.imageSize) + ", " +
                std::to_string(v.imageSize) + "], got " + toString(t.dtype) +
                " " + t.shapeString());
  tiles = t.shape[0];
  std::vector<float> pixels(size_t(t.numElements()));
  std::memcpy(pixels.data(), t.data, pixels.size() * sizeof(float));
  return pixels;
}

void dumpImageEmbeddings(const contract::Manifest &manifest,
                         const std::vector<float> &embeds, int64_t tiles,
                         const std::string &out) {
  const contract::VisionShape &v = *manifest.vision;
  OwnedTensor result{"vit_embeds",
                     DType::F32,
                     {tiles, v.tokensPerTile, v.hidden},
                     std::vector<uint8_t>(embeds.size() * sizeof(float))};
  std::memcpy(result.bytes.data(), embeds.data(), result.bytes.size());
  writeSafetensors(out, {result});
}

int64_t imageTokens(const contract::Manifest &manifest, int64_t tiles) {
  return tiles * visionOf(manifest, "the image tokens").tokensPerTile;
}

std::string withImageTokens(std::string text, int64_t tokens,
                            bool abbreviated) {
  // InternVL's chat(): '<image>\n' + question when the question has no
  // <image>; the placeholder then becomes the image's tokens.
  const std::string placeholder = "<image>";
  size_t at = text.find(placeholder);
  if (at == std::string::npos) {
    text = placeholder + "\n" + text;
    at = 0;
  }
  std::string context;
  if (abbreviated) {
    context = "<IMG_CONTEXT> x " + std::to_string(tokens);
  } else {
    for (int64_t i = 0; i < tokens; ++i)
      context += "<IMG_CONTEXT>";
  }
  return text.replace(at, placeholder.size(), "<img>" + context + "</img>");
}

} // namespace decc::host
