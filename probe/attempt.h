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
#include "probe/plan.h"
#include "vantage/v1/types.pb.h"

namespace vantage::probe {

// Address overrides (plan.h ResolveOverride) as curl writes them: a resolve
// override HOST:PORT:ADDRESS, a connect-to override HOST:PORT:ADDRESS:PORT2.
// nullopt, with `error` naming the kind, the value and what is wrong, when bad.
std::optional<ResolveOverride> parse_resolve(std::string_view text, std::string* error);
std::optional<ResolveOverride> parse_connect_to(std::string_view text, std::string* error);
// Every value, each parsed by the function above; false, with `error` saying
// what is wrong with the first bad one, when one is bad.
bool parse_overrides(const std::vector<std::string>& resolve, const std::vector<std::string>& connect_to,
                     std::vector<ResolveOverride>* out, std::string* error);

// The origin leg's target for a check with an origin address.
LegTarget origin_target(const v1::Check& check);
// The edge leg's target: the URL, with any resolve or connect-to override.
LegTarget edge_target(const v1::Check& check, const AttemptOptions& options);
// What keep-alive measurements connect to: the origin leg's target when the
// check has an origin address, else the edge leg's.
LegTarget keep_alive_target(const v1::Check& check, const AttemptOptions& options = {});

// Fills everything but the sequence number. The check is planned once
// (plan.h). After a 5xx through the edge the check's follow-ups run within the
// edge leg's deadline and add to its evidence; the diagnosis' evidence says
// what each one did (or why it was skipped). The origin leg, when it runs,
// settles what the edge leg alone could not (classifier.h settle_with_origin).
// Never throws.
boost::asio::awaitable<v1::CheckResult> run_attempt(const v1::Check& check, const Clock& clock, HttpLimits limits,
                                                    AttemptOptions options = {});

}  // namespace vantage::probe
