#pragma once
// How `vantage-probe diagnose` shows one attempt: a readable report, or JSON
// for scripts (stable field names; the failure classes by their stable names).

#include <string>

#include "vantage/v1/types.pb.h"

namespace vantage::probe {

// {"url", "edge": {...}, "origin": {...} or null, "diagnosis": {"cause_id", "cause", "advice", "evidence"}}
// Each leg: class, status, edge_code (null unless an edge code), ray_id, colo, header_bytes,
// header_count, transport_end, error, rule, edge_generated, timings (milliseconds).
std::string report_json(const std::string& url, const std::string& origin, const v1::CheckResult& result);
std::string report_text(const std::string& url, const std::string& origin, const v1::CheckResult& result);

}  // namespace vantage::probe
