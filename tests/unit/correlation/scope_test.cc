// Scope alone (coordinator/correlation/scope.h): where a check fails, from
// the probes' latest verdicts, with no correlator around it.

#include "coordinator/correlation/scope.h"

#include <gtest/gtest.h>

#include <vector>

namespace vantage::correlation {
namespace {

ProbeVerdict ok(std::string_view region, std::string_view colo = "") { return {region, colo, false}; }
ProbeVerdict failing(std::string_view region, std::string_view colo = "") { return {region, colo, true}; }

v1::Scope scope(const std::vector<ProbeVerdict>& probes, uint32_t quorum = 0) { return outage_scope(probes, quorum); }

TEST(Quorum, HalfTheReportingRegionsAndAtLeastTwo) {
  EXPECT_EQ(global_quorum(0, 1), 2u);
  EXPECT_EQ(global_quorum(0, 3), 2u);
  EXPECT_EQ(global_quorum(0, 5), 3u);
  EXPECT_EQ(global_quorum(0, 10), 5u);
  EXPECT_EQ(global_quorum(4, 3), 4u);  // configured wins
}

TEST(RegionCount, CountsEachRegionOnce) {
  EXPECT_EQ(region_count(std::vector<ProbeVerdict>{ok("us"), failing("us"), ok("eu")}), 2u);
  EXPECT_EQ(region_count({}), 0u);
}

TEST(OutageScope, NothingFailingHasNoScope) {
  EXPECT_EQ(scope({ok("us"), ok("eu")}), v1::SCOPE_UNSPECIFIED);
  EXPECT_EQ(scope({}), v1::SCOPE_UNSPECIFIED);
}

TEST(OutageScope, AProbeWithAHealthyRegionPeerIsProbe) {
  EXPECT_EQ(scope({failing("us"), ok("us"), ok("eu")}), v1::SCOPE_PROBE);
}

TEST(OutageScope, AWholeRegionBelowTheQuorumIsRegion) {
  EXPECT_EQ(scope({failing("us"), failing("us"), ok("eu"), ok("ap")}), v1::SCOPE_REGION);
}

TEST(OutageScope, AQuorumOfRegionsIsGlobal) {
  EXPECT_EQ(scope({failing("us"), failing("eu"), ok("ap")}), v1::SCOPE_GLOBAL);
  EXPECT_EQ(scope({failing("us"), failing("eu"), ok("ap")}, /*quorum=*/3), v1::SCOPE_REGION);
}

TEST(OutageScope, OneColoFailingFromTwoRegionsWhileAnotherServesIsColo) {
  EXPECT_EQ(scope({failing("us", "FRA"), failing("eu", "FRA"), ok("ap", "SIN"), ok("sa", "GRU"), ok("af", "JNB")}),
            v1::SCOPE_COLO);
}

TEST(OutageScope, APeerServedThroughAnotherColoMakesItColo) {
  EXPECT_EQ(scope({failing("us", "IAD"), ok("us", "EWR"), ok("eu", "FRA")}), v1::SCOPE_COLO);
}

TEST(OutageScope, AColoThatAlsoServesFineIsNotTheExplanation) {
  EXPECT_EQ(scope({failing("us", "FRA"), failing("eu", "FRA"), ok("ap", "FRA"), ok("sa", "GRU"), ok("af", "JNB")}),
            v1::SCOPE_REGION);
}

TEST(OutageScope, AFailureWithoutAColoIsNotColo) {
  EXPECT_EQ(scope({failing("us", ""), ok("us", "EWR"), ok("eu", "FRA")}), v1::SCOPE_PROBE);
}

TEST(OutageScope, ALoneRegionOnItsOwnColoIsRegion) {
  // No evidence beyond one region: the colo and the region cannot be told apart.
  EXPECT_EQ(scope({failing("us", "IAD"), ok("eu", "FRA"), ok("ap", "SIN")}), v1::SCOPE_REGION);
}

TEST(OutageScope, GlobalWinsOverColo) {
  EXPECT_EQ(scope({failing("us", "FRA"), failing("eu", "FRA"), ok("ap", "SIN")}), v1::SCOPE_GLOBAL);
}

TEST(IntermittentScope, OneProbeTwoRegionsOneColoAndAQuorum) {
  EXPECT_EQ(intermittent_scope({1, 1, true}, 2), v1::SCOPE_PROBE);
  EXPECT_EQ(intermittent_scope({3, 3, false}, 2), v1::SCOPE_GLOBAL);
  EXPECT_EQ(intermittent_scope({2, 2, true}, 3), v1::SCOPE_COLO);
  EXPECT_EQ(intermittent_scope({2, 2, false}, 3), v1::SCOPE_REGION);
  EXPECT_EQ(intermittent_scope({2, 1, true}, 2), v1::SCOPE_REGION);  // one region: no colo evidence
}

}  // namespace
}  // namespace vantage::correlation
