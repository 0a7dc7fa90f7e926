//===- Utf8Test.cpp - streaming text stays valid UTF-8 --------------------===//

#include "runtime/Utf8.h"

#include <gtest/gtest.h>

using namespace decc::rt;

TEST(Utf8Test, HoldsBackACharacterSplitAcrossTokens) {
  // U+1F999 (llama) is F0 9F A6 99; byte-fallback tokens deliver it in parts.
  std::string pending = "a\xF0\x9F";
  EXPECT_EQ(takePrintableUtf8(pending, false), "a");
  EXPECT_EQ(pending, "\xF0\x9F");
  pending += "\xA6\x99!";
  EXPECT_EQ(takePrintableUtf8(pending, false), "\xF0\x9F\xA6\x99!");
  EXPECT_TRUE(pending.empty());
}

TEST(Utf8Test, InvalidBytesBecomeReplacementCharacters) {
  std::string pending = "x\xFFy\xC0\xAF";
  EXPECT_EQ(takePrintableUtf8(pending, false),
            "x\xEF\xBF\xBDy\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_TRUE(pending.empty());
}

TEST(Utf8Test, FlushReplacesAnUnfinishedCharacter) {
  std::string pending = "\xE2\x96";
  EXPECT_EQ(takePrintableUtf8(pending, false), "");
  EXPECT_EQ(takePrintableUtf8(pending, true), "\xEF\xBF\xBD");
}

TEST(Utf8Test, FindsTheFirstInvalidByte) {
  EXPECT_EQ(firstInvalidUtf8("h\xC3\xA9llo"), std::string::npos);
  EXPECT_EQ(firstInvalidUtf8("ab\xFF"), 2u);
  EXPECT_EQ(firstInvalidUtf8("\xED\xA0\x80"), 0u); // a UTF-16 surrogate
  EXPECT_EQ(firstInvalidUtf8("ok\xE2\x96"), 2u);   // cut short
}
