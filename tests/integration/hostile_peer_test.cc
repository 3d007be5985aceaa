// The coordinator against probes that misbehave: a stream that stops reading,
// one that never says hello, one that sends bytes that do not parse, one that
// claims another region, results out of every range. Nothing any of them does
// may block a shared thread or fail another probe's results.
//
// The first tests run ProbeServiceImpl over real gRPC on loopback with
// in-memory storage fakes; the last ones run the whole coordinator with
// PostgreSQL.
#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <pqxx/pqxx>

#include "common/assignment.h"
#include "coordinator/coordinator.h"
#include "coordinator/ingest.h"
#include "coordinator/probe_service.h"
#include "storage/pg_store.h"
#include "tests/support/fake_probes.h"
#include "tests/support/postgres.h"
#include "tests/support/process.h"
#include "vantage/v1/probe_service.grpc.pb.h"

namespace vantage {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::eventually;

[[maybe_unused]] auto* const kPostgres = ::testing::AddGlobalTestEnvironment(new testing::PostgresEnvironment);

const int64_t kNowSeconds =
    std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();

// --- In-memory storage -------------------------------------------------------

// Records every write: which probes' batches, with which sequences.
class FakeSink : public storage::ResultSink {
 public:
  struct Written {
    std::string probe;
    std::vector<uint64_t> sequences;
  };
  std::function<void(const std::vector<const storage::ResultBatch*>&)> before_write;  // may block or throw

  std::vector<storage::WriteOutcome> write_results(const std::vector<const storage::ResultBatch*>& batches) override {
    if (before_write) before_write(batches);
    std::lock_guard lock(mu_);
    std::vector<storage::WriteOutcome> outcomes;
    auto& call = calls_.emplace_back();
    for (const auto* b : batches) {
      auto& w = call.emplace_back(Written{b->probe.name, {}});
      for (const auto& r : b->results) w.sequences.push_back(r.sequence());
      auto& acked = acked_[b->probe.key];
      acked = std::max(acked, b->acknowledged_through());
      outcomes.push_back({b->results.size(), 0, acked});
    }
    return outcomes;
  }
  std::vector<std::vector<Written>> calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }

 private:
  std::mutex mu_;
  std::vector<std::vector<Written>> calls_;
  std::map<int32_t, uint64_t> acked_;
};

// ProbeServiceImpl on a real gRPC server, storage faked.
struct Service {
  explicit Service(coordinator::ProbeServiceOptions options = {}, coordinator::IngestOptions ingest_options = {}) {
    ingest = std::make_unique<coordinator::Ingest>(sink, metrics, ingest_options);
    service = std::make_unique<coordinator::ProbeServiceImpl>(probes, *ingest, sessions, metrics, options);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service.get());
    server = builder.BuildAndStart();
  }
  ~Service() {
    sessions.cancel_all();
    server->Shutdown(std::chrono::system_clock::now() + seconds(5));
    server->Wait();
    ingest->stop();
  }
  double counter(prometheus::Family<prometheus::Counter>& family, const std::string& reason) {
    return family.Add({{"reason", reason}}).Value();
  }

  testing::FakeProbes probes;
  FakeSink sink;
  coordinator::CheckRegistry checks;
  coordinator::CoordinatorMetrics metrics{std::make_shared<prometheus::Registry>()};
  coordinator::ProbeSessions sessions{checks, metrics};
  std::unique_ptr<coordinator::Ingest> ingest;
  std::unique_ptr<coordinator::ProbeServiceImpl> service;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
};

// A raw client of ProbeService.Connect, driven by hand.
struct Client {
  Client(int port, const std::string& token, const grpc::ChannelArguments& args = {}) {
    auto channel = grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials(),
                                             args);
    stub = v1::ProbeService::NewStub(channel);
    context.AddMetadata("authorization", "Bearer " + token);
    stream = stub->Connect(&context);
  }
  ~Client() { context.TryCancel(); }
  bool hello(const std::string& probe_id, const std::string& region, bool accepts_parts = true) {
    v1::ProbeMessage m;
    m.mutable_hello()->set_probe_id(probe_id);
    m.mutable_hello()->set_region(region);
    m.mutable_hello()->set_accepts_assignment_parts(accepts_parts);
    return stream->Write(m);
  }
  // Reads until `want` holds for a message; false when the stream ends first.
  bool read_until(const std::function<bool(const v1::CoordinatorMessage&)>& want) {
    v1::CoordinatorMessage m;
    while (stream->Read(&m)) {
      if (want(m)) return true;
    }
    return false;
  }
  grpc::Status finish() {
    v1::CoordinatorMessage m;
    while (stream->Read(&m)) {
    }
    return stream->Finish();
  }

  std::unique_ptr<v1::ProbeService::Stub> stub;
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReaderWriter<v1::ProbeMessage, v1::CoordinatorMessage>> stream;
};

v1::Check check(int64_t id, const std::string& url_padding = {}) {
  v1::Check c;
  c.set_id(id);
  c.set_name("c" + std::to_string(id));
  c.set_url("http://127.0.0.1/" + url_padding);
  return c;
}

v1::CheckResult result(uint64_t sequence, int64_t check_id) {
  v1::CheckResult r;
  r.set_sequence(sequence);
  r.set_check_id(check_id);
  r.mutable_start_time()->set_seconds(kNowSeconds - 10);
  r.mutable_edge()->set_failure_class(v1::FAILURE_CLASS_OK);
  r.mutable_edge()->mutable_response()->set_status(200);
  return r;
}

// --- A stream that stops reading -------------------------------------------

TEST(HostilePeer, AProbeThatStopsReadingBlocksNeitherRechecksNorOtherProbes) {
  coordinator::ProbeServiceOptions options;
  options.max_queued_messages = 16;
  Service s(options);
  s.checks.replace({check(1)});
  const auto stalled_token = s.probes.add("eu-1", "eu");
  const auto healthy_token = s.probes.add("ap-1", "ap");

  // The stalled probe reads nothing, with a small receive window (no BDP
  // probing, little read-ahead), so the coordinator's writes to it block.
  grpc::ChannelArguments small_window;
  small_window.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  small_window.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 1024);
  Client stalled(s.port, stalled_token, small_window);
  ASSERT_TRUE(stalled.hello("eu-1", "eu"));

  Client healthy(s.port, healthy_token);
  ASSERT_TRUE(healthy.hello("ap-1", "ap"));
  ASSERT_TRUE(healthy.read_until([](const auto& m) { return m.has_assignment() && !m.assignment().more(); }));
  std::mutex mu;
  std::vector<std::string> received;  // re-check request ids, in order
  std::thread reader([&] {
    healthy.read_until([&](const v1::CoordinatorMessage& m) {
      if (m.has_recheck()) {
        std::lock_guard lock(mu);
        received.push_back(m.recheck().request_id());
      }
      return false;
    });
  });
  auto received_count = [&] {
    std::lock_guard lock(mu);
    return received.size();
  };
  ASSERT_TRUE(eventually([&] { return s.metrics.probes_connected.Value() == 2; }, seconds(10)));

  // Large re-check requests fill the stalled stream's window at once; then
  // its queue. Every call returns (it only queues), and the healthy probe gets
  // every request, in order.
  const std::string reason(64 * 1024, 'r');
  constexpr int kRechecks = 60;
  std::vector<size_t> asked;
  for (int i = 0; i < kRechecks; ++i) {
    auto call = std::async(std::launch::async, [&, i] {
      return s.sessions.request_recheck(1, {"eu", "ap"}, "r-" + std::to_string(i), reason);
    });
    ASSERT_EQ(call.wait_for(seconds(60)), std::future_status::ready) << "request_recheck blocked at " << i;
    asked.push_back(call.get());
    ASSERT_TRUE(eventually([&] { return received_count() == static_cast<size_t>(i) + 1; }, seconds(30))) << i;
  }
  EXPECT_EQ(asked.front(), 2u) << "both probes asked while the stalled one's queue had room";
  EXPECT_EQ(asked.back(), 1u) << "the stalled probe's stream was ended";
  {
    std::lock_guard lock(mu);
    for (int i = 0; i < kRechecks; ++i) EXPECT_EQ(received[static_cast<size_t>(i)], "r-" + std::to_string(i));
  }
  // Counted once the stalled stream's handler has returned.
  EXPECT_TRUE(eventually([&] { return s.metrics.probes_connected.Value() == 1; }, seconds(10)));
  EXPECT_TRUE(eventually([&] { return s.counter(s.metrics.probe_streams_ended, "stopped_reading") == 1; }, seconds(10)));

  // The healthy probe's results are still stored and acknowledged.
  v1::ProbeMessage batch;
  *batch.mutable_results()->add_results() = result(1, 1);
  ASSERT_TRUE(healthy.stream->Write(batch));
  ASSERT_TRUE(eventually([&] { return s.sink.calls().size() == 1; }, seconds(10)));

  healthy.context.TryCancel();
  reader.join();
}

// --- Handshake ------------------------------------------------------------------

TEST(HostilePeer, AStreamWithoutHelloIsEndedAtTheDeadline) {
  coordinator::ProbeServiceOptions options;
  options.hello_timeout = milliseconds(300);
  Service s(options);
  const auto token = s.probes.add("eu-1", "eu");
  Client silent(s.port, token);  // authenticated, then says nothing
  const auto status = silent.finish();
  EXPECT_FALSE(status.ok());
  // Cancelled, so the client sees CANCELLED; the coordinator counts why.
  EXPECT_TRUE(eventually([&] { return s.counter(s.metrics.probe_streams_ended, "hello_timeout") == 1; }, seconds(10)));

  // A prompt hello is not affected by the deadline passing later.
  Client prompt(s.port, token);
  ASSERT_TRUE(prompt.hello("eu-1", "eu"));
  ASSERT_TRUE(prompt.read_until([](const auto& m) { return m.has_welcome(); }));
  ASSERT_TRUE(eventually([&] { return s.metrics.probes_connected.Value() == 1; }, seconds(5)));
  std::this_thread::sleep_for(options.hello_timeout * 2);  // past the deadline: still open
  EXPECT_EQ(s.metrics.probes_connected.Value(), 1);
  EXPECT_EQ(s.counter(s.metrics.probe_streams_ended, "hello_timeout"), 1);
}

TEST(HostilePeer, AHelloClaimingAnotherRegionIsRefused) {
  Service s;
  s.checks.replace({check(1)});
  const auto token = s.probes.add("eu-1", "eu");
  Client client(s.port, token);
  ASSERT_TRUE(client.hello("eu-1", "ap"));
  const auto status = client.finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << status.error_message();
  EXPECT_NE(status.error_message().find("\"ap\""), std::string::npos) << status.error_message();
  EXPECT_NE(status.error_message().find("\"eu\""), std::string::npos) << status.error_message();
  EXPECT_EQ(s.counter(s.metrics.probe_auth_failures, "wrong_region"), 1);
}

TEST(HostilePeer, AMessageThatDoesNotParseEndsTheStreamWithAReason) {
  Service s;
  s.checks.replace({check(1)});
  const auto token = s.probes.add("eu-1", "eu");
  Client client(s.port, token);
  ASSERT_TRUE(client.hello("eu-1", "eu"));
  ASSERT_TRUE(client.read_until([](const auto& m) { return m.has_assignment(); }));
  // Invalid UTF-8 in a proto3 string: C++ serializes it (with a logged
  // complaint), the coordinator cannot parse it.
  v1::ProbeMessage batch;
  auto r = result(1, 1);
  r.mutable_edge()->mutable_response()->set_server("bad \xff server");
  *batch.mutable_results()->add_results() = r;
  ASSERT_TRUE(client.stream->Write(batch));
  const auto status = client.finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_NE(status.error_message().find("does not parse as a vantage.v1.ProbeMessage"), std::string::npos)
      << status.error_message();
  EXPECT_EQ(s.counter(s.metrics.probe_streams_ended, "unreadable_message"), 1);
  EXPECT_TRUE(s.sink.calls().empty());
}

TEST(HostilePeer, AProbeThatClosesItsSideEndsWithOk) {
  Service s;
  const auto token = s.probes.add("eu-1", "eu");
  Client client(s.port, token);
  ASSERT_TRUE(client.hello("eu-1", "eu"));
  ASSERT_TRUE(client.read_until([](const auto& m) { return m.has_assignment(); }));
  client.stream->WritesDone();
  EXPECT_TRUE(client.finish().ok());
}

// --- Results --------------------------------------------------------------------

TEST(HostilePeer, BadResultsAreRefusedAloneAndAcknowledged) {
  Service s;
  s.checks.replace({check(1), check(2)});
  const auto token = s.probes.add("eu-1", "eu");
  Client client(s.port, token);
  ASSERT_TRUE(client.hello("eu-1", "eu"));
  ASSERT_TRUE(client.read_until([](const auto& m) { return m.has_assignment(); }));

  v1::ProbeMessage batch;
  auto* results = batch.mutable_results();
  *results->add_results() = result(1, 1);
  auto bad_status = result(2, 1);
  bad_status.mutable_edge()->mutable_response()->set_status(70'000);
  *results->add_results() = bad_status;
  *results->add_results() = result(3, 2);
  *results->add_results() = result(4, 99);  // not a check of this region
  auto bad_class = result(5, 1);
  bad_class.mutable_edge()->set_failure_class(static_cast<v1::FailureClass>(999));
  *results->add_results() = bad_class;
  ASSERT_TRUE(client.stream->Write(batch));
  uint64_t acked = 0;
  ASSERT_TRUE(client.read_until([&](const auto& m) { return m.has_ack() && (acked = m.ack().sequence()) > 0; }));
  EXPECT_EQ(acked, 5u) << "the refused last result is acknowledged too";

  // A batch of refused results only: acknowledged, nothing stored.
  batch.Clear();
  auto future = result(6, 1);
  future.mutable_start_time()->set_seconds(253'402'300'800);  // year 10000
  *batch.mutable_results()->add_results() = future;
  ASSERT_TRUE(client.stream->Write(batch));
  ASSERT_TRUE(client.read_until([&](const auto& m) { return m.has_ack() && (acked = m.ack().sequence()) > 0; }));
  EXPECT_EQ(acked, 6u);

  const auto calls = s.sink.calls();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0][0].sequences, (std::vector<uint64_t>{1, 3}));
  EXPECT_TRUE(calls[1][0].sequences.empty());
  EXPECT_EQ(s.counter(s.metrics.ingest_refused, "status"), 1);
  EXPECT_EQ(s.counter(s.metrics.ingest_refused, "failure_class"), 1);
  EXPECT_EQ(s.counter(s.metrics.ingest_refused, "unassigned_check"), 1);
  EXPECT_EQ(s.counter(s.metrics.ingest_refused, "start_time"), 1);
  EXPECT_EQ(s.counter(s.metrics.ingest_refused, "check_id"), 0) << "every reason's series exists from the start";
}

TEST(HostilePeer, AWriteRefusedByTheDatabaseIsRetriedProbeByProbe) {
  // Validation should keep bad data out; should the database still refuse a
  // merged write, each probe's batch is tried alone.
  FakeSink sink;
  coordinator::CoordinatorMetrics metrics{std::make_shared<prometheus::Registry>()};
  std::mutex mu;
  std::condition_variable cv;
  bool gate_open = false;
  int writes = 0;
  sink.before_write = [&](const std::vector<const storage::ResultBatch*>& batches) {
    std::unique_lock lock(mu);
    if (++writes == 1) cv.wait(lock, [&] { return gate_open; });  // hold the first write: the others queue up
    for (const auto* b : batches) {
      if (b->probe.name == "poison") throw storage::StorageError(storage::StorageError::Kind::kInternal, "22003");
    }
  };
  coordinator::IngestOptions options;
  options.writers = 1;
  coordinator::Ingest ingest(sink, metrics, options);
  auto batch = [](const std::string& probe, int32_t key, uint64_t seq) {
    storage::ResultBatch b{{key, probe, "eu", 0}, {result(seq, 1)}, 0};
    return b;
  };
  auto never = [] { return false; };
  auto first = std::async(std::launch::async, [&] { return ingest.submit(batch("first", 1, 1), never); });
  ASSERT_TRUE(eventually([&] { return metrics.ingest_queued_results.Value() == 1 && writes == 1; }, seconds(10)));
  auto good = std::async(std::launch::async, [&] { return ingest.submit(batch("good", 2, 1), never); });
  ASSERT_TRUE(eventually([&] { return metrics.ingest_queued_results.Value() == 2; }, seconds(10)));
  auto poison = std::async(std::launch::async, [&] { return ingest.submit(batch("poison", 3, 1), never); });
  ASSERT_TRUE(eventually([&] { return metrics.ingest_queued_results.Value() == 3; }, seconds(10)));
  {
    std::lock_guard lock(mu);
    gate_open = true;
  }
  cv.notify_all();
  EXPECT_TRUE(first.get().ok);
  EXPECT_TRUE(good.get().ok) << "the good probe's batch is stored although it was merged with a poisoned one";
  const auto refused = poison.get();
  EXPECT_FALSE(refused.ok);
  EXPECT_NE(refused.error.find("22003"), std::string::npos);
  const auto calls = sink.calls();
  ASSERT_EQ(calls.size(), 2u) << "first, then good alone (the merged and the poisoned writes threw)";
  EXPECT_EQ(calls[1].size(), 1u);
  EXPECT_EQ(calls[1][0].probe, "good");
  ingest.stop();
}

// --- Assignment size ------------------------------------------------------------

TEST(HostilePeer, ManyLargeChecksReachAProbeInPartsAndAnOversizedMessageIsRefusedWithAReason) {
  Service s;
  std::vector<v1::Check> checks;
  for (int64_t id = 1; id <= 60; ++id) checks.push_back(check(id, std::string(100'000, 'p')));  // 6 MB in all
  s.checks.replace(checks);
  const auto token = s.probes.add("eu-1", "eu");
  {
    // A probe that takes parts gets every check, each part under the limit
    // (the client's default 4 MiB receive limit would fail the stream).
    Client client(s.port, token);
    ASSERT_TRUE(client.hello("eu-1", "eu", /*accepts_parts=*/true));
    int received = 0;
    ASSERT_TRUE(client.read_until([&](const v1::CoordinatorMessage& m) {
      if (!m.has_assignment()) return false;
      received += m.assignment().checks_size();
      return !m.assignment().more();
    }));
    EXPECT_EQ(received, 60);
  }
  ASSERT_TRUE(eventually([&] { return s.metrics.probes_connected.Value() == 0; }, seconds(10)));
  // One that does not cannot get them in one message: refused with a reason.
  Client old(s.port, token);
  ASSERT_TRUE(old.hello("eu-1", "eu", /*accepts_parts=*/false));
  const auto status = old.finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_NE(status.error_message().find("bytes"), std::string::npos) << status.error_message();
  EXPECT_EQ(s.metrics.assignments_too_large.Value(), 1);
  EXPECT_EQ(s.counter(s.metrics.probe_streams_ended, "assignment_too_large"), 1);
}

// --- The whole coordinator, with PostgreSQL ---------------------------------------

class HostilePeerPg : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = testing::PostgresEnvironment::fresh_database();
    storage::PgStore store(db_, 1);
    store.migrate();
    tokens_["us-1"] = store.add_probe("us-1", "us");
    tokens_["eu-1"] = store.add_probe("eu-1", "eu");
    checks_file_ =
        std::filesystem::temp_directory_path() / ("vantage-hostile-" + std::to_string(getpid()) + ".yaml");
    std::ofstream(checks_file_) << "checks:\n  - name: home\n    url: http://127.0.0.1:9/\n    interval: 1h\n";
    coordinator::CoordinatorOptions options;
    options.listen = "127.0.0.1:0";
    options.metrics_listen = "127.0.0.1:0";
    options.database_url = db_;
    options.checks_file = checks_file_.string();
    coordinator_ = std::make_unique<coordinator::Coordinator>(options);
    coordinator_->start();
    check_id_ = query_int("SELECT id FROM checks WHERE name = 'home'");
  }
  void TearDown() override {
    coordinator_.reset();
    std::filesystem::remove(checks_file_);
  }
  int64_t query_int(const std::string& sql) {
    pqxx::connection c(db_);
    pqxx::read_transaction tx(c);
    return tx.exec1(sql)[0].as<int64_t>();
  }
  // Sends one batch on a new stream and returns the acknowledged sequence.
  uint64_t send(const std::string& probe, const std::string& region, const std::vector<v1::CheckResult>& results) {
    Client client(coordinator_->grpc_port(), tokens_.at(probe));
    if (!client.hello(probe, region)) return 0;
    v1::ProbeMessage batch;
    for (const auto& r : results) *batch.mutable_results()->add_results() = r;
    if (!client.stream->Write(batch)) return 0;
    uint64_t acked = 0;
    client.read_until([&](const auto& m) { return m.has_ack() && (acked = m.ack().sequence()) > 0; });
    return acked;
  }

  std::string db_;
  std::map<std::string, std::string> tokens_;
  std::filesystem::path checks_file_;
  std::unique_ptr<coordinator::Coordinator> coordinator_;
  int64_t check_id_ = 0;
};

TEST_F(HostilePeerPg, OutOfRangeResultsFailNoOtherProbesWriteAndAreNotResent) {
  // The hostile probe's batch: good results around every kind of bad one,
  // sent while a healthy probe sends its own (merged into shared COPYs).
  std::vector<v1::CheckResult> hostile;
  uint64_t seq = 0;
  auto add = [&](const std::function<void(v1::CheckResult&)>& spoil) {
    auto r = result(++seq, check_id_);
    spoil(r);
    hostile.push_back(r);
  };
  add([](auto&) {});
  add([](auto& r) { r.mutable_edge()->mutable_response()->set_status(70'000); });
  add([](auto& r) { r.mutable_edge()->set_failure_class(static_cast<v1::FailureClass>(-4)); });
  add([](auto& r) { r.mutable_start_time()->set_seconds(253'402'300'800); });
  add([](auto& r) { r.mutable_start_time()->set_nanos(2'000'000'000); });
  add([](auto& r) { r.mutable_edge()->mutable_edge()->set_edge_code(99'999); });
  add([](auto&) {});
  add([](auto& r) {  // a colo never seen, failing: stored as "other"
    r.mutable_edge()->set_failure_class(v1::FAILURE_CLASS_EDGE_ERROR);
    r.mutable_edge()->mutable_response()->set_status(520);
    r.mutable_edge()->mutable_edge()->set_edge_code(520);
    r.mutable_edge()->mutable_edge()->set_colo("Q\x01Z");
  });
  add([](auto& r) { r.set_check_id(r.check_id() + 1000); });  // unknown check: last, refused

  std::vector<v1::CheckResult> healthy;
  for (uint64_t i = 1; i <= 50; ++i) healthy.push_back(result(i, check_id_));

  auto healthy_acked = std::async(std::launch::async, [&] { return send("us-1", "us", healthy); });
  EXPECT_EQ(send("eu-1", "eu", hostile), seq) << "every result acknowledged, the refused last one too";
  EXPECT_EQ(healthy_acked.get(), 50u);

  auto count = [&](const std::string& probe) {
    return query_int("SELECT count(*) FROM results r JOIN probes p ON p.id = r.probe_id WHERE p.name = '" + probe +
                     "'");
  };
  EXPECT_EQ(count("us-1"), 50);
  EXPECT_EQ(count("eu-1"), 3) << "sequences 1, 7, 8";
  EXPECT_EQ(query_int("SELECT last_sequence FROM probes WHERE name = 'eu-1'"), static_cast<int64_t>(seq));
  EXPECT_EQ(query_int("SELECT count(*) FROM results WHERE colo = 'other'"), 1);

  // The probe resends its batch (say it never saw the ack): nothing is
  // stored twice and the answer is the same.
  EXPECT_EQ(send("eu-1", "eu", hostile), seq);
  EXPECT_EQ(count("eu-1"), 3);

  auto metrics = testing::http_get(coordinator_->metrics_port(), "/metrics");
  EXPECT_EQ(testing::metric_value(metrics, "vantage_ingest_refused_results_total{reason=\"status\"}"), 4)
      << "status and edge code, twice";
  EXPECT_EQ(testing::metric_value(metrics, "vantage_ingest_refused_results_total{reason=\"start_time\"}"), 4);
  EXPECT_EQ(testing::metric_value(metrics, "vantage_ingest_refused_results_total{reason=\"unassigned_check\"}"), 2);
  EXPECT_EQ(testing::metric_value(metrics, "vantage_ingest_errors_total{reason=\"storage_error\"}"), 0);
  // The colo label comes only from the known list.
  ASSERT_TRUE(eventually(
      [&] {
        return testing::http_get(coordinator_->metrics_port(), "/metrics").find("colo=\"other\"") != std::string::npos;
      },
      seconds(10)));
  metrics = testing::http_get(coordinator_->metrics_port(), "/metrics");
  EXPECT_EQ(metrics.find("Q\x01Z"), std::string::npos);
}

// Should a result that PostgreSQL refuses get past validation, only its own
// probe's batch fails: the merged transaction is split probe by probe.
TEST_F(HostilePeerPg, AMergedCopyRefusedByPostgresIsRetriedProbeByProbe) {
  storage::PgStore store(db_, 2);
  struct GatedSink : storage::ResultSink {
    storage::PgStore* store;
    std::mutex mu;
    std::condition_variable cv;
    bool open = false;
    int calls = 0;
    std::vector<storage::WriteOutcome> write_results(const std::vector<const storage::ResultBatch*>& b) override {
      {
        std::unique_lock lock(mu);
        if (++calls == 1) cv.wait(lock, [&] { return open; });  // the next batches queue up meanwhile
      }
      return store->write_results(b);
    }
  } sink;
  sink.store = &store;
  coordinator::CoordinatorMetrics metrics{std::make_shared<prometheus::Registry>()};
  coordinator::IngestOptions options;
  options.writers = 1;
  coordinator::Ingest ingest(sink, metrics, options);
  auto probe = [&](const std::string& name) {
    return storage::ProbeRecord{static_cast<int32_t>(query_int("SELECT id FROM probes WHERE name = '" + name + "'")),
                                name, name.substr(0, 2), 0};
  };
  auto never = [] { return false; };
  auto first = std::async(std::launch::async, [&] {
    return ingest.submit({probe("us-1"), {result(1, check_id_)}, 0}, never);
  });
  ASSERT_TRUE(eventually([&] { std::lock_guard lock(sink.mu); return sink.calls == 1; }, seconds(10)));
  auto good = std::async(std::launch::async, [&] {
    return ingest.submit({probe("us-1"), {result(2, check_id_), result(3, check_id_)}, 0}, never);
  });
  ASSERT_TRUE(eventually([&] { return metrics.ingest_queued_results.Value() == 3; }, seconds(10)));
  auto bad = result(1, check_id_);
  bad.mutable_edge()->mutable_response()->set_status(70'000);  // past smallint: what validation refuses
  auto poisoned = std::async(std::launch::async, [&] { return ingest.submit({probe("eu-1"), {bad}, 0}, never); });
  ASSERT_TRUE(eventually([&] { return metrics.ingest_queued_results.Value() == 4; }, seconds(10)));
  {
    std::lock_guard lock(sink.mu);
    sink.open = true;
  }
  sink.cv.notify_all();
  EXPECT_TRUE(first.get().ok);
  const auto stored = good.get();
  EXPECT_TRUE(stored.ok) << stored.error;
  EXPECT_EQ(stored.write.acked_sequence, 3u);
  const auto refused = poisoned.get();
  EXPECT_FALSE(refused.ok);
  EXPECT_NE(refused.error.find("SQLSTATE 22"), std::string::npos) << refused.error;
  EXPECT_EQ(query_int("SELECT count(*) FROM results r JOIN probes p ON p.id = r.probe_id WHERE p.name = 'us-1'"), 3);
  ingest.stop();
}

TEST_F(HostilePeerPg, TheRegionIsTheRegisteredOne) {
  Client client(coordinator_->grpc_port(), tokens_.at("eu-1"));
  ASSERT_TRUE(client.hello("eu-1", "us"));
  const auto status = client.finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << status.error_message();
  EXPECT_EQ(query_int("SELECT count(*) FROM probes WHERE name = 'eu-1' AND region = 'eu'"), 1);
}

}  // namespace
}  // namespace vantage
