// libFuzzer target for the Cloudflare edge recogniser (probe/edge.h):
// recognise_edge, classify_5xx, parse_cf_ray, parse_trace/apply_trace and
// AddressRanges::parse.
//
// Input layout (shorter inputs use what is there):
//   bytes 0-1  status = 100 + (little-endian u16 % 500)
//   byte 2     flags: bit0 cf-ray present, bit1 address_in_cloudflare
//   byte 3     content_type length     \  each clamped to what remains,
//   byte 4     cf-ray length            } taken in this order after byte 5
//   byte 5     server length           /
//   rest       content_type, cf_ray, server, then the body
// parse_trace, parse_cf_ray and AddressRanges::parse also run on the whole
// input. Violations of the header's contract trap.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "probe/edge.h"

namespace {

namespace v1 = vantage::v1;
using vantage::probe::AddressRanges;
using vantage::probe::EdgeResponse;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

bool all_upper(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}
bool all_lower_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}
bool all_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  });
}

std::string_view take(std::string_view* rest, size_t n) {
  n = std::min(n, rest->size());
  auto out = rest->substr(0, n);
  rest->remove_prefix(n);
  return out;
}

void check_evidence(const v1::EdgeEvidence& e, const EdgeResponse& r) {
  // colo: empty or 3..8 upper-case letters (it becomes a metric label).
  check(e.colo().empty() || (e.colo().size() >= 3 && e.colo().size() <= 8 && all_upper(e.colo())));
  // ray id: hex, at most 64 digits.
  check(e.ray_id().size() <= 64 && all_hex(e.ray_id()));
  check(e.via_cloudflare() == (r.cf_ray.has_value() || r.address_in_cloudflare));
  check(e.error_name().size() <= 128 && e.error_category().size() <= 128);

  const bool five = r.status >= 500 && r.status <= 599;
  if (!five) {
    // "A non-5xx response gets only ray id, colo and via_cloudflare."
    check(e.rule() == v1::EDGE_RULE_UNSPECIFIED);
    check(!e.edge_generated());
    check(e.edge_code() == 0 && e.edge_error_code() == 0);
    check(e.error_name().empty() && e.error_category().empty());
    check(e.error_source() == v1::ERROR_SOURCE_UNSPECIFIED);
    check(vantage::probe::classify_5xx(e, r.status) == v1::FAILURE_CLASS_UNSPECIFIED);
    return;
  }
  switch (e.rule()) {
    case v1::EDGE_RULE_JSON:
    case v1::EDGE_RULE_COMPACT:
    case v1::EDGE_RULE_UNBRANDED:
      check(e.edge_generated());  // rules 1, 3, 4: the edge made it
      break;
    case v1::EDGE_RULE_HTML_TEMPLATE:
      // Rule 2: edge-generated unless a 502/504 with the host box in error.
      check(e.edge_generated() == !((e.edge_code() == 502 || e.edge_code() == 504) &&
                                    e.error_source() == v1::ERROR_SOURCE_HOST));
      break;
    case v1::EDGE_RULE_NO_MARKERS:
      // Rule 5: a 52x/530 seen with a cf-ray; edge_generated stays false.
      check(!e.edge_generated());
      check(r.status >= 520 && r.status <= 530);
      check(r.cf_ray.has_value());
      break;
    case v1::EDGE_RULE_ORIGIN_BODY:
      check(!e.edge_generated());  // rule 6: passed through
      break;
    default:
      check(false);  // a 5xx always matches one of rules 1-6
  }
  // The edge code is always recorded for a 5xx and is a status-like number.
  check(e.edge_code() >= 100 && e.edge_code() <= 9999);
  check(e.edge_error_code() == 0 || (e.edge_error_code() >= 1000 && e.edge_error_code() <= 1999));
  const auto cls = vantage::probe::classify_5xx(e, r.status);
  if (e.edge_generated() || e.rule() == v1::EDGE_RULE_NO_MARKERS) {
    check(cls == v1::FAILURE_CLASS_EDGE_ERROR);
  } else {
    check(cls == v1::FAILURE_CLASS_ORIGIN_5XX);
  }
}

void check_cf_ray(std::string_view value) {
  if (auto ray = vantage::probe::parse_cf_ray(value)) {
    check(ray->colo.size() >= 3 && ray->colo.size() <= 8 && all_upper(ray->colo));
    check(!ray->ray_id.empty() && ray->ray_id.size() <= 64 && all_lower_hex(ray->ray_id));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string_view rest = input;

  EdgeResponse r;
  const auto hdr = take(&rest, 6);
  uint16_t raw = 0;
  if (hdr.size() >= 2) raw = static_cast<uint16_t>(static_cast<uint8_t>(hdr[0]) | (static_cast<uint8_t>(hdr[1]) << 8));
  r.status = 100 + raw % 500;
  const uint8_t flags = hdr.size() > 2 ? static_cast<uint8_t>(hdr[2]) : 0;
  const size_t ct_len = hdr.size() > 3 ? static_cast<uint8_t>(hdr[3]) : 0;
  const size_t ray_len = hdr.size() > 4 ? static_cast<uint8_t>(hdr[4]) : 0;
  const size_t server_len = hdr.size() > 5 ? static_cast<uint8_t>(hdr[5]) : 0;
  r.content_type = take(&rest, ct_len);
  const auto ray = take(&rest, ray_len);
  if (flags & 1) r.cf_ray = ray;
  r.server = take(&rest, server_len);
  r.body = rest;
  r.address_in_cloudflare = (flags & 2) != 0;

  std::optional<uint32_t> retry_after = 12345;
  const auto evidence = vantage::probe::recognise_edge(r, &retry_after);
  check_evidence(evidence, r);
  // retry_after only with rule 1.
  if (retry_after) check(evidence.rule() == v1::EDGE_RULE_JSON);
  // Both overloads agree.
  const auto again = vantage::probe::recognise_edge(r);
  check(again.SerializeAsString() == evidence.SerializeAsString());

  check_cf_ray(ray);
  check_cf_ray(input);

  for (std::string_view text : {input, rest}) {
    if (auto trace = vantage::probe::parse_trace(text)) {
      check(!trace->colo.empty());  // nullopt when there is no non-empty colo=
      v1::EdgeEvidence with_trace = evidence;
      vantage::probe::apply_trace(*trace, &with_trace);
      check(with_trace.trace_colo() == trace->colo);
      check(with_trace.trace_loc() == trace->loc);
    }
  }

  std::string error;
  if (auto ranges = AddressRanges::parse(input, &error)) {
    AddressRanges merged;
    merged.add(*ranges);
    check(merged.size() == ranges->size());
    boost::system::error_code ec;
    for (const char* a : {"104.16.0.1", "::ffff:104.16.0.1", "2606:4700::1", "0.0.0.0", "::"}) {
      auto address = boost::asio::ip::make_address(a, ec);
      if (!ec) check(merged.contains(address) == ranges->contains(address));
    }
  } else {
    check(error.starts_with("line "));
  }
  (void)AddressRanges::parse(input, nullptr);
  return 0;
}
