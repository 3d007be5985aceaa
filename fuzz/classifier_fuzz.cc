// libFuzzer target for the leg classifier (probe/classifier.h):
// classify_response, classify_failure and settle_with_origin.
//
// Input layout (shorter inputs use what is there, zeros for the rest):
//   bytes 0-1  status = 100 + (little-endian u16 % 500)
//   byte 2     flags: bit0 cf-ray present, bit1 one expected status (only_status),
//              bit2 peer in Cloudflare's ranges, bit3 origin leg answered the same status
//   bytes 3-4  header_bytes (little-endian u16)
//   byte 5     max_header_bytes = 1 + byte * 256
//   byte 6     expected range: min = 100 + byte * 2 (or the only status)
//   byte 7     expected range: max = min + byte * 2
//   byte 8     failure ending: step (low nibble % 6), how (high nibble % 9)
//   byte 9     failure ending: bit0 head complete, bit1 bytes received, bits 2-7 parser class
//   byte 10    content_type length   \  each clamped to what remains,
//   byte 11    cf-ray length          } taken in this order
//   rest       content_type, cf-ray, then the body
// Violations of the header's contract trap.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/text.h"
#include "probe/classifier.h"
#include "probe/edge.h"

namespace {

namespace v1 = vantage::v1;
using namespace vantage::probe;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

uint8_t byte_at(std::string_view header, size_t i) { return i < header.size() ? static_cast<uint8_t>(header[i]) : 0; }

std::string_view take(std::string_view* rest, size_t n) {
  n = std::min(n, rest->size());
  auto out = rest->substr(0, n);
  rest->remove_prefix(n);
  return out;
}

bool is_one_of(v1::FailureClass c, std::initializer_list<v1::FailureClass> set) {
  return std::find(set.begin(), set.end(), c) != set.end();
}

void check_response_verdict(const ResponseVerdict& v, const ResponseSeen& seen, const LegPlan& plan) {
  const bool expected = status_expected(plan, seen.status);
  const bool near = seen.header_bytes > static_cast<double>(plan.limits.parser.max_header_bytes) *
                                            plan.limits.near_limit_share;
  check((v.failure_class == v1::FAILURE_CLASS_OK) == (expected && !near));
  check((v.failure_class == v1::FAILURE_CLASS_HEADERS_NEAR_LIMIT) == (expected && near));
  check(v.error.empty() == (v.failure_class == v1::FAILURE_CLASS_OK));
  check(vantage::is_valid_utf8(v.error));
  if (!expected && seen.status >= 500) check(v.failure_class == classify_5xx(v.edge, seen.status));
  if (!expected && seen.status < 500) check(v.failure_class == v1::FAILURE_CLASS_UNEXPECTED_STATUS);
  check(v.edge.via_cloudflare() == (seen.cf_ray.has_value() || in_cloudflare_ranges(seen.peer)));
  if (v.json_retry_after) check(v.edge.rule() == v1::EDGE_RULE_JSON);
}

void check_failure_verdict(const LegEnding& ending) {
  const auto v = classify_failure(ending);
  check(!is_one_of(v.failure_class, {v1::FAILURE_CLASS_UNSPECIFIED, v1::FAILURE_CLASS_OK,
                                     v1::FAILURE_CLASS_HEADERS_NEAR_LIMIT, v1::FAILURE_CLASS_EDGE_ERROR,
                                     v1::FAILURE_CLASS_ORIGIN_5XX, v1::FAILURE_CLASS_UNEXPECTED_STATUS}));
  check((v.failure_class == v1::FAILURE_CLASS_INVALID_CHECK) == (ending.step == LegEnding::Step::kPlan));
  check((v.phase == v1::PHASE_UNSPECIFIED) == (ending.step == LegEnding::Step::kPlan));
  if (ending.step == LegEnding::Step::kRead) {
    check(v.phase == (ending.head_complete ? v1::PHASE_READ_BODY : v1::PHASE_READ_HEAD));
  }
  if (v.transport_end == v1::TRANSPORT_END_NOT_CONNECTED) {
    check(ending.step == LegEnding::Step::kDns || ending.step == LegEnding::Step::kConnect);
  }
}

// Rule 5: only a marker-less edge_error changes, to edge_error or origin_5xx
// as the origin's status says; settling twice changes nothing more.
void check_settlement(const ResponseVerdict& v, uint32_t status, bool origin_same_status) {
  v1::LegResult edge;
  edge.set_failure_class(v.failure_class);
  edge.mutable_response()->set_status(status);
  *edge.mutable_edge() = v.edge;
  v1::LegResult origin;
  origin.set_failure_class(v1::FAILURE_CLASS_ORIGIN_5XX);
  origin.mutable_response()->set_status(origin_same_status ? status : 200);
  const auto before = edge.SerializeAsString();
  const bool changed = settle_with_origin(edge, origin);
  check(changed == (v.edge.rule() == v1::EDGE_RULE_NO_MARKERS && v.failure_class == v1::FAILURE_CLASS_EDGE_ERROR));
  if (!changed) {
    check(edge.SerializeAsString() == before);
    return;
  }
  check(edge.failure_class() ==
        (origin_same_status ? v1::FAILURE_CLASS_ORIGIN_5XX : v1::FAILURE_CLASS_EDGE_ERROR));
  check(edge.edge().edge_generated() == !origin_same_status);
  const auto settled = edge.SerializeAsString();
  settle_with_origin(edge, origin);
  check(edge.SerializeAsString() == settled);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  const auto header = take(&rest, 12);
  const uint8_t flags = byte_at(header, 2);

  v1::Check user_check;
  auto* range = user_check.add_expected_status();
  range->set_min(100u + byte_at(header, 6) * 2u);
  range->set_max(range->min() + byte_at(header, 7) * 2u);
  LegPlan plan;
  plan.check = &user_check;
  if (flags & 2) plan.only_status = range->min();
  plan.limits.parser.max_header_bytes = 1u + byte_at(header, 5) * 256u;

  ResponseSeen seen;
  seen.status = 100u + (byte_at(header, 0) | byte_at(header, 1) << 8) % 500u;
  seen.header_bytes = byte_at(header, 3) | byte_at(header, 4) << 8;
  seen.peer = boost::asio::ip::make_address((flags & 4) ? "104.16.0.1" : "192.0.2.1");
  seen.content_type = take(&rest, byte_at(header, 10));
  const auto ray = take(&rest, byte_at(header, 11));
  if (flags & 1) seen.cf_ray = ray;
  seen.body = rest;

  const auto verdict = classify_response(seen, plan);
  check_response_verdict(verdict, seen, plan);
  check(classify_response(seen, plan).edge.SerializeAsString() == verdict.edge.SerializeAsString());
  check_settlement(verdict, seen.status, (flags & 8) != 0);

  static constexpr v1::FailureClass kParserClasses[] = {
      v1::FAILURE_CLASS_EMPTY_REPLY,      v1::FAILURE_CLASS_INCOMPLETE_HEAD,    v1::FAILURE_CLASS_MALFORMED_STATUS_LINE,
      v1::FAILURE_CLASS_MALFORMED_HEADER, v1::FAILURE_CLASS_BAD_FRAMING,        v1::FAILURE_CLASS_HEADERS_TOO_LARGE,
      v1::FAILURE_CLASS_TRUNCATED_BODY};
  LegEnding ending;
  ending.step = static_cast<LegEnding::Step>((byte_at(header, 8) & 0xf) % 6);
  ending.how = static_cast<LegEnding::How>((byte_at(header, 8) >> 4) % 9);
  ending.head_complete = byte_at(header, 9) & 1;
  ending.bytes_received = (byte_at(header, 9) & 2) ? 1 : 0;
  ending.parser_class = kParserClasses[(byte_at(header, 9) >> 2) % std::size(kParserClasses)];
  check_failure_verdict(ending);
  return 0;
}
