#pragma once
// Text that came from outside (a site's headers, a peer's fields, a file) made
// safe to keep: valid UTF-8 (proto3 `string` fields refuse anything else, and
// one bad byte in a result would stop a probe's delivery) and bounded.

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

namespace vantage {

// True when `text` is well-formed UTF-8 (no overlongs, no surrogates, nothing
// past U+10FFFF).
bool is_valid_utf8(std::string_view text);

// `text` with every ill-formed sequence replaced by U+FFFD and control
// characters other than tab replaced by '?' (they end log lines and headers),
// cut to at most `max_bytes` on a character boundary ("..." marks a cut).
std::string safe_text(std::string_view text, size_t max_bytes);

// The byte offset of the first byte that makes `text` ill-formed UTF-8, or
// npos when it is well-formed.
size_t first_invalid_utf8(std::string_view text);

// ASCII only, on purpose: protocol tokens (header names, media types, enum
// labels) are ASCII, and std::tolower would follow the process's locale.
constexpr char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
std::string ascii_lower(std::string_view text);
bool iequals_ascii(std::string_view a, std::string_view b);
// `text` without leading and trailing spaces, tabs, CR and LF.
std::string_view trim_ascii(std::string_view text);

// A duration for people: "1.5 s" with `decimals` decimals (trailing zeros
// kept so columns line up), or with as few as it needs ("900 s", "0.25 s")
// when `decimals` is kShortest.
constexpr int kShortest = -1;
std::string seconds_text(std::chrono::nanoseconds d, int decimals = 1);


}  // namespace vantage
