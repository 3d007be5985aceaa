#include "tests/e2e/stack.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <pqxx/pqxx>

#include "tests/support/postgres.h"

namespace vantage::testing {

namespace {
using std::chrono::seconds;
}  // namespace

Stack::Stack(StackOptions options) : options_(std::move(options)), db_(PostgresEnvironment::fresh_database()) {
  dir_ = std::filesystem::temp_directory_path() / ("vantage-stack-" + std::to_string(getpid()) + "-" +
                                                   db_.substr(db_.rfind('/') + 1));
  std::filesystem::create_directories(dir_);
  std::vector<std::string> lab_args{VANTAGE_LAB_BIN, "--listen", "127.0.0.1:0"};
  lab_args.insert(lab_args.end(), options_.lab_args.begin(), options_.lab_args.end());
  lab_ = std::make_unique<Process>(lab_args);
  EXPECT_TRUE(lab_->wait_for_output("msg=listening", seconds(10))) << lab_->output();
  if (std::find(options_.lab_args.begin(), options_.lab_args.end(), "--edge-colos") != options_.lab_args.end()) {
    // The edge logs after the origin, one line per colo.
    EXPECT_TRUE(lab_->wait_for_output("msg=\"edge listening\"", seconds(10))) << lab_->output();
  }
  const auto lab_port = number_after(lab_->output(), "address=127.0.0.1:");
  checks_ = dir_ / "checks.yaml";
  if (options_.checks) {
    std::ofstream(checks_) << options_.checks(lab_->output());
  } else {
    std::ofstream(checks_) << "checks:\n  - name: home\n    url: http://127.0.0.1:" << lab_port
                           << "/\n    interval: 1s\n    timeout: 500ms\n";
  }
  for (auto [id, region] : std::vector<std::pair<std::string, std::string>>{{"us-1", "us"}, {"eu-1", "eu"}, {"ap-1", "ap"}}) {
    auto r = run_command({VANTAGE_COORDINATOR_BIN, "add-probe", "--database", db_, "--probe-id", id, "--region", region});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    // The token is the last line (stdout); logs may come before it (stderr).
    auto text = r.output.substr(0, r.output.find_last_not_of('\n') + 1);
    Probe p;
    p.id = id;
    p.region = region;
    p.token = text.substr(text.rfind('\n') + 1);
    EXPECT_EQ(p.token.size(), 64u) << r.output;
    p.spool = dir_ / ("spool-" + id);
    probes_.push_back(std::move(p));
  }
}

Stack::~Stack() {
  for (auto& p : probes_) p.process.reset();
  coordinator_.reset();
  lab_.reset();
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

void Stack::start_coordinator(const std::string& listen, const std::string& metrics) {
  std::vector<std::string> args{VANTAGE_COORDINATOR_BIN, "serve", "--database", db_, "--checks", checks_.string(),
                                "--listen", listen, "--metrics-listen", metrics};
  args.insert(args.end(), options_.coordinator_args.begin(), options_.coordinator_args.end());
  coordinator_ = std::make_unique<Process>(args);
  ASSERT_TRUE(coordinator_->wait_for_output("msg=\"coordinator started\"", seconds(20))) << coordinator_->output();
  grpc_port_ = static_cast<int>(number_after(coordinator_->output(), "grpc_port="));
  metrics_port_ = static_cast<int>(number_after(coordinator_->output(), "metrics_port="));
}

void Stack::start_probe(size_t i, const std::string& address) {
  auto& p = probes_[i];
  std::vector<std::string> args{VANTAGE_PROBE_BIN, "--coordinator",
                                address.empty() ? "127.0.0.1:" + std::to_string(grpc_port_) : address,
                                "--probe-id", p.id, "--region", p.region, "--spool-dir", p.spool.string()};
  if (options_.probe_args) {
    auto extra = options_.probe_args(i, lab_->output());
    args.insert(args.end(), extra.begin(), extra.end());
  }
  p.process = std::make_unique<Process>(args, std::map<std::string, std::string>{{"VANTAGE_PROBE_TOKEN", p.token}});
}

void Stack::start_probes() {
  for (size_t i = 0; i < probes_.size(); ++i) start_probe(i);
}

int Stack::stop_probe(size_t i, int sig) {
  auto& p = *probes_[i].process;
  p.signal(sig);
  auto code = p.wait(seconds(20));
  EXPECT_TRUE(code) << probes_[i].id << " did not stop";
  return code.value_or(-1);
}

int64_t Stack::query_int(const std::string& sql) const {
  pqxx::connection c(db_);
  pqxx::read_transaction tx(c);
  return tx.exec1(sql)[0].as<int64_t>();
}

int64_t Stack::stored(size_t i) const {
  return query_int("SELECT count(*) FROM results r JOIN probes p ON p.id = r.probe_id WHERE p.name = '" +
                   probes_[i].id + "'");
}

size_t Stack::coordinator_connections() const {
  const auto out = coordinator_->output();
  size_t n = 0;
  for (auto at = out.find("msg=\"probe connected\""); at != std::string::npos;
       at = out.find("msg=\"probe connected\"", at + 1)) {
    ++n;
  }
  return n;
}

void Stack::expect_exactly_once() const {
  for (const auto& p : probes_) {
    const auto output = p.process->output();
    const auto produced = number_after(output, "msg=stopped last_sequence=");
    const std::string where = " FROM results r JOIN probes p ON p.id = r.probe_id WHERE p.name = '" + p.id + "'";
    const auto stored = query_int("SELECT count(*)" + where);
    const auto distinct = query_int("SELECT count(DISTINCT seq)" + where);
    const auto in_range = query_int("SELECT count(DISTINCT seq)" + where + " AND seq BETWEEN 1 AND " + std::to_string(produced));
    const auto duplicates = stored - distinct;
    const auto gaps = produced - in_range;
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    std::printf("%s.%s: probe %s: produced %lld, stored %lld, duplicates %lld, gaps %lld\n", test->test_suite_name(),
                test->name(), p.id.c_str(),
                static_cast<long long>(produced), static_cast<long long>(stored),
                static_cast<long long>(duplicates), static_cast<long long>(gaps));
    EXPECT_GT(produced, 0) << p.id << " logged no final sequence: " << output;
    EXPECT_EQ(duplicates, 0) << p.id;
    EXPECT_EQ(gaps, 0) << p.id;
    EXPECT_EQ(stored, produced) << p.id << ": stored results the probe never produced?";
    EXPECT_EQ(output.find("stopping with unacknowledged results"), std::string::npos) << p.id << ": " << output;
  }
}

int64_t edge_port(const std::string& lab_log, const std::string& colo) {
  return number_after(lab_log, "colo=" + colo + " address=127.0.0.1:");
}

int64_t origin_port(const std::string& lab_log) { return number_after(lab_log, "msg=listening address=127.0.0.1:"); }

StackOptions edge_stack(const std::string& correlation) {
  StackOptions o;
  o.lab_args = {"--edge-colos", "IAD,FRA,SIN"};
  o.checks = [correlation](const std::string& log) {
    return fmt::format(
        "checks:\n"
        "  - name: shop\n"
        "    url: http://shop.test:{}/\n"
        "    interval: 2s\n"
        "    timeout: 1s\n"
        "    origin: {{address: \"127.0.0.1:{}\"}}\n"
        "    correlation: {}\n",
        edge_port(log, "IAD"), origin_port(log), correlation);
  };
  o.probe_args = [](size_t i, const std::string& log) {
    return std::vector<std::string>{"--connect-to", fmt::format("shop.test:{}:127.0.0.1:{}", edge_port(log, "IAD"),
                                                                edge_port(log, kEdgeColos[i]))};
  };
  return o;
}

void set_fault(Stack& stack, const std::string& query) {
  const auto port = static_cast<int>(origin_port(stack.lab().output()));
  ASSERT_NE(http_get(port, "/lab/fault?" + query), "") << "the lab refused /lab/fault?" << query;
}

}  // namespace vantage::testing
