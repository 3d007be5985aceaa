#pragma once
// One attempt of a check as the daemon and `vantage-probe diagnose` both run
// it: the edge leg (the URL as visitors reach it), the origin leg straight at
// the check's origin address when it has one, and the diagnosis of the pair.

#include <boost/asio/awaitable.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "probe/http_check.h"
#include "vantage/v1/types.pb.h"

namespace vantage::probe {

// curl's --resolve HOST:PORT:ADDRESS: connect to ADDRESS when the URL names HOST:PORT.
struct ResolveOverride {
  std::string host;
  uint16_t port = 0;
  std::string address;
};
std::optional<ResolveOverride> parse_resolve(std::string_view text, std::string* error);

struct AttemptOptions {
  std::vector<ResolveOverride> resolve;
  // Run the origin leg even when the edge leg is fine (diagnose, scheduled origin checks).
  bool origin_always = false;
};

// The origin leg's target for a check with an origin address.
LegTarget origin_target(const v1::Check& check);

// Fills everything but the sequence number. Never throws.
boost::asio::awaitable<v1::CheckResult> run_attempt(const v1::Check& check, const Clock& clock, HttpLimits limits,
                                                    AttemptOptions options = {});

}  // namespace vantage::probe
