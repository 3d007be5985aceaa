#pragma once
// Text that came from outside (a site's headers, a peer's fields, a file) made
// safe to keep: valid UTF-8 (proto3 `string` fields refuse anything else, and
// one bad byte in a result would stop a probe's delivery) and bounded.

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

}  // namespace vantage
