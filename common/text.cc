#include "common/text.h"

#include <fmt/format.h>

#include <algorithm>

namespace vantage {

namespace {

// The length of the well-formed UTF-8 sequence at `i`, or 0 when the bytes
// there are not one (Unicode 15, table 3-7).
size_t sequence_length(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b0 = byte(i);
  if (b0 < 0x80) return 1;
  size_t n;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3;
    if (b0 == 0xE0) lo = 0xA0;  // overlong
    if (b0 == 0xED) hi = 0x9F;  // surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4;
    if (b0 == 0xF0) lo = 0x90;  // overlong
    if (b0 == 0xF4) hi = 0x8F;  // past U+10FFFF
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  }
  return n;
}

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
constexpr std::string_view kCutMark = "...";

}  // namespace

size_t first_invalid_utf8(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    const size_t n = sequence_length(text, i);
    if (n == 0) return i;
    i += n;
  }
  return std::string_view::npos;
}

bool is_valid_utf8(std::string_view text) { return first_invalid_utf8(text) == std::string_view::npos; }

std::string safe_text(std::string_view text, size_t max_bytes) {
  // Sanitised character by character; `boundary` remembers where the last
  // character that still leaves room for the cut mark ended.
  std::string out;
  size_t boundary = 0;
  const size_t room = max_bytes >= kCutMark.size() ? max_bytes - kCutMark.size() : 0;
  for (size_t i = 0; i < text.size();) {
    const size_t n = sequence_length(text, i);
    const unsigned char b = static_cast<unsigned char>(text[i]);
    if (n == 0) {
      out.append(kReplacement);
    } else if (n == 1 && (b < 0x20 || b == 0x7F) && b != '\t') {
      out.push_back('?');
    } else {
      out.append(text.substr(i, n));
    }
    i += n ? n : 1;
    if (out.size() <= room) boundary = out.size();
    if (out.size() > max_bytes) break;
  }
  if (out.size() <= max_bytes) return out;
  out.resize(boundary);
  out.append(kCutMark.substr(0, max_bytes - boundary));
  return out;
}

std::string ascii_lower(std::string_view text) {
  std::string out(text);
  for (auto& c : out) c = ascii_lower(c);
  return out;
}

bool iequals_ascii(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return ascii_lower(x) == ascii_lower(y); });
}

std::string_view trim_ascii(std::string_view text) {
  constexpr std::string_view kSpace = " \t\r\n";
  const auto first = text.find_first_not_of(kSpace);
  if (first == std::string_view::npos) return {};
  return text.substr(first, text.find_last_not_of(kSpace) - first + 1);
}

std::string seconds_text(std::chrono::nanoseconds d, int decimals) {
  const double seconds = std::chrono::duration<double>(d).count();
  if (decimals == kShortest) return fmt::format("{:g} s", seconds);
  return fmt::format("{:.{}f} s", seconds, decimals);
}

}  // namespace vantage
