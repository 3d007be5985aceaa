// The leg classifier (probe/classifier.h): every failure class it gives, from
// what the leg saw, and what later legs settle (diagnosis.md section 2).
#include "probe/classifier.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/failure_class.h"

namespace vantage::probe {
namespace {

using Step = LegEnding::Step;
using How = LegEnding::How;

struct FailureCase {
  const char* name;
  LegEnding ending;
  v1::FailureClass failure_class;
  v1::Phase phase;
  v1::TransportEnd end;
};

LegEnding read(How how, uint64_t bytes, bool head, v1::FailureClass parser = v1::FAILURE_CLASS_UNSPECIFIED) {
  return {Step::kRead, how, bytes, head, parser};
}

class ClassifyFailure : public ::testing::TestWithParam<FailureCase> {};

TEST_P(ClassifyFailure, NamesTheClassPhaseAndTransportEnd) {
  const auto& c = GetParam();
  const auto verdict = classify_failure(c.ending);
  EXPECT_EQ(verdict.failure_class, c.failure_class);
  EXPECT_EQ(verdict.phase, c.phase);
  EXPECT_EQ(verdict.transport_end, c.end);
}

INSTANTIATE_TEST_SUITE_P(
    EveryWayALegEndsEarly, ClassifyFailure,
    ::testing::Values(
        FailureCase{"invalid_check", {Step::kPlan}, v1::FAILURE_CLASS_INVALID_CHECK, v1::PHASE_UNSPECIFIED,
                    v1::TRANSPORT_END_UNSPECIFIED},
        FailureCase{"dns_failure", {Step::kDns}, v1::FAILURE_CLASS_DNS_FAILURE, v1::PHASE_DNS,
                    v1::TRANSPORT_END_NOT_CONNECTED},
        FailureCase{"connect_refused", {Step::kConnect, How::kRefused}, v1::FAILURE_CLASS_CONNECT_REFUSED,
                    v1::PHASE_CONNECT, v1::TRANSPORT_END_NOT_CONNECTED},
        FailureCase{"connect_other_is_refused", {Step::kConnect, How::kFailed}, v1::FAILURE_CLASS_CONNECT_REFUSED,
                    v1::PHASE_CONNECT, v1::TRANSPORT_END_NOT_CONNECTED},
        FailureCase{"connect_timeout", {Step::kConnect, How::kTimedOut}, v1::FAILURE_CLASS_CONNECT_TIMEOUT,
                    v1::PHASE_CONNECT, v1::TRANSPORT_END_NOT_CONNECTED},
        FailureCase{"unreachable", {Step::kConnect, How::kUnreachable}, v1::FAILURE_CLASS_UNREACHABLE,
                    v1::PHASE_CONNECT, v1::TRANSPORT_END_NOT_CONNECTED},
        FailureCase{"tls_cert_invalid", {Step::kTls, How::kCertificate}, v1::FAILURE_CLASS_TLS_CERT_INVALID,
                    v1::PHASE_TLS, v1::TRANSPORT_END_UNSPECIFIED},
        FailureCase{"tls_timeout", {Step::kTls, How::kTimedOut}, v1::FAILURE_CLASS_TLS_HANDSHAKE_FAILED,
                    v1::PHASE_TLS, v1::TRANSPORT_END_TIMEOUT},
        FailureCase{"tls_reset", {Step::kTls, How::kReset}, v1::FAILURE_CLASS_TLS_HANDSHAKE_FAILED, v1::PHASE_TLS,
                    v1::TRANSPORT_END_RST},
        FailureCase{"tls_alert", {Step::kTls, How::kFailed}, v1::FAILURE_CLASS_TLS_HANDSHAKE_FAILED, v1::PHASE_TLS,
                    v1::TRANSPORT_END_UNSPECIFIED},
        FailureCase{"write_failed", {Step::kWrite, How::kReset}, v1::FAILURE_CLASS_CONNECTION_RESET,
                    v1::PHASE_WRITE_REQUEST, v1::TRANSPORT_END_RST},
        FailureCase{"empty_reply", read(How::kClosed, 0, false, v1::FAILURE_CLASS_EMPTY_REPLY),
                    v1::FAILURE_CLASS_EMPTY_REPLY, v1::PHASE_READ_HEAD, v1::TRANSPORT_END_FIN_BEFORE_ANY},
        FailureCase{"incomplete_head", read(How::kClosed, 40, false, v1::FAILURE_CLASS_INCOMPLETE_HEAD),
                    v1::FAILURE_CLASS_INCOMPLETE_HEAD, v1::PHASE_READ_HEAD, v1::TRANSPORT_END_FIN_MID_HEAD},
        FailureCase{"truncated_body_fin", read(How::kClosed, 90, true, v1::FAILURE_CLASS_TRUNCATED_BODY),
                    v1::FAILURE_CLASS_TRUNCATED_BODY, v1::PHASE_READ_BODY, v1::TRANSPORT_END_FIN_MID_BODY},
        FailureCase{"connection_reset", read(How::kReset, 10, false), v1::FAILURE_CLASS_CONNECTION_RESET,
                    v1::PHASE_READ_HEAD, v1::TRANSPORT_END_RST},
        FailureCase{"truncated_body_rst", read(How::kReset, 90, true), v1::FAILURE_CLASS_TRUNCATED_BODY,
                    v1::PHASE_READ_BODY, v1::TRANSPORT_END_RST},
        FailureCase{"timeout_headers", read(How::kTimedOut, 0, false), v1::FAILURE_CLASS_TIMEOUT_HEADERS,
                    v1::PHASE_READ_HEAD, v1::TRANSPORT_END_TIMEOUT},
        FailureCase{"timeout_body", read(How::kTimedOut, 90, true), v1::FAILURE_CLASS_TIMEOUT_BODY,
                    v1::PHASE_READ_BODY, v1::TRANSPORT_END_TIMEOUT},
        FailureCase{"not_tls_first_byte", read(How::kNotTls, 0, false), v1::FAILURE_CLASS_MALFORMED_STATUS_LINE,
                    v1::PHASE_READ_HEAD, v1::TRANSPORT_END_UNSPECIFIED},
        FailureCase{"not_tls_in_head", read(How::kNotTls, 20, false), v1::FAILURE_CLASS_MALFORMED_HEADER,
                    v1::PHASE_READ_HEAD, v1::TRANSPORT_END_UNSPECIFIED},
        FailureCase{"not_tls_in_body", read(How::kNotTls, 90, true), v1::FAILURE_CLASS_TRUNCATED_BODY,
                    v1::PHASE_READ_BODY, v1::TRANSPORT_END_UNSPECIFIED},
        FailureCase{"malformed_status_line", read(How::kRejected, 3, false, v1::FAILURE_CLASS_MALFORMED_STATUS_LINE),
                    v1::FAILURE_CLASS_MALFORMED_STATUS_LINE, v1::PHASE_READ_HEAD, v1::TRANSPORT_END_UNSPECIFIED},
        FailureCase{"malformed_header", read(How::kRejected, 30, false, v1::FAILURE_CLASS_MALFORMED_HEADER),
                    v1::FAILURE_CLASS_MALFORMED_HEADER, v1::PHASE_READ_HEAD, v1::TRANSPORT_END_UNSPECIFIED},
        FailureCase{"bad_framing", read(How::kRejected, 60, false, v1::FAILURE_CLASS_BAD_FRAMING),
                    v1::FAILURE_CLASS_BAD_FRAMING, v1::PHASE_READ_HEAD, v1::TRANSPORT_END_UNSPECIFIED},
        FailureCase{"headers_too_large", read(How::kRejected, 9000, false, v1::FAILURE_CLASS_HEADERS_TOO_LARGE),
                    v1::FAILURE_CLASS_HEADERS_TOO_LARGE, v1::PHASE_READ_HEAD, v1::TRANSPORT_END_UNSPECIFIED},
        FailureCase{"bad_chunk", read(How::kRejected, 90, true, v1::FAILURE_CLASS_BAD_FRAMING),
                    v1::FAILURE_CLASS_BAD_FRAMING, v1::PHASE_READ_BODY, v1::TRANSPORT_END_UNSPECIFIED}),
    [](const ::testing::TestParamInfo<FailureCase>& info) { return std::string(info.param.name); });

// A check expecting 200..399, and a plan of it with a small header limit.
struct Planned {
  v1::Check check;
  LegPlan plan;
  Planned() {
    auto* range = check.add_expected_status();
    range->set_min(200);
    range->set_max(399);
    plan.check = &check;
    plan.limits.parser.max_header_bytes = 1000;
  }
};

ResponseSeen response(uint32_t status, std::string_view body = "", std::optional<std::string_view> cf_ray = {}) {
  ResponseSeen seen;
  seen.status = status;
  seen.header_bytes = 200;
  seen.content_type = "text/html";
  seen.body = body;
  seen.cf_ray = cf_ray;
  seen.peer = boost::asio::ip::make_address("192.0.2.10");
  return seen;
}

constexpr std::string_view kRay = "8f1a2b3c4d5e6f70-FRA";

TEST(ClassifyResponse, AnExpectedStatusIsOk) {
  Planned p;
  const auto verdict = classify_response(response(200), p.plan);
  EXPECT_EQ(verdict.failure_class, v1::FAILURE_CLASS_OK);
  EXPECT_EQ(verdict.error, "");
  EXPECT_FALSE(verdict.edge.via_cloudflare());
}

TEST(ClassifyResponse, AHeaderBlockPastTheShareOfTheLimitIsNearLimit) {
  Planned p;
  auto seen = response(200);
  seen.header_bytes = 750;
  EXPECT_EQ(classify_response(seen, p.plan).failure_class, v1::FAILURE_CLASS_OK) << "75 % is not past 75 %";
  seen.header_bytes = 800;
  const auto verdict = classify_response(seen, p.plan);
  EXPECT_EQ(verdict.failure_class, v1::FAILURE_CLASS_HEADERS_NEAR_LIMIT);
  EXPECT_EQ(verdict.error, "response headers are 800 bytes, 80 % of the 1000 byte limit");
}

TEST(ClassifyResponse, AStatusOutsideTheExpectedSetIsUnexpected) {
  Planned p;
  const auto verdict = classify_response(response(404), p.plan);
  EXPECT_EQ(verdict.failure_class, v1::FAILURE_CLASS_UNEXPECTED_STATUS);
  EXPECT_EQ(verdict.error, "status 404 is not expected");
}

TEST(ClassifyResponse, TheOnlyStatusReplacesTheChecksSet) {
  Planned p;
  p.plan.only_status = 200;
  EXPECT_EQ(classify_response(response(200), p.plan).failure_class, v1::FAILURE_CLASS_OK);
  EXPECT_EQ(classify_response(response(204), p.plan).failure_class, v1::FAILURE_CLASS_UNEXPECTED_STATUS);
}

TEST(ClassifyResponse, TheOriginsOwn5xxIsOrigin5xx) {
  Planned p;
  const auto verdict = classify_response(response(503, "<h1>Service Unavailable</h1>"), p.plan);
  EXPECT_EQ(verdict.failure_class, v1::FAILURE_CLASS_ORIGIN_5XX);
  EXPECT_EQ(verdict.error, "status 503");
  EXPECT_EQ(verdict.edge.rule(), v1::EDGE_RULE_ORIGIN_BODY);
}

TEST(ClassifyResponse, AnEdgePageIsEdgeErrorWithItsEvidence) {
  Planned p;
  auto seen = response(522, "error code: 522", kRay);
  seen.content_type = "text/plain";
  const auto verdict = classify_response(seen, p.plan);
  EXPECT_EQ(verdict.failure_class, v1::FAILURE_CLASS_EDGE_ERROR);
  EXPECT_EQ(verdict.edge.rule(), v1::EDGE_RULE_COMPACT);
  EXPECT_EQ(verdict.edge.edge_code(), 522u);
  EXPECT_EQ(verdict.edge.colo(), "FRA");
  EXPECT_TRUE(verdict.edge.via_cloudflare());
}

TEST(ClassifyResponse, AJsonErrorsRetryAfterIsReturned) {
  Planned p;
  auto seen = response(520, R"({"cloudflare_error":true,"error_code":520,"retry_after":30})", kRay);
  seen.content_type = "application/json";
  const auto verdict = classify_response(seen, p.plan);
  EXPECT_EQ(verdict.failure_class, v1::FAILURE_CLASS_EDGE_ERROR);
  EXPECT_EQ(verdict.edge.rule(), v1::EDGE_RULE_JSON);
  EXPECT_EQ(verdict.json_retry_after, 30u);
}

TEST(ClassifyResponse, ACloudflareAddressIsViaCloudflareWithoutARay) {
  Planned p;
  auto seen = response(200);
  seen.peer = boost::asio::ip::make_address("104.16.0.1");
  EXPECT_TRUE(in_cloudflare_ranges(seen.peer));
  EXPECT_TRUE(classify_response(seen, p.plan).edge.via_cloudflare());
  EXPECT_FALSE(in_cloudflare_ranges(boost::asio::ip::make_address("192.0.2.10")));
}

// An edge leg as the classifier leaves it for a 52x without markers (rule 5).
v1::LegResult markerless_52x(uint32_t status) {
  Planned p;
  const auto verdict = classify_response(response(status, "<p>our own error page</p>", kRay), p.plan);
  v1::LegResult edge;
  edge.set_failure_class(verdict.failure_class);
  edge.mutable_response()->set_status(status);
  *edge.mutable_edge() = verdict.edge;
  return edge;
}

v1::LegResult origin_leg(v1::FailureClass failure_class, uint32_t status = 0) {
  v1::LegResult origin;
  origin.set_failure_class(failure_class);
  if (status) origin.mutable_response()->set_status(status);
  return origin;
}

TEST(SettleWithOrigin, AMarkerlessEdge52xStaysEdgeErrorUntilTheOriginLegSpeaks) {
  const auto edge = markerless_52x(520);
  EXPECT_EQ(edge.failure_class(), v1::FAILURE_CLASS_EDGE_ERROR);
  EXPECT_EQ(edge.edge().rule(), v1::EDGE_RULE_NO_MARKERS);
  EXPECT_FALSE(edge.edge().edge_generated());
}

TEST(SettleWithOrigin, TheOriginSayingTheSame52xMakesItThePassedThroughOrigin5xx) {
  auto edge = markerless_52x(520);
  EXPECT_TRUE(settle_with_origin(edge, origin_leg(v1::FAILURE_CLASS_ORIGIN_5XX, 520)));
  EXPECT_EQ(edge.failure_class(), v1::FAILURE_CLASS_ORIGIN_5XX);
  EXPECT_FALSE(edge.edge().edge_generated());
  EXPECT_EQ(edge.edge().rule(), v1::EDGE_RULE_NO_MARKERS) << "the rule that matched stays recorded";
}

TEST(SettleWithOrigin, TheOriginAnsweringOtherwiseMakesItTheEdgesBehindACustomPage) {
  for (const auto& origin : {origin_leg(v1::FAILURE_CLASS_OK, 200), origin_leg(v1::FAILURE_CLASS_EMPTY_REPLY),
                             origin_leg(v1::FAILURE_CLASS_CONNECT_REFUSED)}) {
    auto edge = markerless_52x(521);
    EXPECT_TRUE(settle_with_origin(edge, origin));
    EXPECT_EQ(edge.failure_class(), v1::FAILURE_CLASS_EDGE_ERROR);
    EXPECT_TRUE(edge.edge().edge_generated()) << failure_class_name(origin.failure_class());
  }
}

TEST(SettleWithOrigin, NothingElseChanges) {
  auto marked = markerless_52x(520);
  marked.mutable_edge()->set_rule(v1::EDGE_RULE_HTML_TEMPLATE);
  marked.mutable_edge()->set_edge_generated(true);
  const auto before = marked.SerializeAsString();
  EXPECT_FALSE(settle_with_origin(marked, origin_leg(v1::FAILURE_CLASS_ORIGIN_5XX, 520)));
  EXPECT_EQ(marked.SerializeAsString(), before);

  auto edge = markerless_52x(520);
  const auto unsettled = edge.SerializeAsString();
  EXPECT_FALSE(settle_with_origin(edge, origin_leg(v1::FAILURE_CLASS_INVALID_CHECK)))
      << "an origin leg that sent nothing says nothing";
  EXPECT_EQ(edge.SerializeAsString(), unsettled);
}

TEST(SettleWithJsonFollowUp, AJsonErrorForTheSameCodeMakesTheEdgesVerdict) {
  Planned p;
  auto edge = markerless_52x(520);
  auto seen = response(520, R"({"cloudflare_error":true,"error_code":520,"error_name":"origin_error"})", kRay);
  seen.content_type = "application/json";
  v1::LegResult follow_up;
  *follow_up.mutable_edge() = classify_response(seen, p.plan).edge;
  EXPECT_TRUE(settle_with_json_follow_up(edge, follow_up));
  EXPECT_EQ(edge.failure_class(), v1::FAILURE_CLASS_EDGE_ERROR);
  EXPECT_EQ(edge.edge().rule(), v1::EDGE_RULE_JSON);
  EXPECT_TRUE(edge.edge().edge_generated());
  EXPECT_EQ(edge.edge().error_name(), "origin_error");
  EXPECT_FALSE(settle_with_origin(edge, origin_leg(v1::FAILURE_CLASS_ORIGIN_5XX, 520)))
      << "rule 1 settled it already";
}

TEST(SettleWithJsonFollowUp, AnotherCodeChangesNothing) {
  Planned p;
  auto edge = markerless_52x(520);
  const auto before = edge.SerializeAsString();
  auto seen = response(522, R"({"cloudflare_error":true,"error_code":522})", kRay);
  seen.content_type = "application/json";
  v1::LegResult follow_up;
  *follow_up.mutable_edge() = classify_response(seen, p.plan).edge;
  EXPECT_FALSE(settle_with_json_follow_up(edge, follow_up));
  EXPECT_EQ(edge.SerializeAsString(), before);
}

}  // namespace
}  // namespace vantage::probe
