#include "probe/ip_family.h"

#include <fmt/format.h>

#include <algorithm>

#include "common/check_config.h"

namespace vantage::probe {

namespace asio = boost::asio;

uint32_t ip_version(const asio::ip::address& address) {
  return address.is_v4() || address.to_v6().is_v4_mapped() ? 4 : 6;
}

std::string order_by_family(std::vector<asio::ip::address>& addresses, v1::IpFamily family, bool literal) {
  if (family != v1::IP_FAMILY_PREFER_V4 && family != v1::IP_FAMILY_PREFER_V6 && family != v1::IP_FAMILY_ONLY_V4 &&
      family != v1::IP_FAMILY_ONLY_V6) {
    return {};  // any (and a value this probe does not know): the resolver's order
  }
  const uint32_t wanted = family == v1::IP_FAMILY_PREFER_V4 || family == v1::IP_FAMILY_ONLY_V4 ? 4 : 6;
  const bool only = family == v1::IP_FAMILY_ONLY_V4 || family == v1::IP_FAMILY_ONLY_V6;
  const auto of_wanted = [wanted](const asio::ip::address& a) { return ip_version(a) == wanted; };
  if (!only) {
    std::stable_partition(addresses.begin(), addresses.end(), of_wanted);
    return {};
  }
  const auto others = std::stable_partition(addresses.begin(), addresses.end(), of_wanted);
  if (others != addresses.begin() || addresses.empty()) {
    addresses.erase(others, addresses.end());
    return {};
  }
  // Nothing of the wanted family: say what there was instead.
  const uint32_t other = wanted == 4 ? 6 : 4;
  if (literal) {
    return fmt::format("{} is an IPv{} address and the check's ip_family is {}", addresses.front().to_string(), other,
                       ip_family_name(family));
  }
  constexpr size_t kShown = 3;
  std::string shown;
  for (size_t i = 0; i < addresses.size() && i < kShown; ++i) {
    if (i > 0) shown += ", ";
    shown += addresses[i].to_string();
  }
  if (addresses.size() > kShown) shown += fmt::format(" and {} more", addresses.size() - kShown);
  const auto error = fmt::format("no IPv{} address (ip_family: {}); it has {}", wanted, ip_family_name(family), shown);
  addresses.clear();
  return error;
}

}  // namespace vantage::probe
