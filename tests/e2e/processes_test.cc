// The real binaries as real processes: start-up errors a person sees, and the
// whole stack (lab origin, coordinator, three probes in three regions, real
// PostgreSQL) including a coordinator killed with SIGKILL mid-stream.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <pqxx/pqxx>

#include "tests/support/postgres.h"
#include "tests/support/process.h"

namespace vantage::testing {
namespace {

using std::chrono::seconds;

[[maybe_unused]] auto* const kPostgres = ::testing::AddGlobalTestEnvironment(new PostgresEnvironment);

const std::string kCoordinator = VANTAGE_COORDINATOR_BIN;
const std::string kProbe = VANTAGE_PROBE_BIN;
const std::string kLab = VANTAGE_LAB_BIN;

size_t lines(const std::string& text) { return std::count(text.begin(), text.end(), '\n'); }

// The number after `key=` in a log line, e.g. grpc_port=41234.
int field_after(const std::string& output, const std::string& key) {
  auto at = output.find(key);
  if (at == std::string::npos) return 0;
  return std::atoi(output.c_str() + at + key.size());
}

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

class Stack : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = PostgresEnvironment::fresh_database();
    lab_ = std::make_unique<Process>(std::vector<std::string>{kLab, "--listen", "127.0.0.1:0"});
    ASSERT_TRUE(lab_->wait_for_output("msg=listening", seconds(10))) << lab_->output();
    const int lab_port = field_after(lab_->output(), "address=127.0.0.1:");
    checks_ = write_temp("checks.yaml", "checks:\n  - name: home\n    url: http://127.0.0.1:" +
                                            std::to_string(lab_port) + "/\n    interval: 1s\n    timeout: 500ms\n");
    for (const auto& [id, region] : probes_) {
      auto r = run_command({kCoordinator, "add-probe", "--database", db_, "--probe-id", id, "--region", region});
      ASSERT_EQ(r.exit_code, 0) << r.output;
      // The token is the last line (stdout); logs may come before it (stderr).
      auto text = r.output.substr(0, r.output.find_last_not_of('\n') + 1);
      tokens_[id] = text.substr(text.rfind('\n') + 1);
      ASSERT_EQ(tokens_[id].size(), 64u) << r.output;
    }
  }
  void TearDown() override { std::filesystem::remove(checks_); }

  std::unique_ptr<Process> start_coordinator(const std::string& listen, const std::string& metrics) {
    auto p = std::make_unique<Process>(std::vector<std::string>{
        kCoordinator, "serve", "--database", db_, "--checks", checks_, "--listen", listen,
        "--metrics-listen", metrics});
    EXPECT_TRUE(p->wait_for_output("msg=\"coordinator started\"", seconds(20))) << p->output();
    return p;
  }

  int64_t query_int(const std::string& sql) {
    pqxx::connection c(db_);
    pqxx::read_transaction tx(c);
    return tx.exec1(sql)[0].as<int64_t>();
  }

  const std::vector<std::pair<std::string, std::string>> probes_{{"us-1", "us"}, {"eu-1", "eu"}, {"ap-1", "ap"}};
  std::string db_;
  std::unique_ptr<Process> lab_;
  std::filesystem::path checks_;
  std::map<std::string, std::string> tokens_;
};

TEST_F(Stack, ThreeRegionsReportAndSurviveACoordinatorKill) {
  auto coordinator = start_coordinator("127.0.0.1:0", "127.0.0.1:0");
  const int grpc_port = field_after(coordinator->output(), "grpc_port=");
  const int metrics_port = field_after(coordinator->output(), "metrics_port=");
  ASSERT_GT(grpc_port, 0);
  ASSERT_GT(metrics_port, 0);

  std::vector<std::unique_ptr<Process>> probes;
  for (const auto& [id, region] : probes_) {
    probes.push_back(std::make_unique<Process>(
        std::vector<std::string>{kProbe, "--coordinator", "127.0.0.1:" + std::to_string(grpc_port),
                                 "--probe-id", id, "--region", region},
        std::map<std::string, std::string>{{"VANTAGE_PROBE_TOKEN", tokens_[id]}}));
  }
  auto region_total = [&](const std::string& region) {
    return metric_value(http_get(metrics_port, "/metrics"),
                        "vantage_ingest_results_total{region=\"" + region + "\"}").value_or(0);
  };
  ASSERT_TRUE(eventually([&] { return region_total("us") >= 2 && region_total("eu") >= 2 && region_total("ap") >= 2; },
                         seconds(30)))
      << coordinator->output();

  // SIGKILL: no goodbye to the probes, nothing flushed.
  coordinator->signal(SIGKILL);
  ASSERT_TRUE(coordinator->wait(seconds(10)));
  const auto before = query_int("SELECT count(*) FROM results");
  std::this_thread::sleep_for(seconds(2));
  coordinator = start_coordinator("127.0.0.1:" + std::to_string(grpc_port), "127.0.0.1:" + std::to_string(metrics_port));
  auto connected = [&] {
    const auto out = coordinator->output();
    size_t n = 0;
    for (auto at = out.find("msg=\"probe connected\""); at != std::string::npos;
         at = out.find("msg=\"probe connected\"", at + 1)) {
      ++n;
    }
    return n;
  };
  ASSERT_TRUE(eventually([&] { return connected() == 3 && query_int("SELECT count(*) FROM results") >= before + 9; },
                         seconds(30)))
      << coordinator->output();

  for (auto& p : probes) p->signal(SIGTERM);
  for (auto& p : probes) {
    auto code = p->wait(seconds(15));
    ASSERT_TRUE(code) << "probe did not stop on SIGTERM";
    EXPECT_EQ(*code, 0) << p->output();
    EXPECT_EQ(p->output().find("unacknowledged"), std::string::npos) << "stopped with results unstored: " << p->output();
  }
  coordinator->signal(SIGTERM);
  auto code = coordinator->wait(seconds(15));
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, 0) << coordinator->output();

  for (const auto& [id, region] : probes_) {
    const std::string where = " FROM results r JOIN probes p ON p.id = r.probe_id WHERE p.name = '" + id + "'";
    const auto count = query_int("SELECT count(*)" + where);
    EXPECT_GT(count, 2) << id;
    EXPECT_EQ(query_int("SELECT count(DISTINCT seq)" + where), count) << id << ": duplicates";
    EXPECT_EQ(query_int("SELECT max(seq)" + where), count) << id << ": gaps";
    EXPECT_EQ(query_int("SELECT count(*)" + where + " AND r.region = '" + region + "'"), count) << id;
  }
}

}  // namespace
}  // namespace vantage::testing
