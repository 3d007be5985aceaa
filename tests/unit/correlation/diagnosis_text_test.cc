// Diagnosis text alone (coordinator/correlation/diagnosis_text.h): the cause
// and advice of an incident and the evidence lines it shows.

#include "coordinator/correlation/diagnosis_text.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/diagnosis.h"

namespace vantage::correlation {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;

Failure edge_failure(uint32_t code, std::string cause_id = "") {
  Failure f;
  f.failure_class = v1::FAILURE_CLASS_EDGE_ERROR;
  f.edge_code = code;
  f.cause_id = std::move(cause_id);
  if (!f.cause_id.empty()) {
    f.cause = "the origin sent nothing";
    f.advice = "look at the origin";
  }
  return f;
}

// An intermittent incident whose tallies are given directly.
Incident intermittent(std::vector<std::pair<std::string, uint32_t>> colos, uint32_t code, uint32_t origin_ok,
                      uint32_t origin_failed) {
  Incident inc;
  inc.kind = v1::INCIDENT_KIND_INTERMITTENT;
  for (const auto& [colo, n] : colos) inc.colo_tally.add(colo, n);
  inc.class_tally.add({v1::FAILURE_CLASS_EDGE_ERROR, code}, 3);
  inc.cause_tally.push_back(CauseTally{"empty_reply", "the origin closed the connection", "", 3});
  inc.origin_ok = origin_ok;
  inc.origin_failed = origin_failed;
  return inc;
}

TEST(OutageCause, TheProbesDiagnosisElseTheClass) {
  const Cause told = outage_cause(edge_failure(520, "empty_reply"));
  EXPECT_EQ(told.id, "empty_reply");
  EXPECT_EQ(told.advice, "look at the origin");
  const Cause untold = outage_cause(edge_failure(520));
  EXPECT_EQ(untold.id, "edge_error");
  EXPECT_EQ(untold.text, "the check fails: edge_error");
  EXPECT_EQ(untold.advice, "see the evidence");
}

TEST(IntermittentCause, Edge52xWithAHealthyOriginIsTheKeepAliveRace) {
  const auto result = intermittent({{"FRA", 3}}, 520, 1, 0);
  const auto c = intermittent_cause(result);
  ASSERT_TRUE(c.cause);
  EXPECT_EQ(c.cause->id, KeepAliveRace::cause_id);
  ASSERT_TRUE(c.dominant);
  EXPECT_EQ(c.dominant->second, 520u);
}

TEST(IntermittentCause, SeveralColosWithoutAnOriginLegAreTheKeepAliveRaceToo) {
  EXPECT_EQ(intermittent_cause(intermittent({{"FRA", 2}, {"AMS", 1}}, 520, 0, 0)).cause->id, KeepAliveRace::cause_id);
}

TEST(IntermittentCause, OtherwiseTheMostCommonCauseWithDefaultAdvice) {
  for (const auto& inc : {intermittent({{"FRA", 3}}, 520, 0, 0),          // one colo, no origin leg
                          intermittent({{"FRA", 3}}, 520, 1, 1),          // an origin leg failed
                          intermittent({{"FRA", 2}, {"AMS", 1}}, 502, 1, 0)}) {  // not a 52x
    const auto c = intermittent_cause(inc);
    ASSERT_TRUE(c.cause);
    EXPECT_EQ(c.cause->id, "empty_reply");
    EXPECT_EQ(c.cause->advice, "see the evidence");
  }
}

TEST(IntermittentCause, NothingCountedTellsNothing) {
  Incident inc;
  inc.kind = v1::INCIDENT_KIND_INTERMITTENT;
  const auto c = intermittent_cause(inc);
  EXPECT_FALSE(c.dominant);
  EXPECT_FALSE(c.cause);
}

TEST(Evidence, AnOutageNamesItsProbesEdgeOriginAndTimeToError) {
  Incident inc;
  inc.regions = {"eu", "us"};
  inc.probes = {"eu-1", "us-1"};
  inc.colos = {"FRA"};
  inc.rays = {"r1"};
  inc.has_sample = true;
  inc.sample = edge_failure(520, "empty_reply");
  inc.sample.origin_class = v1::FAILURE_CLASS_EMPTY_REPLY;
  inc.sample.time_to_error = 1500ms;
  const auto d = diagnosis_of(inc, std::nullopt, 900s);
  EXPECT_THAT(d.evidence(), ElementsAre("failing from 2 probes in eu, us: eu-1, us-1",
                                        "edge leg: edge_error (520), through colo FRA", "origin leg: empty_reply",
                                        "time to error: 1.50 s", "sample ray ids: r1"));
}

TEST(Evidence, ARestoredOutageShowsWhatWasStoredUntilItHasASample) {
  Incident inc;
  inc.restored_evidence = {"stored line"};
  inc.rays = {"r1"};
  EXPECT_THAT(diagnosis_of(inc, std::nullopt, 900s).evidence(), ElementsAre("stored line"));
}

TEST(Evidence, AnIntermittentIncidentTalliesItsEpisodesAndTheKeepAliveMeasurement) {
  auto inc = intermittent({{"FRA", 2}, {"AMS", 1}}, 520, 2, 0);
  inc.episodes = 3;
  inc.failures = 3;
  inc.regions = {"eu"};
  const auto d = diagnosis_of(inc, KeepAlive{5s, 100}, 900s);
  EXPECT_THAT(d.evidence(),
              ElementsAre("3 isolated failure episodes (3 failures) from 1 region: eu", "failures: edge_error 520 x3",
                          "colos: FRA x2, AMS x1", "origin leg: ok in 2 of 2 attempts",
                          "keep-alive: the origin closes an idle connection after 5 s, shorter than the edge's reuse "
                          "of idle connections (about 900 s)",
                          "keep-alive: the origin closes a connection after 100 requests"));
}

TEST(DurationText, TheLargestWholeUnit) {
  EXPECT_EQ(duration_text(1h), "1 h");
  EXPECT_EQ(duration_text(24h), "24 h");
  EXPECT_EQ(duration_text(10min), "10 min");
  EXPECT_EQ(duration_text(90s), "90 s");
  EXPECT_EQ(duration_text(1500ms), "1.5 s");
}

}  // namespace
}  // namespace vantage::correlation
