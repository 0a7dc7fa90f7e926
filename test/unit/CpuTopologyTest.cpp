//===- CpuTopologyTest.cpp - the default thread count and prefetch --------===//

#include "runtime/CpuTopology.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

using namespace decc::rt;
namespace fs = std::filesystem;

namespace {

/// A sysfs-like cpu directory: cpu i is (package, core) = topology[i].
std::string fakeCpus(const std::string &name,
                     const std::vector<std::pair<int, int>> &topology) {
  fs::path root = fs::path(testing::TempDir()) / name;
  fs::remove_all(root);
  for (size_t i = 0; i < topology.size(); ++i) {
    fs::path t = root / ("cpu" + std::to_string(i)) / "topology";
    fs::create_directories(t);
    std::ofstream(t / "physical_package_id") << topology[i].first << "\n";
    std::ofstream(t / "core_id") << topology[i].second << "\n";
  }
  return root.string();
}

TEST(CpuTopology, CountsSMTSiblingsOnce) {
  // Two packages of two cores, two threads a core (Linux numbers the
  // siblings after all first threads).
  std::string dir = fakeCpus(
      "smt", {{0, 0}, {0, 1}, {1, 0}, {1, 1}, {0, 0}, {0, 1}, {1, 0}, {1, 1}});
  EXPECT_EQ(physicalCores(dir, {0, 1, 2, 3, 4, 5, 6, 7}), 4);
  // The affinity mask decides: two siblings of one core are one core.
  EXPECT_EQ(physicalCores(dir, {0, 4}), 1);
  EXPECT_EQ(physicalCores(dir, {0, 2}), 2);
  EXPECT_EQ(physicalCores(dir, {}), 0);
}

TEST(CpuTopology, UnreadableCpusCountAsCores) {
  std::string dir = fakeCpus("partial", {{0, 0}, {0, 0}});
  // cpu7 and cpu9 have no topology files.
  EXPECT_EQ(physicalCores(dir, {0, 1, 7, 9}), 3);
}

TEST(CpuTopology, DefaultIsAtLeastOne) { EXPECT_GE(defaultThreads(), 1); }

} // namespace

TEST(CpuTopology, WeightPrefetchByVendor) {
  // Intel's prefetchers stop at 4 KiB boundaries; elsewhere the rows being
  // loaded (no prefetch).
  EXPECT_EQ(weightPrefetchBytesFor("GenuineIntel"), 4096);
  EXPECT_EQ(weightPrefetchBytesFor("AuthenticAMD"), 0);
  EXPECT_EQ(weightPrefetchBytesFor(""), 0);
}
