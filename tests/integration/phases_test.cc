// The fleet-phased schedule through a real coordinator (PostgreSQL, gRPC on
// loopback) and raw probe streams in three regions: each probe gets its
// offset with its assignment, the three are a third of the interval apart,
// and when one leaves the other two are told (a diff of phases alone) to
// take turns half an interval apart. Then the probe service alone (storage
// faked): a probe that is not reading while others join and leave again and
// again gets one diff of the latest phases, not one per change, so the churn
// cannot fill its queue and end its stream.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "common/check_config.h"
#include "coordinator/coordinator.h"
#include "coordinator/ingest.h"
#include "coordinator/phases.h"
#include "coordinator/probe_service.h"
#include "storage/pg_store.h"
#include "tests/support/fake_probes.h"
#include "tests/support/postgres.h"
#include "tests/support/process.h"
#include "tests/support/raw_probe.h"

namespace vantage {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::eventually;
using testing::PostgresEnvironment;
using Probe = testing::RawProbe;

[[maybe_unused]] auto* const kPostgres = ::testing::AddGlobalTestEnvironment(new PostgresEnvironment);

constexpr milliseconds kInterval = seconds(60);

// What one probe was told, message by message.
struct Told {
  std::map<int64_t, milliseconds> offsets;  // check id -> the latest offset
  size_t phase_only_diffs = 0;              // diffs that carried phases alone
  void take(const v1::CoordinatorMessage& m) {
    const auto& phases = m.has_assignment() ? m.assignment().phases() : m.assignment_diff().phases();
    for (const auto& p : phases) offsets[p.check_id()] = to_millis(p.offset());
    if (m.has_assignment_diff() && Probe::phases_alone(m.assignment_diff())) ++phase_only_diffs;
  }
  // Every message with phases that has arrived.
  void drain(Probe& probe) {
    auto with_phases = [](const v1::CoordinatorMessage& m) {
      return (m.has_assignment() && m.assignment().phases_size() > 0) ||
             (m.has_assignment_diff() && m.assignment_diff().phases_size() > 0);
    };
    while (auto m = probe.next_where(with_phases, milliseconds(0))) take(m->message);
  }
};

class PhasesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = PostgresEnvironment::fresh_database();
    storage::PgStore store(db_, 1);
    store.migrate();
    for (const auto& [id, region] : kProbes) tokens_[id] = store.add_probe(id, region);
    dir_ = std::filesystem::temp_directory_path() / ("vantage-phases-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    std::ofstream(dir_ / "checks.yaml") << "checks:\n"
                                        << "  - name: shop\n    url: http://127.0.0.1:9/\n    interval: 60s\n"
                                        << "  - name: us-only\n    url: http://127.0.0.1:9/us\n    interval: 60s\n"
                                        << "    regions: [us]\n";
    coordinator::CoordinatorOptions options;
    options.listen = "127.0.0.1:0";
    options.metrics_listen = "127.0.0.1:0";
    options.database_url = db_;
    options.checks_file = (dir_ / "checks.yaml").string();
    coordinator_ = std::make_unique<coordinator::Coordinator>(options);
    coordinator_->start();
  }
  void TearDown() override {
    coordinator_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::unique_ptr<Probe> connect(const std::string& id, const std::string& region) {
    return std::make_unique<Probe>(coordinator_->grpc_port(), tokens_.at(id), id, region);
  }

  static constexpr std::pair<const char*, const char*> kProbes[] = {{"us-1", "us"}, {"eu-1", "eu"}, {"ap-1", "ap"}};
  std::string db_;
  std::map<std::string, std::string> tokens_;
  std::filesystem::path dir_;
  std::unique_ptr<coordinator::Coordinator> coordinator_;
};

TEST_F(PhasesTest, ThreeProbesTakeTurnsAThirdOfTheIntervalApartAndTwoAHalfWhenOneLeaves) {
  std::map<std::string, std::unique_ptr<Probe>> probes;
  std::map<std::string, Told> told;
  int64_t shop = 0, us_only = 0;
  for (const auto& [id, region] : kProbes) {
    probes[id] = connect(id, region);
    // The assignment carries a phase for each of its checks.
    auto part = probes[id]->next(&v1::CoordinatorMessage::has_assignment);
    ASSERT_TRUE(part) << id;
    const auto& assignment = part->message.assignment();
    EXPECT_EQ(assignment.phases_size(), assignment.checks_size()) << id;
    for (const auto& c : assignment.checks()) (c.name() == "shop" ? shop : us_only) = c.id();
    told[id].take(part->message);
  }
  ASSERT_NE(shop, 0);
  ASSERT_NE(us_only, 0);

  // The three, in the order of their ids (ap-1, eu-1, us-1), at the check's
  // base and a third and two thirds of the interval after it; the earlier
  // ones learnt theirs from diffs as the others joined.
  const auto three = coordinator::spread_offsets(shop, kInterval, 3);
  ASSERT_EQ(three.size(), 3u);
  const std::map<std::string, milliseconds> want_three = {{"ap-1", three[0]}, {"eu-1", three[1]}, {"us-1", three[2]}};
  auto shop_offsets = [&] {
    std::map<std::string, milliseconds> out;
    for (auto& [id, t] : told) {
      if (!probes[id]) continue;
      t.drain(*probes[id]);
      if (t.offsets.contains(shop)) out[id] = t.offsets[shop];
    }
    return out;
  };
  ASSERT_TRUE(eventually([&] { return shop_offsets() == want_three; }, milliseconds(10'000)));
  // A third of the interval apart, round the interval too.
  std::vector<milliseconds> sorted = {three.begin(), three.end()};
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted[1] - sorted[0], seconds(20));
  EXPECT_EQ(sorted[2] - sorted[1], seconds(20));
  EXPECT_EQ(sorted[0] + kInterval - sorted[2], seconds(20));
  EXPECT_GE(told["us-1"].phase_only_diffs, 1u) << "us-1 was first: told again as the others joined";
  // The check of one region: its one probe at the base, untouched by the others.
  EXPECT_EQ(told["us-1"].offsets.at(us_only), coordinator::phase_base(us_only, kInterval));
  EXPECT_FALSE(told["eu-1"].offsets.contains(us_only));

  // ap-1 leaves: the two left take turns half an interval apart.
  const size_t eu_diffs = told["eu-1"].phase_only_diffs;
  probes["ap-1"].reset();
  const auto two = coordinator::spread_offsets(shop, kInterval, 2);
  const std::map<std::string, milliseconds> want_two = {{"eu-1", two[0]}, {"us-1", two[1]}};
  ASSERT_TRUE(eventually([&] { return shop_offsets() == want_two; }, milliseconds(10'000)));
  EXPECT_EQ((two[1] - two[0] + kInterval) % kInterval, seconds(30));
  EXPECT_EQ(told["eu-1"].phase_only_diffs, eu_diffs + 1) << "through one diff of phases alone";
  EXPECT_EQ(told["us-1"].offsets.at(us_only), coordinator::phase_base(us_only, kInterval)) << "unchanged";
}

// --- Churn while a probe does not read ----------------------------------------

class NoResults : public storage::ResultSink {
 public:
  std::vector<storage::WriteOutcome> write_results(const std::vector<const storage::ResultBatch*>& batches) override {
    return std::vector<storage::WriteOutcome>(batches.size());
  }
};

// A raw stream that reads only when told to, with a small receive window
// (no BDP probing, little read-ahead), so the coordinator's writes block.
struct Stream {
  Stream(int port, const std::string& token, const std::string& id, const std::string& region) {
    grpc::ChannelArguments small_window;
    small_window.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    small_window.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 1024);
    stub = v1::ProbeService::NewStub(grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port),
                                                               grpc::InsecureChannelCredentials(), small_window));
    context.AddMetadata("authorization", "Bearer " + token);
    stream = stub->Connect(&context);
    v1::ProbeMessage hello;
    hello.mutable_hello()->set_probe_id(id);
    hello.mutable_hello()->set_region(region);
    hello.mutable_hello()->set_accepts_assignment_parts(true);
    stream->Write(hello);
  }
  ~Stream() { context.TryCancel(); }
  std::unique_ptr<v1::ProbeService::Stub> stub;
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReaderWriter<v1::ProbeMessage, v1::CoordinatorMessage>> stream;
};

TEST(PhaseChurn, AProbeThatIsNotReadingGetsOneDiffOfTheLatestPhasesNotOnePerJoin) {
  testing::FakeProbes probes;
  NoResults sink;
  coordinator::CheckRegistry checks;
  coordinator::CoordinatorMetrics metrics{std::make_shared<prometheus::Registry>()};
  coordinator::ProbeSessions sessions{checks, metrics};
  coordinator::Ingest ingest(sink, metrics, {});
  coordinator::ProbeServiceOptions options;
  options.max_queued_messages = 4;
  coordinator::ProbeServiceImpl service(probes, ingest, sessions, metrics, options);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  auto server = builder.BuildAndStart();

  // 5,000 checks everywhere: each change of the fleet changes every phase of
  // the slow probe, a diff of about 100 KB.
  std::vector<v1::Check> all;
  for (int64_t id = 1; id <= 5'000; ++id) {
    v1::Check c;
    c.set_id(id);
    c.set_version(1);
    c.set_name("c" + std::to_string(id));
    c.set_url("http://127.0.0.1:9/");
    *c.mutable_interval() = to_duration(kInterval);
    all.push_back(std::move(c));
  }
  checks.replace(all);
  const auto slow_token = probes.add("eu-1", "eu");
  const auto other_token = probes.add("ap-1", "ap");
  auto slow = std::make_unique<Stream>(port, slow_token, "eu-1", "eu");
  ASSERT_TRUE(eventually([&] { return metrics.probes_connected.Value() == 1; }, milliseconds(10'000)));

  // 40 joins and 40 leaves: 80 diffs of 100 KB, far beyond what the slow
  // probe's windows take and its queue of 4 holds, were each sent on its own.
  constexpr int kChurn = 40;
  for (int i = 0; i < kChurn; ++i) {
    auto other = std::make_unique<Stream>(port, other_token, "ap-1", "ap");
    ASSERT_TRUE(eventually([&] { return metrics.probes_connected.Value() == 2; }, milliseconds(10'000)))
        << "join " << i << ": the slow probe's stream was ended ("
        << metrics.probe_streams_ended.Add({{"reason", "stopped_reading"}}).Value() << " for not reading)";
    other.reset();
    ASSERT_TRUE(eventually([&] { return metrics.probes_connected.Value() == 1; }, milliseconds(10'000))) << i;
  }

  // The slow probe reads at last: its whole assignment, then few diffs of
  // phases alone, the last leaving every check at its base (it is alone).
  std::map<int64_t, milliseconds> offsets;
  size_t diffs = 0;
  v1::CoordinatorMessage m;
  bool complete = false;
  while (!(complete && offsets.size() == all.size() && diffs > 0 &&
           std::all_of(offsets.begin(), offsets.end(), [&](const auto& o) {
             return o.second == coordinator::phase_base(o.first, kInterval);
           }))) {
    ASSERT_TRUE(slow->stream->Read(&m)) << "the stream was ended after " << diffs << " diffs";
    if (m.has_assignment()) {
      for (const auto& p : m.assignment().phases()) offsets[p.check_id()] = to_millis(p.offset());
      complete = !m.assignment().more();
    } else if (m.has_assignment_diff()) {
      ASSERT_TRUE(Probe::phases_alone(m.assignment_diff()));
      ++diffs;
      for (const auto& p : m.assignment_diff().phases()) offsets[p.check_id()] = to_millis(p.offset());
    }
  }
  EXPECT_LT(diffs, static_cast<size_t>(2 * kChurn) / 2) << "merged while queued";
  EXPECT_EQ(metrics.probe_streams_ended.Add({{"reason", "stopped_reading"}}).Value(), 0);

  slow.reset();
  sessions.cancel_all();
  server->Shutdown(std::chrono::system_clock::now() + seconds(5));
  server->Wait();
  ingest.stop();
}

}  // namespace
}  // namespace vantage
