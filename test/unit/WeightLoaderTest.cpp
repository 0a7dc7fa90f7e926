//===- WeightLoaderTest.cpp - a rank's shard of a checkpoint --------------===//

#include "runtime/WeightLoader.h"
#include "runtime/Error.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

using namespace decc;

namespace {

/// A checkpoint folder holding one f32 tensor `w` of `rows` x `cols`,
/// element (r, c) = 100 r + c.
std::string checkpoint(const std::string &name, int64_t rows, int64_t cols) {
  std::string dir = ::testing::TempDir() + "decc-shards-" + name;
  std::filesystem::create_directories(dir);
  std::vector<float> v;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      v.push_back(float(100 * r + c));
  rt::OwnedTensor t{"w", rt::DType::F32, {rows, cols}, {}};
  t.bytes.resize(v.size() * 4);
  std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
  rt::writeSafetensors(dir + "/model.safetensors", {t});
  return dir;
}

/// A manifest of one f32 slot, the part `shape` of `w` sharded by `shard`.
contract::Manifest sharded(std::vector<int64_t> shape,
                           contract::WeightShard shard) {
  contract::Manifest m;
  contract::WeightSlot slot;
  slot.shape = shape;
  slot.parts = {{"w", shape, std::nullopt, std::move(shard)}};
  m.arenaBytes = slot.bytes();
  m.weights.push_back(slot);
  return m;
}

std::vector<float> load(const contract::Manifest &m, const std::string &dir,
                        int64_t rank, int64_t &bytesRead) {
  std::vector<float> arena(size_t(m.arenaBytes / 4));
  bytesRead =
      rt::loadWeights(m, dir, reinterpret_cast<uint8_t *>(arena.data()), rank);
  return arena;
}

std::string loadError(const contract::Manifest &m, const std::string &dir,
                      int64_t rank) {
  int64_t bytes = 0;
  try {
    load(m, dir, rank, bytes);
  } catch (const rt::Error &e) {
    return e.what();
  }
  return "loaded";
}

} // namespace

TEST(WeightShards, RowsOfEachRank) {
  std::string dir = checkpoint("rows", 4, 3);
  // Rank 0 rows 0 and 3, rank 1 rows 1 and 2 (two ranges a rank).
  contract::Manifest m = sharded({2, 3}, {0, {0, 1, 3, 4, 1, 2, 2, 3}});
  int64_t bytes = 0;
  EXPECT_EQ(load(m, dir, 0, bytes),
            (std::vector<float>{0, 1, 2, 300, 301, 302}));
  EXPECT_EQ(bytes, 6 * 4); // only the rank's rows are read
  EXPECT_EQ(load(m, dir, 1, bytes),
            (std::vector<float>{100, 101, 102, 200, 201, 202}));
}

TEST(WeightShards, ColumnsOfEachRank) {
  std::string dir = checkpoint("columns", 2, 6);
  // Rank 0 columns [0, 1) and [3, 5), rank 1 [1, 3) and [5, 6).
  contract::Manifest m = sharded({2, 3}, {1, {0, 1, 3, 5, 1, 3, 5, 6}});
  int64_t bytes = 0;
  EXPECT_EQ(load(m, dir, 0, bytes),
            (std::vector<float>{0, 3, 4, 100, 103, 104}));
  EXPECT_EQ(load(m, dir, 1, bytes),
            (std::vector<float>{1, 2, 5, 101, 102, 105}));
  EXPECT_EQ(bytes, 6 * 4);
}

TEST(WeightShards, TheStoredTensorMustSpanTheRanges) {
  // The ranges reach column 6: a tensor of 5 columns does not hold them.
  std::string dir = checkpoint("narrow", 2, 5);
  contract::Manifest m = sharded({2, 3}, {1, {0, 1, 3, 5, 1, 3, 5, 6}});
  EXPECT_EQ(loadError(m, dir, 0),
            "weight 'w' has shape [2, 5] in " + dir +
                "/model.safetensors but the model needs [2, 6]");
}

TEST(WeightShards, ARankPastTheRangesIsRefused) {
  std::string dir = checkpoint("ranks", 4, 3);
  contract::Manifest m = sharded({2, 3}, {0, {0, 2, 2, 4}});
  EXPECT_EQ(loadError(m, dir, 2),
            "weight 'w' is split over 2 ranks; there is no rank 2");
}
