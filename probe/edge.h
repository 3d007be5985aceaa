#pragma once
// Who produced a 5xx seen through Cloudflare: the edge or the origin
// (diagnosis.md section 2), plus the small parsers that feed that decision:
// Cloudflare's address ranges, the cf-ray header and /cdn-cgi/trace.
//
// Everything here reads untrusted bytes (response bodies may be huge, binary or
// hostile), so the work is plain substring searches over a bounded prefix, no
// regular expressions, and nothing throws: failures are values.

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/ip/address.hpp>

#include "vantage/v1/types.pb.h"

namespace vantage::probe {

// Cloudflare's published address ranges (data/cloudflare/ips-v4.txt and
// ips-v6.txt: one CIDR per line). Tens of entries, so a linear scan is the
// simplest thing that is fast enough.
class AddressRanges {
 public:
  // Parses CIDR lines; blank lines and '#' comments (whole line or trailing)
  // are allowed. A range with host bits set is refused rather than masked: it
  // is almost certainly a typo in a file we ship. On a bad line returns nullopt
  // and, when `error` is given, sets it to "line N: ...".
  static std::optional<AddressRanges> parse(std::string_view text, std::string* error);

  void add(const AddressRanges& other);
  // v4 and v6; a v4-mapped v6 address (::ffff:a.b.c.d) is checked as v4.
  bool contains(const boost::asio::ip::address& address) const;
  size_t size() const { return v4_.size() + v6_.size(); }

 private:
  struct V4 {
    uint32_t network = 0;
    uint32_t mask = 0;
  };
  struct V6 {
    std::array<uint8_t, 16> network{};
    unsigned prefix = 0;
  };
  std::vector<V4> v4_;
  std::vector<V6> v6_;
};

struct CfRay {
  std::string ray_id;  // hex, usually 16 digits
  std::string colo;    // IATA-style code, e.g. "FRA"
};
// "8f1a2b3c4d5e6f70-FRA". The id may have another length (1..64 hex digits);
// the colo is the part after the last '-' and must be 3..8 upper-case letters.
// A lower-case colo is rejected: Cloudflare always sends upper case, and the
// colo becomes a metric label, so a mangled or imitated header must not add
// label values.
std::optional<CfRay> parse_cf_ray(std::string_view value);

// What the prober saw through the edge leg. Views into the prober's buffers;
// only read during recognise_edge().
struct EdgeResponse {
  uint32_t status = 0;
  std::string_view content_type;
  std::string_view body;  // capped by the prober
  std::optional<std::string_view> cf_ray;
  std::string_view server;
  bool address_in_cloudflare = false;
};

// Applies diagnosis.md section 2 rules 1-6 in order and records which matched
// (EdgeEvidence.rule), the edge code, the 1xxx error code, error name and
// category (JSON), the error source box (HTML template), ray id and colo, and
// via_cloudflare. A non-5xx response gets only ray id, colo and via_cloudflare.
// The colo is a known Cloudflare colo or "other" (common/colo.h): it becomes a
// metric label. Text from the body is valid UTF-8, at most 128 bytes.
v1::EdgeEvidence recognise_edge(const EdgeResponse& response);
// The same, also returning the JSON body's `retry_after` (seconds) when rule 1
// matched and it was present; EdgeEvidence has no field for it, and the
// follow-up scheduler needs it to avoid hammering a failing origin.
v1::EdgeEvidence recognise_edge(const EdgeResponse& response,
                                std::optional<uint32_t>* retry_after_seconds);

// What a follow-up request with `Accept: application/json` (diagnosis.md
// section 2), recognised by recognise_edge(), adds to the evidence of the 5xx
// it follows, when both name the same code (`status`, the 5xx's status):
// - the fields only the JSON format carries (error name and category, the
//   1xxx code), and the ray id and colo when the 5xx had none;
// - rule 1's verdict (rule, edge_generated) when the 5xx itself had no
//   markers (rule 5) or looked like the origin's (rule 6): the JSON settles
//   who produced it. A verdict from a marker of the 5xx's own body stays.
// False, and the evidence unchanged, when the follow-up was not rule 1 or
// named another code (the failure changed in between).
bool apply_json_follow_up(const v1::EdgeEvidence& follow_up, uint32_t status, v1::EdgeEvidence* evidence);

// A Retry-After value (RFC 9110 10.2.3): delay-seconds, or an HTTP date
// (IMF-fixdate, or the obsolete RFC 850 and asctime forms) as seconds from
// `now` (0 for a date in the past). nullopt when it is neither.
std::optional<uint32_t> parse_retry_after(std::string_view value, std::chrono::system_clock::time_point now);

// The failure class for a 5xx through the edge:
// - FAILURE_CLASS_EDGE_ERROR when the edge generated it (rules 1-4), and also
//   for rule 5 (a 52x/530 status with no markers): 52x is Cloudflare's own
//   vocabulary, usually behind a custom error page, and edge_error carries the
//   code the diagnosis table keys on; edge_generated stays false and the rule
//   says the origin leg has the last word (classifier.h settle_with_origin);
// - FAILURE_CLASS_ORIGIN_5XX when the origin did: passed through (rule 6) or a
//   branded 502/504 with the host box in error (rule 2, edge_generated false).
// FAILURE_CLASS_UNSPECIFIED when `status` is not a 5xx: not this function's call.
v1::FailureClass classify_5xx(const v1::EdgeEvidence& evidence, uint32_t status);

// GET /cdn-cgi/trace: key=value lines (fl, h, ip, ts, visit_scheme, uag, colo,
// sliver, http, loc, tls, sni, warp, gateway, ...). Unknown keys are kept in
// `fields`; junk lines are skipped.
struct Trace {
  std::string colo, loc, http, tls;
  std::map<std::string, std::string> fields;
};
// nullopt when there is no non-empty colo= line (not a trace body).
std::optional<Trace> parse_trace(std::string_view body);
// Copies the trace's colo (a known colo or "other") and loc (at most 16
// bytes) into the evidence (trace_colo, trace_loc).
void apply_trace(const Trace& trace, v1::EdgeEvidence* evidence);

}  // namespace vantage::probe
