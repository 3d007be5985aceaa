#include "common/diagnosis.h"

#include <gtest/gtest.h>

#include <set>

namespace vantage {
namespace {

v1::LegResult edge_error(uint32_t code) {
  v1::LegResult leg;
  leg.set_failure_class(v1::FAILURE_CLASS_EDGE_ERROR);
  leg.mutable_response()->set_status(code);
  leg.mutable_edge()->set_edge_code(code);
  leg.mutable_edge()->set_colo("FRA");
  leg.mutable_edge()->set_ray_id("8f1a2b3c4d5e6f70-FRA");
  return leg;
}

v1::LegResult leg_of(v1::FailureClass c) {
  v1::LegResult leg;
  leg.set_failure_class(c);
  return leg;
}

struct Row {
  uint32_t edge_code;  // 0: the edge leg was ok
  std::optional<v1::FailureClass> origin;
  const char* cause_id;
};

class DiagnosisTable : public ::testing::TestWithParam<Row> {};

TEST_P(DiagnosisTable, EdgeAndOriginLegsGiveTheCauseOfDiagnosisMd) {
  const auto& row = GetParam();
  const auto edge = row.edge_code ? edge_error(row.edge_code) : leg_of(v1::FAILURE_CLASS_OK);
  const auto origin = row.origin ? std::optional(leg_of(*row.origin)) : std::nullopt;
  const auto d = diagnose(edge, origin ? &*origin : nullptr);
  EXPECT_EQ(d.cause_id(), row.cause_id);
  EXPECT_FALSE(d.cause().empty());
  EXPECT_FALSE(d.advice().empty());
}

INSTANTIATE_TEST_SUITE_P(
    Section4, DiagnosisTable,
    ::testing::Values(
        Row{520, v1::FAILURE_CLASS_EMPTY_REPLY, "origin_empty_reply"},
        Row{520, v1::FAILURE_CLASS_CONNECTION_RESET, "origin_resets_connections"},
        Row{520, v1::FAILURE_CLASS_INCOMPLETE_HEAD, "origin_crashes_mid_response"},
        Row{520, v1::FAILURE_CLASS_TRUNCATED_BODY, "origin_crashes_mid_response"},
        Row{520, v1::FAILURE_CLASS_MALFORMED_STATUS_LINE, "origin_malformed_http"},
        Row{520, v1::FAILURE_CLASS_MALFORMED_HEADER, "origin_malformed_http"},
        Row{520, v1::FAILURE_CLASS_BAD_FRAMING, "origin_malformed_http"},
        Row{520, v1::FAILURE_CLASS_HEADERS_TOO_LARGE, "origin_headers_too_large"},
        Row{520, v1::FAILURE_CLASS_OK, "edge_only_520"},
        Row{521, v1::FAILURE_CLASS_CONNECT_REFUSED, "origin_refusing"},
        Row{522, v1::FAILURE_CLASS_CONNECT_TIMEOUT, "origin_dropping_connections"},
        Row{522, v1::FAILURE_CLASS_OK, "edge_only_522"},
        Row{523, v1::FAILURE_CLASS_UNREACHABLE, "no_route_to_origin"},
        Row{524, v1::FAILURE_CLASS_TIMEOUT_HEADERS, "origin_too_slow"},
        Row{525, v1::FAILURE_CLASS_TLS_HANDSHAKE_FAILED, "edge_origin_tls"},
        Row{526, v1::FAILURE_CLASS_TLS_CERT_INVALID, "edge_origin_tls"},
        Row{530, v1::FAILURE_CLASS_DNS_FAILURE, "origin_dns"},
        Row{0, v1::FAILURE_CLASS_ORIGIN_5XX, "edge_hiding_origin_problem"},
        Row{0, v1::FAILURE_CLASS_CONNECT_REFUSED, "edge_hiding_origin_problem"},
        Row{520, std::nullopt, "edge_520"},
        Row{522, std::nullopt, "edge_522"},
        Row{524, std::nullopt, "edge_524"}));

TEST(Diagnosis, AHealthyAttemptHasNoCause) {
  auto ok = leg_of(v1::FAILURE_CLASS_OK);
  EXPECT_EQ(diagnose(ok, &ok).cause_id(), "");
  EXPECT_EQ(diagnose(ok, nullptr).cause_id(), "");
}

TEST(Diagnosis, AFailureWithoutARowIsNamedByItsClass) {
  auto d = diagnose(leg_of(v1::FAILURE_CLASS_CONNECT_REFUSED), nullptr);
  EXPECT_EQ(d.cause_id(), "connect_refused");
}

TEST(Diagnosis, EvidenceCarriesColoRayAndTheTellingTimeToError) {
  auto edge = edge_error(522);
  edge.mutable_timings()->set_time_to_error_us(19'100'000);
  auto d = diagnose(edge, nullptr);
  ASSERT_GE(d.evidence_size(), 2);
  EXPECT_NE(d.evidence(0).find("colo FRA"), std::string::npos) << d.evidence(0);
  EXPECT_NE(d.evidence(0).find("ray 8f1a2b3c4d5e6f70-FRA"), std::string::npos);
  EXPECT_NE(d.evidence(1).find("about 19 s"), std::string::npos) << d.evidence(1);
}

TEST(Diagnosis, CauseIdsAreUnique) {
  std::set<std::string_view> ids;
  for (const auto& row : diagnosis_table()) EXPECT_TRUE(ids.insert(row.cause_id).second) << row.cause_id;
}

}  // namespace
}  // namespace vantage
