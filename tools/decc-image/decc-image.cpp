//===- decc-image.cpp - InternVL's preprocessing of one picture -----------===//
//
// decc-image FILE [--config CONFIG] [--max-tiles N] [--size S]
//                 [--no-thumbnail] [--dump-tiles OUT] [--pixel-values OUT]
//
// Prints the grid InternVL's dynamic_preprocess chooses for the picture,
// the tiles' count and the image tokens they make (256 a tile of 448 after
// the pixel shuffle), and one line a tile with the FNV-1a 64-bit hash of
// its RGB bytes and their mean (what test/E2E/image-preprocess.test holds
// against Pillow's own tiles); --dump-tiles writes the tiles' RGB bytes,
// --pixel-values the vision encoder's input (`pixel_values`, [tiles, 3,
// size, size] f32, normalized) as safetensors.
// With --config (an InternVL config.json) the tile size, budget,
// thumbnail and tokens a tile are the model's; the flags override them.
//
//===----------------------------------------------------------------------===//

#include "compiler/Config/ConfigLoader.h"
#include "runtime/Error.h"
#include "runtime/Fnv1a.h"
#include "runtime/Safetensors.h"
#include "runtime/image/ImageInput.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

using namespace decc::rt;

namespace {

int positive(const std::string &flag, const char *text, long most) {
  char *end = nullptr;
  long v = std::strtol(text, &end, 10);
  if (!*text || *end || v <= 0 || v > most)
    throw Error(flag + " must be an integer from 1 to " + std::to_string(most) +
                ", got '" + text + "'");
  return int(v);
}

} // namespace

int main(int argc, char **argv) {
  try {
    std::string path, dump, pixels, config;
    int maxTiles = 0, size = 0;
    bool thumbnail = true;
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      auto next = [&]() -> const char * {
        if (i + 1 >= argc)
          throw Error(a + " needs a value");
        return argv[++i];
      };
      if (a == "--config")
        config = next();
      else if (a == "--max-tiles")
        maxTiles = positive(a, next(), 64);
      else if (a == "--size")
        size = positive(a, next(), 1024);
      else if (a == "--no-thumbnail")
        thumbnail = false;
      else if (a == "--dump-tiles")
        dump = next();
      else if (a == "--pixel-values")
        pixels = next();
      else if (!a.empty() && a[0] == '-')
        throw Error("unknown option '" + a + "'");
      else if (path.empty())
        path = a;
      else
        throw Error("one image at a time, got '" + path + "' and '" + a + "'");
    }
    if (path.empty())
      throw Error("usage: decc-image FILE [--config CONFIG] [--max-tiles N] "
                  "[--size S] [--no-thumbnail] [--dump-tiles OUT] "
                  "[--pixel-values OUT]");
    // The model's settings, InternVL2's when no config says (448-pixel
    // tiles of 14-pixel patches shuffled by 0.5: 256 tokens, up to 12
    // tiles and a thumbnail); the flags override them.
    decc::VisionSpec v;
    v.imageSize = 448;
    v.patchSize = 14;
    if (!config.empty()) {
      decc::SpecOrError spec = decc::loadModelSpec(config);
      if (!spec)
        throw Error(spec.error);
      if (!spec.spec->vision)
        throw Error(config + " has no vision_config (not an InternVL model)");
      v = *spec.spec->vision;
      if (!v.dynamicTiles)
        v.maxTiles = v.minTiles = 1;
    }
    if (size)
      v.imageSize = size;
    if (maxTiles)
      v.maxTiles = maxTiles;
    v.minTiles = std::min(v.minTiles, v.maxTiles);
    v.useThumbnail = v.useThumbnail && thumbnail;
    size = int(v.imageSize);
    int64_t tokensPerTile = v.tokensPerTile();
    RGBImage image = decodeImage(path);
    Tiling t = chooseTiling(image.width, image.height, int(v.minTiles),
                            int(v.maxTiles), size, v.useThumbnail);
    std::vector<RGBImage> tiles = tileImage(image, t, size);
    std::printf("image %dx%d: %d x %d tiles%s = %d tiles, %lld image tokens\n",
                image.width, image.height, t.cols, t.rows,
                t.thumbnail ? " + thumbnail" : "", t.tiles(),
                (long long)(t.tiles() * tokensPerTile));
    std::ofstream out;
    if (!dump.empty()) {
      out.open(dump, std::ios::binary);
      if (!out)
        throw Error("cannot write '" + dump + "'");
    }
    for (size_t i = 0; i < tiles.size(); ++i) {
      double sum = 0;
      for (uint8_t b : tiles[i].rgb)
        sum += b;
      std::printf("tile %zu: fnv1a %016llx mean %.4f\n", i,
                  (unsigned long long)fnv1a(std::string_view(
                      reinterpret_cast<const char *>(tiles[i].rgb.data()),
                      tiles[i].rgb.size())),
                  sum / double(tiles[i].rgb.size()));
      if (out)
        out.write(reinterpret_cast<const char *>(tiles[i].rgb.data()),
                  std::streamsize(tiles[i].rgb.size()));
    }
    // The first pixel of the first tile as the vision encoder gets it.
    std::vector<float> first = normalizeTile(tiles[0]);
    size_t plane = size_t(size) * size;
    std::printf("tile 0 pixel 0 normalized: %.6f %.6f %.6f\n", first[0],
                first[plane], first[2 * plane]);
    if (!pixels.empty()) {
      OwnedTensor values{"pixel_values",
                         DType::F32,
                         {int64_t(tiles.size()), 3, size, size},
                         {}};
      values.bytes.resize(tiles.size() * 3 * plane * sizeof(float));
      for (size_t i = 0; i < tiles.size(); ++i) {
        std::vector<float> v = normalizeTile(tiles[i]);
        std::memcpy(values.bytes.data() + i * v.size() * sizeof(float),
                    v.data(), v.size() * sizeof(float));
      }
      writeSafetensors(pixels, {values});
    }
    return 0;
  } catch (const Error &e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
