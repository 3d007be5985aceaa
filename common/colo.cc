#include "common/colo.h"

#include <string_view>
#include <unordered_set>

namespace vantage {

extern const char* const kCloudflareColos;  // generated from data/cloudflare/colos.txt

namespace {

const std::unordered_set<std::string_view>& known_colos() {
  static const auto* const codes = [] {
    auto* set = new std::unordered_set<std::string_view>;
    std::string_view text(kCloudflareColos);
    while (!text.empty()) {
      const auto eol = text.find('\n');
      const auto line = text.substr(0, eol);
      text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
      if (line.empty() || line.front() == '#') continue;
      set->insert(line.substr(0, line.find('\t')));
    }
    return set;
  }();
  return *codes;
}

}  // namespace

bool is_known_colo(std::string_view code) { return known_colos().contains(code); }

std::string colo_or_other(std::string_view code) {
  if (code.empty()) return {};
  return is_known_colo(code) ? std::string(code) : std::string("other");
}

}  // namespace vantage
