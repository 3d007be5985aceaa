// The fleet-phased schedule's arithmetic (coordinator/phases.h) and how a
// probe's phase changes ride on its diffs (attach_phases).
#include "coordinator/phases.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "common/check_config.h"
#include "coordinator/probe_sessions.h"

namespace vantage::coordinator {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

v1::Check check(int64_t id, milliseconds interval, std::vector<std::string> regions = {}) {
  v1::Check c;
  c.set_id(id);
  c.set_version(1);
  c.set_name("c" + std::to_string(id));
  *c.mutable_interval() = to_duration(interval);
  for (auto& r : regions) c.add_regions(r);
  return c;
}

// The gaps between consecutive turns round the interval.
std::vector<milliseconds> gaps(std::vector<milliseconds> offsets, milliseconds interval) {
  std::sort(offsets.begin(), offsets.end());
  std::vector<milliseconds> out;
  for (size_t i = 0; i < offsets.size(); ++i) {
    const auto next = i + 1 < offsets.size() ? offsets[i + 1] : offsets[0] + interval;
    out.push_back(next - offsets[i]);
  }
  return out;
}

TEST(Phases, OneToFiveProbesTakeTurnsEvenlyWithinTheInterval) {
  const std::vector<milliseconds> intervals = {seconds(60), seconds(10), milliseconds(1000), seconds(86'400)};
  for (const auto interval : intervals) {
    for (size_t p = 1; p <= 5; ++p) {
      for (int64_t id : {1, 2, 77, 1'000'003}) {
        const auto offsets = spread_offsets(id, interval, p);
        ASSERT_EQ(offsets.size(), p);
        for (auto o : offsets) {
          EXPECT_GE(o, milliseconds(0));
          EXPECT_LT(o, interval);
        }
        EXPECT_EQ(offsets[0], phase_base(id, interval)) << "the first probe at the check's base";
        for (auto gap : gaps(offsets, interval)) {
          // interval / P to the millisecond (1000 ms / 3: 333 or 334).
          EXPECT_LE((gap - interval / p).count(), 1) << "interval " << interval.count() << " P " << p;
          EXPECT_GE((gap - interval / p).count(), 0) << "interval " << interval.count() << " P " << p;
        }
      }
    }
  }
  EXPECT_EQ(gaps(spread_offsets(9, seconds(60), 3), seconds(60)),
            (std::vector<milliseconds>{seconds(20), seconds(20), seconds(20)}));
}

TEST(Phases, NoProbeOrNoIntervalHasNoOffset) {
  EXPECT_TRUE(spread_offsets(1, seconds(60), 0).empty());
  EXPECT_TRUE(spread_offsets(1, milliseconds(0), 3).empty());
  EXPECT_EQ(phase_base(1, milliseconds(0)), milliseconds(0));
}

TEST(Phases, TheBaseIsAFixedFunctionOfTheCheckAndSpreadsChecksOverTheInterval) {
  EXPECT_EQ(phase_base(42, seconds(60)), phase_base(42, seconds(60)));
  // 1,000 checks of one minute: their bases are not bunched (each tenth of
  // the minute holds between 5 % and 15 % of them).
  std::vector<int> tenths(10);
  for (int64_t id = 1; id <= 1000; ++id) ++tenths[phase_base(id, seconds(60)) / seconds(6)];
  for (int n : tenths) {
    EXPECT_GT(n, 50);
    EXPECT_LT(n, 150);
  }
}

TEST(Phases, ThePlanIsDeterministicAndFollowsRegions) {
  const std::vector<v1::Check> checks = {check(1, seconds(60)), check(2, seconds(30), {"eu", "ap"}),
                                         check(3, seconds(60), {"us"})};
  const std::map<std::string, std::string> fleet = {{"us-1", "us"}, {"eu-1", "eu"}, {"ap-1", "ap"}, {"eu-2", "eu"}};
  const auto plan = plan_phases(checks, fleet);
  EXPECT_EQ(plan, plan_phases(checks, fleet)) << "the same fleet, the same phases";
  // Check 1 everywhere: four probes in id order (ap-1, eu-1, eu-2, us-1).
  const auto four = spread_offsets(1, seconds(60), 4);
  EXPECT_EQ(plan.at("ap-1").at(1), four[0]);
  EXPECT_EQ(plan.at("eu-1").at(1), four[1]);
  EXPECT_EQ(plan.at("eu-2").at(1), four[2]);
  EXPECT_EQ(plan.at("us-1").at(1), four[3]);
  // Check 2 in eu and ap: three probes; two in one region take turns too.
  const auto three = spread_offsets(2, seconds(30), 3);
  EXPECT_EQ(plan.at("ap-1").at(2), three[0]);
  EXPECT_EQ(plan.at("eu-1").at(2), three[1]);
  EXPECT_EQ(plan.at("eu-2").at(2), three[2]);
  EXPECT_FALSE(plan.at("us-1").contains(2));
  // Check 3 in us alone: its base.
  EXPECT_EQ(plan.at("us-1").at(3), phase_base(3, seconds(60)));
  EXPECT_FALSE(plan.at("eu-1").contains(3));
}

TEST(Phases, JoinAndLeaveKeepTheTurnsEven) {
  std::map<std::string, std::string> fleet;
  const std::vector<v1::Check> checks = {check(5, seconds(60))};
  for (const auto* id : {"p3", "p1", "p5", "p2", "p4"}) {
    fleet[id] = "r";
    const auto plan = plan_phases(checks, fleet);
    std::vector<milliseconds> offsets;
    for (const auto& [probe, phases] : plan) offsets.push_back(phases.at(5));
    for (auto gap : gaps(offsets, seconds(60))) EXPECT_EQ(gap, seconds(60) / fleet.size()) << fleet.size();
  }
  for (const auto* id : {"p2", "p5", "p1"}) {
    fleet.erase(id);
    const auto plan = plan_phases(checks, fleet);
    std::vector<milliseconds> offsets;
    for (const auto& [probe, phases] : plan) offsets.push_back(phases.at(5));
    std::set<milliseconds> distinct(offsets.begin(), offsets.end());
    EXPECT_EQ(distinct.size(), fleet.size());
    for (auto gap : gaps(offsets, seconds(60))) EXPECT_EQ(gap, seconds(60) / fleet.size()) << fleet.size();
  }
}

TEST(Phases, ThousandsOfChecksAndAHundredProbesArePlannedAtOnce) {
  std::vector<v1::Check> checks;
  for (int64_t id = 1; id <= 10'000; ++id) checks.push_back(check(id, seconds(60), {id % 2 ? "eu" : "us"}));
  std::map<std::string, std::string> fleet;
  for (int i = 0; i < 100; ++i) fleet["p" + std::to_string(i)] = i % 2 ? "eu" : "us";
  const auto plan = plan_phases(checks, fleet);
  ASSERT_EQ(plan.size(), 100u);
  for (const auto& [probe, phases] : plan) EXPECT_EQ(phases.size(), 5'000u) << probe;
}

// --- The phases in a probe's diffs ----------------------------------------

std::map<int64_t, milliseconds> phases_of(const v1::CheckAssignmentDiff& diff) {
  std::map<int64_t, milliseconds> out;
  for (const auto& p : diff.phases()) out[p.check_id()] = to_millis(p.offset());
  return out;
}

TEST(PhaseDiffs, AChangedFleetIsOneDiffOfPhasesAloneWithOnlyWhatChanged) {
  const ProbePhases had = {{1, seconds(1)}, {2, seconds(2)}, {3, seconds(3)}};
  const ProbePhases now = {{1, seconds(1)}, {2, seconds(32)}, {3, seconds(33)}};
  std::vector<v1::CoordinatorMessage> messages;
  attach_phases(messages, had, now);
  ASSERT_EQ(messages.size(), 1u);
  const auto& diff = messages[0].assignment_diff();
  EXPECT_EQ(diff.added_size() + diff.updated_size() + diff.removed_check_ids_size(), 0);
  EXPECT_EQ(phases_of(diff), (std::map<int64_t, milliseconds>{{2, seconds(32)}, {3, seconds(33)}}));

  messages.clear();
  attach_phases(messages, now, now);
  EXPECT_TRUE(messages.empty()) << "nothing changed, nothing sent";
}

TEST(PhaseDiffs, AddedAndUpdatedChecksCarryTheirPhaseInTheirOwnPart) {
  // 1,200 added checks (three parts), one updated; check 7 unchanged but phased anew.
  std::vector<v1::Check> now_checks = {check(2, seconds(60)), check(7, seconds(60))};
  for (int64_t id = 10; id < 1210; ++id) now_checks.push_back(check(id, seconds(60)));
  now_checks[0].set_version(2);
  auto messages = diff_messages({{2, 1}, {7, 1}}, now_checks);
  ASSERT_EQ(messages.size(), 3u);
  ProbePhases now;
  for (const auto& c : now_checks) now[c.id()] = milliseconds(c.id());
  attach_phases(messages, {{2, milliseconds(2)}, {7, seconds(7)}}, now);
  ASSERT_EQ(messages.size(), 3u) << "no message of its own for the phases";
  size_t phases = 0;
  for (const auto& m : messages) {
    const auto& diff = m.assignment_diff();
    auto carried = phases_of(diff);
    for (const auto& c : diff.added()) EXPECT_EQ(carried[c.id()], milliseconds(c.id())) << c.id();
    for (const auto& c : diff.updated()) EXPECT_EQ(carried[c.id()], milliseconds(c.id())) << "updated: sent again";
    phases += carried.size();
  }
  EXPECT_EQ(phases, 1202u) << "1,200 added, 1 updated, and 7's new one";
  EXPECT_EQ(phases_of(messages.back().assignment_diff()).at(7), milliseconds(7)) << "in the last part";
}

}  // namespace
}  // namespace vantage::coordinator
