//===- SafetensorsTest.cpp - the runtime's checkpoint reader --------------===//

#include "runtime/Safetensors.h"
#include "runtime/Error.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unistd.h>

using namespace decc::rt;

namespace {

std::string tempPath(const char *name) {
  return ::testing::TempDir() + "/" + name + "." + std::to_string(getpid());
}

OwnedTensor u16Tensor(const char *name, DType dtype,
                      std::initializer_list<uint16_t> values) {
  OwnedTensor t{name, dtype, {int64_t(values.size())}, {}};
  for (uint16_t v : values) {
    t.bytes.push_back(uint8_t(v & 0xff));
    t.bytes.push_back(uint8_t(v >> 8));
  }
  return t;
}

/// A safetensors file of `header` (JSON text) and `dataBytes` zero bytes.
std::string rawFile(const char *name, const std::string &header,
                    size_t dataBytes) {
  std::string path = tempPath(name);
  FILE *f = std::fopen(path.c_str(), "wb");
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i)
    std::fputc(int((n >> (8 * i)) & 0xff), f);
  std::fwrite(header.data(), 1, header.size(), f);
  for (size_t i = 0; i < dataBytes; ++i)
    std::fputc(0, f);
  std::fclose(f);
  return path;
}

/// The message SafetensorsFile::open fails with.
std::string openError(const std::string &path) {
  try {
    SafetensorsFile::open(path);
  } catch (const Error &e) {
    std::remove(path.c_str());
    return e.what();
  }
  std::remove(path.c_str());
  return "(opened)";
}

TEST(Safetensors, WriteReadRoundTrip) {
  std::string path = tempPath("roundtrip.safetensors");
  OwnedTensor f{"f", DType::F32, {2, 2}, std::vector<uint8_t>(16)};
  float values[4] = {1.5f, -2.0f, 0.25f, 1e30f};
  std::memcpy(f.bytes.data(), values, 16);
  OwnedTensor ids{"ids", DType::I64, {3}, std::vector<uint8_t>(24)};
  int64_t idv[3] = {1, -7, 1LL << 40};
  std::memcpy(ids.bytes.data(), idv, 24);
  writeSafetensors(path, {f, ids});

  auto file = SafetensorsFile::open(path);
  const TensorView &t = file->get("f");
  EXPECT_EQ(t.shapeString(), "[2, 2]");
  float back[4];
  convertToF32(t, back);
  EXPECT_EQ(std::memcmp(back, values, 16), 0);
  EXPECT_EQ(readIntegers(file->get("ids")),
            (std::vector<int64_t>{1, -7, 1LL << 40}));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % 8, 0u);
  std::remove(path.c_str());
}

TEST(Safetensors, HalfPrecisionConversion) {
  std::string path = tempPath("half.safetensors");
  // bf16: 1.0, -2.5, 2^127 * (1 + 97/128); f16: 1.0, -2.0, 65504, smallest
  // subnormal.
  writeSafetensors(
      path, {u16Tensor("b", DType::BF16, {0x3f80, 0xc020, 0x7f61}),
             u16Tensor("h", DType::F16, {0x3c00, 0xc000, 0x7bff, 0x0001})});
  auto file = SafetensorsFile::open(path);
  float b[3], h[4];
  convertToF32(file->get("b"), b);
  convertToF32(file->get("h"), h);
  EXPECT_EQ(b[0], 1.0f);
  EXPECT_EQ(b[1], -2.5f);
  EXPECT_EQ(b[2], std::ldexp(1.0f + 97.0f / 128, 127)); // 0x7f61
  EXPECT_EQ(h[0], 1.0f);
  EXPECT_EQ(h[1], -2.0f);
  EXPECT_EQ(h[2], 65504.0f);
  EXPECT_EQ(h[3], std::ldexp(1.0f, -24));
  std::remove(path.c_str());
}

TEST(Safetensors, MissingTensorIsNamed) {
  std::string path = tempPath("missing.safetensors");
  writeSafetensors(path, {u16Tensor("a", DType::BF16, {0})});
  auto file = SafetensorsFile::open(path);
  try {
    file->get("lm_head.weight");
    FAIL() << "expected an error";
  } catch (const Error &e) {
    EXPECT_EQ(std::string(e.what()),
              path + ": missing tensor 'lm_head.weight'");
  }
  std::remove(path.c_str());
}

} // namespace

namespace {

TEST(Safetensors, ShardedCheckpointFollowsTheIndex) {
  std::string dir = tempPath("sharded");
  ASSERT_EQ(system(("rm -rf " + dir + " && mkdir -p " + dir).c_str()), 0);
  writeSafetensors(dir + "/a.safetensors",
                   {u16Tensor("x", DType::BF16, {0x3f80})});
  writeSafetensors(dir + "/b.safetensors",
                   {u16Tensor("y", DType::BF16, {0xc020})});
  {
    std::FILE *f =
        std::fopen((dir + "/model.safetensors.index.json").c_str(), "w");
    std::fputs(R"({"weight_map": {"x": "a.safetensors", "y": "b.safetensors",
                   "z": "a.safetensors"}})",
               f);
    std::fclose(f);
  }
  Checkpoint c = Checkpoint::open(dir);
  float y;
  convertToF32(c.get("y"), &y);
  EXPECT_EQ(y, -2.5f);
  EXPECT_EQ(c.get("x").file, dir + "/a.safetensors");
  EXPECT_EQ(c.names(), (std::vector<std::string>{"x", "y", "z"}));
  EXPECT_EQ(c.find("w"), nullptr);
  try {
    c.get("z");
    FAIL() << "expected an error";
  } catch (const Error &e) {
    EXPECT_EQ(std::string(e.what()),
              dir + "/a.safetensors: missing tensor 'z' that "
                    "model.safetensors.index.json places there");
  }
  ASSERT_EQ(system(("rm -rf " + dir).c_str()), 0);
}

// Found by fuzzing (issue 12): each was accepted, or crashed the reader.
TEST(Safetensors, DuplicateNameIsRefused) {
  std::string path = rawFile(
      "duplicate.safetensors",
      R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},)"
      R"( "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
      8);
  EXPECT_EQ(openError(path), path + ": tensor 'a' appears twice in the header");
}

TEST(Safetensors, OverlappingTensorsAreRefused) {
  std::string path = rawFile(
      "overlap.safetensors",
      R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
      R"( "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
      8);
  EXPECT_EQ(openError(path),
            path + ": tensors 'a' and 'b' overlap in the tensor data");
}

TEST(Safetensors, DeeplyNestedShapeIsNamedNotPrinted) {
  // 200k levels: printing the shape in the message overflowed the stack.
  std::string nested(200000, '[');
  nested += std::string(200000, ']');
  std::string path = rawFile("nested.safetensors",
                             R"({"a": {"dtype": "F32", "shape": )" + nested +
                                 R"(, "data_offsets": [0, 4]}})",
                             4);
  EXPECT_EQ(openError(path), path +
                                 ": tensor 'a': shape must hold "
                                 "non-negative integers; entry 0 is an array");
}

} // namespace
