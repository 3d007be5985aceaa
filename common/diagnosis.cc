#include "common/diagnosis.h"

#include <fmt/format.h>

#include <algorithm>

#include "common/failure_class.h"
#include "common/text.h"

namespace vantage {

namespace {

using FC = v1::FailureClass;

const std::vector<DiagnosisRow> kTable = {
    // --- diagnosis.md section 4: the edge says 52x, the origin leg says why ---
    {"origin_empty_reply", {520}, OriginLeg::kClasses, {v1::FAILURE_CLASS_EMPTY_REPLY},
     "the origin returns an empty response", "check the application process and its error log; restart it"},
    {"origin_resets_connections", {520}, OriginLeg::kClasses, {v1::FAILURE_CLASS_CONNECTION_RESET},
     "the origin resets connections", "look for OOM kills and crashes; check firewall and IPS rules"},
    {"origin_crashes_mid_response", {520}, OriginLeg::kClasses,
     {v1::FAILURE_CLASS_INCOMPLETE_HEAD, v1::FAILURE_CLASS_TRUNCATED_BODY},
     "the application crashes while answering", "read the application error log; check process supervisor restarts"},
    {"origin_malformed_http", {520}, OriginLeg::kClasses,
     {v1::FAILURE_CLASS_MALFORMED_STATUS_LINE, v1::FAILURE_CLASS_MALFORMED_HEADER, v1::FAILURE_CLASS_BAD_FRAMING},
     "the origin sends malformed HTTP", "fix the application or proxy that writes raw responses"},
    {"origin_headers_too_large", {520}, OriginLeg::kClasses, {v1::FAILURE_CLASS_HEADERS_TOO_LARGE},
     "the origin's response headers are too large for the edge", "trim cookies and debug headers"},
    {"edge_only_520", {520}, OriginLeg::kOk, {},
     "the origin answers directly but fails through the edge: a firewall blocking CDN addresses, a keep-alive "
     "timeout shorter than the edge's idle reuse, or HTTP/2 to the origin misconfigured",
     "allow the CDN address ranges; raise the origin's keep-alive timeout above the edge's; check HTTP/2 settings"},
    {"origin_refusing", {521}, OriginLeg::kClasses, {v1::FAILURE_CLASS_CONNECT_REFUSED},
     "the origin is down or refusing connections", "start the server; check firewall rejects"},
    {"origin_dropping_connections", {522}, OriginLeg::kClasses, {v1::FAILURE_CLASS_CONNECT_TIMEOUT},
     "the origin drops connections", "check the origin's load and its firewall"},
    {"edge_only_522", {522}, OriginLeg::kOk, {},
     "the origin drops connections from the edge only", "allow the CDN address ranges; check load"},
    {"no_route_to_origin", {523}, OriginLeg::kClasses, {v1::FAILURE_CLASS_UNREACHABLE},
     "there is no route to the origin", "check routing and the DNS records pointing at the origin"},
    {"origin_too_slow", {524}, OriginLeg::kClasses, {v1::FAILURE_CLASS_TIMEOUT_HEADERS},
     "the origin is too slow to answer", "profile the slow endpoint"},
    {"edge_origin_tls", {525, 526}, OriginLeg::kClasses,
     {v1::FAILURE_CLASS_TLS_HANDSHAKE_FAILED, v1::FAILURE_CLASS_TLS_CERT_INVALID},
     "TLS between the edge and the origin fails", "check the origin certificate, SNI and protocol versions"},
    {"origin_dns", {530}, OriginLeg::kClasses, {v1::FAILURE_CLASS_DNS_FAILURE},
     "the origin hostname does not resolve", "fix the DNS records"},
    {"edge_hiding_origin_problem", {}, OriginLeg::kFailing, {},
     "the edge is hiding an origin problem (served from cache)", "fix the origin before the cache expires"},

    // --- no origin leg: what the edge code alone says ---
    {"edge_520", {520}, OriginLeg::kAbsent, {},
     "the origin sent something the edge could not use (empty, reset, malformed or oversized reply)",
     "give the check an origin address so the next failure names the cause; meanwhile read the origin's logs"},
    {"edge_521", {521}, OriginLeg::kAbsent, {}, "the origin refused the edge's connection",
     "start the server; allow the CDN address ranges"},
    {"edge_522", {522}, OriginLeg::kAbsent, {}, "the edge timed out connecting to the origin",
     "check the origin's load and that its firewall allows the CDN ranges"},
    {"edge_523", {523}, OriginLeg::kAbsent, {}, "the edge cannot reach the origin", "check routing and DNS records"},
    {"edge_524", {524}, OriginLeg::kAbsent, {}, "the origin accepted the connection but did not answer in time",
     "profile the slow endpoint"},
    {"edge_tls", {525, 526}, OriginLeg::kAbsent, {}, "TLS between the edge and the origin fails",
     "check the origin certificate, SNI and protocol versions"},
    {"edge_530", {530}, OriginLeg::kAbsent, {}, "the edge cannot resolve or reach the origin (530)",
     "check the origin's DNS records"},

    // --- the edge leg's class alone: the site's redirects (Check.follow_redirects) ---
    {"too_many_redirects", {}, OriginLeg::kAny, {},
     "the site redirects more times than the check follows",
     "point the check at the URL where the chain ends, or raise its follow_redirects; a long chain costs every "
     "visitor a round trip per hop, so shorten it where the rules allow",
     v1::FAILURE_CLASS_TOO_MANY_REDIRECTS},
    {"redirect_loop", {}, OriginLeg::kAny, {},
     "the site redirects in a loop: a redirect leads back to a URL already visited, and browsers give up with "
     "\"too many redirects\"",
     "a loop between http:// and https:// is the classic Cloudflare \"Flexible\" SSL mode in front of an origin "
     "that redirects to HTTPS itself (the edge asks the origin over plain HTTP, the origin sends it to https, "
     "forever): set the SSL/TLS mode to Full (strict), or drop the origin's own HTTPS redirect; otherwise compare "
     "the redirect rules of the CDN, the web server and the application (www, trailing slash, language)",
     v1::FAILURE_CLASS_REDIRECT_LOOP},
    {"bad_redirect", {}, OriginLeg::kAny, {},
     "the site answers with a redirect that cannot be followed: no Location, or one that is not an http(s) URL",
     "fix the rule or code that writes the redirect: a 301/302/303/307/308 needs a Location with an absolute or "
     "relative http(s) URL",
     v1::FAILURE_CLASS_BAD_REDIRECT},

    // --- the edge leg's class alone: the check's assertions (Check.assertions; the cause names the one failed) ---
    {"assertion_failed_through_edge", {}, OriginLeg::kOk, {},
     "the origin's response holds the check's assertions but the one through the edge does not: the edge serves "
     "other content (a cached or stale copy, a rewritten page, a challenge or block page)",
     "purge the edge's cache for the URL and compare the two responses; check the edge's cache, transform and "
     "security rules (a bot challenge answers 200 with a page of its own)",
     v1::FAILURE_CLASS_ASSERTION_FAILED},
    {"assertion_failed", {}, OriginLeg::kAny, {},
     "the site answers, but not with what the check asserts: a body or header that does not match",
     "compare the response with the assertion that failed (the evidence says what was read): fix the page, or the "
     "assertion when the page changed on purpose",
     v1::FAILURE_CLASS_ASSERTION_FAILED},
};

bool edge_matches(const DiagnosisRow& row, const v1::LegResult& edge) {
  if (row.edge_class != v1::FAILURE_CLASS_UNSPECIFIED) return edge.failure_class() == row.edge_class;
  const bool edge_ok = edge.failure_class() == v1::FAILURE_CLASS_OK ||
                       edge.failure_class() == v1::FAILURE_CLASS_HEADERS_NEAR_LIMIT;
  if (row.edge_codes.empty()) return edge_ok;
  const uint32_t code = edge.edge().edge_code() ? edge.edge().edge_code() : edge.response().status();
  return !edge_ok && std::find(row.edge_codes.begin(), row.edge_codes.end(), code) != row.edge_codes.end();
}

bool origin_matches(const DiagnosisRow& row, const v1::LegResult* origin) {
  const bool ok = origin && (origin->failure_class() == v1::FAILURE_CLASS_OK ||
                             origin->failure_class() == v1::FAILURE_CLASS_HEADERS_NEAR_LIMIT);
  switch (row.origin) {
    case OriginLeg::kAbsent: return origin == nullptr;
    case OriginLeg::kOk: return ok;
    case OriginLeg::kFailing: return origin != nullptr && !ok;
    case OriginLeg::kAny: return true;
    case OriginLeg::kClasses:
      return origin != nullptr &&
             std::find(row.origin_classes.begin(), row.origin_classes.end(), origin->failure_class()) !=
                 row.origin_classes.end();
  }
  return false;
}

// A probe's timing is not trusted: clamped where nanoseconds would overflow (292 years).
std::string micros_text(uint64_t micros) {
  constexpr auto kMaxMicros = static_cast<uint64_t>(std::chrono::nanoseconds::max().count() / 1000);
  return seconds_text(std::chrono::microseconds(std::min(micros, kMaxMicros)), 2);
}

std::string leg_evidence(const char* name, const v1::LegResult& leg) {
  std::string text = fmt::format("{}: {}", name, failure_class_name(leg.failure_class()));
  if (leg.response().status()) text += fmt::format(", status {}", leg.response().status());
  if (leg.redirects_size() > 0) {
    text += fmt::format(", after {} redirect{}", leg.redirects_size(), leg.redirects_size() == 1 ? "" : "s");
  }
  if (leg.edge().edge_generated()) text += fmt::format(", generated by the edge ({})", leg.edge().edge_code());
  if (!leg.edge().colo().empty()) text += ", colo " + leg.edge().colo();
  if (!leg.edge().ray_id().empty()) text += ", ray " + leg.edge().ray_id();
  if (leg.timings().time_to_error_us()) text += ", failed after " + micros_text(leg.timings().time_to_error_us());
  if (!leg.error().empty()) text += " (" + leg.error() + ")";
  return text;
}

// The assertion a leg failed, for the cause: what it asks, never what was
// read (that is the leg's error, in the evidence), so the cause of an outage
// stays the same from one attempt to the next.
std::string assertion_text(const v1::AssertionFailure& failure) {
  constexpr size_t kShown = 256;  // the pattern is at most 1 KiB (check_config.h)
  const auto& a = failure.assertion();
  const auto subject = a.target() == v1::Assertion::TARGET_HEADER
                           ? "header " + safe_text(a.header_name(), kShown)
                           : std::string("body");
  return fmt::format("assertions[{}]: {} must {}match \"{}\"", failure.index(), subject, a.negate() ? "not " : "",
                     safe_text(a.pattern(), kShown));
}

}  // namespace

const std::vector<DiagnosisRow>& diagnosis_table() { return kTable; }

v1::Diagnosis diagnose(const v1::LegResult& edge, const v1::LegResult* origin) {
  v1::Diagnosis out;
  for (const auto& row : kTable) {
    if (edge_matches(row, edge) && origin_matches(row, origin)) {
      out.set_cause_id(std::string(row.cause_id));
      out.set_cause(std::string(row.cause));
      if (edge.failure_class() == v1::FAILURE_CLASS_ASSERTION_FAILED && edge.has_assertion_failure()) {
        out.set_cause(fmt::format("{} ({})", row.cause, assertion_text(edge.assertion_failure())));
      }
      out.set_advice(std::string(row.advice));
      break;
    }
  }
  if (out.cause_id().empty() && edge.failure_class() != v1::FAILURE_CLASS_OK) {
    // No row: the failure class of the leg is the most exact thing known.
    out.set_cause_id(failure_class_name(edge.failure_class()));
    out.set_cause(fmt::format("the check failed: {}", failure_class_name(edge.failure_class())));
    out.set_advice("see the evidence; add an origin address to the check to tell edge and origin apart");
  }
  out.add_evidence(leg_evidence("edge", edge));
  if (origin) out.add_evidence(leg_evidence("origin", *origin));
  // Times to error tell causes apart (diagnosis.md section 1).
  const auto tte = edge.timings().time_to_error_us();
  if (tte >= 18'000'000 && tte <= 21'000'000) {
    out.add_evidence("the edge gave up after about 19 s: its connect timeout to the origin");
  } else if (tte >= 120'000'000 && tte <= 130'000'000) {
    out.add_evidence("the edge gave up after about 125 s: its wait for the origin's response headers");
  }
  return out;
}

}  // namespace vantage
