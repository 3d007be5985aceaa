#include "probe/classifier.h"

#include <fmt/format.h>

#include <algorithm>

#include "common/text.h"
#include "probe/assertions.h"
#include "probe/cloudflare_ranges.h"
#include "probe/edge.h"

namespace vantage::probe {

namespace {

using Step = LegEnding::Step;
using How = LegEnding::How;

// Cloudflare's published ranges, shipped inside the binary.
const AddressRanges& cloudflare_ranges() {
  static const AddressRanges ranges = [] {
    std::string error;
    auto v4 = AddressRanges::parse(kCloudflareRangesV4, &error);
    auto v6 = AddressRanges::parse(kCloudflareRangesV6, &error);
    AddressRanges all;
    if (v4) all.add(*v4);
    if (v6) all.add(*v6);
    return all;
  }();
  return ranges;
}

FailureVerdict connect_failure(How how) {
  const auto failure_class = how == How::kTimedOut      ? v1::FAILURE_CLASS_CONNECT_TIMEOUT
                             : how == How::kUnreachable ? v1::FAILURE_CLASS_UNREACHABLE
                                                        : v1::FAILURE_CLASS_CONNECT_REFUSED;
  return {failure_class, v1::PHASE_CONNECT, v1::TRANSPORT_END_NOT_CONNECTED};
}

FailureVerdict tls_failure(How how) {
  if (how == How::kCertificate) return {v1::FAILURE_CLASS_TLS_CERT_INVALID, v1::PHASE_TLS, {}};
  const auto end = how == How::kTimedOut ? v1::TRANSPORT_END_TIMEOUT
                   : how == How::kReset  ? v1::TRANSPORT_END_RST
                                         : v1::TRANSPORT_END_UNSPECIFIED;
  return {v1::FAILURE_CLASS_TLS_HANDSHAKE_FAILED, v1::PHASE_TLS, end};
}

// The response was cut short or refused: where in it, and how.
FailureVerdict read_failure(const LegEnding& e) {
  const bool head = e.head_complete;
  const auto phase = head ? v1::PHASE_READ_BODY : v1::PHASE_READ_HEAD;
  switch (e.how) {
    case How::kClosed:
      return {e.parser_class, phase,
              e.bytes_received == 0 ? v1::TRANSPORT_END_FIN_BEFORE_ANY
              : head                ? v1::TRANSPORT_END_FIN_MID_BODY
                                    : v1::TRANSPORT_END_FIN_MID_HEAD};
    case How::kRejected: return {e.parser_class, phase, {}};
    case How::kTimedOut:
      return {head ? v1::FAILURE_CLASS_TIMEOUT_BODY : v1::FAILURE_CLASS_TIMEOUT_HEADERS, phase,
              v1::TRANSPORT_END_TIMEOUT};
    case How::kNotTls:
      // What came is not a response (the origin writes raw bytes), not a
      // reset of the connection (diagnosis.md section 3).
      return {e.bytes_received == 0 ? v1::FAILURE_CLASS_MALFORMED_STATUS_LINE
              : head                ? v1::FAILURE_CLASS_TRUNCATED_BODY
                                    : v1::FAILURE_CLASS_MALFORMED_HEADER,
              phase, {}};
    default:  // a reset, or any other transport error, before the end of the response
      return {head ? v1::FAILURE_CLASS_TRUNCATED_BODY : v1::FAILURE_CLASS_CONNECTION_RESET, phase,
              v1::TRANSPORT_END_RST};
  }
}

ResponseVerdict near_limit_verdict(uint32_t header_bytes, const HttpLimits& limits) {
  const auto max = limits.parser.max_header_bytes;
  ResponseVerdict verdict;
  verdict.failure_class = v1::FAILURE_CLASS_OK;
  if (header_bytes <= static_cast<double>(max) * limits.near_limit_share) return verdict;
  verdict.failure_class = v1::FAILURE_CLASS_HEADERS_NEAR_LIMIT;
  verdict.error = fmt::format("response headers are {} bytes, {:.0f} % of the {} byte limit", header_bytes,
                              100.0 * header_bytes / max, max);
  return verdict;
}

// The Location text shown in an error (it is the site's, and may be long).
constexpr size_t kLocationShownBytes = 256;

// Two URLs of a chain are the same resource: scheme, host (any case), port, path and query.
bool same_url(const Url& a, const Url& b) {
  return a.scheme == b.scheme && a.port == b.port && a.target == b.target && iequals_ascii(a.host, b.host);
}

// "http://h/a -> /b -> https://h/b" (the chain, then `next` when given):
// each URL after the first as a path when only its path and query changed.
std::string redirect_chain_text(const std::vector<Url>& chain, const Url* next = nullptr) {
  std::string out;
  const Url* before = nullptr;
  auto add = [&](const Url& url) {
    const bool same_origin = before && url.scheme == before->scheme && url.port == before->port &&
                             iequals_ascii(url.host, before->host);
    if (before) out += " -> ";
    out += same_origin ? url.target : url_text(url);
    before = &url;
  };
  for (const auto& url : chain) add(url);
  if (next) add(*next);
  return out;
}

// A response otherwise fine fails on the first of the plan's assertions that does not hold.
// A redirect the leg follows is not judged: it is a hop, never the leg's response.
void assertion_verdict(const ResponseSeen& seen, const LegPlan& plan, ResponseVerdict& verdict) {
  if (plan.check->follow_redirects() > 0 && is_followed_redirect(seen.status)) return;
  auto failure = first_failed_assertion(*plan.check, *plan.assertions, {seen.body, seen.body_capped, seen.headers});
  if (!failure) return;
  verdict.failure_class = v1::FAILURE_CLASS_ASSERTION_FAILED;
  verdict.error = fmt::format("assertions[{}] failed: {}", failure->index(), failure->reason());
  verdict.assertion_failure = std::move(failure);
}

}  // namespace

FailureVerdict classify_failure(const LegEnding& ending) {
  switch (ending.step) {
    case Step::kPlan: return {v1::FAILURE_CLASS_INVALID_CHECK, v1::PHASE_UNSPECIFIED, {}};
    case Step::kDns: return {v1::FAILURE_CLASS_DNS_FAILURE, v1::PHASE_DNS, v1::TRANSPORT_END_NOT_CONNECTED};
    case Step::kConnect: return connect_failure(ending.how);
    case Step::kTls: return tls_failure(ending.how);
    case Step::kWrite: return {v1::FAILURE_CLASS_CONNECTION_RESET, v1::PHASE_WRITE_REQUEST, v1::TRANSPORT_END_RST};
    case Step::kRead: return read_failure(ending);
  }
  return {v1::FAILURE_CLASS_UNSPECIFIED, v1::PHASE_UNSPECIFIED, {}};
}

bool status_expected(const LegPlan& plan, uint32_t status) {
  if (plan.only_status != 0) return status == plan.only_status;
  return plan.check != nullptr && status_expected(*plan.check, status);
}

bool status_expected(const v1::Check& check, uint32_t status) {
  for (const auto& range : check.expected_status()) {
    if (status >= range.min() && status <= range.max()) return true;
  }
  return false;
}

bool in_cloudflare_ranges(const boost::asio::ip::address& address) { return cloudflare_ranges().contains(address); }

ResponseVerdict classify_response(const ResponseSeen& seen, const LegPlan& plan) {
  // Who answered, the edge or the origin (diagnosis.md section 2).
  EdgeResponse edge_seen;
  edge_seen.status = seen.status;
  edge_seen.content_type = seen.content_type;
  edge_seen.body = seen.body;
  edge_seen.cf_ray = seen.cf_ray;
  edge_seen.server = seen.server;
  edge_seen.address_in_cloudflare = in_cloudflare_ranges(seen.peer);
  std::optional<uint32_t> json_retry_after;
  auto edge = recognise_edge(edge_seen, &json_retry_after);

  ResponseVerdict verdict;
  if (status_expected(plan, seen.status)) {
    verdict = near_limit_verdict(seen.header_bytes, plan.limits);
    if (plan.assertions && plan.check) assertion_verdict(seen, plan, verdict);
  } else if (seen.status >= 500) {
    verdict.failure_class = classify_5xx(edge, seen.status);
    verdict.error = fmt::format("status {}", seen.status);
  } else {
    verdict.failure_class = v1::FAILURE_CLASS_UNEXPECTED_STATUS;
    verdict.error = fmt::format("status {} is not expected", seen.status);
  }
  verdict.edge = std::move(edge);
  verdict.json_retry_after = json_retry_after;
  return verdict;
}

bool is_followed_redirect(uint32_t status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

RedirectVerdict judge_redirect(uint32_t status, std::optional<std::string_view> location,
                               const std::vector<Url>& chain, uint32_t limit) {
  RedirectVerdict verdict;
  if (!is_followed_redirect(status) || chain.empty()) return verdict;
  verdict.action = RedirectVerdict::Action::kFail;
  const Url& from = chain.back();
  if (!location || location->empty()) {
    verdict.failure_class = v1::FAILURE_CLASS_BAD_REDIRECT;
    verdict.error = fmt::format("redirect {} without a Location: {}", status, redirect_chain_text(chain));
    return verdict;
  }
  std::string why;
  auto next = resolve_reference(from, *location, &why);
  if (!next) {
    verdict.failure_class = v1::FAILURE_CLASS_BAD_REDIRECT;
    verdict.error = fmt::format("redirect {} to \"{}\", not an http(s) URL ({}): {}", status,
                                safe_text(*location, kLocationShownBytes), why, redirect_chain_text(chain));
    return verdict;
  }
  if (std::any_of(chain.begin(), chain.end(), [&](const Url& seen) { return same_url(seen, *next); })) {
    verdict.failure_class = v1::FAILURE_CLASS_REDIRECT_LOOP;
    verdict.error = "redirect loop: " + redirect_chain_text(chain, &*next);
    return verdict;
  }
  if (chain.size() > limit) {  // chain.size() - 1 followed so far, and this one is past the limit
    verdict.failure_class = v1::FAILURE_CLASS_TOO_MANY_REDIRECTS;
    verdict.error = fmt::format("more than {} redirect{}: {}", limit, limit == 1 ? "" : "s",
                                redirect_chain_text(chain, &*next));
    return verdict;
  }
  verdict.action = RedirectVerdict::Action::kFollow;
  verdict.next = std::move(next);
  return verdict;
}

bool settle_with_json_follow_up(v1::LegResult& edge, const v1::LegResult& follow_up) {
  const uint32_t status = edge.response().status();
  if (!apply_json_follow_up(follow_up.edge(), status, edge.mutable_edge())) return false;
  edge.set_failure_class(classify_5xx(edge.edge(), status));
  return true;
}

bool settle_with_origin(v1::LegResult& edge, const v1::LegResult& origin) {
  if (edge.edge().rule() != v1::EDGE_RULE_NO_MARKERS || edge.failure_class() != v1::FAILURE_CLASS_EDGE_ERROR) {
    return false;
  }
  if (origin.failure_class() == v1::FAILURE_CLASS_INVALID_CHECK) return false;  // nothing was asked of it
  const bool origin_said_it = origin.response().status() == edge.response().status();
  edge.mutable_edge()->set_edge_generated(!origin_said_it);
  if (origin_said_it) edge.set_failure_class(v1::FAILURE_CLASS_ORIGIN_5XX);
  return true;
}

}  // namespace vantage::probe
