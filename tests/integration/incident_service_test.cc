// IncidentService on a real gRPC server on loopback, with real PostgreSQL,
// real API tokens and real incidents: results are stored (PgStore) and handed
// to the real IncidentTracker, which correlates them, stores incidents and
// publishes their events to the feed WatchIncidents reads. Covered: list
// filters, stable pages while incidents are opened between them, an incident
// with its timeline and evidence, live watching, resuming with no event lost
// or repeated (also while events keep coming), a subscriber that never reads
// dropped while others and ingest go on, a cancelled watch releasing its
// subscription, and bad input of every RPC. The coordinator serves the same
// objects (coordinator.cc); the last test calls it there.
#include <fmt/format.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <pqxx/pqxx>
#include <set>
#include <thread>

#include "common/proto_time.h"
#include "common/token.h"
#include "coordinator/api_auth.h"
#include "coordinator/api_pages.h"
#include "coordinator/coordinator.h"
#include "coordinator/incident_feed.h"
#include "coordinator/incident_service.h"
#include "coordinator/incident_tracker.h"
#include "coordinator/metrics.h"
#include "storage/pg_store.h"
#include "tests/support/api_client.h"
#include "tests/support/postgres.h"
#include "tests/support/process.h"
#include "vantage/v1/incident_service.grpc.pb.h"

namespace vantage {
namespace {

using namespace std::chrono_literals;
using testing::PostgresEnvironment;
using Clock = std::chrono::system_clock;

[[maybe_unused]] auto* const kPostgres = ::testing::AddGlobalTestEnvironment(new PostgresEnvironment);

// Small, so that a subscriber that does not read is dropped after few events.
constexpr size_t kQueueLimit = 16;

const std::vector<std::string> kCheckNames = {
    "l-global", "l-probe",  "l-inter", "g-520",  "p-0",    "p-1",    "p-2",    "p-3",   "p-4",
    "p-5",      "p-6",      "p-new-0", "p-new-1", "p-new-2", "w-live", "w-resume", "w-flow", "w-drop", "w-cancel"};

// Polls `done` until it holds or `timeout` passes.
template <typename Fn>
bool eventually(Fn done, std::chrono::milliseconds timeout = 30s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

class IncidentServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    db_ = new testing::ApiDatabase(8);
    store_ = &db_->store;
    probes_ = new std::map<std::string, storage::ProbeRecord>;
    for (const auto& [name, region] : std::vector<std::pair<std::string, std::string>>{
             {"us-1", "us"}, {"eu-1", "eu"}, {"ap-1", "ap"}}) {
      const auto token = store_->add_probe(name, region);
      if (name == "eu-1") probe_token_ = new std::string(token);
      (*probes_)[name] = *store_->find_probe_by_token(token_sha256_hex(token));
    }
    read_token_ = new std::string(store_->add_api_token("incident-reader", "read"));
    std::vector<v1::Check> wanted;
    for (const auto& name : kCheckNames) {
      v1::Check check;
      check.set_name(name);
      check.set_url("http://127.0.0.1:9/");
      check.mutable_interval()->set_seconds(60);  // no staleness within a test
      check.mutable_timeout()->set_seconds(5);
      wanted.push_back(check);
    }
    checks_ = new std::map<std::string, v1::Check>;
    for (auto& check : store_->sync_file_checks(wanted)) (*checks_)[check.name()] = check;

    metrics_ = new coordinator::CoordinatorMetrics(std::make_shared<prometheus::Registry>());
    feed_ = new coordinator::IncidentFeed({.queue_limit = kQueueLimit});
    coordinator::IncidentTrackerOptions options;
    options.on_events_stored = [](const auto& events, const auto& incidents) { feed_->publish(events, incidents); };
    tracker_ = new coordinator::IncidentTracker(*store_, *store_, *metrics_, RealTimers::instance(), options, nullptr);
    std::vector<v1::Check> all;
    for (const auto& [name, check] : *checks_) all.push_back(check);
    tracker_->set_checks(all);
    tracker_->start();
    auth_ = new coordinator::ApiAuthorizer(*store_, metrics_->api_auth_failures, RealClock::instance());
    service_ = new coordinator::IncidentServiceImpl(*store_, *store_, *auth_, *feed_, RealClock::instance());
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    service_->register_with(builder);
    server_ = builder.BuildAndStart().release();
    service_->start_watching();
  }
  static void TearDownTestSuite() {
    server_->Shutdown(Clock::now() + 5s);
    server_->Wait();
    service_->stop_watching();
    delete server_;
    delete service_;
    tracker_->stop();
    delete tracker_;
    delete auth_;
    delete feed_;
    delete metrics_;
    delete checks_;
    delete probes_;
    delete read_token_;
    delete probe_token_;
    delete db_;
  }

  // Every test starts with no watcher left from the one before (a watch
  // ends asynchronously after its client cancels).
  void SetUp() override { ASSERT_TRUE(eventually([] { return feed_->subscribers() == 0; })); }

  // --- Producing incidents -------------------------------------------------

  // Times strictly increasing across the suite: results of a probe are in order.
  static google::protobuf::Timestamp next_time() {
    static std::mutex mu;
    static Clock::time_point last;
    std::lock_guard lock(mu);
    last = std::max(Clock::now(), last + 1ms);
    return to_timestamp(last);
  }

  static v1::CheckResult result(const std::string& check, bool ok) {
    static std::atomic<uint64_t> sequence = 0;
    static std::atomic<int> ray = 0;
    const auto& c = checks_->at(check);
    v1::CheckResult r;
    r.set_check_id(c.id());
    r.set_check_version(c.version());
    r.set_sequence(++sequence);
    *r.mutable_start_time() = next_time();
    auto* edge = r.mutable_edge();
    if (ok) {
      edge->set_failure_class(v1::FAILURE_CLASS_OK);
      edge->mutable_response()->set_status(200);
      return r;
    }
    edge->set_failure_class(v1::FAILURE_CLASS_EDGE_ERROR);
    edge->mutable_response()->set_status(520);
    edge->mutable_edge()->set_edge_generated(true);
    edge->mutable_edge()->set_edge_code(520);
    edge->mutable_edge()->set_ray_id(fmt::format("8f{:014x}-FRA", ++ray));
    edge->mutable_edge()->set_colo("FRA");
    edge->set_error("the edge answered 520");
    auto* origin = r.mutable_origin();
    origin->set_failure_class(v1::FAILURE_CLASS_EMPTY_REPLY);
    origin->set_error("the origin closed the connection without a reply");
    r.mutable_diagnosis()->set_cause_id("origin_empty_reply");
    r.mutable_diagnosis()->set_cause("the origin closes the connection without answering");
    return r;
  }

  // Stores the results (per probe, in order) and hands them to the tracker,
  // as Ingest does after its commit.
  static void report(const std::vector<std::tuple<std::string, std::string, bool>>& results) {
    std::map<std::string, std::vector<std::pair<std::string, bool>>> by_probe;
    for (const auto& [check, probe, ok] : results) by_probe[probe].emplace_back(check, ok);
    // Times follow the order the correlator sees them in (batch by batch),
    // as when each probe's batch commits on its own.
    std::map<std::string, storage::ResultBatch> batches;
    for (const auto& [probe, wanted] : by_probe) {
      auto& batch = batches[probe];
      batch.probe = probes_->at(probe);
      for (const auto& [check, ok] : wanted) batch.results.push_back(result(check, ok));
    }
    std::vector<const storage::ResultBatch*> pointers;
    for (const auto& [probe, batch] : batches) pointers.push_back(&batch);
    store_->write_results(pointers);
    tracker_->add(pointers);
  }

  static std::vector<storage::ListedIncident> stored(const std::string& check) {
    storage::IncidentFilter filter;
    filter.check = check;
    return store_->list_incidents(filter, std::nullopt, 1000);
  }
  static std::vector<int64_t> stored_event_ids(const std::string& check, int64_t after = 0) {
    std::vector<int64_t> ids;
    for (;;) {
      auto batch = store_->incident_events_after(after, std::nullopt, check, 1000);
      for (const auto& e : batch) ids.push_back(after = e.event.event_id());
      if (batch.size() < 1000) return ids;
    }
  }
  static size_t stored_events(const std::string& check) { return stored_event_ids(check).size(); }

  // Two failures from each probe: an outage opens (or reopens). Waits for
  // its events to be stored.
  static v1::Incident fail(const std::string& check, const std::vector<std::string>& probes) {
    const size_t before = stored_events(check);
    std::vector<std::tuple<std::string, std::string, bool>> results;
    for (int i = 0; i < 2; ++i) {
      for (const auto& p : probes) results.emplace_back(check, p, false);
    }
    report(results);
    v1::Incident open;
    EXPECT_TRUE(eventually([&] {
      auto listed = stored(check);
      if (listed.empty() || listed.front().incident.state() != v1::INCIDENT_STATE_OPEN) return false;
      open = listed.front().incident;
      return stored_events(check) > before;
    })) << check << " did not open";
    return open;
  }
  // Two successes from each probe: the outage resolves.
  static void recover(const std::string& check, const std::vector<std::string>& probes) {
    std::vector<std::tuple<std::string, std::string, bool>> results;
    for (int i = 0; i < 2; ++i) {
      for (const auto& p : probes) results.emplace_back(check, p, true);
    }
    report(results);
    EXPECT_TRUE(eventually([&] {
      auto listed = stored(check);
      return !listed.empty() && listed.front().incident.state() == v1::INCIDENT_STATE_RESOLVED;
    })) << check << " did not resolve";
  }

  // --- Calling the API -----------------------------------------------------

  static std::shared_ptr<grpc::Channel> channel(const grpc::ChannelArguments& args = {}) {
    return testing::loopback_channel(port_, args);
  }
  static std::unique_ptr<v1::IncidentService::Stub> stub() { return v1::IncidentService::NewStub(channel()); }

  static grpc::Status list(const v1::ListIncidentsRequest& request, v1::ListIncidentsResponse* response,
                           const std::string& authorization = "") {
    grpc::ClientContext context;
    context.AddMetadata("authorization", authorization.empty() ? testing::bearer(*read_token_) : authorization);
    return stub()->ListIncidents(&context, request, response);
  }
  static std::vector<v1::Incident> list_all(v1::ListIncidentsRequest request) {
    std::vector<v1::Incident> out;
    do {
      v1::ListIncidentsResponse response;
      auto status = list(request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      if (!status.ok()) break;
      out.insert(out.end(), response.incidents().begin(), response.incidents().end());
      request.set_page_token(response.next_page_token());
    } while (!request.page_token().empty());
    return out;
  }
  static grpc::Status get(const v1::GetIncidentRequest& request, v1::GetIncidentResponse* response,
                          const std::string& authorization = "") {
    grpc::ClientContext context;
    context.AddMetadata("authorization", authorization.empty() ? testing::bearer(*read_token_) : authorization);
    return stub()->GetIncident(&context, request, response);
  }

  // One WatchIncidents call, read from the test's thread.
  struct Watch {
    explicit Watch(const v1::WatchIncidentsRequest& request, const std::string& authorization = "",
                   std::shared_ptr<grpc::Channel> on = nullptr) {
      context.AddMetadata("authorization", authorization.empty() ? testing::bearer(*read_token_) : authorization);
      // A broken test fails instead of hanging.
      context.set_deadline(Clock::now() + 120s);
      stub = v1::IncidentService::NewStub(on ? on : channel());
      reader = stub->WatchIncidents(&context, request);
    }
    std::optional<v1::WatchIncidentsResponse> next() {
      v1::WatchIncidentsResponse r;
      if (!reader->Read(&r)) return std::nullopt;
      return r;
    }
    grpc::Status finish() {
      v1::WatchIncidentsResponse ignored;
      while (reader->Read(&ignored)) {
      }
      return reader->Finish();
    }
    grpc::ClientContext context;
    std::unique_ptr<v1::IncidentService::Stub> stub;
    std::unique_ptr<grpc::ClientReader<v1::WatchIncidentsResponse>> reader;
  };
  static v1::WatchIncidentsRequest watching(const std::string& check, int64_t after_event_id = 0) {
    v1::WatchIncidentsRequest request;
    request.set_check(check);
    request.set_after_event_id(after_event_id);
    return request;
  }
  // Every event after `after_event_id`; from the first stored one when it is 0.
  static v1::WatchIncidentsRequest resuming(const std::string& check, int64_t after_event_id) {
    auto request = watching(check, after_event_id);
    if (after_event_id == 0) request.mutable_since()->set_seconds(0);
    return request;
  }

  static inline testing::ApiDatabase* db_ = nullptr;
  static inline storage::PgStore* store_ = nullptr;
  static inline std::map<std::string, storage::ProbeRecord>* probes_ = nullptr;
  static inline std::map<std::string, v1::Check>* checks_ = nullptr;
  static inline std::string* read_token_ = nullptr;
  static inline std::string* probe_token_ = nullptr;
  static inline coordinator::CoordinatorMetrics* metrics_ = nullptr;
  static inline coordinator::IncidentFeed* feed_ = nullptr;
  static inline coordinator::IncidentTracker* tracker_ = nullptr;
  static inline coordinator::ApiAuthorizer* auth_ = nullptr;
  static inline coordinator::IncidentServiceImpl* service_ = nullptr;
  static inline grpc::Server* server_ = nullptr;
  static inline int port_ = 0;
};

std::vector<std::string> ids(const std::vector<v1::Incident>& incidents) {
  std::vector<std::string> out;
  for (const auto& i : incidents) out.push_back(i.id());
  return out;
}

// --- ListIncidents -------------------------------------------------------------

TEST_F(IncidentServiceTest, EachFilterNarrowsTheListToWhatItNames) {
  const auto start = next_time();
  const auto global = fail("l-global", {"us-1", "eu-1", "ap-1"});
  const auto single = fail("l-probe", {"us-1"});
  recover("l-probe", {"us-1"});
  // Three isolated failures within the window: intermittent.
  for (int i = 0; i < 3; ++i) report({{"l-inter", "eu-1", false}, {"l-inter", "eu-1", true}});
  ASSERT_TRUE(eventually([&] { return !stored("l-inter").empty(); })) << "no intermittent incident";

  v1::ListIncidentsRequest since_start;
  *since_start.mutable_start_time() = start;
  const auto all = list_all(since_start);
  ASSERT_EQ(all.size(), 3u);
  const std::string inter = stored("l-inter").front().incident.id();
  EXPECT_EQ(ids(all), (std::vector<std::string>{inter, single.id(), global.id()})) << "newest first";
  for (const auto& i : all) EXPECT_EQ(i.timeline_size(), 0) << "lists carry no timelines";

  auto with = [&](auto set) {
    auto request = since_start;
    set(request);
    return ids(list_all(request));
  };
  EXPECT_EQ(with([](auto& r) { r.set_check("l-global"); }), std::vector<std::string>{global.id()});
  EXPECT_EQ(with([](auto& r) { r.set_check("p-0"); }), std::vector<std::string>{});
  EXPECT_EQ(with([](auto& r) { r.set_state(v1::INCIDENT_STATE_RESOLVED); }), std::vector<std::string>{single.id()});
  EXPECT_EQ(with([](auto& r) { r.set_state(v1::INCIDENT_STATE_OPEN); }),
            (std::vector<std::string>{inter, global.id()}));
  EXPECT_EQ(with([](auto& r) { r.set_kind(v1::INCIDENT_KIND_INTERMITTENT); }), std::vector<std::string>{inter});
  EXPECT_EQ(with([](auto& r) { r.set_kind(v1::INCIDENT_KIND_OUTAGE); }),
            (std::vector<std::string>{single.id(), global.id()}));
  EXPECT_EQ(with([](auto& r) { r.set_scope(v1::SCOPE_GLOBAL); }), std::vector<std::string>{global.id()});
  EXPECT_EQ(with([&](auto& r) { r.set_scope(single.widest_scope()); }), std::vector<std::string>{single.id()})
      << "single-probe outage's widest scope: " << single.widest_scope();
  // Opened at or after the single probe's first failure; before it.
  EXPECT_EQ(with([&](auto& r) { *r.mutable_start_time() = single.first_failure_time(); }),
            (std::vector<std::string>{inter, single.id()}));
  EXPECT_EQ(with([&](auto& r) { *r.mutable_end_time() = single.first_failure_time(); }),
            std::vector<std::string>{global.id()});
  // Filters combine.
  EXPECT_EQ(with([](auto& r) {
              r.set_state(v1::INCIDENT_STATE_OPEN);
              r.set_kind(v1::INCIDENT_KIND_OUTAGE);
            }),
            std::vector<std::string>{global.id()});
}

TEST_F(IncidentServiceTest, PagesNeitherRepeatNorSkipWhileIncidentsOpenBetweenThem) {
  const auto start = next_time();
  std::vector<std::string> original;
  for (int i = 0; i < 7; ++i) original.push_back(fail("p-" + std::to_string(i), {"us-1"}).id());

  v1::ListIncidentsRequest request;
  *request.mutable_start_time() = start;
  request.set_page_size(3);
  std::vector<std::string> seen;
  std::vector<int> page_sizes;
  for (int page = 0;; ++page) {
    v1::ListIncidentsResponse response;
    auto status = list(request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    page_sizes.push_back(response.incidents_size());
    for (const auto& i : response.incidents()) seen.push_back(i.id());
    if (response.next_page_token().empty()) break;
    request.set_page_token(response.next_page_token());
    // Between pages, new incidents open (newer than every listed one).
    if (page < 3) fail("p-new-" + std::to_string(page), {"eu-1"});
  }
  EXPECT_EQ(page_sizes, (std::vector<int>{3, 3, 1}));
  std::vector<std::string> newest_first(original.rbegin(), original.rend());
  EXPECT_EQ(seen, newest_first) << "every original incident once, in order, none opened later";
  // A new listing sees the new ones first.
  request.clear_page_token();
  request.set_page_size(0);
  auto fresh = ids(list_all(request));
  ASSERT_EQ(fresh.size(), 7u + 2u);
  EXPECT_EQ(std::set<std::string>(fresh.begin(), fresh.end()).size(), fresh.size());
}

// --- GetIncident ------------------------------------------------------------------

TEST_F(IncidentServiceTest, AnIncidentComesWithItsTimelineInOrderAndItsEvidence) {
  fail("g-520", {"us-1", "eu-1"});
  recover("g-520", {"us-1", "eu-1"});
  const auto id = stored("g-520").front().incident.id();

  v1::GetIncidentRequest request;
  request.set_id(id);
  v1::GetIncidentResponse response;
  auto status = get(request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  const auto& incident = response.incident();
  EXPECT_EQ(incident.id(), id);
  EXPECT_EQ(incident.check(), "g-520");
  EXPECT_EQ(incident.state(), v1::INCIDENT_STATE_RESOLVED);
  ASSERT_GE(incident.timeline_size(), 2);
  EXPECT_EQ(incident.timeline(0).type(), v1::INCIDENT_EVENT_TYPE_OPENED);
  EXPECT_EQ(incident.timeline(incident.timeline_size() - 1).type(), v1::INCIDENT_EVENT_TYPE_RESOLVED);
  for (int i = 1; i < incident.timeline_size(); ++i) {
    EXPECT_LE(from_timestamp(incident.timeline(i - 1).time()), from_timestamp(incident.timeline(i).time()));
    EXPECT_GT(incident.timeline(i).event_id(), 0);
  }

  // The four failures (two per probe), newest first; the successes are not evidence.
  ASSERT_EQ(response.evidence_size(), 4);
  std::set<std::string> rays, probes;
  for (int i = 0; i < response.evidence_size(); ++i) {
    const auto& e = response.evidence(i);
    EXPECT_EQ(e.check(), "g-520");
    EXPECT_EQ(e.result().check_id(), incident.check_id());
    EXPECT_EQ(e.result().edge().edge().colo(), "FRA");
    EXPECT_EQ(e.result().edge().edge().edge_code(), 520u);
    EXPECT_EQ(e.result().origin().failure_class(), v1::FAILURE_CLASS_EMPTY_REPLY) << "the origin leg";
    EXPECT_FALSE(e.result().origin().error().empty());
    EXPECT_EQ(e.region(), e.probe_id().substr(0, 2));
    rays.insert(e.result().edge().edge().ray_id());
    probes.insert(e.probe_id());
    if (i > 0) {
      EXPECT_GE(from_timestamp(response.evidence(i - 1).result().start_time()),
                from_timestamp(e.result().start_time()));
    }
  }
  EXPECT_EQ(rays.size(), 4u) << "each failure's own ray id";
  EXPECT_EQ(probes, (std::set<std::string>{"us-1", "eu-1"}));

  request.set_evidence_limit(1);
  v1::GetIncidentResponse limited;
  ASSERT_TRUE(get(request, &limited).ok());
  ASSERT_EQ(limited.evidence_size(), 1);
  EXPECT_EQ(limited.evidence(0).result().edge().edge().ray_id(), response.evidence(0).result().edge().edge().ray_id());
}

// --- WatchIncidents -----------------------------------------------------------------

TEST_F(IncidentServiceTest, AWatcherReceivesLiveEventsInOrderWithTheirIncident) {
  const size_t subscribers = feed_->subscribers();
  Watch watch(watching("w-live"));
  ASSERT_TRUE(eventually([&] { return feed_->subscribers() == subscribers + 1; }));
  fail("w-live", {"us-1", "eu-1", "ap-1"});
  recover("w-live", {"us-1", "eu-1", "ap-1"});
  const auto expected = stored_event_ids("w-live");
  ASSERT_GE(expected.size(), 2u);
  std::vector<int64_t> got;
  while (got.size() < expected.size()) {
    auto r = watch.next();
    ASSERT_TRUE(r) << "stream ended after " << got.size() << " events: " << watch.reader->Finish().error_message();
    EXPECT_EQ(r->incident().check(), "w-live");
    EXPECT_EQ(r->incident().id(), r->event().incident_id());
    got.push_back(r->event().event_id());
    if (got.size() == 1) {
      EXPECT_EQ(r->event().type(), v1::INCIDENT_EVENT_TYPE_OPENED);
    }
    if (got.size() == expected.size()) {
      EXPECT_EQ(r->event().type(), v1::INCIDENT_EVENT_TYPE_RESOLVED);
      EXPECT_EQ(r->incident().state(), v1::INCIDENT_STATE_RESOLVED) << "the incident as it is after the event";
    }
  }
  EXPECT_EQ(got, expected);
}

TEST_F(IncidentServiceTest, AResumedWatcherGetsExactlyTheEventsItMissed) {
  Watch first(watching("w-resume"));
  ASSERT_TRUE(eventually([&] { return feed_->subscribers() == 1; }));
  fail("w-resume", {"us-1"});
  auto opened = first.next();
  ASSERT_TRUE(opened);
  const int64_t last = opened->event().event_id();
  first.context.TryCancel();
  EXPECT_EQ(first.finish().error_code(), grpc::StatusCode::CANCELLED);

  // Missed while away: the resolution, a reopening, its resolution.
  recover("w-resume", {"us-1"});
  fail("w-resume", {"us-1"});
  recover("w-resume", {"us-1"});
  const auto missed = stored_event_ids("w-resume", last);
  ASSERT_GE(missed.size(), 3u);

  Watch resumed(watching("w-resume", last));
  std::vector<int64_t> got;
  while (got.size() < missed.size()) {
    auto r = resumed.next();
    ASSERT_TRUE(r) << resumed.reader->Finish().error_message();
    got.push_back(r->event().event_id());
  }
  EXPECT_EQ(got, missed);
  // Then live, with nothing sent twice.
  fail("w-resume", {"us-1"});
  auto live = resumed.next();
  ASSERT_TRUE(live);
  EXPECT_EQ(live->event().event_id(), stored_event_ids("w-resume", missed.back()).front());

  // `since` replays by time: everything from the first event on.
  v1::WatchIncidentsRequest since = watching("w-resume");
  *since.mutable_since() = opened->event().time();
  Watch by_time(since);
  auto first_by_time = by_time.next();
  ASSERT_TRUE(first_by_time);
  EXPECT_EQ(first_by_time->event().event_id(), opened->event().event_id());
}

// Disconnecting and resuming again and again while events keep being stored:
// the seam between the stored replay and the live queue loses nothing and
// repeats nothing.
TEST_F(IncidentServiceTest, ResumingWhileEventsKeepComingLosesAndRepeatsNothing) {
  const auto check = std::string("w-flow");
  const int64_t start_after = [&] {
    auto ids = stored_event_ids(check);
    return ids.empty() ? int64_t{0} : ids.back();
  }();
  std::atomic<bool> stop = false;
  std::thread producer([&] {
    while (!stop && !HasFailure()) {
      fail(check, {"eu-1"});
      recover(check, {"eu-1"});
    }
  });
  std::vector<int64_t> got;
  int64_t last = start_after;
  int sessions = 0;
  while (got.size() < 40 && !HasFailure()) {
    ++sessions;
    Watch watch(resuming(check, last));
    // A few events per session, then a disconnect.
    for (int i = 0; i < 3; ++i) {
      auto r = watch.next();
      if (!r) break;  // dropped for falling behind: resume the same way
      got.push_back(r->event().event_id());
      last = r->event().event_id();
    }
    watch.context.TryCancel();
    watch.finish();
  }
  stop = true;
  producer.join();
  // And the rest after the producer stopped.
  const auto all = stored_event_ids(check, start_after);
  Watch watch(resuming(check, last));
  while (got.size() < all.size()) {
    auto r = watch.next();
    ASSERT_TRUE(r) << watch.reader->Finish().error_message();
    got.push_back(r->event().event_id());
  }
  EXPECT_EQ(got, all) << "over " << sessions << " sessions";
}

TEST_F(IncidentServiceTest, ASubscriberThatNeverReadsIsDroppedWhileOthersAndIngestGoOn) {
  const auto check = std::string("w-drop");
  const int64_t start_after = [&] {
    auto ids = stored_event_ids(check);
    return ids.empty() ? int64_t{0} : ids.back();
  }();
  const uint64_t dropped_before = feed_->dropped_total();
  const size_t subscribers = feed_->subscribers();
  // Little buffering on the client's side: the server's writes stall soon.
  grpc::ChannelArguments tight;
  tight.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  tight.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 1024);
  Watch slow(resuming(check, start_after), "", channel(tight));
  Watch healthy(resuming(check, start_after));
  ASSERT_TRUE(eventually([&] { return feed_->subscribers() == subscribers + 2; }));
  std::mutex healthy_mu;
  std::vector<int64_t> healthy_got;
  std::thread reader([&] {
    while (auto r = healthy.next()) {
      std::lock_guard lock(healthy_mu);
      healthy_got.push_back(r->event().event_id());
    }
  });
  int rounds = 0;
  while (feed_->dropped_total() == dropped_before && rounds < 1000 && !HasFailure()) {
    fail(check, {"ap-1"});
    recover(check, {"ap-1"});
    ++rounds;
  }
  ASSERT_GT(feed_->dropped_total(), dropped_before) << "not dropped after " << rounds << " outages";
  // Ingest and correlation went on, and the healthy watcher kept up.
  fail(check, {"ap-1"});
  recover(check, {"ap-1"});
  const auto all = stored_event_ids(check, start_after);
  EXPECT_TRUE(eventually([&] { return feed_->subscribers() == subscribers + 1; }));

  // The slow one reads what reached it, then the status says where to resume.
  std::vector<int64_t> slow_got;
  while (auto r = slow.next()) slow_got.push_back(r->event().event_id());
  auto status = slow.reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_NE(status.error_message().find("subscriber fell behind: " + std::to_string(kQueueLimit) + " events queued"),
            std::string::npos)
      << status.error_message();
  const int64_t resume_from = slow_got.empty() ? start_after : slow_got.back();
  EXPECT_NE(status.error_message().find("resume with after_event_id=" + std::to_string(resume_from)),
            std::string::npos)
      << status.error_message();
  EXPECT_LT(slow_got.size(), all.size());

  EXPECT_TRUE(eventually([&] {
    std::lock_guard lock(healthy_mu);
    return healthy_got.size() >= all.size();
  })) << "the healthy watcher fell behind";
  healthy.context.TryCancel();
  reader.join();
  EXPECT_EQ(healthy_got, std::vector<int64_t>(all.begin(), all.begin() + static_cast<long>(healthy_got.size())));
  EXPECT_EQ(healthy_got.size(), all.size()) << "the healthy watcher got every event";

  // Resuming as told gives the rest.
  Watch resumed(resuming(check, resume_from));
  std::vector<int64_t> rest;
  while (slow_got.size() + rest.size() < all.size()) {
    auto r = resumed.next();
    ASSERT_TRUE(r) << resumed.reader->Finish().error_message();
    rest.push_back(r->event().event_id());
  }
  slow_got.insert(slow_got.end(), rest.begin(), rest.end());
  EXPECT_EQ(slow_got, all);
}

TEST_F(IncidentServiceTest, ACancelledWatchReleasesItsSubscription) {
  const size_t subscribers = feed_->subscribers();
  {
    Watch watch(watching("w-cancel"));
    ASSERT_TRUE(eventually([&] { return feed_->subscribers() == subscribers + 1; }));
    watch.context.TryCancel();
    EXPECT_EQ(watch.finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  EXPECT_TRUE(eventually([&] { return feed_->subscribers() == subscribers; }));
  // Also when the client just goes away (its channel closes).
  {
    grpc::ChannelArguments own;
    own.SetInt("vantage.test.unique", 1);  // a channel (and connection) of its own
    auto c = channel(own);
    auto watch = std::make_unique<Watch>(watching("w-cancel"), "", c);
    ASSERT_TRUE(eventually([&] { return feed_->subscribers() == subscribers + 1; }));
    watch.reset();  // no Finish: the client just goes away
  }
  EXPECT_TRUE(eventually([&] { return feed_->subscribers() == subscribers; }));
}

// --- Bad input and authorization, every RPC -------------------------------------------

struct Refusal {
  grpc::StatusCode code;
  std::string message;
};

Refusal refusal_of(const grpc::Status& status) { return {status.error_code(), status.error_message()}; }

#define EXPECT_REFUSED(status_expr, expected_code, field)                                        \
  do {                                                                                           \
    const auto r_ = refusal_of(status_expr);                                                     \
    EXPECT_EQ(r_.code, expected_code) << r_.message;                                             \
    EXPECT_EQ(r_.message.rfind(std::string(field) + ":", 0), 0u) << "names " << field << ": " << r_.message; \
  } while (0)

TEST_F(IncidentServiceTest, ListRefusesBadInputNamingTheField) {
  auto call = [](auto set) {
    v1::ListIncidentsRequest request;
    set(request);
    v1::ListIncidentsResponse response;
    return list(request, &response);
  };
  const auto bad = grpc::StatusCode::INVALID_ARGUMENT;
  EXPECT_REFUSED(call([](auto& r) { r.set_page_size(-1); }), bad, "page_size");
  EXPECT_REFUSED(call([](auto& r) { r.set_page_size(1001); }), bad, "page_size");
  EXPECT_TRUE(call([](auto& r) { r.set_page_size(1000); }).ok());
  EXPECT_REFUSED(call([](auto& r) { r.set_page_token("not a token!"); }), bad, "page_token");
  EXPECT_REFUSED(call([](auto& r) { r.set_page_token(coordinator::encode_page_token("probes.v1:", "eu-1")); }), bad,
                 "page_token");
  EXPECT_REFUSED(call([](auto& r) { r.set_page_token(coordinator::encode_page_token("incidents.v1:", "no-key")); }),
                 bad, "page_token");
  EXPECT_REFUSED(call([](auto& r) { r.set_page_token(coordinator::encode_page_token("incidents.v1:", "12x:7-1")); }),
                 bad, "page_token");
  EXPECT_REFUSED(call([](auto& r) { r.set_check("Not A Name"); }), bad, "check");
  EXPECT_REFUSED(call([](auto& r) { r.set_check(std::string(64, 'a')); }), bad, "check");
  EXPECT_REFUSED(call([](auto& r) { r.set_state(static_cast<v1::IncidentState>(7)); }), bad, "state");
  EXPECT_REFUSED(call([](auto& r) { r.set_kind(static_cast<v1::IncidentKind>(-1)); }), bad, "kind");
  EXPECT_REFUSED(call([](auto& r) { r.set_scope(static_cast<v1::Scope>(5)); }), bad, "scope");
  EXPECT_REFUSED(call([](auto& r) { r.mutable_start_time()->set_nanos(-1); }), bad, "start_time");
  EXPECT_REFUSED(call([](auto& r) { r.mutable_start_time()->set_seconds(-62135596800); }), bad, "start_time");
  EXPECT_REFUSED(call([](auto& r) { r.mutable_end_time()->set_seconds(300'000'000'000); }), bad, "end_time");
  EXPECT_REFUSED(call([](auto& r) {
                   r.mutable_start_time()->set_seconds(2000);
                   r.mutable_end_time()->set_seconds(1000);
                 }),
                 bad, "end_time");
}

TEST_F(IncidentServiceTest, GetRefusesBadInputNamingTheField) {
  auto call = [](auto set) {
    v1::GetIncidentRequest request;
    set(request);
    v1::GetIncidentResponse response;
    return get(request, &response);
  };
  const auto bad = grpc::StatusCode::INVALID_ARGUMENT;
  EXPECT_REFUSED(call([](auto&) {}), bad, "id");
  EXPECT_REFUSED(call([](auto& r) { r.set_id(std::string(129, '1')); }), bad, "id");
  EXPECT_REFUSED(call([](auto& r) {
                   r.set_id("1-1");
                   r.set_evidence_limit(-1);
                 }),
                 bad, "evidence_limit");
  EXPECT_REFUSED(call([](auto& r) {
                   r.set_id("1-1");
                   r.set_evidence_limit(501);
                 }),
                 bad, "evidence_limit");
  auto unknown = call([](auto& r) { r.set_id("424242-1700000000000"); });
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(unknown.error_message(), "incident \"424242-1700000000000\" not found");
}

TEST_F(IncidentServiceTest, WatchRefusesBadInputNamingTheField) {
  const auto bad = grpc::StatusCode::INVALID_ARGUMENT;
  {
    Watch w(watching("w-live", -1));
    EXPECT_REFUSED(w.finish(), bad, "after_event_id");
  }
  {
    Watch w(watching("UPPER"));
    EXPECT_REFUSED(w.finish(), bad, "check");
  }
  {
    auto request = watching("w-live");
    request.mutable_since()->set_nanos(2'000'000'000);
    Watch w(request);
    EXPECT_REFUSED(w.finish(), bad, "since");
  }
  {
    // Served raw, so the service parses the request itself: bytes that are
    // not a WatchIncidentsRequest (a field that says 5 bytes and holds 3)
    // are refused, not read as an empty request.
    grpc::GenericStub generic(channel());
    grpc::ClientContext context;
    context.AddMetadata("authorization", testing::bearer(*read_token_));
    context.set_deadline(Clock::now() + 60s);
    grpc::Slice garbage(std::string("\x1a\x05" "abc"));
    const grpc::ByteBuffer request(&garbage, 1);
    grpc::CompletionQueue cq;
    auto call = generic.PrepareCall(&context, "/vantage.v1.IncidentService/WatchIncidents", &cq);
    auto step = [&](auto start) {  // one operation at a time: whether it succeeded
      void* tag = nullptr;
      bool ok = false;
      start(&cq);
      return cq.Next(&tag, &ok) && ok;
    };
    step([&](void*) { call->StartCall(&cq); });
    step([&](void*) { call->WriteLast(request, grpc::WriteOptions(), &cq); });
    grpc::ByteBuffer response;
    EXPECT_FALSE(step([&](void*) { call->Read(&response, &cq); })) << "no event for a request that is not one";
    grpc::Status status;
    step([&](void*) { call->Finish(&status, &cq); });
    EXPECT_REFUSED(status, bad, "request");
  }
}

TEST_F(IncidentServiceTest, EveryRpcWantsAnApiToken) {
  const std::vector<std::pair<std::string, std::string>> callers = {
      {"no token", "-"},  // "-": no metadata at all (below)
      {"wrong token", testing::bearer(generate_token())},
      {"a probe's token", testing::bearer(*probe_token_)},
      {"not a bearer", "Basic abc"},
  };
  for (const auto& [who, authorization] : callers) {
    SCOPED_TRACE(who);
    auto with_auth = [&](grpc::ClientContext& context) {
      if (authorization != "-") context.AddMetadata("authorization", authorization);
    };
    {
      grpc::ClientContext context;
      with_auth(context);
      v1::ListIncidentsResponse response;
      EXPECT_EQ(stub()->ListIncidents(&context, {}, &response).error_code(), grpc::StatusCode::UNAUTHENTICATED);
    }
    {
      grpc::ClientContext context;
      with_auth(context);
      v1::GetIncidentRequest request;
      request.set_id("1-1");
      v1::GetIncidentResponse response;
      EXPECT_EQ(stub()->GetIncident(&context, request, &response).error_code(), grpc::StatusCode::UNAUTHENTICATED);
    }
    {
      grpc::ClientContext context;
      with_auth(context);
      context.set_deadline(Clock::now() + 30s);
      auto reader = stub()->WatchIncidents(&context, watching(""));
      v1::WatchIncidentsResponse ignored;
      EXPECT_FALSE(reader->Read(&ignored));
      auto status = reader->Finish();
      EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << status.error_message();
    }
  }
}

// The coordinator serves IncidentService with the same objects, wired to its
// own tracker.
TEST(IncidentServiceInCoordinator, IsServedWithItsTracker) {
  testing::ApiDatabase db;
  const auto token = db.store.add_api_token("reader", "read");
  coordinator::Coordinator coordinator(testing::loopback_coordinator_options(db.url));
  coordinator.start();
  auto stub = v1::IncidentService::NewStub(testing::loopback_channel(coordinator.grpc_port()));
  {
    grpc::ClientContext context;
    testing::authorize(context, token);
    v1::ListIncidentsResponse response;
    auto status = stub->ListIncidents(&context, {}, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.incidents_size(), 0);
  }
  // The feed's bound is visible from the start.
  const auto metrics = testing::http_get(coordinator.metrics_port(), "/metrics");
  EXPECT_EQ(testing::metric_value(metrics, "vantage_incident_watchers"), 0.0) << metrics;
  EXPECT_EQ(testing::metric_value(metrics, "vantage_incident_watchers_dropped_total"), 0.0);
  {
    grpc::ClientContext context;
    context.set_deadline(Clock::now() + 30s);
    auto reader = stub->WatchIncidents(&context, {});
    v1::WatchIncidentsResponse ignored;
    EXPECT_FALSE(reader->Read(&ignored));
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  {
    // A watch open at shutdown ends instead of holding the coordinator.
    grpc::ClientContext context;
    testing::authorize(context, token);
    auto reader = stub->WatchIncidents(&context, {});
    ASSERT_TRUE(testing::eventually(
        [&] {
          return testing::metric_value(testing::http_get(coordinator.metrics_port(), "/metrics"),
                                       "vantage_incident_watchers") == 1.0;
        },
        10s));
    coordinator.shutdown();
    v1::WatchIncidentsResponse ignored;
    EXPECT_FALSE(reader->Read(&ignored));
    const auto status = reader->Finish();
    // Told why, and where to resume, before the server's own deadline.
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
    EXPECT_NE(status.error_message().find("resume with after_event_id=0"), std::string::npos)
        << status.error_message();
  }
}

}  // namespace
}  // namespace vantage
