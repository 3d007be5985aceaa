// The coordinator's one validation of a received CheckResult: what a hostile
// or broken probe may send, field by field.
#include "coordinator/result_validation.h"

#include <gtest/gtest.h>

#include <set>

#include "common/assignment.h"
#include "common/text.h"

namespace vantage::coordinator {
namespace {

using std::chrono::hours;
using std::chrono::system_clock;

const auto kNow = system_clock::time_point(std::chrono::seconds(1'790'000'000));

v1::CheckResult good() {
  v1::CheckResult r;
  r.set_check_id(7);
  r.set_sequence(1);
  r.mutable_start_time()->set_seconds(1'790'000'000 - 5);
  r.mutable_start_time()->set_nanos(123'000);
  auto* edge = r.mutable_edge();
  edge->set_failure_class(v1::FAILURE_CLASS_EDGE_ERROR);
  edge->mutable_response()->set_status(520);
  edge->mutable_response()->set_server("cloudflare");
  edge->mutable_edge()->set_edge_code(520);
  edge->mutable_edge()->set_colo("FRA");
  return r;
}

std::optional<RefusalReason> reason_for(v1::CheckResult r) {
  auto refusal = validate_result(r, kNow);
  if (!refusal) return std::nullopt;
  EXPECT_FALSE(refusal->message.empty());
  return refusal->reason;
}

TEST(ResultValidation, AGoodResultPassesUnchanged) {
  auto r = good();
  const auto before = r.SerializeAsString();
  EXPECT_FALSE(validate_result(r, kNow).has_value());
  EXPECT_EQ(r.SerializeAsString(), before) << "valid text and known colos are kept as they are";
}

TEST(ResultValidation, OutOfRangeNumbersAreRefusedWithTheirReason) {
  auto r = good();
  r.mutable_edge()->mutable_response()->set_status(70'000);  // smallint column
  EXPECT_EQ(reason_for(r), RefusalReason::kStatus);
  r = good();
  r.mutable_edge()->mutable_response()->set_status(99);
  EXPECT_EQ(reason_for(r), RefusalReason::kStatus);
  r = good();
  r.mutable_edge()->mutable_edge()->set_edge_code(40'000);
  EXPECT_EQ(reason_for(r), RefusalReason::kStatus);
  r = good();
  r.mutable_origin()->set_failure_class(v1::FAILURE_CLASS_OK);
  r.mutable_origin()->mutable_response()->set_status(1'000);
  EXPECT_EQ(reason_for(r), RefusalReason::kStatus);

  r = good();
  r.mutable_edge()->set_failure_class(static_cast<v1::FailureClass>(999));
  EXPECT_EQ(reason_for(r), RefusalReason::kFailureClass);
  r = good();
  r.mutable_edge()->set_failure_class(static_cast<v1::FailureClass>(-3));
  EXPECT_EQ(reason_for(r), RefusalReason::kFailureClass);
  r = good();
  r.mutable_edge()->set_failure_class(v1::FAILURE_CLASS_UNSPECIFIED);
  EXPECT_EQ(reason_for(r), RefusalReason::kFailureClass);
  r = good();
  r.mutable_origin()->set_failure_class(static_cast<v1::FailureClass>(v1::FailureClass_MAX + 1));
  EXPECT_EQ(reason_for(r), RefusalReason::kFailureClass);

  r = good();
  r.mutable_edge()->mutable_timings()->set_failed_phase(static_cast<v1::Phase>(77));
  EXPECT_EQ(reason_for(r), RefusalReason::kEnum);
  r = good();
  r.mutable_edge()->mutable_edge()->set_rule(static_cast<v1::EdgeRule>(-1));
  EXPECT_EQ(reason_for(r), RefusalReason::kEnum);

  for (int64_t id : {int64_t{0}, int64_t{-1}, int64_t{INT32_MAX} + 1}) {
    r = good();
    r.set_check_id(id);
    EXPECT_EQ(reason_for(r), RefusalReason::kCheckId) << id;
  }
}

TEST(ResultValidation, StartTimesOutsideASaneWindowAreRefused) {
  auto r = good();
  r.clear_start_time();
  EXPECT_EQ(reason_for(r), RefusalReason::kStartTime);
  r = good();
  r.mutable_start_time()->set_seconds(253'402'300'800);  // year 10000
  EXPECT_EQ(reason_for(r), RefusalReason::kStartTime);
  r = good();
  r.mutable_start_time()->set_seconds(-5);
  EXPECT_EQ(reason_for(r), RefusalReason::kStartTime);
  r = good();
  r.mutable_start_time()->set_nanos(1'000'000'000);
  EXPECT_EQ(reason_for(r), RefusalReason::kStartTime);
  r = good();
  r.mutable_start_time()->set_nanos(-1);
  EXPECT_EQ(reason_for(r), RefusalReason::kStartTime);
  r = good();
  r.mutable_start_time()->set_seconds(1'790'000'000 + 2 * 86'400);  // two days ahead
  EXPECT_EQ(reason_for(r), RefusalReason::kStartTime);
  r = good();
  r.mutable_start_time()->set_seconds(1'790'000'000 - 100 * 86'400);  // 100 days old
  EXPECT_EQ(reason_for(r), RefusalReason::kStartTime);
  // A spool replaying last week's results, a clock an hour ahead: fine.
  r = good();
  r.mutable_start_time()->set_seconds(1'790'000'000 - 7 * 86'400);
  EXPECT_EQ(reason_for(r), std::nullopt);
  r.mutable_start_time()->set_seconds(1'790'000'000 + 3'600);
  EXPECT_EQ(reason_for(r), std::nullopt);

  r = good();
  r.mutable_edge()->mutable_connection()->mutable_cert_not_after()->set_seconds(300'000'000'000);
  EXPECT_EQ(reason_for(r), RefusalReason::kTimestamp);
  r = good();
  r.mutable_edge()->mutable_connection()->mutable_chain_not_after()->set_seconds(300'000'000'000);
  EXPECT_EQ(reason_for(r), RefusalReason::kTimestamp);
  r = good();
  r.mutable_keep_alive()->mutable_idle_close_after()->set_seconds(5);
  r.mutable_keep_alive()->mutable_idle_close_after()->set_nanos(-5);
  EXPECT_EQ(reason_for(r), RefusalReason::kTimestamp);
}

TEST(ResultValidation, ColosBecomeKnownCodesOrOther) {
  auto r = good();
  r.mutable_edge()->mutable_edge()->set_colo("ZZ9");
  r.mutable_edge()->mutable_edge()->set_trace_colo(std::string("FR\0A", 4));
  ASSERT_FALSE(validate_result(r, kNow).has_value());
  EXPECT_EQ(r.edge().edge().colo(), "other");
  EXPECT_EQ(r.edge().edge().trace_colo(), "other");
  r = good();
  r.mutable_edge()->mutable_edge()->clear_colo();
  ASSERT_FALSE(validate_result(r, kNow).has_value());
  EXPECT_EQ(r.edge().edge().colo(), "");
}

TEST(ResultValidation, TextIsMadeValidAndBoundedNotRefused) {
  auto r = good();
  r.mutable_edge()->mutable_response()->set_server(std::string(100'000, 'x'));
  r.mutable_edge()->set_error("bad \xff\xfe bytes");  // possible in memory, not on the wire
  for (int i = 0; i < 1'000; ++i) r.mutable_diagnosis()->add_evidence("line");
  r.mutable_edge()->mutable_response()->set_body_sha256(std::string(1'000, 'h'));
  r.mutable_edge()->mutable_connection()->set_tls_cipher(std::string(100'000, 'c'));
  r.mutable_edge()->mutable_assertion_failure()->set_reason(std::string(100'000, 'r'));
  r.mutable_edge()->set_url("http://h/" + std::string(100'000, 'u'));
  ASSERT_FALSE(validate_result(r, kNow).has_value());
  EXPECT_LE(r.edge().url().size(), ResultLimits{}.max_text_bytes);
  EXPECT_LE(r.edge().assertion_failure().reason().size(), ResultLimits{}.max_text_bytes);
  EXPECT_LE(r.edge().response().server().size(), ResultLimits{}.max_text_bytes);
  EXPECT_LE(r.edge().connection().tls_cipher().size(), ResultLimits{}.max_text_bytes);
  EXPECT_TRUE(is_valid_utf8(r.edge().error()));
  EXPECT_EQ(r.diagnosis().evidence_size(), static_cast<int>(ResultLimits{}.max_list_items));
  EXPECT_EQ(r.edge().response().body_sha256().size(), 32u);
}

TEST(ResultValidation, EveryReasonHasALabel) {
  std::set<std::string_view> labels;
  for (auto reason : kAllRefusalReasons) labels.insert(refusal_label(reason));
  EXPECT_EQ(labels.size(), kAllRefusalReasons.size());
  EXPECT_FALSE(labels.contains("unknown"));
}

// Assignment parts are bounded by bytes as well as by count: a part stays
// far below gRPC's 4 MiB message limit whatever the checks hold.
TEST(AssignmentParts, LargeChecksSplitByBytes) {
  std::vector<v1::Check> checks(40);
  for (size_t i = 0; i < checks.size(); ++i) {
    checks[i].set_id(static_cast<int64_t>(i) + 1);
    checks[i].set_url("http://example.com/" + std::string(300'000, 'a'));  // 300 KB each, 12 MB in all
  }
  const auto parts = assignment_messages(checks, /*accepts_parts=*/true);
  ASSERT_GT(parts.size(), 10u);
  int64_t next_id = 1;
  for (size_t p = 0; p < parts.size(); ++p) {
    EXPECT_LE(parts[p].ByteSizeLong(), kAssignmentPartBytes + 16) << "part " << p;
    EXPECT_GT(parts[p].assignment().checks_size(), 0);
    EXPECT_EQ(parts[p].assignment().more(), p + 1 < parts.size());
    for (const auto& c : parts[p].assignment().checks()) EXPECT_EQ(c.id(), next_id++);
  }
  EXPECT_EQ(next_id, 41);

  // One check larger than a part is a part of its own, not an empty one.
  checks.resize(3);
  checks[1].set_url("http://example.com/" + std::string(3 * kAssignmentPartBytes, 'b'));
  const auto alone = assignment_messages(checks, /*accepts_parts=*/true);
  ASSERT_EQ(alone.size(), 3u);
  for (const auto& part : alone) EXPECT_EQ(part.assignment().checks_size(), 1);

  // A probe that does not take parts still gets one message (the coordinator
  // refuses to send it when it is over the limit).
  EXPECT_EQ(assignment_messages(checks, /*accepts_parts=*/false).size(), 1u);
}

}  // namespace
}  // namespace vantage::coordinator
