// Outage decisions alone (coordinator/correlation/outage.h): confirmation,
// the dominant failure, the cause, recovery, on hand-built check state.

#include "coordinator/correlation/outage.h"

#include <gtest/gtest.h>

namespace vantage::correlation {
namespace {

using namespace std::chrono_literals;

const TimePoint kT0 = TimePoint(std::chrono::seconds(1'700'000'000));

struct CheckBuilder {
  CheckState cs;
  CheckBuilder() { cs.interval = 60s; }
  // A probe whose latest result, at `at`, failed `fail_run` times in a row (0: ok).
  ProbeState& probe(std::string id, std::string region, std::chrono::seconds at, uint32_t fail_run,
                    uint32_t code = 520, std::string cause_id = "edge_520") {
    auto& p = cs.probes.emplace_back();
    p.id = std::move(id);
    p.region = std::move(region);
    p.has_latest = true;
    p.latest = kT0 + at;
    p.failing = fail_run > 0;
    p.fail_run = fail_run;
    p.ok_run = fail_run > 0 ? 0 : 1;
    p.episode_start = kT0 + at - 60s * (fail_run > 0 ? fail_run - 1 : 0);
    if (p.failing) {
      p.last_failure.time = kT0 + at;
      p.last_failure.failure_class = v1::FAILURE_CLASS_EDGE_ERROR;
      p.last_failure.edge_code = code;
      p.last_failure.cause_id = std::move(cause_id);
      p.last_failure.cause = "the edge answered";
      p.last_failure.advice = "look at the origin";
    }
    return p;
  }
};

TEST(Confirmation, TwoFailuresInARowConfirm) {
  CheckBuilder b;
  b.cs.probes.reserve(4);
  auto& eu = b.probe("eu-1", "eu", 0s, 1);
  b.probe("us-1", "us", 0s, 0);
  EXPECT_FALSE(confirms_outage(b.cs, eu, kT0));
  eu.fail_run = 2;
  EXPECT_TRUE(confirms_outage(b.cs, eu, kT0));
}

TEST(Confirmation, AFailureInAnotherRegionWithinOneIntervalConfirms) {
  CheckBuilder b;
  b.cs.probes.reserve(4);
  auto& eu = b.probe("eu-1", "eu", 0s, 1);
  b.probe("us-1", "us", 50s, 1);
  EXPECT_TRUE(confirms_outage(b.cs, eu, kT0));
  b.cs.probes[1].latest = kT0 + 61s;  // more than one interval apart
  EXPECT_FALSE(confirms_outage(b.cs, eu, kT0));
}

TEST(Confirmation, TheSameRegionDoesNotConfirm) {
  CheckBuilder b;
  b.cs.probes.reserve(4);
  auto& eu = b.probe("eu-1", "eu", 0s, 1);
  b.probe("eu-2", "eu", 1s, 1);
  EXPECT_FALSE(confirms_outage(b.cs, eu, kT0));
}

TEST(OutageStartOf, TheEarliestEpisodeAndEveryFailure) {
  CheckBuilder b;
  b.probe("eu-1", "eu", 120s, 3);  // episode from 0 s
  b.probe("us-1", "us", 121s, 1);
  b.probe("ap-1", "ap", 121s, 0);
  const auto start = outage_start(b.cs, kT0 + 121s);
  EXPECT_EQ(start.first_failure, kT0);
  EXPECT_EQ(start.failures, 4u);
}

TEST(Dominant, TheMostCommonFailureWinsAndTiesKeepTheCurrentCause) {
  CheckBuilder b;
  b.probe("eu-1", "eu", 0s, 1, 522, "edge_522");
  b.probe("us-1", "us", 1s, 1, 520, "edge_520");
  b.probe("ap-1", "ap", 2s, 1, 520, "edge_520");
  Incident inc;
  const Failure* f = dominant_failure(b.cs, inc, kT0 + 2s);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->edge_code, 520u);
  EXPECT_EQ(f->time, kT0 + 2s);  // the latest of its kind

  b.cs.probes.pop_back();  // one each: the current cause stays
  inc.dominant_class = v1::FAILURE_CLASS_EDGE_ERROR;
  inc.dominant_code = 522;
  inc.cause_id = "edge_522";
  f = dominant_failure(b.cs, inc, kT0 + 2s);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->edge_code, 522u);
}

TEST(Dominant, NoneWithoutAFreshFailure) {
  CheckBuilder b;
  b.probe("eu-1", "eu", 0s, 1);
  Incident inc;
  EXPECT_EQ(dominant_failure(b.cs, inc, kT0 + 1h), nullptr);  // stale
}

TEST(Cause, TheFirstFailureOfACauseStaysTheSample) {
  Failure first;
  first.time = kT0;
  first.failure_class = v1::FAILURE_CLASS_EDGE_ERROR;
  first.edge_code = 520;
  first.cause_id = "edge_520";
  Failure later = first;
  later.time = kT0 + 60s;
  Incident inc;
  set_outage_cause(inc, first);
  set_outage_cause(inc, later);
  EXPECT_EQ(inc.sample.time, kT0);
  EXPECT_EQ(inc.cause_id, "edge_520");
}

TEST(Attach, AddsWhatIsNewAndOwesRecovery) {
  CheckBuilder b;
  auto& p = b.probe("eu-1", "eu", 0s, 1);
  p.last_failure.colo = "FRA";
  p.last_failure.ray_id = "abc";
  Incident inc;
  attach(inc, p);
  attach(inc, p);
  EXPECT_TRUE(p.owes_recovery);
  EXPECT_TRUE(p.episode_confirmed);
  EXPECT_EQ(inc.regions, std::vector<std::string>{"eu"});
  EXPECT_EQ(inc.probes, std::vector<std::string>{"eu-1"});
  EXPECT_EQ(inc.colos, std::vector<std::string>{"FRA"});
  EXPECT_EQ(inc.rays, std::vector<std::string>{"abc"});
}

TEST(Recovery, EveryProbeThatFailedNeedsItsSuccesses) {
  CheckBuilder b;
  b.cs.probes.reserve(4);
  auto& eu = b.probe("eu-1", "eu", 0s, 0);
  auto& us = b.probe("us-1", "us", 0s, 0);
  eu.owes_recovery = us.owes_recovery = true;
  eu.ok_run = 2;
  us.ok_run = 1;
  EXPECT_FALSE(outage_recovered(b.cs, eu, kT0));
  us.ok_run = 2;
  EXPECT_TRUE(outage_recovered(b.cs, us, kT0));
}

TEST(Recovery, NothingOwedSettlesOnTheSuccessesOfTheProbeAndNothingFailing) {
  CheckBuilder b;
  b.cs.probes.reserve(4);
  auto& eu = b.probe("eu-1", "eu", 0s, 0);
  eu.ok_run = 2;
  b.probe("us-1", "us", 0s, 1);
  EXPECT_FALSE(outage_recovered(b.cs, eu, kT0));
  b.cs.probes[1].failing = false;
  EXPECT_TRUE(outage_recovered(b.cs, eu, kT0));
}

TEST(RestoredOutage, AnEpisodeOverlappingARestoredSpanWasPartOfIt) {
  CheckBuilder b;
  auto& p = b.probe("eu-1", "eu", 0s, 1);
  b.cs.restored_spans.emplace_back(kT0 - 10min, kT0 + 5min);
  EXPECT_TRUE(in_restored_outage(b.cs, p, kT0 + 60s));
  p.episode_start = kT0 + 5min;  // at the resolution: after it
  EXPECT_FALSE(in_restored_outage(b.cs, p, kT0 + 6min));
}

}  // namespace
}  // namespace vantage::correlation
