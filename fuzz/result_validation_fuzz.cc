// libFuzzer target for the coordinator's validation of a received result
// (coordinator/result_validation.h): the input is a serialized
// vantage.v1.CheckResult, as a probe would send it (what does not parse is
// refused by gRPC before the validation sees it).
//
// Invariants (trap on violation): an accepted result has a check id in
// 1..INT32_MAX, a valid start time within the window, known failure classes,
// statuses and edge codes 0 or 100..999, colos empty, known or "other", all
// text valid UTF-8 and bounded, lists bounded; it still serializes and
// parses; validating it again accepts it unchanged (the fix-ups are
// idempotent). A refused result has a message.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/colo.h"
#include "common/text.h"
#include "coordinator/result_validation.h"

namespace {

namespace v1 = vantage::v1;
using vantage::coordinator::ResultLimits;
using vantage::coordinator::validate_result;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

const auto kNow = std::chrono::system_clock::time_point(std::chrono::seconds(1'790'000'000));

void check_text(const std::string& text, const ResultLimits& limits) {
  check(text.size() <= limits.max_text_bytes);
  check(vantage::is_valid_utf8(text));
}

bool status_ok(uint32_t status) { return status == 0 || (status >= 100 && status <= 999); }

void check_leg(const v1::LegResult& leg, const ResultLimits& limits) {
  check(v1::FailureClass_IsValid(leg.failure_class()) && leg.failure_class() != v1::FAILURE_CLASS_UNSPECIFIED);
  check(status_ok(leg.response().status()));
  check(status_ok(leg.edge().edge_code()));
  for (const auto* colo : {&leg.edge().colo(), &leg.edge().trace_colo()}) {
    check(colo->empty() || *colo == "other" || vantage::is_known_colo(*colo));
  }
  check(static_cast<size_t>(leg.connection().addresses_size()) <= limits.max_list_items);
  for (const auto* text : {&leg.error(), &leg.response().server(), &leg.response().parse_error(),
                           &leg.edge().ray_id(), &leg.connection().tls_error()}) {
    check_text(*text, limits);
  }
  check(leg.response().body_sha256().size() <= 32);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  v1::CheckResult result;
  if (!result.ParseFromArray(data, static_cast<int>(size))) return 0;
  const ResultLimits limits;
  const auto refusal = validate_result(result, kNow, limits);
  if (refusal) {
    check(!refusal->message.empty());
    return 0;
  }
  check(result.check_id() > 0 && result.check_id() <= INT32_MAX);
  check(result.has_start_time() && result.start_time().nanos() >= 0 && result.start_time().nanos() < 1'000'000'000);
  const auto now_s = std::chrono::duration_cast<std::chrono::seconds>(kNow.time_since_epoch()).count();
  check(result.start_time().seconds() >= now_s - std::chrono::seconds(limits.max_age).count());
  check(result.start_time().seconds() <= now_s + std::chrono::seconds(limits.max_clock_ahead).count());
  check_leg(result.edge(), limits);
  if (result.has_origin()) check_leg(result.origin(), limits);
  check(static_cast<size_t>(result.diagnosis().evidence_size()) <= limits.max_list_items);
  for (const auto& line : result.diagnosis().evidence()) check_text(line, limits);
  check_text(result.recheck_request_id(), limits);

  const std::string bytes = result.SerializeAsString();
  v1::CheckResult again;
  check(again.ParseFromString(bytes));
  check(!validate_result(again, kNow, limits).has_value());
  check(again.SerializeAsString() == bytes);
  return 0;
}
