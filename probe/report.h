#pragma once
// How `vantage-probe diagnose` shows one attempt: a readable report, or JSON
// for scripts (stable field names; the failure classes by their stable names).

#include <string>

#include "vantage/v1/types.pb.h"

namespace vantage::probe {

// {"url", "edge": {...}, "origin": {...} or null, "diagnosis": {"cause_id", "cause", "advice", "evidence"},
//  "keep_alive": {"idle_close_seconds" (0: not closed within the window), "requests_per_connection"
//  (0: no limit seen), "error"} or null}
// Each leg: class, status, edge_code (null unless an edge code), ray_id, colo, error_name, error_category,
// trace_colo, trace_loc, retry_after_seconds, header_bytes,
// header_count, transport_end, error, rule, edge_generated, timings (milliseconds),
// cert_problem, verification_skipped, url (the final request's), redirects (each hop in order:
// url, status, location as sent, connected_address, timings), assertion_failure ({index (in
// the order of the --assert-* flags), target ("body" or "header"), header, pattern, negate,
// reason} or null).
// The readable report lists the same redirect hops and the final URL, and the
// failed assertion as the flag that made it.
// Every string shown is valid UTF-8 without control characters and bounded
// (common/text.h safe_text), whatever bytes `url`, `origin` or the result hold.
std::string report_json(const std::string& url, const std::string& origin, const v1::CheckResult& result);
std::string report_text(const std::string& url, const std::string& origin, const v1::CheckResult& result);

}  // namespace vantage::probe
