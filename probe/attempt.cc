#include "probe/attempt.h"

#include <fmt/format.h>

#include "common/diagnosis.h"
#include "common/url.h"

namespace vantage::probe {

std::optional<ResolveOverride> parse_resolve(std::string_view text, std::string* error) {
  // HOST:PORT:ADDRESS, where ADDRESS may be an IPv6 literal in brackets.
  const auto first = text.find(':');
  const auto second = first == std::string_view::npos ? first : text.find(':', first + 1);
  if (second == std::string_view::npos) {
    *error = fmt::format("--resolve \"{}\": expected HOST:PORT:ADDRESS", text);
    return std::nullopt;
  }
  ResolveOverride out;
  out.host = std::string(text.substr(0, first));
  std::string port_error;
  auto hp = parse_host_port(fmt::format("x:{}", text.substr(first + 1, second - first - 1)), 0, &port_error);
  if (out.host.empty() || !hp) {
    *error = fmt::format("--resolve \"{}\": {}", text, out.host.empty() ? "missing host" : port_error);
    return std::nullopt;
  }
  out.port = hp->port;
  auto address = text.substr(second + 1);
  if (address.starts_with('[') && address.ends_with(']')) address = address.substr(1, address.size() - 2);
  if (address.empty()) {
    *error = fmt::format("--resolve \"{}\": missing address", text);
    return std::nullopt;
  }
  out.address = std::string(address);
  return out;
}

LegTarget origin_target(const v1::Check& check) {
  LegTarget target;
  std::string error;
  auto url = parse_url(check.url(), &error);
  const auto& origin = check.origin();
  target.scheme = origin.scheme().empty() ? (url ? url->scheme : "http") : origin.scheme();
  auto hp = parse_host_port(origin.address(), target.scheme == "https" ? 443 : 80, &error);
  if (hp) {
    target.connect_host = hp->host;
    target.connect_port = hp->port;
  }
  target.host_header = origin.host().empty() ? (url ? url->host_header : "") : origin.host();
  target.sni = origin.sni();
  return target;
}

boost::asio::awaitable<v1::CheckResult> run_attempt(const v1::Check& check, const Clock& clock, HttpLimits limits,
                                                    AttemptOptions options) {
  v1::CheckResult result;
  result.set_check_id(check.id());
  result.set_check_version(check.version());
  const auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(clock.now().time_since_epoch()).count();
  result.mutable_start_time()->set_seconds(micros / 1'000'000);
  result.mutable_start_time()->set_nanos(static_cast<int32_t>((micros % 1'000'000) * 1000));

  LegTarget edge_target;
  std::string error;
  if (auto url = parse_url(check.url(), &error)) {
    for (const auto& r : options.resolve) {
      if (r.host == url->host && r.port == url->port) edge_target.connect_host = r.address;
    }
  }
  *result.mutable_edge() = co_await run_http_attempt(check, clock, limits, edge_target);
  const bool edge_failed = result.edge().failure_class() != v1::FAILURE_CLASS_OK;
  if (!check.origin().address().empty() && (edge_failed || options.origin_always)) {
    *result.mutable_origin() = co_await run_http_attempt(check, clock, limits, origin_target(check));
  }
  const bool origin_failed = result.has_origin() && result.origin().failure_class() != v1::FAILURE_CLASS_OK;
  if (edge_failed || origin_failed) {
    *result.mutable_diagnosis() = diagnose(result.edge(), result.has_origin() ? &result.origin() : nullptr);
  }
  co_return result;
}

}  // namespace vantage::probe
