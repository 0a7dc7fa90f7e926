//===- Safetensors.h - memory-mapped safetensors checkpoints ----*- C++ -*-===//
//
// Reads the safetensors format (8-byte little-endian header length, a JSON
// header, then raw little-endian data) without copying: tensors are views
// into a read-only mmap. Every header field is validated against the file
// before it is trusted, so a truncated or lying file is an error, never an
// out-of-bounds read.
//
//===----------------------------------------------------------------------===//

#ifndef DECC_RUNTIME_SAFETENSORS_H
#define DECC_RUNTIME_SAFETENSORS_H

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace decc::rt {

enum class DType { F32, F16, BF16, F64, I64, I32, I16, I8, U8, Bool };

const char *toString(DType t);

/// A shape as messages spell it: "[2, 3]".
std::string shapeString(const std::vector<int64_t> &shape);
size_t byteSize(DType t);

struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const uint8_t *data = nullptr;
  size_t bytes = 0;
  /// The file it lives in, for messages.
  std::string file;

  int64_t numElements() const;
  std::string shapeString() const;
};

/// One .safetensors file, mapped read-only for its lifetime.
class SafetensorsFile {
public:
  /// Maps and validates `path`; throws Error naming the file and the defect.
  static std::unique_ptr<SafetensorsFile> open(const std::string &path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile &) = delete;
  SafetensorsFile &operator=(const SafetensorsFile &) = delete;

  const std::map<std::string, TensorView> &tensors() const { return views; }
  const TensorView *find(const std::string &name) const;
  /// The tensor, or an Error naming it and the file.
  const TensorView &get(const std::string &name) const;
  const std::string &path() const { return filePath; }

private:
  SafetensorsFile() = default;
  std::string filePath;
  void *mapping = nullptr;
  size_t mappedSize = 0;
  std::map<std::string, TensorView> views;
};

/// A checkpoint folder: model.safetensors, or the shards that
/// model.safetensors.index.json lists (mapped lazily, each once).
class Checkpoint {
public:
  static Checkpoint open(const std::string &dir);
  /// The tensor, or an Error naming it and the checkpoint.
  const TensorView &get(const std::string &name);
  const TensorView *find(const std::string &name);
  /// Names of every tensor in the checkpoint.
  std::vector<std::string> names();

private:
  SafetensorsFile &shard(const std::string &file);
  std::string dir;
  std::map<std::string, std::string> weightMap; // empty: single file
  std::map<std::string, std::unique_ptr<SafetensorsFile>> shards;
};

/// bf16 and IEEE half bits to f32 (exact).
float bf16ToF32(uint16_t v);
float f16ToF32(uint16_t h);

/// Converts any floating tensor to f32 (`out` holds numElements() values).
void convertToF32(const TensorView &t, float *out);

/// Reads `t` as int64 values (I64 or I32 tensors).
std::vector<int64_t> readIntegers(const TensorView &t);

/// Writes f32 and i64 tensors as one safetensors file.
struct OwnedTensor {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};
void writeSafetensors(const std::string &path,
                      const std::vector<OwnedTensor> &tensors);

} // namespace decc::rt

#endif // DECC_RUNTIME_SAFETENSORS_H
