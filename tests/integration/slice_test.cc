// The first slice, in one process but over real sockets: a coordinator with
// real PostgreSQL and gRPC, two probes in two regions, a local origin.
#include <gtest/gtest.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <fstream>
#include <pqxx/pqxx>

#include "common/assignment.h"
#include "coordinator/coordinator.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "probe/agent.h"
#include "storage/pg_store.h"
#include "tests/support/postgres.h"
#include "tests/support/process.h"
#include "tools/lab/origin.h"
#include "vantage/v1/probe_service.grpc.pb.h"

namespace vantage {
namespace {

using std::chrono::seconds;
using testing::eventually;
using testing::PostgresEnvironment;

[[maybe_unused]] auto* const kPostgres = ::testing::AddGlobalTestEnvironment(new PostgresEnvironment);

class SliceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = PostgresEnvironment::fresh_database();
    storage::PgStore store(db_, 1);
    store.migrate();
    tokens_["us-1"] = store.add_probe("us-1", "us");
    tokens_["eu-1"] = store.add_probe("eu-1", "eu");
    checks_file_ = std::filesystem::temp_directory_path() / ("vantage-slice-" + std::to_string(getpid()) + ".yaml");
    std::ofstream(checks_file_) << "checks:\n"
                                << "  - name: home\n"
                                << "    url: http://127.0.0.1:" << origin_.port() << "/\n"
                                << "    interval: 1s\n    timeout: 500ms\n"
                                << "  - name: eu-only\n"
                                << "    url: http://127.0.0.1:" << origin_.port() << "/status/503\n"
                                << "    interval: 1s\n    timeout: 500ms\n    regions: [eu]\n";
  }
  void TearDown() override { std::filesystem::remove(checks_file_); }

  std::unique_ptr<coordinator::Coordinator> start_coordinator(const std::string& listen = "127.0.0.1:0") {
    coordinator::CoordinatorOptions options;
    options.listen = listen;
    options.metrics_listen = "127.0.0.1:0";
    options.database_url = db_;
    options.checks_file = checks_file_.string();
    auto c = std::make_unique<coordinator::Coordinator>(options);
    c->start();
    return c;
  }

  std::unique_ptr<probe::Agent> start_probe(const std::string& id, const std::string& region, int port) {
    probe::AgentOptions options;
    options.stream.coordinator = "127.0.0.1:" + std::to_string(port);
    options.stream.token = tokens_.at(id);
    options.stream.probe_id = id;
    options.stream.region = region;
    options.stream.version = "test";
    options.stream.backoff_initial = std::chrono::milliseconds(100);
    options.stream.backoff_max = std::chrono::milliseconds(500);
    options.metrics_listen = "127.0.0.1:0";
    auto agent = std::make_unique<probe::Agent>(options, RealTimers::instance());
    agent->start();
    return agent;
  }

  int64_t query_int(const std::string& sql) {
    pqxx::connection c(db_);
    pqxx::read_transaction tx(c);
    return tx.exec1(sql)[0].as<int64_t>();
  }

  lab::Origin origin_{"127.0.0.1", 0};
  std::string db_;
  std::map<std::string, std::string> tokens_;
  std::filesystem::path checks_file_;
};

TEST_F(SliceTest, ResultsLandExactlyOnceAcrossACoordinatorRestart) {
  auto coordinator = start_coordinator();
  const int port = coordinator->grpc_port();
  auto us = start_probe("us-1", "us", port);
  auto eu = start_probe("eu-1", "eu", port);

  auto stored = [&](const char* probe) {
    return query_int(std::string("SELECT count(*) FROM results r JOIN probes p ON p.id = r.probe_id WHERE p.name = '") + probe + "'");
  };
  ASSERT_TRUE(eventually([&] { return stored("us-1") >= 3 && stored("eu-1") >= 6; }, seconds(30)))
      << "us-1 " << stored("us-1") << ", eu-1 " << stored("eu-1");

  // The standard health service answers.
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  grpc::health::v1::HealthCheckResponse health;
  grpc::ClientContext health_context;
  ASSERT_TRUE(grpc::health::v1::Health::NewStub(channel)
                  ->Check(&health_context, grpc::health::v1::HealthCheckRequest(), &health)
                  .ok());
  EXPECT_EQ(health.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  // Metrics show both regions.
  auto metrics = testing::http_get(coordinator->metrics_port(), "/metrics");
  EXPECT_GT(testing::metric_value(metrics, "vantage_ingest_results_total{region=\"us\"}").value_or(0), 0);
  EXPECT_GT(testing::metric_value(metrics, "vantage_ingest_results_total{region=\"eu\"}").value_or(0), 0);
  EXPECT_NE(metrics.find("vantage_build_info{"), std::string::npos);

  // The probe's own metrics count what it produced.
  ASSERT_TRUE(eventually(
      [&] {
        auto probe_metrics = testing::http_get(eu->metrics_port(), "/metrics");
        return testing::metric_value(probe_metrics, "vantage_probe_results_total{class=\"origin_5xx\"}").value_or(0) > 0 &&
               testing::metric_value(probe_metrics, "vantage_probe_results_total{class=\"ok\"}").value_or(0) > 0 &&
               testing::metric_value(probe_metrics, "vantage_probe_stream_connected") == 1;
      },
      seconds(10)))
      << testing::http_get(eu->metrics_port(), "/metrics");

  // The coordinator goes away and comes back on the same address: the probes
  // reconnect and resend what was not acknowledged.
  coordinator->shutdown();
  coordinator.reset();
  const auto us_before = stored("us-1");
  const auto eu_before = stored("eu-1");
  std::this_thread::sleep_for(seconds(2));
  coordinator = start_coordinator("127.0.0.1:" + std::to_string(port));
  ASSERT_TRUE(eventually(
      [&] {
        return us->streamer().sessions() >= 2 && eu->streamer().sessions() >= 2 &&
               stored("us-1") >= us_before + 3 && stored("eu-1") >= eu_before + 6;
      },
      seconds(30)))
      << "us-1 sessions " << us->streamer().sessions() << ", eu-1 sessions " << eu->streamer().sessions();

  us->stop();
  eu->stop();
  EXPECT_EQ(us->spool().size(), 0u) << "every result acknowledged";
  EXPECT_EQ(eu->spool().size(), 0u) << "every result acknowledged";

  for (const char* probe : {"us-1", "eu-1"}) {
    const std::string where = std::string(" FROM results r JOIN probes p ON p.id = r.probe_id WHERE p.name = '") + probe + "'";
    const auto count = query_int("SELECT count(*)" + where);
    EXPECT_EQ(query_int("SELECT count(DISTINCT seq)" + where), count) << probe << ": duplicates";
    EXPECT_EQ(query_int("SELECT min(seq)" + where), 1) << probe;
    EXPECT_EQ(query_int("SELECT max(seq)" + where), count) << probe << ": gaps";
  }
  // Assignment follows regions: only eu runs eu-only, which fails with 503.
  EXPECT_EQ(query_int("SELECT count(*) FROM results r JOIN probes p ON p.id = r.probe_id JOIN checks c "
                      "ON c.id = r.check_id WHERE p.name = 'us-1' AND c.name = 'eu-only'"), 0);
  EXPECT_GT(query_int("SELECT count(*) FROM results r JOIN checks c ON c.id = r.check_id JOIN failure_classes f "
                      "ON f.id = r.class WHERE c.name = 'eu-only' AND f.name = 'origin_5xx' AND r.status = 503"), 0);
  EXPECT_GT(query_int("SELECT count(*) FROM results r JOIN checks c ON c.id = r.check_id JOIN failure_classes f "
                      "ON f.id = r.class WHERE c.name = 'home' AND f.name = 'ok'"), 0);
}

// Asks server reflection (grpc.reflection.v1alpha, the version gRPC 1.51
// serves) to list the services. Debian ships no stubs for it, so the request
// is encoded by hand: ServerReflectionRequest{list_services = ""} is field 7,
// length 0. Returns the raw response bytes.
std::string reflection_list_services(int port) {
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + seconds(10));
  grpc::CompletionQueue cq;
  auto call = stub.PrepareCall(&context, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  auto step = [&](int tag) {
    void* got = nullptr;
    bool ok = false;
    return cq.Next(&got, &ok) && ok && got == reinterpret_cast<void*>(static_cast<intptr_t>(tag));
  };
  call->StartCall(reinterpret_cast<void*>(1));
  if (!step(1)) return {};
  const char request[] = {0x3a, 0x00};
  grpc::Slice slice(request, sizeof request);
  grpc::ByteBuffer out(&slice, 1);
  call->Write(out, reinterpret_cast<void*>(2));
  if (!step(2)) return {};
  grpc::ByteBuffer in;
  call->Read(&in, reinterpret_cast<void*>(3));
  if (!step(3)) return {};
  std::vector<grpc::Slice> slices;
  in.Dump(&slices);
  std::string bytes;
  for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  context.TryCancel();
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(4));
  void* got;
  bool ok;
  while (cq.Next(&got, &ok) && got != reinterpret_cast<void*>(4)) {
  }
  cq.Shutdown();
  while (cq.Next(&got, &ok)) {
  }
  return bytes;
}

TEST_F(SliceTest, AProbeTakesALargeAssignmentInParts) {
  // More checks than one part holds: the coordinator sends them in parts,
  // and the probe ends up with every one of them.
  constexpr int kChecks = 1'234;
  static_assert(kChecks > static_cast<int>(kChecksPerAssignmentPart) * 2);
  {
    std::ofstream file(checks_file_);
    file << "checks:\n";
    for (int i = 0; i < kChecks; ++i) {
      file << "  - name: c" << i << "\n    url: http://127.0.0.1:" << origin_.port() << "/?c=" << i
           << "\n    interval: 1h\n    regions: [us]\n";
    }
  }
  auto coordinator = start_coordinator();
  auto us = start_probe("us-1", "us", coordinator->grpc_port());
  auto scheduled = [&] {
    return testing::metric_value(testing::http_get(us->metrics_port(), "/metrics"), "vantage_probe_checks").value_or(-1);
  };
  ASSERT_TRUE(eventually([&] { return scheduled() == kChecks; }, seconds(20))) << scheduled();
}

TEST_F(SliceTest, ServerReflectionListsTheProbeService) {
  auto coordinator = start_coordinator();
  auto listing = reflection_list_services(coordinator->grpc_port());
  EXPECT_NE(listing.find("vantage.v1.ProbeService"), std::string::npos) << listing;
  EXPECT_NE(listing.find("grpc.health.v1.Health"), std::string::npos) << listing;
}

// Opens a stream with `token` (none if empty), sends `first`, returns how it ends.
grpc::Status connect_once(int port, const std::string& token, const v1::ProbeMessage& first) {
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  auto stub = v1::ProbeService::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + seconds(10));
  if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
  auto stream = stub->Connect(&context);
  stream->Write(first);
  stream->WritesDone();
  v1::CoordinatorMessage message;
  while (stream->Read(&message)) {
  }
  return stream->Finish();
}

v1::ProbeMessage hello(const std::string& probe_id) {
  v1::ProbeMessage m;
  m.mutable_hello()->set_probe_id(probe_id);
  m.mutable_hello()->set_region("us");
  return m;
}

TEST_F(SliceTest, BadCredentialsAndBadStreamsAreRefused) {
  auto coordinator = start_coordinator();
  const int port = coordinator->grpc_port();

  auto status = connect_once(port, "wrong-token", hello("us-1"));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << status.error_message();
  EXPECT_EQ(status.error_message(), "unknown probe token");

  status = connect_once(port, "", hello("us-1"));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_NE(status.error_message().find("authorization"), std::string::npos) << status.error_message();

  status = connect_once(port, tokens_.at("us-1"), hello("eu-1"));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << status.error_message();
  EXPECT_NE(status.error_message().find("eu-1"), std::string::npos);

  v1::ProbeMessage not_hello;
  not_hello.mutable_heartbeat();
  status = connect_once(port, tokens_.at("us-1"), not_hello);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("hello"), std::string::npos);

  auto metrics = testing::http_get(coordinator->metrics_port(), "/metrics");
  EXPECT_EQ(testing::metric_value(metrics, "vantage_probe_auth_failures_total{reason=\"unknown_token\"}"), 1);
  EXPECT_EQ(testing::metric_value(metrics, "vantage_probe_auth_failures_total{reason=\"missing_token\"}"), 1);
  EXPECT_EQ(testing::metric_value(metrics, "vantage_probe_auth_failures_total{reason=\"wrong_probe_id\"}"), 1);
  EXPECT_EQ(query_int("SELECT count(*) FROM results"), 0);
}

TEST_F(SliceTest, ABatchWithSequencesGoingBackwardsIsRejectedAndNothingIsStored) {
  auto coordinator = start_coordinator();
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(coordinator->grpc_port()),
                                     grpc::InsecureChannelCredentials());
  auto stub = v1::ProbeService::NewStub(channel);
  grpc::ClientContext context;
  context.AddMetadata("authorization", "Bearer " + tokens_.at("us-1"));
  auto stream = stub->Connect(&context);
  ASSERT_TRUE(stream->Write(hello("us-1")));
  v1::ProbeMessage batch;
  for (uint64_t seq : {5, 4}) {
    auto* r = batch.mutable_results()->add_results();
    r->set_sequence(seq);
    r->set_check_id(1);
    r->mutable_start_time()->set_seconds(1'790'000'000);
    r->mutable_edge()->set_failure_class(v1::FAILURE_CLASS_OK);
  }
  stream->Write(batch);
  stream->WritesDone();
  v1::CoordinatorMessage message;
  while (stream->Read(&message)) EXPECT_FALSE(message.has_ack());
  auto status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("results.sequence 4"), std::string::npos) << status.error_message();
  EXPECT_EQ(query_int("SELECT count(*) FROM results"), 0);
}

}  // namespace
}  // namespace vantage
