#include <gtest/gtest.h>

#include <string>

#include "common/colo.h"
#include "common/text.h"

namespace vantage {
namespace {

TEST(Utf8, WellFormedTextIsValid) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("nginx/1.25"));
  EXPECT_TRUE(is_valid_utf8("Zürich – 東京 😀"));
  EXPECT_TRUE(is_valid_utf8("\xF4\x8F\xBF\xBF"));  // U+10FFFF, the last code point
}

TEST(Utf8, IllFormedSequencesAreFoundWhereTheyStart) {
  EXPECT_EQ(first_invalid_utf8("ab\xFF"), 2u);
  EXPECT_EQ(first_invalid_utf8("\xC0\xAF"), 0u);          // overlong '/'
  EXPECT_EQ(first_invalid_utf8("\xE0\x80\xAF"), 0u);      // overlong, three bytes
  EXPECT_EQ(first_invalid_utf8("x\xED\xA0\x80"), 1u);     // a surrogate
  EXPECT_EQ(first_invalid_utf8("\xF4\x90\x80\x80"), 0u);  // past U+10FFFF
  EXPECT_EQ(first_invalid_utf8("ok\xE2\x82"), 2u);        // cut inside a character
  EXPECT_EQ(first_invalid_utf8("\x80"), 0u);              // a lone continuation byte
}

TEST(SafeText, ReplacesWhatIsIllFormedAndControlCharacters) {
  EXPECT_EQ(safe_text("Apache\xFF\xFE", 64), "Apache\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(safe_text(std::string("a\0b\r\nc\td", 8), 64), "a?b??c\td");
  EXPECT_TRUE(is_valid_utf8(safe_text("\xC3", 64)));
}

TEST(SafeText, CutsOnACharacterBoundaryAndMarksTheCut) {
  EXPECT_EQ(safe_text("short", 5), "short");  // fits exactly: no mark
  EXPECT_EQ(safe_text("abcdefghij", 8), "abcde...");
  // "é" is two bytes: a cut never splits it.
  const std::string cut = safe_text("ééééé", 8);
  EXPECT_EQ(cut, "éé...");
  EXPECT_TRUE(is_valid_utf8(cut));
  EXPECT_LE(safe_text(std::string(100'000, 'x'), 256).size(), 256u);
  EXPECT_EQ(safe_text("abcdef", 2), "..");  // too small even for the mark
}

TEST(SafeText, AnyInputComesOutValidAndBounded) {
  // Every byte value at every position of a short string.
  for (int b = 0; b < 256; ++b) {
    for (size_t at = 0; at < 4; ++at) {
      std::string text = "\xE2\x82\xAC" "ab";
      text.insert(text.begin() + static_cast<long>(at), static_cast<char>(b));
      for (size_t max : {0u, 3u, 4u, 7u, 64u}) {
        const auto out = safe_text(text, max);
        EXPECT_TRUE(is_valid_utf8(out)) << b << " " << at << " " << max;
        EXPECT_LE(out.size(), max) << b << " " << at;
      }
    }
  }
}

TEST(Colo, KnownCodesStayAndEverythingElseIsOther) {
  EXPECT_TRUE(is_known_colo("FRA"));
  EXPECT_TRUE(is_known_colo("SJC"));
  EXPECT_EQ(colo_or_other("AMS"), "AMS");
  EXPECT_EQ(colo_or_other(""), "");
  EXPECT_EQ(colo_or_other("ZZZ"), "other");
  EXPECT_EQ(colo_or_other("fra"), "other");
  EXPECT_EQ(colo_or_other(std::string("FR\0", 3)), "other");
  EXPECT_EQ(colo_or_other("FRA\n"), "other");
}

}  // namespace
}  // namespace vantage

TEST(AsciiText, LowersOnlyAsciiLetters) {
  EXPECT_EQ(vantage::ascii_lower("Content-TYPE: \xC3\x89t\xC3\xA9"), "content-type: \xC3\x89t\xC3\xA9");
  EXPECT_TRUE(vantage::iequals_ascii("Transfer-Encoding", "transfer-encoding"));
  EXPECT_FALSE(vantage::iequals_ascii("Transfer-Encoding", "transfer-encodin"));
  EXPECT_FALSE(vantage::iequals_ascii("\xC3\x89", "\xC3\xA9"));
}

TEST(AsciiText, TrimsSpacesTabsAndLineEnds) {
  EXPECT_EQ(vantage::trim_ascii(" \t application/json ;\r\n"), "application/json ;");
  EXPECT_EQ(vantage::trim_ascii(" \r\n\t"), "");
  EXPECT_EQ(vantage::trim_ascii(""), "");
  EXPECT_EQ(vantage::trim_ascii("x"), "x");
}

TEST(AsciiText, SecondsForPeople) {
  using namespace std::chrono_literals;
  EXPECT_EQ(vantage::seconds_text(1500ms), "1.5 s");
  EXPECT_EQ(vantage::seconds_text(500ms, 2), "0.50 s");
  EXPECT_EQ(vantage::seconds_text(0s), "0.0 s");
  EXPECT_EQ(vantage::seconds_text(900s, vantage::kShortest), "900 s");
  EXPECT_EQ(vantage::seconds_text(250ms, vantage::kShortest), "0.25 s");
}
