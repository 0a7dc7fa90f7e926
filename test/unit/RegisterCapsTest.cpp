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

} // namespace
