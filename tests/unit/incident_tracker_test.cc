// The incident tracker (coordinator/incident_tracker.h) on fake storage and a
// fake clock: results in, incidents and events stored and announced; the
// database down or slow; a restart that restores and replays.
//
// The scenario is correlation.md's "two failures in one region": us, eu and
// ap check every minute; eu fails at 0 s (us and ap answer the re-check at
// 1 s), fails again at 60 s (a region outage opens) and succeeds at 120 s and
// 180 s (it resolves). Each minute's results reach the tracker as one commit,
// and the test waits for the tracker to take each before the next, so every
// run hands the correlator the same batches.

#include "coordinator/incident_tracker.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <future>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/timer.h"
#include "common/proto_time.h"
#include "coordinator/ingest.h"
#include "tests/support/fake_store.h"
#include "tests/support/process.h"

namespace vantage::coordinator {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using storage::StorageError;
using testing::StorageFaults;
using Duration = std::chrono::milliseconds;

constexpr int64_t kCheck = 7;
const auto kT0 = std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000));

const storage::ProbeRecord kUs{1, "us-1", "us", 0};
const storage::ProbeRecord kEu{2, "eu-1", "eu", 0};
const storage::ProbeRecord kAp{3, "ap-1", "ap", 0};

std::string colo_of(const storage::ProbeRecord& p) {
  return p.region == "us" ? "IAD" : p.region == "eu" ? "FRA" : "SIN";
}

// "opened region 60s": what a timeline says, with times from kT0.
std::string describe(const v1::IncidentEvent& e) {
  const auto at = std::chrono::duration_cast<std::chrono::seconds>(from_timestamp(e.time()) - kT0).count();
  const char* type = e.type() == v1::INCIDENT_EVENT_TYPE_OPENED     ? "opened"
                     : e.type() == v1::INCIDENT_EVENT_TYPE_RESOLVED ? "resolved"
                                                                    : "other";
  const char* scope = e.scope() == v1::SCOPE_REGION ? "region" : e.scope() == v1::SCOPE_GLOBAL ? "global" : "other";
  return fmt::format("{} {} {}s", type, scope, at);
}
std::vector<std::string> describe(const std::vector<v1::IncidentEvent>& events) {
  std::vector<std::string> out;
  for (const auto& e : events) out.push_back(describe(e));
  return out;
}

// The incident id the correlator derives: "{check}-{unix ms of the first failure}".
std::string incident_id_at(Duration first_failure) {
  return fmt::format("{}-{}", kCheck,
                     std::chrono::duration_cast<std::chrono::milliseconds>((kT0 + first_failure).time_since_epoch())
                         .count());
}

struct TrackerTest : ::testing::Test {
  struct Recheck {
    int64_t check_id;
    std::vector<std::string> regions;
  };

  // A tracker on the fixture's storage; a restart is stop() then start() again.
  void start() {
    IncidentTrackerOptions options;
    options.tick = 1s;
    options.replay = replay;
    options.on_events_stored = [this](const std::vector<v1::IncidentEvent>& events,
                                      const std::map<std::string, v1::Incident>&) {
      const auto stored = incidents.events();
      std::lock_guard lock(mu);
      for (const auto& e : events) {
        const bool saved = e.event_id() > 0 && static_cast<size_t>(e.event_id()) <= stored.size() &&
                           describe(stored[e.event_id() - 1]) == describe(e);
        if (!saved) ++announced_unsaved;
        announced.push_back(e);
      }
    };
    tracker = std::make_unique<IncidentTracker>(
        incidents, results, metrics, timers, options,
        [this](int64_t check_id, const std::vector<std::string>& regions, const std::string&, const std::string&) {
          std::lock_guard lock(mu);
          rechecks.push_back({check_id, regions});
          return regions.size();
        });
    v1::Check check;
    check.set_id(kCheck);
    check.set_name("shop");
    check.mutable_interval()->set_seconds(60);
    tracker->set_checks({check});
    tracker->start();
  }

  // Waits until the tracker has taken every result handed to it, then stops
  // it: its last round and last save are done.
  void stop() {
    ASSERT_TRUE(settled());
    tracker->stop();
    tracker.reset();
  }

  // One commit at `at`: the probes' results, stored, then handed over as
  // ingest does. `failing` fail with a 520; `rechecks` answer a re-check.
  void commit(Duration at, std::vector<storage::ProbeRecord> ok, std::vector<storage::ProbeRecord> failing = {},
              bool rechecks = false) {
    hand_over(at, std::move(ok), std::move(failing), rechecks);
    ASSERT_TRUE(settled());
  }
  // The same without waiting for the tracker to take it.
  void hand_over(Duration at, std::vector<storage::ProbeRecord> ok, std::vector<storage::ProbeRecord> failing = {},
                 bool rechecks = false) {
    const auto when = kT0 + at;
    if (when > clock.now()) clock.advance(when - clock.now());
    std::vector<storage::ResultBatch> batches;
    for (const auto* group : {&ok, &failing}) {
      const bool failed = group == &failing;
      for (const auto& probe : *group) {
        v1::CheckResult r;
        r.set_sequence(++sequences[probe.key]);
        r.set_check_id(kCheck);
        *r.mutable_start_time() = to_timestamp(when);
        if (rechecks) r.set_recheck_request_id("recheck");
        auto* edge = r.mutable_edge();
        edge->mutable_edge()->set_colo(colo_of(probe));
        edge->set_failure_class(failed ? v1::FAILURE_CLASS_EDGE_ERROR : v1::FAILURE_CLASS_OK);
        if (failed) {
          edge->mutable_edge()->set_edge_code(520);
          edge->mutable_edge()->set_ray_id(fmt::format("{:016x}", 4096 + r.sequence()));
          r.mutable_diagnosis()->set_cause_id("edge_520");
        }
        batches.push_back({probe, {r}, 0});
      }
    }
    handed_over += batches.size();
    if (ingest) {  // each probe's batch through ingest, which hands it over once stored
      for (auto& b : batches) ASSERT_TRUE(ingest->submit(std::move(b), [] { return false; }).ok);
      return;
    }
    std::vector<const storage::ResultBatch*> committed;
    for (const auto& b : batches) committed.push_back(&b);
    results.write_results(committed);
    tracker->add(committed);
  }

  // The scenario's minutes.
  void quiet_minute() { commit(-60s, {kUs, kEu, kAp}); }
  void until_opened() {
    commit(0s, {kUs, kAp}, {kEu});
    commit(1s, {kUs, kAp}, {}, /*rechecks=*/true);
    commit(60s, {kUs, kAp}, {kEu});
  }
  void until_resolved() {
    commit(120s, {kUs, kEu, kAp});
    commit(180s, {kUs, kEu, kAp});
  }

  // A region outage opens and resolves while every save fails: the tracker
  // has tried (and failed) at least twice, and nothing is stored yet.
  void outage_while_the_database_is_down() {
    incidents.faults.fail_next(StorageFaults::kForever, StorageError::Kind::kUnavailable);
    ASSERT_NO_FATAL_FAILURE(quiet_minute());
    ASSERT_NO_FATAL_FAILURE(until_opened());
    ASSERT_NO_FATAL_FAILURE(until_resolved());
    ASSERT_TRUE(testing::eventually([&] { return incidents.faults.failed() >= 2; }, 10s));
    EXPECT_THAT(incidents.events(), IsEmpty());
  }

  // Results the tracker's thread has taken (counted before it correlates
  // them), summed over every label.
  size_t taken() {
    double sum = 0;
    for (const auto& family : metrics.check_results.Collect()) {
      for (const auto& m : family.metric) sum += m.counter.value;
    }
    return static_cast<size_t>(sum);
  }
  bool settled() {
    return testing::eventually([&] { return taken() == handed_over; }, 10s);
  }
  std::vector<v1::IncidentEvent> heard() {
    std::lock_guard lock(mu);
    return announced;
  }
  double open_region_outages() {
    return metrics.incidents_open.Add({{"kind", "outage"}, {"scope", "region"}}).Value();
  }

  void TearDown() override {
    incidents.faults.release();
    results.faults.stop_failing();
    if (ingest) ingest->stop();
    if (tracker) tracker->stop();
  }

  FakeClock clock{kT0 - 2min};
  // The tracker's rounds wait on it; commits move `clock` alone (a round
  // starts with each commit), timers.advance also wakes the tracker for a tick.
  FakeTimers timers{clock};
  testing::FakeIncidentStore incidents;
  testing::FakeResultStore results;
  CoordinatorMetrics metrics{std::make_shared<prometheus::Registry>()};
  std::unique_ptr<IncidentTracker> tracker;
  std::unique_ptr<Ingest> ingest;          // when set, results go through it
  std::chrono::minutes replay{65};         // of results at start(), the default
  std::map<int32_t, uint64_t> sequences;  // per probe key
  size_t handed_over = 0;

  std::mutex mu;
  std::vector<v1::IncidentEvent> announced;  // by on_events_stored
  int announced_unsaved = 0;                 // announced events not (yet) in storage
  std::vector<Recheck> rechecks;
};

TEST_F(TrackerTest, StoresIncidentsAndEventsAndAnnouncesThemAfterTheSave) {
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_NO_FATAL_FAILURE(quiet_minute());
  ASSERT_NO_FATAL_FAILURE(until_opened());
  ASSERT_TRUE(testing::eventually([&] { return !incidents.events().empty(); }, 10s));
  ASSERT_THAT(describe(incidents.events()), ElementsAre("opened region 60s"));
  const auto stored = incidents.incidents();
  ASSERT_EQ(stored.size(), 1u);
  const auto& incident = stored.begin()->second;
  EXPECT_EQ(incident.id(), incident_id_at(0s));
  EXPECT_EQ(incident.state(), v1::INCIDENT_STATE_OPEN);
  EXPECT_EQ(incident.scope(), v1::SCOPE_REGION);
  EXPECT_THAT(incident.affected_regions(), ElementsAre("eu"));
  EXPECT_EQ(incidents.events()[0].incident_id(), incident.id());
  ASSERT_TRUE(testing::eventually([&] { return heard().size() == 1; }, 10s));
  EXPECT_EQ(heard()[0].event_id(), incidents.events()[0].event_id());
  EXPECT_TRUE(testing::eventually([&] { return open_region_outages() == 1; }, 10s));
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(rechecks.size(), 1u) << "eu's first failure asks the other regions";
    EXPECT_EQ(rechecks[0].check_id, kCheck);
    EXPECT_THAT(rechecks[0].regions, ElementsAre("ap", "us"));
  }

  ASSERT_NO_FATAL_FAILURE(until_resolved());
  ASSERT_NO_FATAL_FAILURE(stop());
  EXPECT_THAT(describe(incidents.events()), ElementsAre("opened region 60s", "resolved region 180s"));
  EXPECT_EQ(incidents.incidents().at(incident_id_at(0s)).state(), v1::INCIDENT_STATE_RESOLVED);
  EXPECT_THAT(describe(heard()), ElementsAre("opened region 60s", "resolved region 180s"));
  EXPECT_EQ(announced_unsaved, 0);
  EXPECT_EQ(open_region_outages(), 0);
}

TEST_F(TrackerTest, WhileTheDatabaseIsDownEventsWaitAndAreSavedOnceItIsBack) {
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_NO_FATAL_FAILURE(outage_while_the_database_is_down());
  EXPECT_THAT(heard(), IsEmpty()) << "nothing is announced before it is stored";

  incidents.faults.stop_failing();
  // The tracker saves again on its next round, which the next commit starts.
  ASSERT_NO_FATAL_FAILURE(commit(240s, {kUs, kEu, kAp}));
  ASSERT_TRUE(testing::eventually([&] { return heard().size() == 2; }, 10s));
  ASSERT_NO_FATAL_FAILURE(commit(300s, {kUs, kEu, kAp}));
  ASSERT_NO_FATAL_FAILURE(stop());
  EXPECT_THAT(describe(incidents.events()), ElementsAre("opened region 60s", "resolved region 180s"));
  EXPECT_THAT(describe(heard()), ElementsAre("opened region 60s", "resolved region 180s"));
  EXPECT_EQ(announced_unsaved, 0);
  EXPECT_EQ(incidents.incidents().at(incident_id_at(0s)).state(), v1::INCIDENT_STATE_RESOLVED);
}

TEST_F(TrackerTest, OnceTheDatabaseIsBackTheNextTickSavesWithoutANewCommit) {
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_NO_FATAL_FAILURE(outage_while_the_database_is_down());

  incidents.faults.stop_failing();
  // One tick (options.tick, 1 s) of simulated time: a round, no result in it.
  timers.advance(1s);
  ASSERT_TRUE(testing::eventually([&] { return heard().size() == 2; }, 10s));
  EXPECT_THAT(describe(incidents.events()), ElementsAre("opened region 60s", "resolved region 180s"));
  EXPECT_EQ(announced_unsaved, 0);
  ASSERT_NO_FATAL_FAILURE(stop());
}

TEST_F(TrackerTest, ASlowSaveDoesNotHoldUpResultsHandedOver) {
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_NO_FATAL_FAILURE(quiet_minute());
  incidents.faults.hold_next(1);
  // The opening's save stalls on the tracker's thread.
  ASSERT_NO_FATAL_FAILURE(until_opened());
  ASSERT_TRUE(testing::eventually([&] { return incidents.faults.held() == 1; }, 10s));
  hand_over(90s, {kUs, kAp});  // returns: add() does not wait for the save
  EXPECT_THAT(heard(), IsEmpty());
  EXPECT_LT(taken(), handed_over) << "taken while its thread is in the save";

  incidents.faults.release();
  ASSERT_TRUE(settled());
  ASSERT_TRUE(testing::eventually([&] { return heard().size() == 1; }, 10s));
  ASSERT_NO_FATAL_FAILURE(until_resolved());
  ASSERT_NO_FATAL_FAILURE(stop());
  EXPECT_THAT(describe(incidents.events()), ElementsAre("opened region 60s", "resolved region 180s"));
  EXPECT_EQ(announced_unsaved, 0);
}

TEST_F(TrackerTest, ARestartContinuesTheStoredOpenIncidentWithoutRepeatingIt) {
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_NO_FATAL_FAILURE(quiet_minute());
  ASSERT_NO_FATAL_FAILURE(until_opened());
  ASSERT_NO_FATAL_FAILURE(stop());
  ASSERT_THAT(describe(incidents.events()), ElementsAre("opened region 60s"));

  clock.advance(30s);
  ASSERT_NO_FATAL_FAILURE(start());  // restores the open outage, replays the results
  EXPECT_THAT(describe(incidents.events()), ElementsAre("opened region 60s")) << "not opened again";
  EXPECT_THAT(describe(heard()), ElementsAre("opened region 60s")) << "the restart announces nothing new";
  EXPECT_EQ(open_region_outages(), 1);
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(rechecks.size(), 1u) << "a replay asks no re-checks";
  }

  ASSERT_NO_FATAL_FAILURE(until_resolved());
  ASSERT_NO_FATAL_FAILURE(stop());
  EXPECT_THAT(describe(incidents.events()), ElementsAre("opened region 60s", "resolved region 180s"));
  for (const auto& e : incidents.events()) EXPECT_EQ(e.incident_id(), incident_id_at(0s));
  EXPECT_EQ(incidents.incidents().size(), 1u);
  EXPECT_EQ(announced_unsaved, 0);
}

// The replay covers 60 s (eu's last failure) but not the first failure at 0
// s: only the restored incident knows an outage is open, and resolves it.
TEST_F(TrackerTest, ARestartRestoresWhatItsReplayNoLongerCovers) {
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_NO_FATAL_FAILURE(quiet_minute());
  ASSERT_NO_FATAL_FAILURE(until_opened());
  ASSERT_NO_FATAL_FAILURE(stop());

  clock.advance(30s);
  replay = 1min;
  ASSERT_NO_FATAL_FAILURE(start());
  EXPECT_EQ(open_region_outages(), 1);
  ASSERT_NO_FATAL_FAILURE(until_resolved());
  ASSERT_NO_FATAL_FAILURE(stop());
  ASSERT_THAT(describe(incidents.events()), ElementsAre("opened region 60s", "resolved region 180s"));
  EXPECT_EQ(incidents.events()[1].incident_id(), incident_id_at(0s));
  EXPECT_EQ(incidents.incidents().size(), 1u);
}

TEST_F(TrackerTest, ARestartDerivesTheEventsThePreviousRunCouldNotSaveOnce) {
  ASSERT_NO_FATAL_FAILURE(start());
  incidents.faults.fail_next(StorageFaults::kForever, StorageError::Kind::kUnavailable);
  ASSERT_NO_FATAL_FAILURE(quiet_minute());
  ASSERT_NO_FATAL_FAILURE(until_opened());
  ASSERT_NO_FATAL_FAILURE(stop());  // its last save fails too: the events are lost with it
  ASSERT_THAT(incidents.events(), IsEmpty());

  incidents.faults.stop_failing();
  clock.advance(30s);
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_THAT(describe(incidents.events()), ElementsAre("opened region 60s"));
  EXPECT_EQ(incidents.events()[0].incident_id(), incident_id_at(0s)) << "the id the live run derived";
  EXPECT_THAT(describe(heard()), ElementsAre("opened region 60s"));
  ASSERT_NO_FATAL_FAILURE(stop());

  // Another restart finds it stored and stores nothing more.
  ASSERT_NO_FATAL_FAILURE(start());
  ASSERT_NO_FATAL_FAILURE(stop());
  EXPECT_THAT(describe(incidents.events()), ElementsAre("opened region 60s"));
  EXPECT_THAT(describe(heard()), ElementsAre("opened region 60s"));
  EXPECT_EQ(announced_unsaved, 0);
}

// Wired as the coordinator wires them: ingest hands the tracker a commit's
// results after the commit, so an incident never rests on an unstored result.
TEST_F(TrackerTest, ResultsReachTheTrackerThroughIngestOnlyOnceStored) {
  ASSERT_NO_FATAL_FAILURE(start());
  IngestOptions options;
  options.writers = 1;
  options.retry_initial = 1ms;
  options.retry_max = 4ms;
  ingest = std::make_unique<Ingest>(results, metrics, options,
                                    [this](const std::vector<const storage::ResultBatch*>& b) { tracker->add(b); });
  results.faults.fail_next(StorageFaults::kForever, StorageError::Kind::kUnavailable);
  auto first = std::async(std::launch::async, [this] { quiet_minute(); });
  const bool retried = testing::eventually([&] { return results.faults.failed() >= 3; }, 10s);
  const size_t taken_while_down = taken();
  results.faults.stop_failing();  // before any assertion: `first` must end
  first.get();
  ASSERT_TRUE(retried);
  EXPECT_EQ(taken_while_down, 0u) << "the tracker saw a result that is not stored";
  ASSERT_TRUE(settled());
  EXPECT_EQ(taken(), 3u);

  ASSERT_NO_FATAL_FAILURE(until_opened());
  ASSERT_NO_FATAL_FAILURE(until_resolved());
  ingest->stop();
  ASSERT_NO_FATAL_FAILURE(stop());
  EXPECT_THAT(describe(incidents.events()), ElementsAre("opened region 60s", "resolved region 180s"));
  EXPECT_EQ(results.size(), 17u);
}

TEST_F(TrackerTest, StartFailsWhileTheDatabaseIsDown) {
  incidents.faults.fail_next(1, StorageError::Kind::kUnavailable);
  try {
    start();
    FAIL() << "started without its incidents";
  } catch (const StorageError& e) {
    EXPECT_EQ(e.kind(), StorageError::Kind::kUnavailable);
  }
  tracker.reset();
  ASSERT_NO_FATAL_FAILURE(start());  // once the database is back
  ASSERT_NO_FATAL_FAILURE(stop());
}

}  // namespace
}  // namespace vantage::coordinator
