// Recurrence alone (coordinator/correlation/recurrence.h): the episodes of
// the recurring window, what an intermittent incident counts, when it is
// due, and the opening counts behind recurrence_24h and flapping.

#include "coordinator/correlation/recurrence.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "common/diagnosis.h"

namespace vantage::correlation {
namespace {

using namespace std::chrono_literals;

const TimePoint kT0 = TimePoint(std::chrono::seconds(1'700'000'000));

Episode episode(std::chrono::minutes at, std::string probe, std::string region, std::string colo = "FRA",
                uint32_t code = 520, std::optional<v1::FailureClass> origin = std::nullopt) {
  Episode e;
  e.first = e.last = kT0 + at;
  e.failures = 1;
  e.probe = std::move(probe);
  e.region = std::move(region);
  e.failure.time = e.first;
  e.failure.failure_class = v1::FAILURE_CLASS_EDGE_ERROR;
  e.failure.edge_code = code;
  e.failure.colo = std::move(colo);
  e.failure.origin_class = origin;
  e.failure.cause_id = fmt::format("edge_{}", code);
  return e;
}

TEST(Episodes, KeptInOrderWithinTheWindowOfTheNewest) {
  std::vector<Episode> episodes;
  remember_episode(episodes, episode(20min, "us-1", "us"), 1h);
  remember_episode(episodes, episode(0min, "eu-1", "eu"), 1h);  // late: sorted in
  ASSERT_EQ(episodes.size(), 2u);
  EXPECT_EQ(episodes[0].probe, "eu-1");
  remember_episode(episodes, episode(61min, "ap-1", "ap"), 1h);
  ASSERT_EQ(episodes.size(), 2u);  // the one at 0 left the window
  EXPECT_EQ(episodes[0].probe, "us-1");
}

TEST(Episodes, BoundedWhateverTheirNumber) {
  std::vector<Episode> episodes;
  for (int i = 0; i < 100; ++i) remember_episode(episodes, episode(std::chrono::minutes(0), "p", "r"), 1h);
  EXPECT_EQ(episodes.size(), kMaxEpisodes);
}

TEST(EpisodeOf, TheProbesRunAndLastFailure) {
  ProbeState p;
  p.id = "eu-1";
  p.region = "eu";
  p.episode_start = kT0;
  p.fail_run = 2;
  p.last_failure.time = kT0 + 60s;
  const Episode e = episode_of(p);
  EXPECT_EQ(e.first, kT0);
  EXPECT_EQ(e.last, kT0 + 60s);
  EXPECT_EQ(e.failures, 2u);
  EXPECT_EQ(e.probe, "eu-1");
}

TEST(Fold, CountsEpisodesPlacesAndOriginLegs) {
  Incident inc;
  fold(inc, episode(0min, "eu-1", "eu", "FRA", 520, v1::FAILURE_CLASS_OK));
  fold(inc, episode(20min, "us-1", "us", "", 520, v1::FAILURE_CLASS_CONNECT_REFUSED));
  fold(inc, episode(40min, "eu-1", "eu", "FRA", 522));
  EXPECT_EQ(inc.episodes, 3u);
  EXPECT_EQ(inc.failures, 3u);
  EXPECT_EQ(inc.regions, (std::vector<std::string>{"eu", "us"}));
  EXPECT_EQ(inc.probes, (std::vector<std::string>{"eu-1", "us-1"}));
  EXPECT_EQ(inc.colos, std::vector<std::string>{"FRA"});
  EXPECT_EQ(inc.colo_tally.items, (std::vector<std::pair<std::string, uint32_t>>{{"FRA", 2}, {"unknown", 1}}));
  EXPECT_EQ(inc.origin_ok, 1u);
  EXPECT_EQ(inc.origin_failed, 1u);
  EXPECT_EQ(inc.origin_absent, 1u);
  ASSERT_EQ(inc.cause_tally.size(), 2u);
  EXPECT_EQ(inc.cause_tally[0].cause_id, "edge_520");
  EXPECT_EQ(inc.cause_tally[0].count, 2u);
}

TEST(Spread, OneKnownColoOnlyWhenEveryEpisodeNamedIt) {
  Incident inc;
  fold(inc, episode(0min, "eu-1", "eu", "FRA"));
  fold(inc, episode(20min, "us-1", "us", "FRA"));
  EXPECT_TRUE(spread_of(inc).one_known_colo);
  EXPECT_EQ(spread_of(inc).regions, 2u);
  fold(inc, episode(40min, "ap-1", "ap", ""));
  EXPECT_FALSE(spread_of(inc).one_known_colo);
}

TEST(SeedTallies, ARestoredKeepAliveRaceStaysOne) {
  Incident inc;
  inc.kind = v1::INCIDENT_KIND_INTERMITTENT;
  inc.failures = 3;
  inc.dominant_code = 520;
  inc.cause_id = std::string(KeepAliveRace::cause_id);
  seed_tallies(inc);
  EXPECT_EQ(inc.episodes, 3u);
  EXPECT_EQ(inc.origin_ok, 1u);
  EXPECT_TRUE(inc.cause_tally.empty());
}

TEST(Due, AWholeWindowAfterTheLastIsolatedFailure) {
  CheckState cs;
  Incident inc;
  inc.confirm = kT0 + 40min;
  EXPECT_EQ(intermittent_due(cs, inc), kT0 + 100min);
  cs.last_isolated = kT0 + 50min;
  EXPECT_EQ(intermittent_due(cs, inc), kT0 + 110min);
}

TEST(Due, AnUnconfirmedEpisodeStartedBeforeItIsPending) {
  CheckState cs;
  auto& p = cs.probes.emplace_back();
  p.has_latest = true;
  p.latest = kT0 + 99min;
  p.failing = true;
  p.episode_start = kT0 + 99min;
  EXPECT_TRUE(episode_pending(cs, kT0 + 100min, kT0 + 100min));
  p.episode_confirmed = true;  // part of an outage: not isolated
  EXPECT_FALSE(episode_pending(cs, kT0 + 100min, kT0 + 100min));
}

TEST(Starts, CountWithin24hAndOutagesWithinTheFlappingWindow) {
  std::vector<Start> starts;
  Settings settings;
  record_start(starts, {kT0, v1::INCIDENT_KIND_OUTAGE}, settings);
  record_start(starts, {kT0 + 1h, v1::INCIDENT_KIND_INTERMITTENT}, settings);
  record_start(starts, {kT0 + 2h, v1::INCIDENT_KIND_OUTAGE}, settings);
  const auto counts = record_start(starts, {kT0 + 25h, v1::INCIDENT_KIND_OUTAGE}, settings);
  EXPECT_EQ(counts.within_24h, 3u);  // the one at 0 is older than 24 h
  EXPECT_EQ(counts.outages_flapping, 2u);
  EXPECT_EQ(starts.size(), 3u);  // and forgotten
}

TEST(Flapping, TheFourthOutageWithin24hFlaps) {
  Settings settings;
  EXPECT_FALSE(is_flapping(3, settings));
  EXPECT_TRUE(is_flapping(4, settings));
}

TEST(Flapping, EndsWhenTheOutageThatKeptTheCountAboveLeavesTheWindow) {
  Settings settings;  // flapping above 3 outages in 24 h
  std::vector<Start> starts;
  for (auto at : {0min, 10min, 20min, 30min}) starts.push_back({kT0 + at, v1::INCIDENT_KIND_OUTAGE});
  starts.push_back({kT0 + 40min, v1::INCIDENT_KIND_INTERMITTENT});  // not an outage
  EXPECT_EQ(flapping_ended(starts, settings, kT0 + 24h), std::nullopt);
  EXPECT_EQ(flapping_ended(starts, settings, kT0 + 24h + 1s), kT0 + 24h);
  starts.erase(starts.begin());  // three outages: not above the threshold
  EXPECT_EQ(flapping_ended(starts, settings, kT0 + 1h), kT0 + 1h);
}

}  // namespace
}  // namespace vantage::correlation
