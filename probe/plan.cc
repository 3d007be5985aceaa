#include "probe/plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <string_view>
#include <utility>

#include "common/check_config.h"
#include "common/text.h"
#include "probe/assertions.h"
#include "probe/cache_busting.h"
#include "probe/tls_facts.h"

namespace vantage::probe {

namespace {

// Follow-ups read small bodies: an error page or a trace.
constexpr uint64_t kFollowUpBodyBytes = 64 * 1024;

// The URL as one leg sees it: the target's overrides applied.
void apply_target(Url& url, const LegTarget& target) {
  if (!target.scheme.empty()) url.scheme = target.scheme;
  if (!target.host_header.empty()) url.host_header = target.host_header;
  if (!target.connect_host.empty()) url.host = target.connect_host;
  if (target.connect_port) url.port = target.connect_port;
}

// SNI and the name verified: the target's SNI, else the Host header's host.
std::string server_name_for(const Url& url, const LegTarget& target) {
  if (!target.sni.empty()) return target.sni;
  std::string ignored;
  auto hp = parse_host_port(url.host_header, 443, &ignored);
  return hp ? hp->host : url.host;
}

// RFC 9110 5.6.2: a token (method, header name).
bool is_token(std::string_view text) {
  static constexpr std::string_view kSymbols = "!#$%&'*+-.^_`|~";
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    return alnum || kSymbols.find(c) != std::string_view::npos;
  });
}

// The first control character (other than tab) in `text`: CR and LF end a
// header line (header injection), NUL ends a C string on the way.
std::optional<size_t> control_at(std::string_view text) {
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if ((c < 0x20 && c != '\t') || c == 0x7f) return i;
  }
  return std::nullopt;
}

std::string byte_at(std::string_view text, size_t at) {
  const auto c = static_cast<unsigned char>(text[at]);
  const char* name = c == '\r' ? "CR" : c == '\n' ? "LF" : c == 0 ? "NUL" : "a control character";
  return fmt::format("{} (0x{:02x}) at byte {}", name, c, at);
}

// Why the plan's request must not be sent, or empty when it may.
// (A reason or empty, not the error convention: the reason is a value of the plan, LegPlan::invalid.)
std::string request_problem(const LegPlan& plan) {
  constexpr size_t kShown = 64;
  const Url& url = plan.url;
  if (!is_token(plan.method)) return fmt::format("method \"{}\" is not a token", safe_text(plan.method, kShown));
  if (auto at = control_at(url.target)) return "the URL's path has " + byte_at(url.target, *at);
  if (auto i = url.target.find_first_of(" \t"); i != std::string::npos) {
    return fmt::format("the URL's path has whitespace at byte {}", i);
  }
  for (const auto& [what, text] : {std::pair<const char*, std::string_view>{"host", url.host},
                                   {"Host header", url.host_header},
                                   {"TLS server name", plan.server_name}}) {
    if (auto at = control_at(text)) return fmt::format("the {} has {}", what, byte_at(text, *at));
  }
  for (const auto& [name, value] : plan.check->headers()) {
    if (!is_token(name)) return fmt::format("header name \"{}\" is not a token", safe_text(name, kShown));
    if (auto at = control_at(value)) return fmt::format("the value of header {} has {}", name, byte_at(value, *at));
  }
  return {};
}

// The check's headers a redirect to another host does not carry (LegPlan::other_host).
bool sent_only_to_the_checks_host(std::string_view name) {
  return iequals_ascii(name, "host") || iequals_ascii(name, "authorization") ||
         iequals_ascii(name, "proxy-authorization") || iequals_ascii(name, "cookie");
}

// The request line and fields: Host and User-Agent, then the check's headers
// (one replacing a field of the same name, case-insensitively), then
// `accept` when given. No body, so no framing fields.
std::string request_bytes(const LegPlan& plan, std::string_view accept) {
  std::vector<std::pair<std::string_view, std::string_view>> fields = {{"Host", plan.url.host_header},
                                                                       {"User-Agent", "vantage-probe"}};
  auto set = [&fields](std::string_view name, std::string_view value) {
    std::erase_if(fields, [name](const auto& field) { return iequals_ascii(field.first, name); });
    fields.emplace_back(name, value);
  };
  for (const auto& [name, value] : plan.check->headers()) {
    if (plan.other_host && sent_only_to_the_checks_host(name)) continue;
    set(name, value);
  }
  if (!accept.empty()) set("Accept", accept);
  std::string out = fmt::format("{} {} HTTP/1.1\r\n", plan.method, plan.url.target);
  for (const auto& [name, value] : fields) fmt::format_to(std::back_inserter(out), "{}: {}\r\n", name, value);
  out += "\r\n";
  return out;
}

// Judges the plan's request and writes it, or says why it may not be sent.
void finish(LegPlan& plan, std::string_view accept = {}) {
  plan.invalid.clear();
  plan.request.clear();
  if (!plan.bad_url.empty()) {
    plan.invalid = "bad url: " + plan.bad_url;
    return;
  }
  if (!plan.bad_tls.empty()) {
    plan.invalid = plan.bad_tls;
    return;
  }
  if (plan.assertions && !plan.assertions->invalid.empty()) {
    plan.invalid = "bad assertion: " + plan.assertions->invalid;
    return;
  }
  if (auto problem = request_problem(plan); !problem.empty()) {
    plan.invalid = "request not sent: " + problem;
    return;
  }
  plan.request = request_bytes(plan, accept);
}

LegPlan make_leg(const v1::Check& check, const std::optional<Url>& url, const std::string& url_error,
                 const HttpLimits& limits, const LegTarget& target) {
  LegPlan plan;
  plan.check = &check;
  plan.method = check.method();
  plan.timeout = to_millis(check.timeout());
  plan.limits = limits;
  // The check may read less body than the probe's own cap, never more.
  if (check.body_limit_bytes() > 0) {
    plan.limits.parser.max_body_bytes = std::min<uint64_t>(check.body_limit_bytes(), limits.parser.max_body_bytes);
  }
  plan.assertions = compile_assertions(check);  // null, allocating nothing, without assertions
  if (url) {
    plan.url = *url;
    apply_target(plan.url, target);
    plan.server_name = server_name_for(plan.url, target);
  } else {
    plan.bad_url = url_error.empty() ? "not a URL" : url_error;
  }
  if (!check.tls().ca_pem().empty()) {  // parsed once per distinct PEM, not per attempt
    auto trust = tls_trust_for(check.tls().ca_pem());
    plan.tls_context = std::move(trust.context);
    plan.bad_tls = std::move(trust.error);
  }
  finish(plan);
  return plan;
}

// A plan for another GET on the edge leg's connection target.
LegPlan follow_up_from(const LegPlan& edge, std::chrono::milliseconds timeout) {
  LegPlan plan = edge;
  plan.method = "GET";
  plan.timeout = timeout;
  plan.limits = HttpLimits{};
  plan.limits.targets = edge.limits.targets;
  plan.limits.parser.max_body_bytes = kFollowUpBodyBytes;
  plan.assertions = nullptr;  // the check's assertions are about its page, not an error page or a trace
  return plan;
}

}  // namespace

LegTarget edge_target_of(const Url& url, const AttemptOptions& options) {
  LegTarget target;
  for (const auto& r : options.resolve) {
    if (r.host != url.host || r.port != url.port) continue;
    target.connect_host = r.address;
    if (r.connect_port != 0) target.connect_port = r.connect_port;
  }
  return target;
}

LegTarget origin_target_of(const v1::Check& check, const Url* url) {
  LegTarget target;
  const auto& origin = check.origin();
  target.scheme = origin.scheme().empty() ? (url ? url->scheme : "http") : origin.scheme();
  std::string error;
  if (auto hp = parse_host_port(origin.address(), target.scheme == "https" ? 443 : 80, &error)) {
    target.connect_host = hp->host;
    target.connect_port = hp->port;
  }
  target.host_header = origin.host().empty() ? (url ? url->host_header : "") : origin.host();
  target.sni = origin.sni();
  return target;
}

AttemptPlan plan_attempt(const v1::Check& check, const HttpLimits& limits, const AttemptOptions& options) {
  std::string url_error;
  auto url = parse_url(check.url(), &url_error);
  // One value per attempt, for both legs (and the JSON follow-up, a copy of the edge leg's URL).
  if (url && !check.cache_busting_param().empty()) add_cache_busting(*url, check.cache_busting_param());
  AttemptPlan plan;
  plan.edge = make_leg(check, url, url_error, limits, url ? edge_target_of(*url, options) : LegTarget{});
  if (!check.origin().address().empty()) {
    plan.origin = make_leg(check, url, url_error, limits, origin_target_of(check, url ? &*url : nullptr));
  }
  return plan;
}

LegPlan plan_leg(const v1::Check& check, const HttpLimits& limits, const LegTarget& target) {
  std::string url_error;
  auto url = parse_url(check.url(), &url_error);
  if (url && !check.cache_busting_param().empty()) add_cache_busting(*url, check.cache_busting_param());
  return make_leg(check, url, url_error, limits, target);
}

LegPlan json_follow_up_plan(const LegPlan& edge, std::chrono::milliseconds timeout) {
  LegPlan plan = follow_up_from(edge, timeout);
  finish(plan, "application/json");
  return plan;
}

LegPlan trace_follow_up_plan(const LegPlan& edge, std::chrono::milliseconds timeout) {
  LegPlan plan = follow_up_from(edge, timeout);
  plan.url.target = "/cdn-cgi/trace";
  plan.only_status = 200;
  finish(plan);
  return plan;
}

LegPlan redirect_plan(const LegPlan& from, const Url& to, uint32_t status, const AttemptOptions& options,
                      std::chrono::milliseconds timeout) {
  LegPlan plan = from;
  const auto target = edge_target_of(to, options);
  plan.url = to;
  apply_target(plan.url, target);
  plan.server_name = server_name_for(plan.url, target);
  plan.other_host = from.other_host || !iequals_ascii(to.host_header, from.url.host_header);
  if ((status == 303 && from.method != "HEAD") || ((status == 301 || status == 302) && from.method == "POST")) {
    plan.method = "GET";
  }
  plan.timeout = timeout;
  plan.bad_url.clear();
  finish(plan);
  return plan;
}

LegPlan keep_alive_plan(const LegPlan& leg) {
  LegPlan plan = leg;
  // Never repeat a POST: the measurement reads.
  plan.method = leg.check->method() == "HEAD" ? "HEAD" : "GET";
  plan.limits.parser = HttpParserLimits{};
  finish(plan);
  return plan;
}

}  // namespace vantage::probe
