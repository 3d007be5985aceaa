#include "coordinator/result_validation.h"

#include <fmt/format.h>

#include <cstdint>

#include "common/colo.h"
#include "common/text.h"

namespace vantage::coordinator {

namespace {

// The range google.protobuf.Timestamp and Duration define (0001-01-01 to
// 9999-12-31; +-10,000 years): outside it the API's JSON cannot print them.
constexpr int64_t kMinTimestampSeconds = -62'135'596'800;
constexpr int64_t kMaxTimestampSeconds = 253'402'300'799;
constexpr int64_t kMaxDurationSeconds = 315'576'000'000;
constexpr int32_t kMaxNanos = 999'999'999;

bool valid_timestamp(const google::protobuf::Timestamp& ts) {
  return ts.seconds() >= kMinTimestampSeconds && ts.seconds() <= kMaxTimestampSeconds && ts.nanos() >= 0 &&
         ts.nanos() <= kMaxNanos;
}

bool valid_duration(const google::protobuf::Duration& d) {
  if (d.seconds() < -kMaxDurationSeconds || d.seconds() > kMaxDurationSeconds) return false;
  if (d.nanos() < -kMaxNanos || d.nanos() > kMaxNanos) return false;
  return (d.seconds() >= 0 && d.nanos() >= 0) || (d.seconds() <= 0 && d.nanos() <= 0);
}

// 0 is "none"; anything else must look like a three-digit HTTP status (the
// columns are smallint).
bool valid_status(uint32_t status) { return status == 0 || (status >= 100 && status <= 999); }

Refusal refuse(RefusalReason reason, std::string message) { return {reason, std::move(message)}; }

void bound_text(std::string* text, size_t max_bytes) {
  if (text->size() > max_bytes || !is_valid_utf8(*text)) *text = safe_text(*text, max_bytes);
}

template <typename Repeated>
void bound_list(Repeated* list, size_t max_items) {
  if (static_cast<size_t>(list->size()) > max_items) {
    list->DeleteSubrange(static_cast<int>(max_items), list->size() - static_cast<int>(max_items));
  }
}

std::optional<Refusal> validate_leg(const v1::LegResult& leg, std::string_view name) {
  const int cls = leg.failure_class();
  if (!v1::FailureClass_IsValid(cls) || cls == v1::FAILURE_CLASS_UNSPECIFIED) {
    return refuse(RefusalReason::kFailureClass, fmt::format("{}.failure_class {} is not a failure class", name, cls));
  }
  if (!v1::Phase_IsValid(leg.timings().failed_phase())) {
    return refuse(RefusalReason::kEnum, fmt::format("{}.timings.failed_phase {} is not a phase", name,
                                                    static_cast<int>(leg.timings().failed_phase())));
  }
  const auto& connection = leg.connection();
  if (!v1::TlsCertProblem_IsValid(connection.cert_problem())) {
    return refuse(RefusalReason::kEnum, fmt::format("{}.connection.cert_problem {} is not a certificate problem",
                                                    name, static_cast<int>(connection.cert_problem())));
  }
  if (connection.has_cert_not_after() && !valid_timestamp(connection.cert_not_after())) {
    return refuse(RefusalReason::kTimestamp, fmt::format("{}.connection.cert_not_after is not a valid time", name));
  }
  if (connection.has_chain_not_after() && !valid_timestamp(connection.chain_not_after())) {
    return refuse(RefusalReason::kTimestamp, fmt::format("{}.connection.chain_not_after is not a valid time", name));
  }
  const auto& response = leg.response();
  if (!valid_status(response.status())) {
    return refuse(RefusalReason::kStatus,
                  fmt::format("{}.response.status {} is not an HTTP status", name, response.status()));
  }
  if (!v1::TransportEnd_IsValid(response.transport_end())) {
    return refuse(RefusalReason::kEnum, fmt::format("{}.response.transport_end {} is not a transport end", name,
                                                    static_cast<int>(response.transport_end())));
  }
  const auto& edge = leg.edge();
  if (!valid_status(edge.edge_code())) {
    return refuse(RefusalReason::kStatus,
                  fmt::format("{}.edge.edge_code {} is not an HTTP status", name, edge.edge_code()));
  }
  if (!v1::EdgeRule_IsValid(edge.rule()) || !v1::ErrorSource_IsValid(edge.error_source())) {
    return refuse(RefusalReason::kEnum,
                  fmt::format("{}.edge.rule {} or error_source {} is not defined", name, static_cast<int>(edge.rule()),
                              static_cast<int>(edge.error_source())));
  }
  for (const auto& hop : leg.redirects()) {
    if (!valid_status(hop.status())) {
      return refuse(RefusalReason::kStatus,
                    fmt::format("{}.redirects status {} is not an HTTP status", name, hop.status()));
    }
  }
  return std::nullopt;
}

// Text made valid UTF-8 and bounded, lists bounded, colos known or "other".
// Sub-messages are touched only when present, so a valid result's bytes do
// not change.
void make_leg_safe(v1::LegResult& leg, const ResultLimits& limits) {
  const size_t max = limits.max_text_bytes;
  bound_text(leg.mutable_error(), max);
  bound_text(leg.mutable_url(), max);
  if (leg.has_connection()) {
    auto* connection = leg.mutable_connection();
    bound_text(connection->mutable_resolver(), max);
    bound_list(connection->mutable_addresses(), limits.max_list_items);
    for (auto& address : *connection->mutable_addresses()) bound_text(address.mutable_address(), max);
    bound_text(connection->mutable_connected_address(), max);
    bound_text(connection->mutable_tls_version(), max);
    bound_text(connection->mutable_alpn(), max);
    bound_text(connection->mutable_tls_error(), max);
    bound_text(connection->mutable_tls_cipher(), max);
  }
  if (leg.has_response()) {
    auto* response = leg.mutable_response();
    bound_text(response->mutable_http_version(), max);
    bound_text(response->mutable_server(), max);
    bound_text(response->mutable_cf_cache_status(), max);
    bound_text(response->mutable_parse_error(), max);
    if (response->body_sha256().size() > 32) response->mutable_body_sha256()->resize(32);
  }
  if (leg.has_edge()) {
    auto* edge = leg.mutable_edge();
    edge->set_colo(colo_or_other(edge->colo()));
    edge->set_trace_colo(colo_or_other(edge->trace_colo()));
    bound_text(edge->mutable_error_name(), max);
    bound_text(edge->mutable_error_category(), max);
    bound_text(edge->mutable_ray_id(), max);
    bound_text(edge->mutable_trace_loc(), max);
  }
  if (leg.has_assertion_failure()) {
    auto* failure = leg.mutable_assertion_failure();
    bound_text(failure->mutable_reason(), max);
    bound_text(failure->mutable_assertion()->mutable_header_name(), max);
    bound_text(failure->mutable_assertion()->mutable_pattern(), max);
  }
  bound_list(leg.mutable_redirects(), limits.max_list_items);
  for (auto& hop : *leg.mutable_redirects()) {
    bound_text(hop.mutable_url(), max);
    bound_text(hop.mutable_location(), max);
    bound_text(hop.mutable_connected_address(), max);
  }
}

}  // namespace

std::string_view refusal_label(RefusalReason reason) {
  switch (reason) {
    case RefusalReason::kCheckId: return "check_id";
    case RefusalReason::kStartTime: return "start_time";
    case RefusalReason::kTimestamp: return "timestamp";
    case RefusalReason::kFailureClass: return "failure_class";
    case RefusalReason::kStatus: return "status";
    case RefusalReason::kEnum: return "enum";
    case RefusalReason::kUnassignedCheck: return "unassigned_check";
  }
  return "unknown";
}

std::optional<Refusal> validate_result(v1::CheckResult& result, std::chrono::system_clock::time_point now,
                                       const ResultLimits& limits) {
  if (result.check_id() <= 0 || result.check_id() > INT32_MAX) {
    return refuse(RefusalReason::kCheckId, fmt::format("check_id {} is not a check id", result.check_id()));
  }
  const auto& start = result.start_time();
  if (!result.has_start_time() || !valid_timestamp(start)) {
    return refuse(RefusalReason::kStartTime,
                  fmt::format("start_time {}.{:09d} is missing or not a valid time", start.seconds(), start.nanos()));
  }
  const auto now_seconds = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  const auto earliest = now_seconds - std::chrono::duration_cast<std::chrono::seconds>(limits.max_age).count();
  const auto latest = now_seconds + std::chrono::duration_cast<std::chrono::seconds>(limits.max_clock_ahead).count();
  if (start.seconds() < earliest || start.seconds() > latest) {
    return refuse(RefusalReason::kStartTime,
                  fmt::format("start_time {} (unix seconds) is more than {} h before or {} h after the "
                              "coordinator's clock ({})",
                              start.seconds(), limits.max_age.count(), limits.max_clock_ahead.count(), now_seconds));
  }
  if (auto refusal = validate_leg(result.edge(), "edge")) return refusal;
  if (result.has_origin()) {
    if (auto refusal = validate_leg(result.origin(), "origin")) return refusal;
  }
  if (result.has_keep_alive()) {
    const auto& keep_alive = result.keep_alive();
    if ((keep_alive.has_idle_close_after() && !valid_duration(keep_alive.idle_close_after())) ||
        (keep_alive.has_measure_time() && !valid_timestamp(keep_alive.measure_time()))) {
      return refuse(RefusalReason::kTimestamp, "keep_alive.idle_close_after or measure_time is not a valid time");
    }
  }

  // Valid: now safe to keep.
  make_leg_safe(*result.mutable_edge(), limits);
  if (result.has_origin()) make_leg_safe(*result.mutable_origin(), limits);
  if (result.has_keep_alive()) bound_text(result.mutable_keep_alive()->mutable_error(), limits.max_text_bytes);
  if (result.has_diagnosis()) {
    auto* diagnosis = result.mutable_diagnosis();
    bound_text(diagnosis->mutable_cause_id(), limits.max_text_bytes);
    bound_text(diagnosis->mutable_cause(), limits.max_text_bytes);
    bound_text(diagnosis->mutable_advice(), limits.max_text_bytes);
    bound_list(diagnosis->mutable_evidence(), limits.max_list_items);
    for (auto& line : *diagnosis->mutable_evidence()) bound_text(&line, limits.max_text_bytes);
  }
  bound_text(result.mutable_recheck_request_id(), limits.max_text_bytes);
  return std::nullopt;
}

}  // namespace vantage::coordinator
