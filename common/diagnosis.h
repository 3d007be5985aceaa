#pragma once
// Combining the edge leg and the origin leg into a cause and a fix
// (diagnosis.md sections 4 and 5). The table is data: a new row is one line
// in diagnosis.cc, and the coordinator and the probe share it.

#include <string>
#include <string_view>
#include <vector>

#include "vantage/v1/types.pb.h"

namespace vantage {

// Which origin-leg outcome a row is about.
enum class OriginLeg {
  kAbsent,   // no origin leg ran
  kOk,       // it ran and was fine
  kClasses,  // it ran and failed with one of the row's classes
  kFailing,  // it ran and failed, whatever the class
  kAny,      // whether it ran or not, whatever it saw
};

struct DiagnosisRow {
  std::string_view cause_id;
  // Edge leg: the edge codes that match (empty: the edge leg was ok).
  std::vector<uint32_t> edge_codes;
  OriginLeg origin;
  std::vector<v1::FailureClass> origin_classes;  // for kClasses
  std::string_view cause;
  std::string_view advice;
  // Not UNSPECIFIED: the row is about an edge leg that failed with this class
  // (edge_codes then unused): a failure of the site's own answer, such as
  // its redirects, not of who produced a 5xx.
  v1::FailureClass edge_class = v1::FAILURE_CLASS_UNSPECIFIED;
};

// The rows, most specific first.
const std::vector<DiagnosisRow>& diagnosis_table();

// Section 5: the cause the coordinator gives an intermittent incident whose
// failures fit the keep-alive race. Not a row: no single attempt shows it.
struct KeepAliveRace {
  static constexpr std::string_view cause_id = "keepalive_race";
  static constexpr std::string_view cause =
      "rare failures through the edge with a healthy origin: the origin closes idle keep-alive connections "
      "(or recycles a worker after a number of requests) while the edge still reuses them, so a request "
      "sent on a connection the origin is closing fails with a 52x";
  static constexpr std::string_view advice =
      "raise the origin's keep-alive idle timeout above the edge's reuse window (about 900 s) and lift or "
      "raise its per-connection request limit (nginx keepalive_timeout/keepalive_requests, Apache "
      "KeepAliveTimeout/MaxKeepAliveRequests, the application server's worker recycling)";
};

// The diagnosis of one attempt; `origin` is null when no origin leg ran.
// Evidence lists what the verdict rests on: codes, colo, ray id, times.
v1::Diagnosis diagnose(const v1::LegResult& edge, const v1::LegResult* origin);

}  // namespace vantage
