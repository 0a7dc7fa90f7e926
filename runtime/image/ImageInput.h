//===- ImageInput.h - InternVL's image preprocessing ------------*- C++ -*-===//
//
// What InternVL does to a picture before its vision encoder sees it
// (internvl/train/dataset.py: dynamic_preprocess, build_transform), done
// the way its Pillow / torchvision code does it, so that the tiles are the
// same bytes: JPEG and PNG decoded by libjpeg(-turbo) and libpng (Pillow's
// decoders), converted to RGB, resized with Pillow's bicubic resampling
// (its fixed-point two-pass filter), cut into image_size tiles on the grid
// whose aspect ratio is closest to the picture's, plus a thumbnail, then
// scaled to [0, 1] and normalized with ImageNet's mean and std.
//
//===----------------------------------------------------------------------===//

#ifndef DECC_RUNTIME_IMAGE_IMAGEINPUT_H
#define DECC_RUNTIME_IMAGE_IMAGEINPUT_H

#include <cstdint>
#include <string>
#include <vector>

namespace decc::rt {

/// 8-bit RGB pixels, row by row.
struct RGBImage {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;
};

/// Decodes a JPEG or PNG file (by its first bytes) to RGB as Pillow's
/// `Image.open(path).convert('RGB')` does; an Error for anything else.
RGBImage decodeImage(const std::string &path);

/// Pillow's `image.resize((width, height), Image.BICUBIC)`.
RGBImage resizeBicubic(const RGBImage &image, int width, int height);

/// The `width` x `height` pixels from (x, y).
RGBImage crop(const RGBImage &image, int x, int y, int width, int height);

/// The grid dynamic_preprocess cuts a picture into: `cols` x `rows` tiles
/// of `size`, and a thumbnail of the whole when there is more than one.
struct Tiling {
  int cols = 1, rows = 1;
  bool thumbnail = false;
  int tiles() const { return cols * rows + (thumbnail ? 1 : 0); }
};
Tiling chooseTiling(int width, int height, int minTiles, int maxTiles, int size,
                    bool useThumbnail);

/// dynamic_preprocess: the tiles (and thumbnail) of `image`, `size` square.
std::vector<RGBImage> tileImage(const RGBImage &image, const Tiling &tiling,
                                int size);

/// ToTensor then Normalize(ImageNet mean, std): a tile as [3][size][size]
/// floats, computed in f32 as torchvision does.
std::vector<float> normalizeTile(const RGBImage &tile);

} // namespace decc::rt

#endif // DECC_RUNTIME_IMAGE_IMAGEINPUT_H
