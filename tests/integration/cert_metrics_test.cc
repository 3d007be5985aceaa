// The certificate expiry series through the coordinator as it runs: a result
// with TLS facts stored from a probe of a region sets the check's leaf and
// chain gauges for that region on /metrics; deleting the check removes them.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "coordinator/coordinator.h"
#include "storage/pg_store.h"
#include "tests/support/postgres.h"
#include "tests/support/process.h"
#include "tests/support/raw_probe.h"

namespace vantage {
namespace {

using std::chrono::seconds;
using testing::PostgresEnvironment;

[[maybe_unused]] auto* const kPostgres = ::testing::AddGlobalTestEnvironment(new PostgresEnvironment);

void write_checks(const std::filesystem::path& file, bool with_shop) {
  std::ofstream out(file);
  out << "checks:\n"
      << "  - name: other\n    url: https://other.example/\n    interval: 60s\n    timeout: 5s\n";
  if (with_shop) out << "  - name: shop\n    url: https://shop.example/\n    interval: 60s\n    timeout: 5s\n";
}

TEST(CertMetrics, AStoredResultSetsTheChecksExpiryForItsRegionAndADeletedCheckLosesThem) {
  const auto db = PostgresEnvironment::fresh_database();
  std::string token;
  {
    storage::PgStore store(db, 1);
    store.migrate();
    token = store.add_probe("eu-1", "eu");
  }
  const auto checks_file =
      std::filesystem::temp_directory_path() / ("vantage-cert-metrics-" + std::to_string(getpid()) + ".yaml");
  write_checks(checks_file, true);
  coordinator::CoordinatorOptions options;
  options.listen = "127.0.0.1:0";
  options.metrics_listen = "127.0.0.1:0";
  options.database_url = db;
  options.checks_file = checks_file.string();
  coordinator::Coordinator coordinator(options);
  coordinator.start();

  testing::RawProbe probe(coordinator.grpc_port(), token, "eu-1", "eu");
  auto checks = probe.assignment();
  ASSERT_EQ(checks.count("shop"), 1u);
  const auto now = std::chrono::duration_cast<seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  v1::ProbeMessage batch;
  auto* r = batch.mutable_results()->add_results();
  r->set_sequence(1);
  r->set_check_id(checks.at("shop").id());
  r->mutable_start_time()->set_seconds(now - 5);
  r->mutable_edge()->set_failure_class(v1::FAILURE_CLASS_OK);
  r->mutable_edge()->mutable_response()->set_status(200);
  auto* connection = r->mutable_edge()->mutable_connection();
  connection->mutable_cert_not_after()->set_seconds(now + 30 * 86400);
  connection->mutable_chain_not_after()->set_seconds(now + 10 * 86400);
  connection->set_tls_cipher("TLS_AES_128_GCM_SHA256");
  ASSERT_TRUE(probe.send(batch));
  auto ack = probe.next(&v1::CoordinatorMessage::has_ack);
  ASSERT_TRUE(ack.has_value());
  ASSERT_EQ(ack->message.ack().sequence(), 1u);

  const std::string leaf = "vantage_check_cert_expiry_timestamp_seconds{check=\"shop\",region=\"eu\"}";
  const std::string chain = "vantage_check_cert_chain_expiry_timestamp_seconds{check=\"shop\",region=\"eu\"}";
  auto scrape = [&] { return testing::http_get(coordinator.metrics_port(), "/metrics"); };
  // Acknowledged once stored; the gauges follow the commit.
  ASSERT_TRUE(testing::eventually([&] { return testing::metric_value(scrape(), chain).has_value(); }, seconds(10)))
      << scrape();
  auto metrics = scrape();
  EXPECT_EQ(testing::metric_value(metrics, leaf), static_cast<double>(now + 30 * 86400));
  EXPECT_EQ(testing::metric_value(metrics, chain), static_cast<double>(now + 10 * 86400));
  EXPECT_EQ(metrics.find("check=\"other\""), std::string::npos) << "no result of other, no series";

  write_checks(checks_file, false);
  std::vector<std::string> problems;
  ASSERT_TRUE(coordinator.reload_checks(&problems)) << (problems.empty() ? "" : problems.front());
  metrics = scrape();
  EXPECT_FALSE(testing::metric_value(metrics, leaf).has_value()) << metrics;
  EXPECT_FALSE(testing::metric_value(metrics, chain).has_value()) << metrics;
  std::filesystem::remove(checks_file);
}

}  // namespace
}  // namespace vantage
