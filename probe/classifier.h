#pragma once
// The one place a leg's failure class is decided (diagnosis.md section 3),
// from what the leg saw, its plan and its limits. Pure: no sockets, no clock,
// nothing thrown; the connection reports, this judges.
//
// - classify_failure: a leg that ended before a usable response (the step
//   that failed and how; the parser's own verdict for the bytes it judged);
// - classify_response: a complete response (status against the expected
//   set, the header block against the limit, and for a 5xx who produced it,
//   recognised by edge.h);
// - settle_with_json_follow_up and settle_with_origin: what later legs of the
//   same attempt add to the edge leg's verdict.

#include <boost/asio/ip/address.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "probe/plan.h"
#include "vantage/v1/types.pb.h"

namespace vantage::probe {

// How a leg ended before a usable response.
struct LegEnding {
  enum class Step { kPlan, kDns, kConnect, kTls, kWrite, kRead };
  enum class How {
    kFailed,       // anything not named below
    kRefused,      // RST to SYN
    kTimedOut,     // the deadline passed during the step
    kUnreachable,  // EHOSTUNREACH / ENETUNREACH
    kCertificate,  // TLS: the certificate was rejected
    kReset,        // RST
    kClosed,       // FIN where more was expected
    kNotTls,       // bytes that are not TLS records after the handshake
    kRejected,     // the strict parser refused the response
  };
  Step step = Step::kPlan;
  How how = How::kFailed;
  // What the parser had of the response (the read step).
  uint64_t bytes_received = 0;
  bool head_complete = false;
  v1::FailureClass parser_class = v1::FAILURE_CLASS_UNSPECIFIED;  // for kClosed and kRejected
};

struct FailureVerdict {
  v1::FailureClass failure_class = v1::FAILURE_CLASS_UNSPECIFIED;
  v1::Phase phase = v1::PHASE_UNSPECIFIED;
  // How the transport ended, when that is known (else UNSPECIFIED).
  v1::TransportEnd transport_end = v1::TRANSPORT_END_UNSPECIFIED;
};
FailureVerdict classify_failure(const LegEnding& ending);

// A complete response as the leg saw it. Views into the leg's buffers.
struct ResponseSeen {
  uint32_t status = 0;
  uint32_t header_bytes = 0;
  std::string_view content_type;
  std::string_view body;  // capped by the parser
  bool body_capped = false;  // the body went on past the cap
  // Every field as sent (the plan's assertions look at them); may be null without assertions.
  const std::vector<std::pair<std::string, std::string>>* headers = nullptr;
  std::string_view server;
  std::optional<std::string_view> cf_ray;
  boost::asio::ip::address peer;  // the address the leg was connected to
};

struct ResponseVerdict {
  v1::FailureClass failure_class = v1::FAILURE_CLASS_UNSPECIFIED;
  std::string error;  // empty for ok
  v1::EdgeEvidence edge;
  // The `retry_after` of a Cloudflare JSON error body (rule 1), when present.
  std::optional<uint32_t> json_retry_after;
  // The assertion that did not hold (assertion_failed).
  std::optional<v1::AssertionFailure> assertion_failure;
};
// ok, headers_near_limit, edge_error, origin_5xx, unexpected_status or
// assertion_failed: the plan's assertions (assertions.h) are judged on a
// response whose status is expected (a failed one wins over
// headers_near_limit), and the error names the first that failed.
ResponseVerdict classify_response(const ResponseSeen& seen, const LegPlan& plan);

// Whether `status` is in the plan's expected set (its only_status, else the check's).
bool status_expected(const LegPlan& plan, uint32_t status);
// Whether `status` is in the check's expected set.
bool status_expected(const v1::Check& check, uint32_t status);

// Whether `address` lies in Cloudflare's published ranges (shipped in the binary).
bool in_cloudflare_ranges(const boost::asio::ip::address& address);

// Whether a leg that got `status` follows it when the check follows
// redirects: 301, 302, 303, 307 and 308 (not 300, 304 or 305).
bool is_followed_redirect(uint32_t status);

// What a complete response says about the redirect chain of an edge leg
// that follows redirects (redirects.h): end here (judged as any response),
// go on to `next`, or fail with too_many_redirects, redirect_loop or
// bad_redirect and an error naming the chain.
struct RedirectVerdict {
  enum class Action { kFinal, kFollow, kFail };
  Action action = Action::kFinal;
  std::optional<Url> next;  // kFollow
  v1::FailureClass failure_class = v1::FAILURE_CLASS_UNSPECIFIED;  // kFail
  std::string error;                                                 // kFail
};
// `status` and `location` (nullopt: no Location field) of the response to
// the last URL of `chain` (the URLs requested in this attempt, in order);
// `limit` is Check.follow_redirects, not 0 (at most that many are followed).
RedirectVerdict judge_redirect(uint32_t status, std::optional<std::string_view> location,
                               const std::vector<Url>& chain, uint32_t limit);

// A JSON follow-up's finding (diagnosis.md section 2, edge.h
// apply_json_follow_up) added to the edge leg it follows, whose class is then
// judged again. False when the follow-up was no Cloudflare JSON error for the
// same code: the edge leg is unchanged.
bool settle_with_json_follow_up(v1::LegResult& edge, const v1::LegResult& follow_up);

// diagnosis.md section 2 rule 5: a 52x/530 through the edge without the
// edge's markers is a custom error page or the origin's own 52x, which the
// edge leg alone cannot tell apart; the origin leg settles it. When the
// origin answered that same status itself, the edge passed it through
// (origin_5xx, not edge-generated); when the origin answered otherwise (or
// not at all), the edge produced it (edge_error, edge-generated). Changes
// nothing for any other edge leg, or an origin leg that sent nothing
// (invalid_check). True when it changed the edge leg.
bool settle_with_origin(v1::LegResult& edge, const v1::LegResult& origin);

}  // namespace vantage::probe
