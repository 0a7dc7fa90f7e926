//===- ImageFuzzer.cpp - libFuzzer: the image decoders and resize ---------===//
//
// Any byte string as a picture: it decodes (JPEG or PNG) and resizes to a
// few pixels, or fails with decc's Error; nothing else (ASan/UBSan watch).

#include "fuzz/FuzzInput.h"
#include "runtime/Error.h"
#include "runtime/image/ImageInput.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  decc::fuzz::MemoryFile file(data, size);
  if (!file.ok())
    return 0;
  try {
    decc::rt::RGBImage image = decc::rt::decodeImage(file.path());
    // A resize whose filter spans the whole picture, and one that widens.
    decc::rt::RGBImage small = decc::rt::resizeBicubic(image, 7, 5);
    decc::rt::RGBImage wide =
        decc::rt::resizeBicubic(small, 2 * small.width + 1, small.height);
    volatile uint8_t sink = wide.rgb.empty() ? 0 : wide.rgb.back();
    (void)sink;
  } catch (const decc::rt::Error &) {
  }
  return 0;
}
