//===- HostImage.cpp - --image: a picture as the encoder's tiles ----------===//

#include "host/HostImage.h"

#include "runtime/Error.h"
#include "runtime/image/ImageInput.h"

#include <algorithm>

namespace decc::host {

ImageTiles loadImageTiles(const std::string &path,
                          const contract::VisionShape &vision,
                          int64_t maxTiles) {
  int size = int(vision.imageSize);
  int most = int(maxTiles > 0 ? maxTiles : vision.maxTiles);
  int least = int(std::min<int64_t>(vision.minTiles, most));
  rt::RGBImage image = rt::decodeImage(path);
  rt::Tiling tiling = rt::chooseTiling(image.width, image.height, least, most,
                                       size, vision.thumbnail);
  ImageTiles out;
  for (const rt::RGBImage &tile : rt::tileImage(image, tiling, size)) {
    std::vector<float> values = rt::normalizeTile(tile);
    out.pixels.insert(out.pixels.end(), values.begin(), values.end());
  }
  out.tiles = tiling.tiles();
  out.summary = "image " + std::to_string(image.width) + "x" +
                std::to_string(image.height) + ": " +
                std::to_string(tiling.cols) + " x " +
                std::to_string(tiling.rows) + " tiles" +
                (tiling.thumbnail ? " + thumbnail" : "") + " = " +
                std::to_string(out.tiles) + " tiles";
  return out;
}

} // namespace decc::host
