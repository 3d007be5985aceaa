#include "probe/cache_busting.h"

#include <fmt/format.h>

#include <cstdint>
#include <random>

#include "common/text.h"

namespace vantage::probe {

namespace {

constexpr size_t kUrlBytes = 2048;  // LegResult.url (as redirects.cc bounds it)

// splitmix64 (Steele, Lea, Flood 2014): one add and a mix per value; seeded
// with 64 bits of entropy, so threads and probes do not share a sequence.
class Splitmix64 {
 public:
  Splitmix64() {
    std::random_device entropy;
    state_ = (uint64_t{entropy()} << 32) ^ entropy();
  }
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

 private:
  uint64_t state_ = 0;
};

}  // namespace

std::string cache_busting_value() {
  thread_local Splitmix64 generator;
  return fmt::format("{:016x}", generator.next());
}

std::string with_query_parameter(std::string_view target, std::string_view name, std::string_view value) {
  std::string out;
  out.reserve(target.size() + name.size() + value.size() + 2);
  out.append(target);
  if (target.find('?') == std::string_view::npos) {
    out += '?';
  } else if (!target.ends_with('?') && !target.ends_with('&')) {
    out += '&';
  }
  out.append(name);
  out += '=';
  out.append(value);
  return out;
}

void add_cache_busting(Url& url, std::string_view name) {
  url.target = with_query_parameter(url.target, name, cache_busting_value());
}

std::string requested_url_text(const Url& url) {
  auto text = url_text(url);
  if (text.size() <= kUrlBytes && is_valid_utf8(text)) return text;
  return safe_text(text, kUrlBytes);
}

}  // namespace vantage::probe
