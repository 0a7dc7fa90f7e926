//===- ImageInput.cpp - InternVL's image preprocessing --------------------===//

#include "runtime/image/ImageInput.h"

#include "runtime/Error.h"

#include <jpeglib.h>
#include <png.h>

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <memory>

namespace decc::rt {

namespace {

using FilePtr = std::unique_ptr<FILE, int (*)(FILE *)>;

FilePtr openFile(const std::string &path) {
  FILE *f = std::fopen(path.c_str(), "rb");
  if (!f)
    throw Error("cannot open image '" + path + "'");
  return FilePtr(f, std::fclose);
}

/// libjpeg reports errors through a callback that must not return.
struct JpegError {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

/// More pixels than this is refused, as Pillow refuses a decompression
/// bomb (twice its Image.MAX_IMAGE_PIXELS).
constexpr int64_t kMaxPixels = 178956970;

void checkSize(const std::string &path, int64_t width, int64_t height) {
  if (width <= 0 || height <= 0 || width * height > kMaxPixels)
    throw Error("image '" + path + "' is " + std::to_string(width) + " x " +
                std::to_string(height) + " pixels; at most " +
                std::to_string(kMaxPixels) + " are read");
}

void jpegQuiet(j_common_ptr) {}

void jpegFail(j_common_ptr info) {
  auto *e = reinterpret_cast<JpegError *>(info->err);
  (*info->err->format_message)(info, e->message);
  std::longjmp(e->jump, 1);
}

RGBImage decodeJpeg(const std::string &path) {
  FilePtr file = openFile(path);
  jpeg_decompress_struct info;
  JpegError error;
  info.err = jpeg_std_error(&error.mgr);
  error.mgr.error_exit = jpegFail;
  error.mgr.output_message = jpegQuiet;
  RGBImage image;
  // Plain data only between setjmp and a longjmp back to it.
  if (setjmp(error.jump)) {
    jpeg_destroy_decompress(&info);
    throw Error("image '" + path + "': " + error.message);
  }
  jpeg_create_decompress(&info);
  jpeg_stdio_src(&info, file.get());
  jpeg_read_header(&info, TRUE);
  if (info.jpeg_color_space == JCS_CMYK || info.jpeg_color_space == JCS_YCCK) {
    jpeg_destroy_decompress(&info);
    throw Error("image '" + path + "': CMYK JPEG is not read");
  }
  // Pillow's settings: RGB out, the library's default (islow) DCT and
  // fancy upsampling.
  info.out_color_space = JCS_RGB;
  if (int64_t(info.image_width) * info.image_height > kMaxPixels) {
    int64_t w = info.image_width, h = info.image_height;
    jpeg_destroy_decompress(&info);
    checkSize(path, w, h);
  }
  jpeg_start_decompress(&info);
  image.width = int(info.output_width);
  image.height = int(info.output_height);
  image.rgb.resize(size_t(image.width) * image.height * 3);
  while (info.output_scanline < info.output_height) {
    JSAMPROW row =
        image.rgb.data() + size_t(info.output_scanline) * image.width * 3;
    jpeg_read_scanlines(&info, &row, 1);
  }
  jpeg_finish_decompress(&info);
  // libjpeg only warns of a cut file (and fills the rest with gray);
  // Pillow refuses it, and so does this.
  long warnings = error.mgr.num_warnings;
  jpeg_destroy_decompress(&info);
  if (warnings)
    throw Error("image '" + path + "' is truncated or corrupt (" +
                std::to_string(warnings) + " JPEG warnings)");
  return image;
}

struct PngError {
  std::jmp_buf jump;
  char message[256] = {0};
};

void pngFail(png_structp png, png_const_charp message) {
  auto *e = static_cast<PngError *>(png_get_error_ptr(png));
  std::snprintf(e->message, sizeof(e->message), "%s", message);
  std::longjmp(e->jump, 1);
}

void pngWarn(png_structp, png_const_charp) {}

RGBImage decodePng(const std::string &path) {
  FilePtr file = openFile(path);
  PngError error;
  png_structp png =
      png_create_read_struct(PNG_LIBPNG_VER_STRING, &error, pngFail, pngWarn);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!info) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    throw Error("image '" + path + "': out of memory");
  }
  RGBImage image;
  std::vector<png_bytep> rows;
  if (setjmp(error.jump)) {
    png_destroy_read_struct(&png, &info, nullptr);
    throw Error("image '" + path + "': " + error.message);
  }
  png_init_io(png, file.get());
  png_read_info(png, info);
  if (int64_t(png_get_image_width(png, info)) *
          png_get_image_height(png, info) >
      kMaxPixels) {
    int64_t w = png_get_image_width(png, info),
            h = png_get_image_height(png, info);
    png_destroy_read_struct(&png, &info, nullptr);
    checkSize(path, w, h);
  }
  int depth = png_get_bit_depth(png, info);
  int color = png_get_color_type(png, info);
  if (depth == 16 && !(color & PNG_COLOR_MASK_COLOR)) {
    png_destroy_read_struct(&png, &info, nullptr);
    throw Error("image '" + path + "': 16-bit grayscale PNG is not read");
  }
  // Pillow's convert('RGB'): palettes looked up, gray replicated, alpha
  // and transparency dropped (not composited), 16-bit samples' high byte.
  png_set_expand(png);
  png_set_strip_16(png);
  png_set_strip_alpha(png);
  png_set_gray_to_rgb(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  image.width = int(png_get_image_width(png, info));
  image.height = int(png_get_image_height(png, info));
  if (png_get_rowbytes(png, info) != size_t(image.width) * 3) {
    png_destroy_read_struct(&png, &info, nullptr);
    throw Error("image '" + path + "': unexpected PNG row layout");
  }
  image.rgb.resize(size_t(image.width) * image.height * 3);
  rows.resize(size_t(image.height));
  for (int y = 0; y < image.height; ++y)
    rows[size_t(y)] = image.rgb.data() + size_t(y) * image.width * 3;
  png_read_image(png, rows.data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return image;
}

// Pillow's Resample.c: bicubic (a = -0.5) with support 2, widened by the
// scale when reducing (antialiasing), coefficients normalized and rounded
// to fixed point with 22 fractional bits, a horizontal pass into 8-bit
// rows, then a vertical pass.
constexpr int kPrecisionBits = 32 - 8 - 2;

double bicubic(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0)
    return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0)
    return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

struct Coefficients {
  int ksize = 0;
  std::vector<int> bounds; // [out][xmin, count]
  std::vector<int32_t> k;  // [out][ksize]
};

Coefficients precompute(int inSize, int outSize) {
  Coefficients c;
  float in0 = 0.0f, in1 = float(inSize);
  double scale = double(in1 - in0) / outSize;
  double filterscale = std::max(scale, 1.0);
  double support = 2.0 * filterscale;
  c.ksize = int(std::ceil(support)) * 2 + 1;
  c.bounds.resize(size_t(outSize) * 2);
  c.k.assign(size_t(outSize) * c.ksize, 0);
  std::vector<double> pre(size_t(c.ksize));
  for (int xx = 0; xx < outSize; ++xx) {
    double center = in0 + (xx + 0.5) * scale;
    double ww = 0.0, ss = 1.0 / filterscale;
    int xmin = std::max(int(center - support + 0.5), 0);
    int xmax = std::min(int(center + support + 0.5), inSize) - xmin;
    std::fill(pre.begin(), pre.end(), 0.0);
    for (int x = 0; x < xmax; ++x) {
      double w = bicubic((x + xmin - center + 0.5) * ss);
      pre[size_t(x)] = w;
      ww += w;
    }
    for (int x = 0; x < xmax; ++x) {
      if (ww != 0.0)
        pre[size_t(x)] /= ww;
    }
    for (int x = 0; x < c.ksize; ++x) {
      double v = pre[size_t(x)] * (1 << kPrecisionBits);
      c.k[size_t(xx) * c.ksize + x] = int32_t(v < 0 ? -0.5 + v : 0.5 + v);
    }
    c.bounds[size_t(xx) * 2] = xmin;
    c.bounds[size_t(xx) * 2 + 1] = xmax;
  }
  return c;
}

uint8_t clip8(int32_t v) {
  if (v >= (1 << kPrecisionBits << 8))
    return 255;
  if (v <= 0)
    return 0;
  return uint8_t(v >> kPrecisionBits);
}

} // namespace

RGBImage decodeImage(const std::string &path) {
  FilePtr file = openFile(path);
  unsigned char magic[8] = {0};
  size_t n = std::fread(magic, 1, sizeof(magic), file.get());
  if (n >= 3 && magic[0] == 0xFF && magic[1] == 0xD8 && magic[2] == 0xFF)
    return decodeJpeg(path);
  if (n == 8 && std::memcmp(magic, "\x89PNG\r\n\x1a\n", 8) == 0)
    return decodePng(path);
  throw Error("image '" + path + "' is neither JPEG nor PNG");
}

RGBImage resizeBicubic(const RGBImage &in, int width, int height) {
  if (width == in.width && height == in.height)
    return in;
  Coefficients h = precompute(in.width, width);
  Coefficients v = precompute(in.height, height);
  // Only the source rows the vertical pass reads go through the first.
  int first = v.bounds[0];
  int last =
      v.bounds[size_t(height) * 2 - 2] + v.bounds[size_t(height) * 2 - 1];
  bool horizontal = width != in.width;
  RGBImage temp;
  const RGBImage *src = &in;
  int rowOffset = 0;
  if (horizontal) {
    temp.width = width;
    temp.height = last - first;
    temp.rgb.resize(size_t(temp.width) * temp.height * 3);
    for (int y = 0; y < temp.height; ++y)
      for (int x = 0; x < width; ++x) {
        int xmin = h.bounds[size_t(x) * 2], count = h.bounds[size_t(x) * 2 + 1];
        const int32_t *k = &h.k[size_t(x) * h.ksize];
        for (int ch = 0; ch < 3; ++ch) {
          int32_t ss = 1 << (kPrecisionBits - 1);
          for (int i = 0; i < count; ++i)
            ss += in.rgb[(size_t(y + first) * in.width + xmin + i) * 3 + ch] *
                  k[i];
          temp.rgb[(size_t(y) * width + x) * 3 + ch] = clip8(ss);
        }
      }
    src = &temp;
    rowOffset = first;
  }
  if (height == in.height)
    return *src;
  RGBImage out;
  out.width = src->width;
  out.height = height;
  out.rgb.resize(size_t(out.width) * height * 3);
  for (int y = 0; y < height; ++y) {
    int ymin = v.bounds[size_t(y) * 2] - rowOffset;
    int count = v.bounds[size_t(y) * 2 + 1];
    const int32_t *k = &v.k[size_t(y) * v.ksize];
    for (int x = 0; x < out.width; ++x)
      for (int ch = 0; ch < 3; ++ch) {
        int32_t ss = 1 << (kPrecisionBits - 1);
        for (int i = 0; i < count; ++i)
          ss += src->rgb[(size_t(ymin + i) * src->width + x) * 3 + ch] * k[i];
        out.rgb[(size_t(y) * out.width + x) * 3 + ch] = clip8(ss);
      }
  }
  return out;
}

RGBImage crop(const RGBImage &image, int x, int y, int width, int height) {
  RGBImage out;
  out.width = width;
  out.height = height;
  out.rgb.resize(size_t(width) * height * 3);
  for (int r = 0; r < height; ++r)
    std::memcpy(&out.rgb[size_t(r) * width * 3],
                &image.rgb[(size_t(y + r) * image.width + x) * 3],
                size_t(width) * 3);
  return out;
}

Tiling chooseTiling(int width, int height, int minTiles, int maxTiles, int size,
                    bool useThumbnail) {
  // The grids of minTiles..maxTiles tiles, fewest tiles first (Python's
  // sort is stable; equal counts in (cols, rows) order here).
  std::vector<std::pair<int, int>> grids;
  for (int i = 1; i <= maxTiles; ++i)
    for (int j = 1; j <= maxTiles; ++j)
      if (i * j >= minTiles && i * j <= maxTiles)
        grids.push_back({i, j});
  std::stable_sort(grids.begin(), grids.end(), [](auto a, auto b) {
    return a.first * a.second < b.first * b.second;
  });
  double aspect = double(width) / height;
  double best = INFINITY;
  std::pair<int, int> chosen{1, 1};
  double area = double(width) * height;
  for (auto [i, j] : grids) {
    double diff = std::fabs(aspect - double(i) / j);
    if (diff < best) {
      best = diff;
      chosen = {i, j};
    } else if (diff == best && area > 0.5 * size * size * i * j) {
      chosen = {i, j};
    }
  }
  Tiling t;
  t.cols = chosen.first;
  t.rows = chosen.second;
  t.thumbnail = useThumbnail && t.cols * t.rows != 1;
  return t;
}

std::vector<RGBImage> tileImage(const RGBImage &image, const Tiling &tiling,
                                int size) {
  RGBImage resized =
      resizeBicubic(image, size * tiling.cols, size * tiling.rows);
  std::vector<RGBImage> tiles;
  for (int i = 0; i < tiling.cols * tiling.rows; ++i)
    tiles.push_back(crop(resized, (i % tiling.cols) * size,
                         (i / tiling.cols) * size, size, size));
  if (tiling.thumbnail)
    tiles.push_back(resizeBicubic(image, size, size));
  return tiles;
}

std::vector<float> normalizeTile(const RGBImage &tile) {
  static const float mean[3] = {0.485f, 0.456f, 0.406f};
  static const float stdev[3] = {0.229f, 0.224f, 0.225f};
  size_t plane = size_t(tile.width) * tile.height;
  std::vector<float> out(plane * 3);
  for (size_t p = 0; p < plane; ++p)
    for (int ch = 0; ch < 3; ++ch) {
      float v = float(tile.rgb[p * 3 + size_t(ch)]) / 255.0f;
      out[size_t(ch) * plane + p] = (v - mean[ch]) / stdev[ch];
    }
  return out;
}

} // namespace decc::rt
