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
#include "common/text.h"
#include "common/url.h"
#include "probe/classifier.h"
#include "probe/edge.h"
#include "probe/redirects.h"

namespace vantage::probe {

namespace {

// HOST:PORT:ADDRESS[:PORT2] (ADDRESS may be an IPv6 literal in brackets), an
// override of the kind `what` names; PORT2 only when `with_port`.
std::optional<ResolveOverride> parse_override(std::string_view text, const char* what, bool with_port,
                                              std::string* error) {
  const char* form = with_port ? "HOST:PORT:ADDRESS:PORT2" : "HOST:PORT:ADDRESS";
  const auto first = text.find(':');
  const auto second = first == std::string_view::npos ? first : text.find(':', first + 1);
  if (second == std::string_view::npos) {
    *error = fmt::format("{} \"{}\": expected {}", what, text, form);
    return std::nullopt;
  }
  ResolveOverride out;
  out.host = std::string(text.substr(0, first));
  std::string port_error;
  auto hp = parse_host_port(fmt::format("x:{}", text.substr(first + 1, second - first - 1)), 0, &port_error);
  if (out.host.empty() || !hp) {
    *error = fmt::format("{} \"{}\": {}", what, text, out.host.empty() ? "missing host" : port_error);
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
      *error = fmt::format("{} \"{}\": expected {} (PORT2 missing or not a port)", what, text, form);
      return std::nullopt;
    }
    out.connect_port = target->port;
    address = address.substr(0, last);
  }
  if (address.starts_with('[') && address.ends_with(']')) address = address.substr(1, address.size() - 2);
  if (address.empty()) {
    *error = fmt::format("{} \"{}\": missing address", what, text);
    return std::nullopt;
  }
  out.address = std::string(address);
  return out;
}

}  // namespace

std::optional<ResolveOverride> parse_resolve(std::string_view text, std::string* error) {
  return parse_override(text, "resolve override", false, error);
}

std::optional<ResolveOverride> parse_connect_to(std::string_view text, std::string* error) {
  return parse_override(text, "connect-to override", true, error);
}

bool parse_overrides(const std::vector<std::string>& resolve, const std::vector<std::string>& connect_to,
                     std::vector<ResolveOverride>* out, std::string* error) {
  for (const auto& text : resolve) {
    auto r = parse_resolve(text, error);
    if (!r) return false;
    out->push_back(*r);
  }
  for (const auto& text : connect_to) {
    auto r = parse_connect_to(text, error);
    if (!r) return false;
    out->push_back(*r);
  }
  return true;
}

LegTarget origin_target(const v1::Check& check) {
  std::string error;
  const auto url = parse_url(check.url(), &error);
  return origin_target_of(check, url ? &*url : nullptr);
}

LegTarget edge_target(const v1::Check& check, const AttemptOptions& options) {
  std::string error;
  const auto url = parse_url(check.url(), &error);
  return url ? edge_target_of(*url, options) : LegTarget{};
}

LegTarget keep_alive_target(const v1::Check& check, const AttemptOptions& options) {
  return check.origin().address().empty() ? edge_target(check, options) : origin_target(check);
}

namespace {

namespace asio = boost::asio;

using std::chrono::steady_clock;

// Why the follow-ups (`which`) are not sent at all, or empty: never sooner
// than the 5xx's Retry-After (`wait`), and not at all when it is longer than
// the probe waits or than the attempt has `left`.
std::string skip_reason(const char* which, std::chrono::seconds wait, steady_clock::duration left,
                        std::chrono::milliseconds max_wait) {
  if (left <= steady_clock::duration::zero()) {
    return fmt::format("{} skipped: the edge leg used the whole timeout", which);
  }
  if (wait <= max_wait && wait < left) return {};
  return fmt::format("{} skipped: the edge said Retry-After {} s, more than {}", which, wait.count(),
                     wait > max_wait ? fmt::format("the {} the probe waits", seconds_text(max_wait))
                                     : fmt::format("the {} left of the attempt", seconds_text(left)));
}

// Where a follow-up connected, for its evidence line (the one place its leg
// has in the result: every leg's address is in it), or empty when it did not.
std::string via(const v1::LegResult& seen) {
  const auto& address = seen.connection().connected_address();
  return address.empty() ? std::string() : ", via " + address;
}

// The JSON follow-up settles who produced the 5xx (rule 1); what it found,
// for the diagnosis' evidence.
asio::awaitable<std::string> json_follow_up(const LegPlan& plan, const Clock& clock, v1::LegResult& edge) {
  const uint32_t status = edge.response().status();
  const auto seen = co_await run_leg(plan, clock);
  if (settle_with_json_follow_up(edge, seen)) {
    co_return fmt::format("JSON follow-up: Cloudflare error {} {} ({})",
                          seen.edge().edge_error_code() ? seen.edge().edge_error_code() : seen.edge().edge_code(),
                          seen.edge().error_name(), seen.edge().error_category()) +
              via(seen);
  }
  co_return fmt::format("JSON follow-up: no Cloudflare JSON error for {} ({}{})", status,
                        seen.response().status() ? fmt::format("status {}", seen.response().status())
                                                 : std::string(failure_class_name(seen.failure_class())),
                        seen.edge().rule() == v1::EDGE_RULE_JSON ? ", another code" : "") +
            via(seen);
}

// /cdn-cgi/trace confirms the colo; what it found, for the evidence.
asio::awaitable<std::string> trace_follow_up(const LegPlan& plan, const Clock& clock, v1::LegResult& edge) {
  std::string body;
  const auto seen = co_await run_leg(plan, clock, &body);
  const auto trace = seen.failure_class() == v1::FAILURE_CLASS_OK ? parse_trace(body) : std::nullopt;
  if (!trace) {
    co_return fmt::format("trace follow-up: no trace ({})", seen.error().empty() ? "not a trace body" : seen.error()) +
              via(seen);
  }
  apply_trace(*trace, edge.mutable_edge());
  co_return fmt::format("trace follow-up: colo {}, loc {}", edge.edge().trace_colo(), edge.edge().trace_loc()) +
            via(seen);
}

// The check's follow-ups after a 5xx through the edge (diagnosis.md section
// 2), each sent at most once, after the 5xx's Retry-After and before the edge
// leg's `deadline`, as plans derived from the edge leg's. What they find goes
// into `edge`; the returned lines (diagnosis evidence) say what each did.
asio::awaitable<std::vector<std::string>> follow_up(const v1::Check& check, const LegPlan& edge_plan,
                                                    const Clock& clock, steady_clock::time_point deadline,
                                                    std::chrono::milliseconds max_wait, v1::LegResult& edge) {
  std::vector<std::string> notes;
  const char* which = check.follow_up_json() && check.follow_up_trace() ? "follow-ups (JSON, trace)"
                      : check.follow_up_json()                         ? "JSON follow-up"
                                                                       : "trace follow-up";
  const std::chrono::seconds wait(edge.response().retry_after_seconds());
  if (auto skipped = skip_reason(which, wait, deadline - clock.steady_now(), max_wait); !skipped.empty()) {
    notes.push_back(std::move(skipped));
    co_return notes;
  }
  if (wait.count() > 0) {
    asio::steady_timer timer(co_await asio::this_coro::executor, wait);
    boost::system::error_code ignored;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    notes.push_back(fmt::format("{} sent after the Retry-After of {} s", which, wait.count()));
  }
  // Each follow-up gets what is left of the edge leg's time, or is skipped.
  auto time_left = [&](const char* name) -> std::optional<std::chrono::milliseconds> {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock.steady_now());
    if (left.count() > 0) return left;
    notes.push_back(fmt::format("{} follow-up skipped: the attempt's deadline passed", name));
    return std::nullopt;
  };
  if (auto left = check.follow_up_json() ? time_left("JSON") : std::nullopt) {
    const auto plan = json_follow_up_plan(edge_plan, *left);
    notes.push_back(co_await json_follow_up(plan, clock, edge));
  }
  if (auto left = check.follow_up_trace() ? time_left("trace") : std::nullopt) {
    const auto plan = trace_follow_up_plan(edge_plan, *left);
    notes.push_back(co_await trace_follow_up(plan, clock, edge));
  }
  co_return notes;
}

bool wants_follow_up(const v1::Check& check, const v1::LegResult& edge) {
  const auto status = edge.response().status();
  return edge.failure_class() != v1::FAILURE_CLASS_OK && status >= 500 && status <= 599 &&
         edge.edge().via_cloudflare() && (check.follow_up_json() || check.follow_up_trace());
}

}  // namespace

boost::asio::awaitable<v1::CheckResult> run_attempt(const v1::Check& check, const Clock& clock, HttpLimits limits,
                                                    AttemptOptions options) {
  v1::CheckResult result;
  result.set_check_id(check.id());
  result.set_check_version(check.version());
  *result.mutable_start_time() = to_timestamp(clock.now());

  const auto plan = plan_attempt(check, limits, options);
  const auto edge_deadline = clock.steady_now() + plan.edge.timeout;
  auto& edge = *result.mutable_edge();
  std::optional<LegPlan> redirected;  // the final request's plan when the edge leg followed a redirect
  if (check.follow_redirects() > 0) {
    edge = co_await run_following_redirects(plan.edge, clock, options, redirected);
  } else {
    edge = co_await run_leg(plan.edge, clock);
  }
  const LegPlan& edge_plan = redirected ? *redirected : plan.edge;
  const bool edge_failed = edge.failure_class() != v1::FAILURE_CLASS_OK;
  std::vector<std::string> follow_up_notes;
  if (wants_follow_up(check, edge)) {
    follow_up_notes = co_await follow_up(check, edge_plan, clock, edge_deadline, options.follow_up_max_wait, edge);
  }
  if (plan.origin && (edge_failed || options.origin_always)) {
    *result.mutable_origin() = co_await run_leg(*plan.origin, clock);
    settle_with_origin(edge, result.origin());
  }
  const bool origin_failed = result.has_origin() && result.origin().failure_class() != v1::FAILURE_CLASS_OK;
  if (edge_failed || origin_failed) {
    *result.mutable_diagnosis() = diagnose(edge, result.has_origin() ? &result.origin() : nullptr);
    for (auto& note : follow_up_notes) result.mutable_diagnosis()->add_evidence(std::move(note));
  }
  co_return result;
}

}  // namespace vantage::probe
