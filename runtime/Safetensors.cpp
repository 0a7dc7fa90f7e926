//===- Safetensors.cpp - memory-mapped safetensors checkpoints ------------===//

#include "runtime/Safetensors.h"
#include "runtime/Error.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <set>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

using nlohmann::json;

namespace decc::rt {

namespace {
// A header larger than this is not a checkpoint header (a shard of 100k
// tensors takes about 15 MB; real ones are well under 1 MB). Refused before
// parsing: the parsed header takes about 20 times its text (a 100 MB one
// cost 2 GB under the old 256 MB cap).
constexpr uint64_t kMaxHeaderBytes = uint64_t(16) << 20;

struct DTypeInfo {
  const char *name;
  DType dtype;
  size_t bytes;
};
constexpr DTypeInfo kDTypes[] = {
    {"F32", DType::F32, 4},  {"F16", DType::F16, 2}, {"BF16", DType::BF16, 2},
    {"F64", DType::F64, 8},  {"I64", DType::I64, 8}, {"I32", DType::I32, 4},
    {"I16", DType::I16, 2},  {"I8", DType::I8, 1},   {"U8", DType::U8, 1},
    {"BOOL", DType::Bool, 1}};

[[noreturn]] void fail(const std::string &file, const std::string &what) {
  throw Error(file + ": " + what);
}

std::string errnoText() { return std::strerror(errno); }

/// Parses and checks one header entry against the data section.
TensorView parseEntry(const std::string &file, const std::string &name,
                      const json &entry, const uint8_t *data,
                      uint64_t dataBytes) {
  auto bad = [&](const std::string &what) {
    fail(file, "tensor '" + name + "': " + what);
  };
  if (!entry.is_object())
    bad("header entry is not an object");
  TensorView t;
  t.name = name;
  t.file = file;

  auto dtype = entry.find("dtype");
  if (dtype == entry.end() || !dtype->is_string())
    bad("missing dtype");
  std::string dtypeName = dtype->get<std::string>();
  const DTypeInfo *info = nullptr;
  for (const DTypeInfo &d : kDTypes)
    if (dtypeName == d.name)
      info = &d;
  if (!info)
    bad("unsupported dtype '" + dtypeName + "'");
  t.dtype = info->dtype;

  auto shape = entry.find("shape");
  if (shape == entry.end() || !shape->is_array())
    bad("missing shape");
  uint64_t elements = 1;
  // Messages name an entry's type rather than dump() it: a shape nested
  // 100k deep would overflow the stack in the printer.
  for (size_t i = 0; i < shape->size(); ++i) {
    const json &d = (*shape)[i];
    if (!d.is_number_unsigned())
      bad("shape must hold non-negative integers; entry " + std::to_string(i) +
          " is " +
          (d.is_number()   ? "a negative or fractional number"
           : d.is_array()  ? "an array"
           : d.is_object() ? "an object"
                           : "a " + std::string(d.type_name())));
    uint64_t n = d.get<uint64_t>();
    if (n != 0 && elements > (uint64_t(1) << 48) / n)
      bad("shape holds more than 2^48 elements");
    elements *= n;
    t.shape.push_back(int64_t(n));
  }

  auto offsets = entry.find("data_offsets");
  if (offsets == entry.end() || !offsets->is_array() || offsets->size() != 2 ||
      !(*offsets)[0].is_number_unsigned() ||
      !(*offsets)[1].is_number_unsigned())
    bad("data_offsets must be [begin, end]");
  uint64_t begin = (*offsets)[0].get<uint64_t>();
  uint64_t end = (*offsets)[1].get<uint64_t>();
  if (begin > end || end > dataBytes)
    bad("data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
        "] lie outside the " + std::to_string(dataBytes) +
        " bytes of tensor data");
  // Views are read as arrays of the dtype: an element must not straddle
  // its alignment (the data section itself starts 8-byte aligned).
  if (begin % info->bytes != 0)
    bad("data_offsets begin " + std::to_string(begin) +
        " is not a multiple of the " + std::to_string(info->bytes) +
        " bytes of " + info->name);
  uint64_t expected = elements * info->bytes;
  if (end - begin != expected)
    bad("data_offsets span " + std::to_string(end - begin) +
        " bytes but shape " + t.shapeString() + " of " + info->name +
        " needs " + std::to_string(expected));
  t.data = data + begin;
  t.bytes = size_t(end - begin);
  return t;
}
} // namespace

const char *toString(DType t) {
  for (const DTypeInfo &d : kDTypes)
    if (d.dtype == t)
      return d.name;
  return "?";
}

size_t byteSize(DType t) {
  for (const DTypeInfo &d : kDTypes)
    if (d.dtype == t)
      return d.bytes;
  return 0;
}

int64_t TensorView::numElements() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

std::string shapeString(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string TensorView::shapeString() const { return rt::shapeString(shape); }

std::unique_ptr<SafetensorsFile>
SafetensorsFile::open(const std::string &path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    fail(path, "cannot open: " + errnoText());
  struct stat st;
  if (fstat(fd, &st) != 0) {
    ::close(fd);
    fail(path, "cannot stat: " + errnoText());
  }
  size_t size = size_t(st.st_size);
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->filePath = path;
  if (size > 0) {
    void *m = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
      ::close(fd);
      fail(path, "cannot map: " + errnoText());
    }
    file->mapping = m;
    file->mappedSize = size;
  }
  ::close(fd);

  if (size < 8)
    fail(path, "truncated: " + std::to_string(size) +
                   " bytes, too short for the 8-byte header length");
  const uint8_t *bytes = static_cast<const uint8_t *>(file->mapping);
  uint64_t headerBytes = 0;
  for (int i = 7; i >= 0; --i)
    headerBytes = (headerBytes << 8) | bytes[i];
  if (headerBytes > size - 8)
    fail(path, "header length " + std::to_string(headerBytes) +
                   " exceeds the file (" + std::to_string(size) + " bytes)");
  if (headerBytes > kMaxHeaderBytes)
    fail(path, "header length " + std::to_string(headerBytes) +
                   " is more than a checkpoint needs (at most " +
                   std::to_string(kMaxHeaderBytes) + " bytes)");

  // A name twice would otherwise keep the last entry silently.
  std::set<std::string> names;
  std::string duplicate;
  json::parser_callback_t noteDuplicates = [&](int depth,
                                               json::parse_event_t event,
                                               json &parsed) {
    if (depth == 1 && event == json::parse_event_t::key &&
        !names.insert(parsed.get<std::string>()).second && duplicate.empty())
      duplicate = parsed.get<std::string>();
    return true;
  };
  json header = json::parse(bytes + 8, bytes + 8 + headerBytes, noteDuplicates,
                            /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object())
    fail(path, "malformed header: not a JSON object");
  if (!duplicate.empty())
    fail(path, "tensor '" + duplicate + "' appears twice in the header");
  const uint8_t *data = bytes + 8 + headerBytes;
  uint64_t dataBytes = size - 8 - headerBytes;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__")
      continue;
    file->views.emplace(
        it.key(), parseEntry(path, it.key(), it.value(), data, dataBytes));
  }
  // Overlapping ranges would let one weight read another's bytes.
  std::vector<const TensorView *> byStart;
  for (const auto &[name, view] : file->views)
    if (view.bytes > 0)
      byStart.push_back(&view);
  std::sort(byStart.begin(), byStart.end(),
            [](const TensorView *a, const TensorView *b) {
              return a->data < b->data;
            });
  for (size_t i = 1; i < byStart.size(); ++i)
    if (byStart[i]->data < byStart[i - 1]->data + byStart[i - 1]->bytes)
      fail(path, "tensors '" + byStart[i - 1]->name + "' and '" +
                     byStart[i]->name + "' overlap in the tensor data");
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (mapping)
    munmap(mapping, mappedSize);
}

const TensorView *SafetensorsFile::find(const std::string &name) const {
  auto it = views.find(name);
  return it == views.end() ? nullptr : &it->second;
}

const TensorView &SafetensorsFile::get(const std::string &name) const {
  if (const TensorView *t = find(name))
    return *t;
  fail(filePath, "missing tensor '" + name + "'");
}

Checkpoint Checkpoint::open(const std::string &dir) {
  Checkpoint c;
  c.dir = dir;
  std::string index = dir + "/model.safetensors.index.json";
  std::ifstream in(index);
  if (!in) {
    c.shard("model.safetensors");
    return c;
  }
  json j = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("weight_map") ||
      !j["weight_map"].is_object())
    fail(index, "malformed index: expected an object with 'weight_map'");
  for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
    if (!it.value().is_string())
      fail(index, "weight_map entry '" + it.key() + "' is not a file name");
    std::string file = it.value().get<std::string>();
    if (file.find('/') != std::string::npos)
      fail(index, "weight_map entry '" + it.key() + "' names '" + file +
                      "' outside the checkpoint folder");
    c.weightMap[it.key()] = file;
  }
  return c;
}

namespace {

/// Whether `path` is `root` or below it (both canonical).
bool within(const std::filesystem::path &path,
            const std::filesystem::path &root) {
  auto [r, p] =
      std::mismatch(root.begin(), root.end(), path.begin(), path.end());
  return r == root.end();
}

/// `dir`/`file`, refused when it is a symbolic link that leads out of the
/// checkpoint folder: a shard is data of this checkpoint, and a link to
/// elsewhere reads files the user did not name. The one way out allowed is
/// a Hugging Face cache's: models--X/snapshots/REV/F links to
/// models--X/blobs/HASH.
std::string shardPath(const std::string &dir, const std::string &file) {
  namespace fs = std::filesystem;
  std::string path = dir + "/" + file;
  std::error_code ec;
  if (!fs::is_symlink(fs::symlink_status(path, ec)))
    return path;
  fs::path target = fs::canonical(path, ec);
  if (ec)
    return path; // a dangling link: open() says so
  fs::path root = fs::canonical(dir, ec);
  if (ec || within(target, root))
    return path;
  if (root.parent_path().filename() == "snapshots" &&
      within(target, root.parent_path().parent_path() / "blobs"))
    return path;
  throw Error(path + ": a symbolic link to " + target.string() +
              ", outside the checkpoint folder (only a Hugging Face cache's "
              "snapshot may link to its blobs/)");
}

} // namespace

SafetensorsFile &Checkpoint::shard(const std::string &file) {
  auto &slot = shards[file];
  if (!slot)
    slot = SafetensorsFile::open(shardPath(dir, file));
  return *slot;
}

const TensorView *Checkpoint::find(const std::string &name) {
  if (weightMap.empty())
    return shard("model.safetensors").find(name);
  auto it = weightMap.find(name);
  if (it == weightMap.end())
    return nullptr;
  const TensorView *t = shard(it->second).find(name);
  if (!t)
    fail(dir + "/" + it->second, "missing tensor '" + name +
                                     "' that model.safetensors.index.json "
                                     "places there");
  return t;
}

const TensorView &Checkpoint::get(const std::string &name) {
  if (const TensorView *t = find(name))
    return *t;
  fail(dir, "checkpoint has no tensor '" + name + "'");
}

std::vector<std::string> Checkpoint::names() {
  std::vector<std::string> out;
  if (weightMap.empty()) {
    for (const auto &kv : shard("model.safetensors").tensors())
      out.push_back(kv.first);
  } else {
    for (const auto &kv : weightMap)
      out.push_back(kv.first);
  }
  return out;
}

float bf16ToF32(uint16_t v) {
  uint32_t bits = uint32_t(v) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float f16ToF32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else { // subnormal: renormalize
      exp = 127 - 15 + 1;
      while (!(mant & 0x400)) {
        mant <<= 1;
        --exp;
      }
      bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000 | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

void convertToF32(const TensorView &t, float *out) {
  int64_t n = t.numElements();
  switch (t.dtype) {
  case DType::F32:
    std::memcpy(out, t.data, size_t(n) * 4);
    return;
  case DType::BF16:
  case DType::F16: {
    const uint8_t *p = t.data;
    for (int64_t i = 0; i < n; ++i) {
      uint16_t v = uint16_t(p[2 * i] | (p[2 * i + 1] << 8));
      out[i] = t.dtype == DType::BF16 ? bf16ToF32(v) : f16ToF32(v);
    }
    return;
  }
  case DType::F64:
    for (int64_t i = 0; i < n; ++i) {
      double d;
      std::memcpy(&d, t.data + 8 * i, 8);
      out[i] = float(d);
    }
    return;
  default:
    fail(t.file, "tensor '" + t.name + "' is " + toString(t.dtype) +
                     ", expected a floating-point dtype");
  }
}

std::vector<int64_t> readIntegers(const TensorView &t) {
  std::vector<int64_t> out(size_t(t.numElements()));
  if (t.dtype == DType::I64) {
    std::memcpy(out.data(), t.data, out.size() * 8);
  } else if (t.dtype == DType::I32) {
    for (size_t i = 0; i < out.size(); ++i) {
      int32_t v;
      std::memcpy(&v, t.data + 4 * i, 4);
      out[i] = v;
    }
  } else {
    fail(t.file, "tensor '" + t.name + "' is " + toString(t.dtype) +
                     ", expected I64 or I32");
  }
  return out;
}

void writeSafetensors(const std::string &path,
                      const std::vector<OwnedTensor> &tensors) {
  json header = json::object();
  uint64_t offset = 0;
  for (const OwnedTensor &t : tensors) {
    header[t.name] = {{"dtype", toString(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
  }
  std::string text = header.dump();
  // Pad with spaces so the data starts 8-byte aligned, as the format suggests.
  while ((8 + text.size()) % 8 != 0)
    text += ' ';
  std::ofstream out(path, std::ios::binary);
  if (!out)
    throw Error(path + ": cannot write: " + errnoText());
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i)
    out.put(char((n >> (8 * i)) & 0xff));
  out.write(text.data(), std::streamsize(text.size()));
  for (const OwnedTensor &t : tensors)
    out.write(reinterpret_cast<const char *>(t.bytes.data()),
              std::streamsize(t.bytes.size()));
  if (!out)
    throw Error(path + ": write failed: " + errnoText());
}

} // namespace decc::rt
