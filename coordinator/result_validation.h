#pragma once
// The one validation of a CheckResult received from a probe (architecture.md,
// "Trust boundaries"): a probe is authenticated, but every value it sends
// still goes to PostgreSQL columns, metric labels and the API's JSON, so each
// is checked here, once, before the result is queued for storage.
//
// Numbers and enums that are out of range make the result refused (it is
// nonsense, and one such row would fail a merged COPY for every probe); text
// is made valid and bounded rather than refused (a long Server header is no
// reason to lose an observation); colo codes become known codes or "other".
// The probe's identity and region come from its session, never from here.

#include <array>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "vantage/v1/types.pb.h"

namespace vantage::coordinator {

enum class RefusalReason {
  kCheckId,          // not a check id (<= 0 or past the column's range)
  kStartTime,        // missing, malformed, or outside the accepted window
  kTimestamp,        // another timestamp or duration that is not a valid one
  kFailureClass,     // not a FailureClass (or unspecified on the edge leg)
  kStatus,           // an HTTP status or edge code outside 100..999
  kEnum,             // another enum field with a value the proto does not define
  kUnassignedCheck,  // a check the probe's region does not run (decided by the caller)
};

// The metric label of each reason (vantage_ingest_refused_results_total{reason}).
std::string_view refusal_label(RefusalReason reason);
inline constexpr std::array kAllRefusalReasons = {
    RefusalReason::kCheckId, RefusalReason::kStartTime, RefusalReason::kTimestamp, RefusalReason::kFailureClass,
    RefusalReason::kStatus,  RefusalReason::kEnum,      RefusalReason::kUnassignedCheck};

struct Refusal {
  RefusalReason reason;
  std::string message;  // names the field and the value
};

struct ResultLimits {
  // start_time within [now - max_age, now + max_clock_ahead]: a spool replays
  // results from days ago, a probe's clock may run a little ahead.
  std::chrono::hours max_age{24 * 90};
  std::chrono::hours max_clock_ahead{24};
  size_t max_text_bytes = 4096;       // any one string field
  size_t max_list_items = 64;         // addresses, evidence lines
};

// Checks `result` and makes it safe to store: returns why it is refused, or
// nothing after bounding its text and mapping its colos (colo_or_other).
std::optional<Refusal> validate_result(v1::CheckResult& result, std::chrono::system_clock::time_point now,
                                       const ResultLimits& limits = {});

}  // namespace vantage::coordinator
