//===- RegisterCapsTest.cpp - reading ptxas's report, dropping a cap ------===//

#include "compiler/Target/RegisterCaps.h"

#include <gtest/gtest.h>

using namespace decc;

namespace {

// ptxas 13's -v report, as it writes it (two kernels, one spilling).
constexpr const char *kReport =
    "ptxas info    : 24 bytes gmem\n"
    "ptxas info    : Compiling entry function 'attention_decode_10' for "
    "'sm_90a'\n"
    "ptxas info    : Function properties for attention_decode_10\n"
    "    0 bytes stack frame, 20 bytes spill stores, 20 bytes spill loads\n"
    "ptxas info    : Used 128 registers, used 1 barriers, 12288 bytes smem\n"
    "ptxas info    : Compiling entry function 'projection_12' for 'sm_90a'\n"
    "ptxas info    : Function properties for projection_12\n"
    "    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n"
    "ptxas info    : Used 32 registers\n";

constexpr const char *kPtx = ".visible .entry attention_decode_10(\n"
                             "\t.param .u64 attention_decode_10_param_0\n"
                             ")\n"
                             ".maxntid 128, 1, 1\n"
                             ".minnctapersm 4\n"
                             "{\n"
                             "\tret;\n"
                             "}\n"
                             ".visible .entry projection_12(\n"
                             ")\n"
                             ".maxntid 384, 1, 1\n"
                             "{\n"
                             "\t// .minnctapersm in a comment of the body\n"
                             "}\n";

TEST(RegisterCaps, SpillingKernelsAreReadFromTheReport) {
  EXPECT_EQ(spillingKernels(kReport),
            std::vector<std::string>{"attention_decode_10"});
  EXPECT_TRUE(spillingKernels("").empty());
}

TEST(RegisterCaps, DropsOnlyTheNamedEntrysCap) {
  std::string dropped = dropOccupancyCap(kPtx, "attention_decode_10");
  EXPECT_EQ(dropped.find(".minnctapersm 4"), std::string::npos);
  EXPECT_NE(dropped.find(".maxntid 128, 1, 1\n{"), std::string::npos);
  // An entry without a cap, or no such entry: unchanged, whatever the body
  // says.
  EXPECT_EQ(dropOccupancyCap(kPtx, "projection_12"), kPtx);
  EXPECT_EQ(dropOccupancyCap(kPtx, "attention_decode_1"), kPtx);
}

TEST(RegisterCaps, RegistersAndSpillsAreReadFromTheReport) {
  std::map<std::string, KernelReport> kernels = readReport(kReport);
  ASSERT_EQ(kernels.size(), 2u);
  EXPECT_EQ(kernels["attention_decode_10"].registers, 128u);
  EXPECT_EQ(kernels["attention_decode_10"].spillBytes, 20u);
  EXPECT_EQ(kernels["projection_12"].registers, 32u);
  EXPECT_EQ(kernels["projection_12"].spillBytes, 0u);
}

TEST(RegisterCaps, BlocksAnSMFollowTheWarpsAllocation) {
  // 65536 registers an SM, allocated a warp at a time in units of 256.
  EXPECT_EQ(blocksPerSM(128, 128), 4u);
  EXPECT_EQ(blocksPerSM(130, 128), 3u);
  EXPECT_EQ(blocksPerSM(96, 128), 5u);
  // 102 a thread rounds up to 104 (3328 a warp): still 4 blocks.
  EXPECT_EQ(blocksPerSM(102, 128), 4u);
  EXPECT_EQ(blocksPerSM(168, 384), 1u);
  // At most 32 blocks an SM.
  EXPECT_EQ(blocksPerSM(16, 32), 32u);
}

TEST(RegisterCaps, UnmetRequestsAreTheShortAndTheSpilling) {
  std::vector<OccupancyRequest> requests = {{"attention_decode_10", 128, 4},
                                            {"projection_12", 128, 4},
                                            {"projection_99", 128, 4}};
  std::vector<OccupancyRequest> unmet = unmetRequests(kReport, requests);
  // The attention holds 4 blocks but spills; projection_99 is not in the
  // report; projection_12 (32 registers) is met.
  ASSERT_EQ(unmet.size(), 2u);
  EXPECT_EQ(unmet[0].kernel, "attention_decode_10");
  EXPECT_EQ(unmet[1].kernel, "projection_99");
  // 32 registers hold 16 blocks of 128 threads, not 17.
  EXPECT_EQ(unmetRequests(kReport, {{"projection_12", 128, 17}}).size(), 1u);
}

} // namespace
