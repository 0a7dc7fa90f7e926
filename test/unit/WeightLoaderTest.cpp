//===- WeightLoaderTest.cpp - a rank's shard, of a checkpoint or random =====//

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

namespace {

/// The arena of `m` with random weights (seed 5) as rank `rank` draws them.
std::vector<float> randomArena(const contract::Manifest &m, int64_t rank) {
  std::vector<float> arena(size_t(m.arenaBytes / 4));
  rt::randomWeights(m, 5, reinterpret_cast<uint8_t *>(arena.data()), rank);
  return arena;
}

/// `w` whole ([rows][cols]) in one slot.
contract::Manifest whole(int64_t rows, int64_t cols) {
  contract::Manifest m;
  contract::WeightSlot slot;
  slot.shape = {rows, cols};
  slot.parts = {{"w", {rows, cols}, std::nullopt, std::nullopt}};
  m.arenaBytes = slot.bytes();
  m.weights.push_back(slot);
  return m;
}

} // namespace

// --random-weights draws a checkpoint tensor whole and loads a rank's
// ranges of it, so that a split model runs the whole model's weights.
TEST(RandomWeights, RanksTakeTheWholeTensorsRows) {
  std::vector<float> all = randomArena(whole(4, 3), 0);
  contract::Manifest m = sharded({2, 3}, {0, {0, 1, 3, 4, 1, 2, 2, 3}});
  std::vector<float> rank0 = randomArena(m, 0), rank1 = randomArena(m, 1);
  auto row = [&](int64_t r) {
    return std::vector<float>(all.begin() + 3 * r, all.begin() + 3 * r + 3);
  };
  std::vector<float> want0 = row(0), want1 = row(1), row3 = row(3),
                     row2 = row(2);
  want0.insert(want0.end(), row3.begin(), row3.end());
  want1.insert(want1.end(), row2.begin(), row2.end());
  EXPECT_EQ(rank0, want0);
  EXPECT_EQ(rank1, want1);
}

TEST(RandomWeights, RanksTakeTheWholeTensorsColumns) {
  std::vector<float> all = randomArena(whole(2, 6), 0);
  // Rank 0 columns [0, 1) and [3, 5), rank 1 [1, 3) and [5, 6); the fan-in
  // is the whole tensor's (6), not the rank's 3.
  contract::Manifest m = sharded({2, 3}, {1, {0, 1, 3, 5, 1, 3, 5, 6}});
  EXPECT_EQ(randomArena(m, 0), (std::vector<float>{all[0], all[3], all[4],
                                                   all[6], all[9], all[10]}));
  EXPECT_EQ(randomArena(m, 1), (std::vector<float>{all[1], all[2], all[5],
                                                   all[7], all[8], all[11]}));
}

TEST(RandomWeights, TensorsHaveStreamsOfTheirOwn) {
  // The same tensor in another slot draws the same values; another
  // tensor other ones; a rank past the shard's ranks is an error.
  contract::Manifest two = whole(2, 3);
  contract::WeightSlot other = two.weights[0];
  other.offset = two.arenaBytes;
  other.parts[0].tensor = "v";
  two.weights.push_back(other);
  two.arenaBytes *= 2;
  std::vector<float> a = randomArena(two, 0), w = randomArena(whole(2, 3), 0);
  EXPECT_EQ(std::vector<float>(a.begin(), a.begin() + 6), w);
  EXPECT_NE(std::vector<float>(a.begin() + 6, a.end()), w);
  contract::Manifest m = sharded({2, 3}, {0, {0, 2, 2, 4}});
  EXPECT_THROW(randomArena(m, 2), rt::Error);
}
