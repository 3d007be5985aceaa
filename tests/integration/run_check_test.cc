// CheckService.RunCheck ("run now") against a real coordinator with real
// PostgreSQL, two real probes (us, eu) checking a lab origin, a raw probe
// stream in region ap that never answers, and region sa with no probe
// connected; and the probes' spool backlog as FleetService.ListProbes shows it.
#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>

#include <pqxx/pqxx>
#include <set>

#include "common/clock.h"
#include "coordinator/coordinator.h"
#include "probe/agent.h"
#include "storage/pg_store.h"
#include "tests/support/api_client.h"
#include "tests/support/postgres.h"
#include "tests/support/process.h"
#include "tests/support/raw_probe.h"
#include "tools/lab/origin.h"
#include "vantage/v1/check_service.grpc.pb.h"
#include "vantage/v1/fleet_service.grpc.pb.h"

namespace vantage {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::PostgresEnvironment;

[[maybe_unused]] auto* const kPostgres = ::testing::AddGlobalTestEnvironment(new PostgresEnvironment);

// One coordinator, two probes and the raw ap probe for the suite.
class RunCheckTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    origin_ = new lab::Origin("127.0.0.1", 0);
    db_ = new testing::ApiDatabase();
    store_ = &db_->store;
    probe_tokens_ = new std::map<std::string, std::string>();
    for (auto [id, region] : {std::pair{"us-1", "us"}, {"eu-1", "eu"}, {"ap-1", "ap"}, {"sa-1", "sa"}, {"bk-1", "bk"}}) {
      (*probe_tokens_)[id] = store_->add_probe(id, region);
    }
    write_token_ = new std::string(store_->add_api_token("runner", "write"));
    read_token_ = new std::string(store_->add_api_token("watcher", "read"));
    const std::string url = "http://127.0.0.1:" + std::to_string(origin_->port()) + "/";
    checks_file_ = new testing::TempChecksFile(
        "vantage-run-check-test", "checks:\n"
                                  "  - {name: home, url: \"" + url + "\", interval: 1h, regions: [us, eu]}\n"
                                  "  - {name: wide, url: \"" + url + "\", interval: 1h, regions: [us, ap, sa]}\n"
                                  "  - {name: nowhere, url: \"" + url + "\", interval: 1h, regions: [sa]}\n"
                                  "  - {name: everywhere, url: \"" + url + "\", interval: 1h}\n"
                                  "  - {name: backlog, url: \"" + url + "\", interval: 1h, regions: [bk]}\n");
    auto options = testing::loopback_coordinator_options(db_->url);
    options.checks_file = checks_file_->path();
    coordinator_ = new coordinator::Coordinator(options);
    coordinator_->start();
    us_ = start_probe("us-1", "us").release();
    eu_ = start_probe("eu-1", "eu").release();
    ap_ = new testing::RawProbe(coordinator_->grpc_port(), probe_tokens_->at("ap-1"), "ap-1", "ap");
    ASSERT_FALSE(ap_->assignment().empty());
    ASSERT_TRUE(testing::eventually([] { return connected("us-1") && connected("eu-1") && connected("ap-1"); },
                                    seconds(20)));
  }
  static void TearDownTestSuite() {
    delete ap_;
    delete us_;
    delete eu_;
    delete coordinator_;
    delete checks_file_;
    delete probe_tokens_;
    delete write_token_;
    delete read_token_;
    delete db_;
    delete origin_;
  }

  static std::unique_ptr<probe::Agent> start_probe(const std::string& id, const std::string& region) {
    probe::AgentOptions options;
    options.stream.coordinator = "127.0.0.1:" + std::to_string(coordinator_->grpc_port());
    options.stream.token = probe_tokens_->at(id);
    options.stream.probe_id = id;
    options.stream.region = region;
    options.stream.version = "test";
    options.stream.backoff_initial = milliseconds(100);
    options.stream.backoff_max = milliseconds(500);
    auto agent = std::make_unique<probe::Agent>(options, RealTimers::instance());
    agent->start();
    return agent;
  }

  static std::shared_ptr<grpc::Channel> channel() {
    return testing::loopback_channel(coordinator_->grpc_port());
  }
  static std::optional<v1::Probe> listed(const std::string& id) {
    grpc::ClientContext context;
    testing::authorize(context, *read_token_);
    v1::ListProbesResponse response;
    if (!v1::FleetService::NewStub(channel())->ListProbes(&context, v1::ListProbesRequest(), &response).ok()) {
      return std::nullopt;
    }
    for (const auto& probe : response.probes()) {
      if (probe.id() == id) return probe;
    }
    return std::nullopt;
  }
  static bool connected(const std::string& id) {
    auto probe = listed(id);
    return probe && probe->connected();
  }

  // RunCheck with `authorization` as metadata (none if empty).
  grpc::Status run(const std::string& name, std::optional<milliseconds> timeout, v1::RunCheckResponse* response,
                   const std::string& authorization = "") {
    v1::RunCheckRequest request;
    request.set_name(name);
    if (timeout) {
      request.mutable_timeout()->set_seconds(timeout->count() / 1000);
      request.mutable_timeout()->set_nanos(static_cast<int32_t>(timeout->count() % 1000) * 1'000'000);
    }
    grpc::ClientContext context;
    const std::string auth = authorization.empty() ? testing::bearer(*write_token_) : authorization;
    if (auth != "none") context.AddMetadata("authorization", auth);
    context.set_deadline(std::chrono::system_clock::now() + seconds(60));
    return v1::CheckService::NewStub(channel())->RunCheck(&context, request, response);
  }

  static int64_t stored_count(const std::string& probe, uint64_t sequence) {
    pqxx::connection c(db_->url);
    pqxx::read_transaction tx(c);
    return tx.exec_params1("SELECT count(*) FROM results r JOIN probes p ON p.id = r.probe_id "
                           "WHERE p.name = $1 AND r.seq = $2",
                           probe, static_cast<int64_t>(sequence))[0]
        .as<int64_t>();
  }

  static std::set<std::string> regions_of(const v1::RunCheckResponse& response) {
    std::set<std::string> regions;
    for (const auto& r : response.results()) regions.insert(r.region());
    return regions;
  }

  static inline lab::Origin* origin_ = nullptr;
  static inline testing::ApiDatabase* db_ = nullptr;
  static inline storage::PgStore* store_ = nullptr;
  static inline std::map<std::string, std::string>* probe_tokens_ = nullptr;
  static inline std::string* write_token_ = nullptr;
  static inline std::string* read_token_ = nullptr;
  static inline testing::TempChecksFile* checks_file_ = nullptr;
  static inline coordinator::Coordinator* coordinator_ = nullptr;
  static inline probe::Agent* us_ = nullptr;
  static inline probe::Agent* eu_ = nullptr;
  static inline testing::RawProbe* ap_ = nullptr;
};

TEST_F(RunCheckTest, EveryRegionAnswersWithTheRequestIdAndTheResultsAreStored) {
  v1::RunCheckResponse response;
  auto status = run("home", seconds(20), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(response.request_id().starts_with("run-")) << response.request_id();
  EXPECT_EQ(regions_of(response), (std::set<std::string>{"eu", "us"})) << response.DebugString();
  EXPECT_EQ(response.results_size(), 2);
  EXPECT_EQ(response.regions_without_probe_size(), 0);
  EXPECT_EQ(response.regions_timed_out_size(), 0);
  for (const auto& stored : response.results()) {
    EXPECT_EQ(stored.check(), "home");
    EXPECT_EQ(stored.probe_id(), stored.region() + "-1");
    EXPECT_EQ(stored.result().recheck_request_id(), response.request_id());
    EXPECT_EQ(stored.result().edge().failure_class(), v1::FAILURE_CLASS_OK) << stored.DebugString();
    EXPECT_GT(stored.receive_time().seconds(), 0);
    // Returned after its commit: it is in PostgreSQL already.
    EXPECT_EQ(stored_count(stored.probe_id(), stored.result().sequence()), 1) << stored.DebugString();
  }

  // A second run is a new request with fresh results.
  v1::RunCheckResponse again;
  ASSERT_TRUE(run("home", std::nullopt, &again).ok());
  EXPECT_NE(again.request_id(), response.request_id());
  ASSERT_EQ(again.results_size(), 2);
  for (const auto& stored : again.results()) EXPECT_EQ(stored.result().recheck_request_id(), again.request_id());
}

TEST_F(RunCheckTest, RegionWithoutProbeIsListedAndOneThatDoesNotAnswerTimesOut) {
  v1::RunCheckResponse response;
  const auto started = std::chrono::steady_clock::now();
  auto status = run("wide", seconds(2), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  // The raw ap probe was asked (it got the re-check) but never answers.
  auto recheck = ap_->next(&v1::CoordinatorMessage::has_recheck, seconds(5));
  ASSERT_TRUE(recheck.has_value());
  EXPECT_EQ(recheck->message.recheck().request_id(), response.request_id());
  EXPECT_EQ(regions_of(response), (std::set<std::string>{"us"})) << response.DebugString();
  EXPECT_EQ(std::vector<std::string>(response.regions_timed_out().begin(), response.regions_timed_out().end()),
            std::vector<std::string>{"ap"});
  EXPECT_EQ(std::vector<std::string>(response.regions_without_probe().begin(), response.regions_without_probe().end()),
            std::vector<std::string>{"sa"});
  EXPECT_GE(std::chrono::steady_clock::now() - started, milliseconds(1900));
}

TEST_F(RunCheckTest, CheckOfEveryRegionRunsInTheRegionsOfTheRegisteredProbes) {
  v1::RunCheckResponse response;
  auto status = run("everywhere", seconds(1), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(regions_of(response), (std::set<std::string>{"eu", "us"})) << response.DebugString();
  const std::set<std::string> without(response.regions_without_probe().begin(), response.regions_without_probe().end());
  EXPECT_TRUE(without.contains("sa")) << response.DebugString();
  const std::set<std::string> timed_out(response.regions_timed_out().begin(), response.regions_timed_out().end());
  EXPECT_TRUE(timed_out.contains("ap")) << response.DebugString();
}

TEST_F(RunCheckTest, NoConnectedProbeInAnyRegionIsAFailedPrecondition) {
  v1::RunCheckResponse response;
  auto status = run("nowhere", seconds(5), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(status.error_message().find("no probe"), std::string::npos) << status.error_message();
  EXPECT_NE(status.error_message().find("sa"), std::string::npos) << status.error_message();
}

TEST_F(RunCheckTest, CallersDeadlineEndsTheCall) {
  // The ap probe never answers: without the caller's deadline this would wait
  // 60 s (that the coordinator then stops waiting too: run_waiters_test).
  v1::RunCheckRequest request;
  request.set_name("wide");
  request.mutable_timeout()->set_seconds(60);
  grpc::ClientContext context;
  testing::authorize(context, *write_token_);
  context.set_deadline(std::chrono::system_clock::now() + milliseconds(1500));
  v1::RunCheckResponse response;
  auto status = v1::CheckService::NewStub(channel())->RunCheck(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  // The coordinator goes on serving runs.
  for (int i = 0; i < 3; ++i) {
    v1::RunCheckResponse ok;
    ASSERT_TRUE(run("home", seconds(20), &ok).ok());
    EXPECT_EQ(ok.results_size(), 2);
  }
}

TEST_F(RunCheckTest, BadInputIsRefusedNamingTheField) {
  auto expect = [&](const std::string& name, std::optional<milliseconds> timeout, grpc::StatusCode code,
                    const std::string& says, const std::string& auth = "") {
    v1::RunCheckResponse response;
    auto status = run(name, timeout, &response, auth);
    EXPECT_EQ(status.error_code(), code) << name << ": " << status.error_message();
    EXPECT_NE(status.error_message().find(says), std::string::npos) << status.error_message();
  };
  expect("", std::nullopt, grpc::StatusCode::INVALID_ARGUMENT, "name");
  expect("no-such-check", std::nullopt, grpc::StatusCode::NOT_FOUND, "no-such-check");
  expect("home", milliseconds(999), grpc::StatusCode::INVALID_ARGUMENT, "timeout");
  expect("home", milliseconds(0), grpc::StatusCode::INVALID_ARGUMENT, "timeout");
  expect("home", milliseconds(300'001), grpc::StatusCode::INVALID_ARGUMENT, "timeout");
  {
    v1::RunCheckRequest request;
    request.set_name("home");
    request.mutable_timeout()->set_seconds(-5);
    grpc::ClientContext context;
    testing::authorize(context, *write_token_);
    v1::RunCheckResponse response;
    auto status = v1::CheckService::NewStub(channel())->RunCheck(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(status.error_message().find("timeout"), std::string::npos) << status.error_message();
  }
  expect("home", std::nullopt, grpc::StatusCode::PERMISSION_DENIED, "write", testing::bearer(*read_token_));
  expect("home", std::nullopt, grpc::StatusCode::UNAUTHENTICATED, "", "none");
  expect("home", std::nullopt, grpc::StatusCode::UNAUTHENTICATED, "", testing::bearer(probe_tokens_->at("us-1")));
  expect("home", std::nullopt, grpc::StatusCode::UNAUTHENTICATED, "", testing::bearer(std::string(64, 'a')));
}

// --- spool backlog ------------------------------------------------------------

TEST_F(RunCheckTest, SpoolBacklogIsProducedMinusStoredWhileConnected) {
  // An older probe says nothing: the backlog stays unset.
  auto bk = listed("bk-1");
  ASSERT_TRUE(bk.has_value());
  EXPECT_FALSE(bk->has_spool_backlog());
  {
    testing::RawProbe probe(coordinator_->grpc_port(), probe_tokens_->at("bk-1"), "bk-1", "bk");
    auto checks = probe.assignment();
    ASSERT_EQ(checks.count("backlog"), 1u);
    const int64_t check_id = checks.at("backlog").id();
    ASSERT_TRUE(testing::eventually([] { return connected("bk-1"); }, seconds(10)));
    EXPECT_FALSE(listed("bk-1")->has_spool_backlog());

    // 40 results stored of the 100 it has produced.
    v1::ProbeMessage batch;
    const auto now =
        std::chrono::duration_cast<seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    for (uint64_t seq = 1; seq <= 40; ++seq) {
      auto* r = batch.mutable_results()->add_results();
      r->set_sequence(seq);
      r->set_check_id(check_id);
      r->mutable_start_time()->set_seconds(now - 5);
      r->mutable_edge()->set_failure_class(v1::FAILURE_CLASS_OK);
      r->mutable_edge()->mutable_response()->set_status(200);
    }
    batch.mutable_results()->set_produced_sequence(100);
    ASSERT_TRUE(probe.send(batch));
    auto ack = probe.next(&v1::CoordinatorMessage::has_ack);
    ASSERT_TRUE(ack.has_value());
    ASSERT_EQ(ack->message.ack().sequence(), 40u);
    ASSERT_TRUE(testing::eventually([] { return listed("bk-1")->last_stored_sequence() == 40; }, seconds(10)));
    auto p = listed("bk-1");
    ASSERT_TRUE(p->has_spool_backlog()) << p->DebugString();
    EXPECT_EQ(p->spool_backlog(), 60u);

    // A heartbeat's word counts too.
    auto heartbeat = [&](uint64_t produced) {
      v1::ProbeMessage m;
      m.mutable_heartbeat()->set_produced_sequence(produced);
      return probe.send(m);
    };
    ASSERT_TRUE(heartbeat(70));
    ASSERT_TRUE(testing::eventually([] { return listed("bk-1")->spool_backlog() == 30u; }, seconds(10)));
    // Below what is stored, beyond any sequence number, or "not told": ignored.
    ASSERT_TRUE(heartbeat(10));
    ASSERT_TRUE(heartbeat(UINT64_MAX));
    ASSERT_TRUE(heartbeat(static_cast<uint64_t>(INT64_MAX) + 1));
    ASSERT_TRUE(heartbeat(0));
    // Messages are read in order: once this batch is acknowledged, the
    // heartbeats before it were read. It says nothing of what was produced.
    v1::ProbeMessage one;
    auto* r = one.mutable_results()->add_results();
    *r = batch.results().results(0);
    r->set_sequence(41);
    ASSERT_TRUE(probe.send(one));
    ack = probe.next(&v1::CoordinatorMessage::has_ack);
    ASSERT_TRUE(ack.has_value());
    ASSERT_EQ(ack->message.ack().sequence(), 41u);
    ASSERT_TRUE(testing::eventually([] { return listed("bk-1")->last_stored_sequence() == 41; }, seconds(10)));
    p = listed("bk-1");
    ASSERT_TRUE(p->has_spool_backlog());
    EXPECT_EQ(p->spool_backlog(), 29u) << "produced 70, stored 41";
  }
  // Not connected: unknown.
  ASSERT_TRUE(testing::eventually([] { return !connected("bk-1"); }, seconds(10)));
  EXPECT_FALSE(listed("bk-1")->has_spool_backlog());
}

TEST_F(RunCheckTest, RealProbeReportsWhatItProduced) {
  // us-1 has produced results (the runs above, or its first scheduled
  // attempt): it reports its backlog, 0 once everything is stored.
  v1::RunCheckResponse response;
  ASSERT_TRUE(run("home", seconds(20), &response).ok());
  ASSERT_TRUE(testing::eventually(
      [] {
        auto p = listed("us-1");
        return p && p->has_spool_backlog() && p->spool_backlog() == 0 && p->last_stored_sequence() > 0;
      },
      seconds(30)))
      << listed("us-1")->DebugString();
}

}  // namespace
}  // namespace vantage
