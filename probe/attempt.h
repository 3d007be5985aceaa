#pragma once
// One attempt of a check as the daemon and `vantage-probe diagnose` both run
// it: the edge leg (the URL as visitors reach it), the origin leg straight at
// the check's origin address when it has one, and the diagnosis of the pair.

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "probe/http_check.h"
#include "vantage/v1/types.pb.h"

namespace vantage::probe {

// curl's --resolve HOST:PORT:ADDRESS (connect to ADDRESS when the URL names
// HOST:PORT) and --connect-to HOST:PORT:ADDRESS:PORT2 (connect to ADDRESS:PORT2
// instead): a probe sent to one edge location, a site tried before its DNS
// points at it. The Host header, SNI and certificate check keep the URL's host.
struct ResolveOverride {
  std::string host;
  uint16_t port = 0;
  std::string address;
  uint16_t connect_port = 0;  // 0: the URL's port
};
std::optional<ResolveOverride> parse_resolve(std::string_view text, std::string* error);
std::optional<ResolveOverride> parse_connect_to(std::string_view text, std::string* error);
// The flags' values, each parsed by the function above. Empty when all are valid,
// otherwise what is wrong with the first bad one.
std::string parse_overrides(const std::vector<std::string>& resolve, const std::vector<std::string>& connect_to,
                            std::vector<ResolveOverride>* out);

struct AttemptOptions {
  std::vector<ResolveOverride> resolve;
  // Run the origin leg even when the edge leg is fine (diagnose, scheduled origin checks).
  bool origin_always = false;
  // The longest Retry-After an edge follow-up (Check.follow_up_json and
  // follow_up_trace) waits out before it is sent; a longer one, or one past
  // the edge leg's deadline, skips the follow-ups.
  std::chrono::milliseconds follow_up_max_wait{10'000};
};

// The origin leg's target for a check with an origin address.
LegTarget origin_target(const v1::Check& check);
// The edge leg's target: the URL, with any --resolve override.
LegTarget edge_target(const v1::Check& check, const AttemptOptions& options);
// What keep-alive measurements connect to: the origin leg's target when the
// check has an origin address, else the edge leg's.
LegTarget keep_alive_target(const v1::Check& check, const AttemptOptions& options = {});

// Fills everything but the sequence number. After a 5xx through the edge the
// check's follow-ups run within the edge leg's deadline and add to its
// evidence; the diagnosis' evidence says what each one did (or why it was
// skipped). Never throws.
boost::asio::awaitable<v1::CheckResult> run_attempt(const v1::Check& check, const Clock& clock, HttpLimits limits,
                                                    AttemptOptions options = {});

}  // namespace vantage::probe
