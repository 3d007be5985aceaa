// The real binaries as real processes: start-up errors a person sees, and the
// whole stack (lab origin, coordinator, three probes in three regions, real
// PostgreSQL) running normally. Failures are in faults_test.cc.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "tests/support/postgres.h"
#include "tests/e2e/stack.h"
#include "tests/support/process.h"

namespace vantage::testing {
namespace {

using std::chrono::seconds;

[[maybe_unused]] auto* const kPostgres = ::testing::AddGlobalTestEnvironment(new PostgresEnvironment);

const std::string kCoordinator = VANTAGE_COORDINATOR_BIN;
const std::string kProbe = VANTAGE_PROBE_BIN;
const std::string kLab = VANTAGE_LAB_BIN;

size_t lines(const std::string& text) { return std::count(text.begin(), text.end(), '\n'); }

std::filesystem::path write_temp(const std::string& name, const std::string& text) {
  auto path = std::filesystem::temp_directory_path() / (std::to_string(getpid()) + "-" + name);
  std::ofstream(path) << text;
  return path;
}

TEST(StartupErrors, ABadFlagIsOneClearLine) {
  auto r = run_command({kCoordinator, "serve", "--bogus"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(lines(r.output), 1u) << r.output;
  EXPECT_NE(r.output.find("--bogus"), std::string::npos) << r.output;

  r = run_command({kProbe, "--coordinator", "127.0.0.1:1"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(lines(r.output), 1u) << r.output;
  EXPECT_NE(r.output.find("--probe-id"), std::string::npos) << r.output;

  r = run_command({kProbe, "--coordinator", "127.0.0.1:1", "--probe-id", "p", "--region", "r"}, {{"VANTAGE_PROBE_TOKEN", ""}});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("no token"), std::string::npos) << r.output;
}

TEST(StartupErrors, AnInvalidChecksFileNamesTheLineAndField) {
  auto file = write_temp("bad.yaml", "checks:\n  - name: a\n    url: http://x/\n    interval: 10x\n");
  auto r = run_command({kCoordinator, "serve", "--database", "postgresql://127.0.0.1:1/x", "--checks", file});
  std::filesystem::remove(file);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(lines(r.output), 1u) << r.output;
  EXPECT_NE(r.output.find(file.string() + ":4:15: interval: \"10x\" is not a duration"), std::string::npos) << r.output;

  r = run_command({kCoordinator, "check-config", "--checks", "/nonexistent.yaml"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("/nonexistent.yaml: cannot read the checks file"), std::string::npos) << r.output;
}

TEST(StartupErrors, AnUnreachableDatabaseIsOneLineWithoutThePassword) {
  auto r = run_command({kCoordinator, "serve", "--database", "postgresql://vantage:s3cret@127.0.0.1:1/vantage",
                        "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(lines(r.output), 1u) << r.output;
  EXPECT_NE(r.output.find("cannot connect to PostgreSQL at postgresql://vantage:***@127.0.0.1:1/vantage"),
            std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("s3cret"), std::string::npos) << r.output;
}

TEST(Diagnose, JsonReportsBothLegsAndTheCause) {
  Process lab({kLab, "--listen", "127.0.0.1:0"});
  ASSERT_TRUE(lab.wait_for_output("msg=listening", seconds(10))) << lab.output();
  const auto lab_address = "127.0.0.1:" + std::to_string(number_after(lab.output(), "address=127.0.0.1:"));

  // Through "the edge" (here the URL resolves, curl-style, to a closed port) and
  // straight at the origin, which answers.
  auto r = run_command({kProbe, "diagnose", "http://shop.example:1/", "--resolve", "shop.example:1:127.0.0.1",
                        "--origin", lab_address, "--json"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  auto report = nlohmann::json::parse(r.output, nullptr, false);
  ASSERT_FALSE(report.is_discarded()) << r.output;
  EXPECT_EQ(report["edge"]["class"], "connect_refused");
  EXPECT_EQ(report["edge"]["edge_code"], nullptr);
  EXPECT_TRUE(report["edge"]["timings"].contains("connect_ms"));
  EXPECT_EQ(report["origin"]["class"], "ok");
  EXPECT_EQ(report["origin"]["status"], 200);
  EXPECT_EQ(report["diagnosis"]["cause_id"], "connect_refused");

  r = run_command({kProbe, "diagnose", "http://" + lab_address + "/"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("no problem found"), std::string::npos) << r.output;

  r = run_command({kProbe, "diagnose", "http://" + lab_address + "/", "--resolve", "nonsense"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("resolve override \"nonsense\""), std::string::npos) << r.output;
}

TEST(Diagnose, KeepAliveMeasuresTheOriginsLimits) {
  // An origin that closes idle connections after 1 s and serves 3 requests per connection.
  Process lab({kLab, "--listen", "127.0.0.1:0", "--idle-close-ms", "1000", "--max-requests", "3"});
  ASSERT_TRUE(lab.wait_for_output("msg=listening", seconds(10))) << lab.output();
  const auto lab_address = "127.0.0.1:" + std::to_string(number_after(lab.output(), "address=127.0.0.1:"));
  auto r = run_command({kProbe, "diagnose", "http://" + lab_address + "/", "--keepalive", "--keepalive-max-idle", "10",
                        "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  auto report = nlohmann::json::parse(r.output, nullptr, false);
  ASSERT_FALSE(report.is_discarded()) << r.output;
  EXPECT_EQ(report["keep_alive"]["requests_per_connection"], 3) << r.output;
  const double idle = report["keep_alive"]["idle_close_seconds"].get<double>();
  EXPECT_GE(idle, 0.8) << r.output;
  EXPECT_LE(idle, 2.5) << r.output;
}

TEST(StartupErrors, AnUnreadableTlsCaIsOneLine) {
  auto r = run_command({kProbe, "--coordinator", "127.0.0.1:1", "--probe-id", "p", "--region", "r", "--tls-ca",
                        "/nonexistent/ca.pem"},
                       {{"VANTAGE_PROBE_TOKEN", "t"}});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(lines(r.output), 1u) << r.output;
  EXPECT_NE(r.output.find("/nonexistent/ca.pem"), std::string::npos) << r.output;

  r = run_command({kProbe, "--coordinator", "127.0.0.1:1", "--probe-id", "p", "--region", "r", "--connect-to",
                   "shop.test:80"},
                  {{"VANTAGE_PROBE_TOKEN", "t"}});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("connect-to override \"shop.test:80\""), std::string::npos) << r.output;
}

TEST(Stack, ThreeRegionsReportAndEveryResultIsStoredOnce) {
  Stack stack;
  stack.start_coordinator();
  stack.start_probes();
  auto region_total = [&](const std::string& region) {
    return metric_value(http_get(stack.metrics_port(), "/metrics"),
                        "vantage_ingest_results_total{region=\"" + region + "\"}").value_or(0);
  };
  ASSERT_TRUE(eventually([&] { return region_total("us") >= 3 && region_total("eu") >= 3 && region_total("ap") >= 3; },
                         seconds(30)))
      << stack.coordinator().output();
  for (size_t i = 0; i < stack.probe_count(); ++i) EXPECT_EQ(stack.stop_probe(i, SIGTERM), 0) << stack.probe(i).process->output();
  stack.coordinator().signal(SIGTERM);
  auto code = stack.coordinator().wait(seconds(15));
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, 0) << stack.coordinator().output();
  stack.expect_exactly_once();
  for (size_t i = 0; i < stack.probe_count(); ++i) {
    EXPECT_EQ(stack.query_int("SELECT count(*) FROM results r JOIN probes p ON p.id = r.probe_id WHERE p.name = '" +
                              stack.probe(i).id + "' AND r.region <> '" + stack.probe(i).region + "'"),
              0);
  }
}

}  // namespace
}  // namespace vantage::testing
