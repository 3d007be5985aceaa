// Incidents end to end (correlation.md): three probes in three regions, each
// reaching the site through its own colo of the lab's fake Cloudflare edge,
// the real coordinator and PostgreSQL. Faults are switched on and off at the
// lab origin while everything runs, per colo or for every edge request.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <pqxx/pqxx>
#include <thread>

#include "tests/e2e/stack.h"
#include "tests/support/postgres.h"
#include "tests/support/process.h"
#include "vantage/v1/types.pb.h"

namespace vantage::testing {
namespace {

using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

[[maybe_unused]] auto* const kPostgres = ::testing::AddGlobalTestEnvironment(new PostgresEnvironment);

struct StoredIncident {
  v1::Incident incident;
  std::vector<v1::IncidentEventType> timeline;  // read in time order, ties by event id
  std::vector<v1::IncidentEvent> events;        // the same, whole
};

std::vector<StoredIncident> incidents(const Stack& stack) {
  pqxx::connection c(stack.database());
  pqxx::read_transaction tx(c);
  std::vector<StoredIncident> out;
  for (const auto& row : tx.exec("SELECT id, detail FROM incidents ORDER BY first_failure_time")) {
    StoredIncident s;
    pqxx::binarystring bytes(row[1]);
    EXPECT_TRUE(s.incident.ParseFromString(bytes.str()));
    for (const auto& e : tx.exec_params("SELECT detail FROM incident_events WHERE incident_id = $1 ORDER BY time, id",
                                        row[0].as<std::string>())) {
      pqxx::binarystring event_bytes(e[0]);
      EXPECT_TRUE(s.events.emplace_back().ParseFromString(event_bytes.str()));
      s.timeline.push_back(s.events.back().type());
    }
    out.push_back(std::move(s));
  }
  return out;
}

template <typename Pred>
bool wait_until(Pred pred, seconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return pred();
}

// One series of the coordinator's /metrics (labels in alphabetical order); -1 when absent.
double metric(const Stack& stack, const std::string& series) {
  return metric_value(http_get(stack.metrics_port(), "/metrics"), series).value_or(-1);
}

double open_incidents(const Stack& stack, const std::string& kind, const std::string& scope) {
  return metric(stack, fmt::format("vantage_incidents_open{{kind=\"{}\",scope=\"{}\"}}", kind, scope));
}

void start_and_wait_for_results(Stack& stack) {
  ASSERT_NO_FATAL_FAILURE(stack.start_coordinator());
  stack.start_probes();
  ASSERT_TRUE(wait_until([&] { return stack.stored(0) > 1 && stack.stored(1) > 1 && stack.stored(2) > 1; },
                         seconds(30)))
      << stack.coordinator().output();
}

bool has(const std::vector<v1::IncidentEventType>& timeline, v1::IncidentEventType type) {
  return std::find(timeline.begin(), timeline.end(), type) != timeline.end();
}

TEST(Incidents, A520InOneColoIsAColoOrRegionOutageThatResolves) {
  Stack stack(edge_stack("{resolve_consecutive: 2}"));
  ASSERT_NO_FATAL_FAILURE(start_and_wait_for_results(stack));
  set_fault(stack, "name=empty-reply&colo=FRA");

  ASSERT_TRUE(wait_until([&] { return !incidents(stack).empty(); }, seconds(30))) << stack.coordinator().output();
  auto found = incidents(stack);
  ASSERT_EQ(found.size(), 1u);
  const auto& opened = found[0].incident;
  EXPECT_EQ(opened.kind(), v1::INCIDENT_KIND_OUTAGE);
  EXPECT_TRUE(opened.scope() == v1::SCOPE_COLO || opened.scope() == v1::SCOPE_REGION) << opened.DebugString();
  EXPECT_EQ(opened.dominant_edge_code(), 520u);
  EXPECT_EQ(std::vector<std::string>(opened.affected_regions().begin(), opened.affected_regions().end()),
            std::vector<std::string>{"eu"});
  EXPECT_EQ(std::vector<std::string>(opened.affected_colos().begin(), opened.affected_colos().end()),
            std::vector<std::string>{"FRA"});
  EXPECT_FALSE(opened.sample_ray_ids().empty());
  EXPECT_FALSE(opened.diagnosis().cause().empty());
  EXPECT_EQ(open_incidents(stack, "outage", opened.scope() == v1::SCOPE_COLO ? "colo" : "region"), 1);
  EXPECT_EQ(metric(stack, "vantage_check_up{check=\"shop\",region=\"eu\"}"), 0);
  EXPECT_EQ(metric(stack, "vantage_check_up{check=\"shop\",region=\"us\"}"), 1);
  EXPECT_GT(metric(stack, "vantage_check_results_total{class=\"edge_error\",colo=\"FRA\",edge_code=\"520\","
                          "region=\"eu\"}"),
            0);
  EXPECT_GE(metric(stack, "vantage_incident_detection_seconds_count"), 1);
  EXPECT_GE(metric(stack, "vantage_incident_events_total{type=\"opened\"}"), 1);

  set_fault(stack, "name=none");
  ASSERT_TRUE(wait_until([&] { return incidents(stack)[0].incident.state() == v1::INCIDENT_STATE_RESOLVED; },
                         seconds(30)));
  found = incidents(stack);
  EXPECT_EQ(found.size(), 1u) << "recovery resolves the incident; it opens no other";
  EXPECT_TRUE(has(found[0].timeline, v1::INCIDENT_EVENT_TYPE_OPENED));
  EXPECT_EQ(found[0].timeline.back(), v1::INCIDENT_EVENT_TYPE_RESOLVED);
  EXPECT_TRUE(wait_until([&] { return open_incidents(stack, "outage", "region") == 0 &&
                                      open_incidents(stack, "outage", "colo") == 0; },
                         seconds(5)));
  EXPECT_EQ(metric(stack, "vantage_check_up{check=\"shop\",region=\"eu\"}"), 1);
  EXPECT_GE(metric(stack, "vantage_incident_events_total{type=\"resolved\"}"), 1);
}

TEST(Incidents, A520EverywhereIsAGlobalOutageThatSurvivesACoordinatorCrash) {
  Stack stack(edge_stack("{resolve_consecutive: 2}"));
  ASSERT_NO_FATAL_FAILURE(start_and_wait_for_results(stack));
  const auto fault_on = Clock::now();
  set_fault(stack, "name=empty-reply");

  ASSERT_TRUE(wait_until([&] { return open_incidents(stack, "outage", "global") == 1; }, seconds(30)))
      << stack.coordinator().output();
  std::printf("Incidents.GlobalOutage: fault on to vantage_incidents_open{scope=\"global\"} = 1: %.1f s (interval 2 s)\n",
              std::chrono::duration<double>(Clock::now() - fault_on).count());
  auto found = incidents(stack);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].incident.scope(), v1::SCOPE_GLOBAL);
  EXPECT_EQ(found[0].incident.affected_regions_size(), 3);
  // It opens as what it is: one `opened` event, global, not a narrower
  // opening widened a moment later.
  ASSERT_FALSE(found[0].events.empty());
  EXPECT_EQ(found[0].events[0].type(), v1::INCIDENT_EVENT_TYPE_OPENED) << found[0].events[0].DebugString();
  EXPECT_EQ(found[0].events[0].scope(), v1::SCOPE_GLOBAL) << found[0].events[0].DebugString();
  EXPECT_FALSE(has(found[0].timeline, v1::INCIDENT_EVENT_TYPE_SCOPE_CHANGED)) << stack.coordinator().output();
  EXPECT_LT(metric(stack, "vantage_incident_events_total{type=\"scope_changed\"}"), 1) << "absent or zero";
  // The first failure brought re-checks from the other two regions: that is
  // what confirms it within one interval.
  EXPECT_GE(metric(stack, "vantage_rechecks_requested_total"), 2);
  const auto id = found[0].incident.id();

  // A crash while the incident is open: the restarted coordinator continues
  // it from storage, and derives no second opening from the replayed results.
  const auto listen = "127.0.0.1:" + std::to_string(stack.grpc_port());  // where the probes reconnect
  stack.coordinator().signal(SIGKILL);
  stack.coordinator().wait(seconds(10));
  ASSERT_NO_FATAL_FAILURE(stack.start_coordinator(listen));
  ASSERT_TRUE(wait_until([&] { return open_incidents(stack, "outage", "global") == 1; }, seconds(10)));

  set_fault(stack, "name=none");
  ASSERT_TRUE(wait_until([&] { return incidents(stack)[0].incident.state() == v1::INCIDENT_STATE_RESOLVED; },
                         seconds(30)))
      << stack.coordinator().output();
  found = incidents(stack);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].incident.id(), id);
  EXPECT_EQ(std::count(found[0].timeline.begin(), found[0].timeline.end(), v1::INCIDENT_EVENT_TYPE_OPENED), 1);
  EXPECT_EQ(std::count(found[0].timeline.begin(), found[0].timeline.end(), v1::INCIDENT_EVENT_TYPE_RESOLVED), 1);
  // Readable in SQL, its widest scope kept whatever it narrowed to last.
  pqxx::connection c(stack.database());
  pqxx::read_transaction tx(c);
  EXPECT_EQ(tx.exec1("SELECT string_agg(id || ' ' || kind || ' ' || state, ',') FROM incidents "
                     "WHERE widest_scope = 'global'")[0].as<std::string>(),
            id + " outage resolved");
  EXPECT_EQ(tx.exec1("SELECT type || ' ' || scope FROM incident_events ORDER BY time, id LIMIT 1")[0].as<std::string>(),
            "opened global");
}

TEST(Incidents, ScatteredSingle520sAreAnIntermittentIncidentWithTheKeepAliveDiagnosis) {
  // One edge request fails every 7 s, whichever probe and colo sends it: no
  // probe fails twice in a row and no two regions fail within an interval.
  Stack stack(edge_stack("{recurring_window: 40s, recurring_min: 3}"));
  ASSERT_NO_FATAL_FAILURE(start_and_wait_for_results(stack));
  set_fault(stack, "name=empty-reply&every_s=7");

  ASSERT_TRUE(wait_until([&] { return open_incidents(stack, "intermittent", "probe") +
                                          open_incidents(stack, "intermittent", "colo") +
                                          open_incidents(stack, "intermittent", "region") +
                                          open_incidents(stack, "intermittent", "global") == 1; },
                         seconds(60)))
      << stack.coordinator().output();
  auto found = incidents(stack);
  ASSERT_EQ(found.size(), 1u) << "single failures never make an outage";
  const auto& incident = found[0].incident;
  EXPECT_EQ(incident.kind(), v1::INCIDENT_KIND_INTERMITTENT);
  EXPECT_EQ(incident.diagnosis().cause_id(), "keepalive_race") << incident.DebugString();
  EXPECT_GE(incident.affected_colos_size(), 2) << incident.DebugString();

  set_fault(stack, "name=none");
  ASSERT_TRUE(wait_until([&] { return incidents(stack)[0].incident.state() == v1::INCIDENT_STATE_RESOLVED; },
                         seconds(60)))
      << "resolves once a whole window passes without a failure";
  EXPECT_EQ(incidents(stack).size(), 1u);
}

}  // namespace
}  // namespace vantage::testing
