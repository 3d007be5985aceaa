#include "probe/attempt.h"

#include <fmt/format.h>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/check_config.h"
#include "common/diagnosis.h"
#include "common/failure_class.h"
#include "common/proto_time.h"
#include "common/url.h"
#include "probe/edge.h"

namespace vantage::probe {

namespace {

// HOST:PORT:ADDRESS[:PORT2] (ADDRESS may be an IPv6 literal in brackets), for
// the flag named `flag`; PORT2 only when `with_port`.
std::optional<ResolveOverride> parse_override(std::string_view text, const char* flag, bool with_port,
                                              std::string* error) {
  const char* form = with_port ? "HOST:PORT:ADDRESS:PORT2" : "HOST:PORT:ADDRESS";
  const auto first = text.find(':');
  const auto second = first == std::string_view::npos ? first : text.find(':', first + 1);
  if (second == std::string_view::npos) {
    *error = fmt::format("{} \"{}\": expected {}", flag, text, form);
    return std::nullopt;
  }
  ResolveOverride out;
  out.host = std::string(text.substr(0, first));
  std::string port_error;
  auto hp = parse_host_port(fmt::format("x:{}", text.substr(first + 1, second - first - 1)), 0, &port_error);
  if (out.host.empty() || !hp) {
    *error = fmt::format("{} \"{}\": {}", flag, text, out.host.empty() ? "missing host" : port_error);
    return std::nullopt;
  }
  out.port = hp->port;
  auto address = text.substr(second + 1);
  if (with_port) {
    const auto last = address.rfind(':');
    auto target = last == std::string_view::npos
                      ? std::nullopt
                      : parse_host_port(fmt::format("x:{}", address.substr(last + 1)), 0, &port_error);
    if (!target || target->port == 0) {
      *error = fmt::format("{} \"{}\": expected {} (PORT2 missing or not a port)", flag, text, form);
      return std::nullopt;
    }
    out.connect_port = target->port;
    address = address.substr(0, last);
  }
  if (address.starts_with('[') && address.ends_with(']')) address = address.substr(1, address.size() - 2);
  if (address.empty()) {
    *error = fmt::format("{} \"{}\": missing address", flag, text);
    return std::nullopt;
  }
  out.address = std::string(address);
  return out;
}

}  // namespace

std::optional<ResolveOverride> parse_resolve(std::string_view text, std::string* error) {
  return parse_override(text, "--resolve", false, error);
}

std::optional<ResolveOverride> parse_connect_to(std::string_view text, std::string* error) {
  return parse_override(text, "--connect-to", true, error);
}

std::string parse_overrides(const std::vector<std::string>& resolve, const std::vector<std::string>& connect_to,
                            std::vector<ResolveOverride>* out) {
  std::string error;
  for (const auto& text : resolve) {
    auto r = parse_resolve(text, &error);
    if (!r) return error;
    out->push_back(*r);
  }
  for (const auto& text : connect_to) {
    auto r = parse_connect_to(text, &error);
    if (!r) return error;
    out->push_back(*r);
  }
  return {};
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

LegTarget edge_target(const v1::Check& check, const AttemptOptions& options) {
  LegTarget target;
  std::string error;
  if (auto url = parse_url(check.url(), &error)) {
    for (const auto& r : options.resolve) {
      if (r.host != url->host || r.port != url->port) continue;
      target.connect_host = r.address;
      if (r.connect_port != 0) target.connect_port = r.connect_port;
    }
  }
  return target;
}

LegTarget keep_alive_target(const v1::Check& check, const AttemptOptions& options) {
  return check.origin().address().empty() ? edge_target(check, options) : origin_target(check);
}

namespace {

namespace asio = boost::asio;

std::string seconds_text(std::chrono::steady_clock::duration d) {
  return fmt::format("{:.1f} s", std::chrono::duration<double>(d).count());
}

// The check's follow-ups after a 5xx through the edge (diagnosis.md section
// 2), each sent at most once, after the 5xx's Retry-After and before the edge
// leg's `deadline`: a JSON error (Accept: application/json) to settle who
// produced the 5xx, and /cdn-cgi/trace to confirm the colo. What they find
// goes into `edge`; the returned lines (diagnosis evidence) say what each did.
asio::awaitable<std::vector<std::string>> follow_up(const v1::Check& check, const Clock& clock,
                                                    const HttpLimits& attempt_limits, const LegTarget& target,
                                                    std::chrono::steady_clock::time_point deadline,
                                                    std::chrono::milliseconds max_wait, v1::LegResult& edge) {
  std::vector<std::string> notes;
  const char* which = check.follow_up_json() && check.follow_up_trace() ? "follow-ups (JSON, trace)"
                      : check.follow_up_json()                         ? "JSON follow-up"
                                                                       : "trace follow-up";
  // Respect Retry-After: never sooner, and not at all when it is longer than
  // the probe waits or than the attempt has left.
  const std::chrono::seconds wait(edge.response().retry_after_seconds());
  const auto left = deadline - clock.steady_now();
  if (left <= std::chrono::steady_clock::duration::zero()) {
    notes.push_back(fmt::format("{} skipped: the edge leg used the whole timeout", which));
    co_return notes;
  }
  if (wait > max_wait || wait >= left) {
    notes.push_back(fmt::format("{} skipped: the edge said Retry-After {} s, more than {}", which, wait.count(),
                                wait > max_wait ? fmt::format("the {} the probe waits", seconds_text(max_wait))
                                                : fmt::format("the {} left of the attempt", seconds_text(left))));
    co_return notes;
  }
  if (wait.count() > 0) {
    asio::steady_timer timer(co_await asio::this_coro::executor, wait);
    boost::system::error_code ignored;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    notes.push_back(fmt::format("{} sent after the Retry-After of {} s", which, wait.count()));
  }
  auto remaining = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock.steady_now());
  };
  // Follow-ups read small bodies: an error page or a trace.
  HttpLimits limits;
  limits.targets = attempt_limits.targets;
  limits.parser.max_body_bytes = 64 * 1024;
  const uint32_t status = edge.response().status();

  auto out_of_time = [&](const char* name) {
    if (remaining().count() > 0) return false;
    notes.push_back(fmt::format("{} follow-up skipped: the attempt's deadline passed", name));
    return true;
  };
  if (check.follow_up_json() && !out_of_time("JSON")) {
    v1::Check json = check;
    json.set_method("GET");  // the same resource, never a repeated POST
    (*json.mutable_headers())["Accept"] = "application/json";
    *json.mutable_timeout() = to_duration(remaining());
    const auto seen = co_await run_http_attempt(json, clock, limits, target);
    if (apply_json_follow_up(seen.edge(), status, edge.mutable_edge())) {
      edge.set_failure_class(classify_5xx(edge.edge(), status));
      notes.push_back(fmt::format("JSON follow-up: Cloudflare error {} {} ({})", seen.edge().edge_error_code()
                                      ? seen.edge().edge_error_code() : seen.edge().edge_code(),
                                  seen.edge().error_name(), seen.edge().error_category()));
    } else {
      notes.push_back(fmt::format("JSON follow-up: no Cloudflare JSON error for {} ({}{})", status,
                                  seen.response().status() ? fmt::format("status {}", seen.response().status())
                                                           : std::string(failure_class_name(seen.failure_class())),
                                  seen.edge().rule() == v1::EDGE_RULE_JSON ? ", another code" : ""));
    }
  }
  if (check.follow_up_trace() && !out_of_time("trace")) {
    std::string error;
    const auto url = parse_url(check.url(), &error);
    v1::Check trace_check = check;
    trace_check.set_method("GET");
    trace_check.set_url(fmt::format("{}://{}/cdn-cgi/trace", url ? url->scheme : "http", url ? url->host_header : ""));
    trace_check.clear_expected_status();
    auto* ok = trace_check.add_expected_status();
    ok->set_min(200);
    ok->set_max(200);
    *trace_check.mutable_timeout() = to_duration(remaining());
    std::string body;
    const auto seen = co_await run_http_attempt(trace_check, clock, limits, target, &body);
    const auto trace = seen.failure_class() == v1::FAILURE_CLASS_OK ? parse_trace(body) : std::nullopt;
    if (trace) {
      apply_trace(*trace, edge.mutable_edge());
      notes.push_back(fmt::format("trace follow-up: colo {}, loc {}", edge.edge().trace_colo(), edge.edge().trace_loc()));
    } else {
      notes.push_back(fmt::format("trace follow-up: no trace ({})", seen.error().empty() ? "not a trace body" : seen.error()));
    }
  }
  co_return notes;
}

}  // namespace

boost::asio::awaitable<v1::CheckResult> run_attempt(const v1::Check& check, const Clock& clock, HttpLimits limits,
                                                    AttemptOptions options) {
  v1::CheckResult result;
  result.set_check_id(check.id());
  result.set_check_version(check.version());
  *result.mutable_start_time() = to_timestamp(clock.now());

  const auto target = edge_target(check, options);
  const auto edge_deadline = clock.steady_now() + to_millis(check.timeout());
  *result.mutable_edge() = co_await run_http_attempt(check, clock, limits, target);
  const bool edge_failed = result.edge().failure_class() != v1::FAILURE_CLASS_OK;
  std::vector<std::string> follow_up_notes;
  const auto status = result.edge().response().status();
  if (edge_failed && status >= 500 && status <= 599 && result.edge().edge().via_cloudflare() &&
      (check.follow_up_json() || check.follow_up_trace())) {
    follow_up_notes = co_await follow_up(check, clock, limits, target, edge_deadline, options.follow_up_max_wait,
                                         *result.mutable_edge());
  }
  if (!check.origin().address().empty() && (edge_failed || options.origin_always)) {
    *result.mutable_origin() = co_await run_http_attempt(check, clock, limits, origin_target(check));
  }
  const bool origin_failed = result.has_origin() && result.origin().failure_class() != v1::FAILURE_CLASS_OK;
  if (edge_failed || origin_failed) {
    *result.mutable_diagnosis() = diagnose(result.edge(), result.has_origin() ? &result.origin() : nullptr);
    for (auto& note : follow_up_notes) result.mutable_diagnosis()->add_evidence(std::move(note));
  }
  co_return result;
}

}  // namespace vantage::probe
