// The public API from another language: examples/node/client.js (Node.js,
// @grpc/grpc-js, the .proto files of the repository and nothing else of ours)
// run as a process against the real coordinator and PostgreSQL, and, for
// incidents, the whole stack with a fault switched on at the lab origin.
// Assertions are on what the client printed: one `kind key=value ...` line
// per item, errors as `error: Method: CODE: message` with a non-zero exit.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "tests/e2e/stack.h"
#include "tests/support/postgres.h"
#include "tests/support/process.h"
#include "tests/support/test_certs.h"

namespace vantage::testing {
namespace {

using std::chrono::seconds;
namespace fs = std::filesystem;

[[maybe_unused]] auto* const kPostgres = ::testing::AddGlobalTestEnvironment(new PostgresEnvironment);

const fs::path kClientDir = fs::path(VANTAGE_SOURCE_DIR) / "examples" / "node";
const char* const kInstallHint = "run ./scripts/test.sh (or `cd examples/node && npm ci`) first";

// `node` from PATH, as a person would run it; empty when there is none.
std::string find_node() {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const auto candidate = fs::path(dir.empty() ? "." : dir) / "node";
    if (access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  return {};
}

// One printed item: "check name=a id=1 ..." -> kind "check", fields {name: a, id: 1}.
// Values the client quoted (JSON strings) keep their quotes: none asserted here has one.
struct Item {
  std::string kind;
  std::map<std::string, std::string> fields;
  std::string at(const std::string& key) const {
    auto it = fields.find(key);
    return it == fields.end() ? "<none>" : it->second;
  }
};

std::vector<Item> items(const std::string& output, const std::string& kind) {
  std::vector<Item> out;
  std::istringstream lines(output);
  for (std::string line; std::getline(lines, line);) {
    if (!line.starts_with(kind + " ")) continue;
    Item item{kind, {}};
    static const std::regex field(R"(([a-z_]+)=("(?:[^"\\]|\\.)*"|\S+))");
    for (std::sregex_iterator m(line.begin(), line.end(), field), end; m != end; ++m) {
      item.fields[(*m)[1]] = (*m)[2];
    }
    out.push_back(std::move(item));
  }
  return out;
}

class NodeClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    node_ = find_node();
    ASSERT_FALSE(node_.empty()) << "node is not on PATH: " << kInstallHint
                                << " (scripts/deps.sh installs Debian's nodejs and npm)";
    ASSERT_TRUE(fs::exists(kClientDir / "node_modules" / "@grpc" / "grpc-js" / "package.json") &&
                fs::exists(kClientDir / "node_modules" / "@grpc" / "proto-loader" / "package.json"))
        << "examples/node/node_modules is missing or incomplete: " << kInstallHint;
  }

  // A token of `role` made the way an operator makes one.
  std::string add_token(const Stack& stack, const std::string& name, const std::string& role) {
    auto r = run_command({VANTAGE_COORDINATOR_BIN, "add-api-token", "--database", stack.database(), "--name", name,
                          "--role", role});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    std::smatch match;
    EXPECT_TRUE(std::regex_search(r.output, match, std::regex("[0-9a-f]{64}"))) << r.output;
    return match.str();
  }

  std::vector<std::string> client_args(int port, std::vector<std::string> args) const {
    args.insert(args.begin(), {node_, (kClientDir / "client.js").string(), "--addr", "127.0.0.1:" + std::to_string(port)});
    return args;
  }
  std::vector<std::string> client_args(const Stack& stack, std::vector<std::string> args) const {
    return client_args(stack.grpc_port(), std::move(args));
  }

  RunResult client(const Stack& stack, const std::string& token, std::vector<std::string> args) const {
    return run_command(client_args(stack, std::move(args)), {{"VANTAGE_TOKEN", token}});
  }

  std::string node_;
};

TEST_F(NodeClientTest, CreatesAndListsChecksAndReportsTheStatusCodeOfARefusal) {
  Stack stack;  // one check "home" in the checks file
  ASSERT_NO_FATAL_FAILURE(stack.start_coordinator());
  const auto writer = add_token(stack, "node-writer", "write");
  const auto reader = add_token(stack, "node-reader", "read");

  auto created = client(stack, writer,
                        {"create-check", "--name", "node-made", "--url", "http://127.0.0.1:9/health", "--interval",
                         "5s", "--region", "eu", "--label", "team=web"});
  ASSERT_EQ(created.exit_code, 0) << created.output;
  auto made = items(created.output, "check");
  ASSERT_EQ(made.size(), 1u) << created.output;
  EXPECT_EQ(made[0].at("name"), "node-made");
  EXPECT_EQ(made[0].at("source"), "api");
  EXPECT_EQ(made[0].at("url"), "http://127.0.0.1:9/health");
  EXPECT_EQ(made[0].at("interval"), "5s");
  EXPECT_EQ(made[0].at("regions"), "eu");
  EXPECT_GT(std::atoll(made[0].at("id").c_str()), 0) << created.output;
  EXPECT_EQ(stack.query_int("SELECT count(*) FROM checks WHERE name = 'node-made'"), 1);

  // A reader sees both, in name order: the file's and the one just made.
  auto listed = client(stack, reader, {"list-checks"});
  ASSERT_EQ(listed.exit_code, 0) << listed.output;
  auto checks = items(listed.output, "check");
  ASSERT_EQ(checks.size(), 2u) << listed.output;
  EXPECT_EQ(checks[0].at("name"), "home");
  EXPECT_EQ(checks[0].at("source"), "file");
  EXPECT_EQ(checks[1].at("name"), "node-made");
  EXPECT_EQ(checks[1].at("id"), made[0].at("id"));
  EXPECT_EQ(checks[1].at("version"), made[0].at("version"));

  auto by_label = client(stack, reader, {"list-checks", "--label", "team=web"});
  ASSERT_EQ(by_label.exit_code, 0) << by_label.output;
  ASSERT_EQ(items(by_label.output, "check").size(), 1u) << by_label.output;
  EXPECT_EQ(items(by_label.output, "check")[0].at("name"), "node-made");

  // Refusals: the status code's name on stderr, a non-zero exit, no item.
  struct Refusal {
    std::string what;
    std::string token;
    std::vector<std::string> args;
    std::string expected;
  };
  const std::vector<Refusal> refusals{
      {"a wrong token", std::string(64, '0'), {"list-checks"}, "error: ListChecks: UNAUTHENTICATED: "},
      {"a wrong token", std::string(64, '0'),
       {"create-check", "--name", "intruder", "--url", "http://127.0.0.1:9/"}, "error: CreateCheck: UNAUTHENTICATED: "},
      {"a reader creating", reader, {"create-check", "--name", "by-reader", "--url", "http://127.0.0.1:9/"},
       "error: CreateCheck: PERMISSION_DENIED: "},
      {"the same name twice", writer, {"create-check", "--name", "node-made", "--url", "http://127.0.0.1:9/"},
       "error: CreateCheck: ALREADY_EXISTS: "},
      {"a URL that is not one", writer, {"create-check", "--name", "bad-url", "--url", "not a url"},
       "error: CreateCheck: INVALID_ARGUMENT: "},
  };
  for (const auto& refusal : refusals) {
    auto r = client(stack, refusal.token, refusal.args);
    EXPECT_EQ(r.exit_code, 1) << refusal.what << ": " << r.output;
    EXPECT_NE(r.output.find(refusal.expected), std::string::npos) << refusal.what << ": " << r.output;
    EXPECT_TRUE(items(r.output, "check").empty()) << refusal.what << ": " << r.output;
  }
  EXPECT_EQ(stack.query_int("SELECT count(*) FROM checks"), 2) << "no refused call changed anything";

  // A mistake of the caller is not sent at all: exit 2, naming the flag.
  auto usage = client(stack, writer, {"create-check", "--name", "x", "--url", "http://127.0.0.1:9/", "--interval", "5"});
  EXPECT_EQ(usage.exit_code, 2) << usage.output;
  EXPECT_NE(usage.output.find("--interval \"5\""), std::string::npos) << usage.output;
}

void write_file(const fs::path& file, const std::string& text) { std::ofstream(file) << text; }

TEST_F(NodeClientTest, ListsChecksOverTlsOnlyFromACoordinatorItsCaVouchesFor) {
  const auto dir = fs::temp_directory_path() / ("vantage-node-tls-" + std::to_string(getpid()));
  fs::create_directories(dir);
  const TestCa ca("vantage-test-ca");
  const auto server = ca.issue("127.0.0.1", "IP:127.0.0.1");
  write_file(dir / "ca.pem", ca.pem);
  write_file(dir / "coordinator.pem", server.cert);
  write_file(dir / "coordinator.key", server.key_pem());
  write_file(dir / "stranger-ca.pem", TestCa("stranger-ca").pem);
  write_file(dir / "checks.yaml", "checks:\n  - name: home\n    url: http://127.0.0.1:9/\n    interval: 5s\n");
  const auto db = PostgresEnvironment::fresh_database();
  auto added = run_command({VANTAGE_COORDINATOR_BIN, "add-api-token", "--database", db, "--name", "tls-reader",
                            "--role", "read"});
  ASSERT_EQ(added.exit_code, 0) << added.output;
  std::smatch token;
  ASSERT_TRUE(std::regex_search(added.output, token, std::regex("[0-9a-f]{64}"))) << added.output;
  Process coordinator({VANTAGE_COORDINATOR_BIN, "serve", "--database", db, "--checks", (dir / "checks.yaml").string(),
                       "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--tls-cert",
                       (dir / "coordinator.pem").string(), "--tls-key", (dir / "coordinator.key").string()});
  ASSERT_TRUE(coordinator.wait_for_output("msg=\"coordinator started\"", seconds(20))) << coordinator.output();
  const auto port = static_cast<int>(number_after(coordinator.output(), "grpc_port="));
  const std::map<std::string, std::string> env{{"VANTAGE_TOKEN", token.str()}};

  auto trusted = run_command(client_args(port, {"--ca", (dir / "ca.pem").string(), "list-checks"}), env);
  EXPECT_EQ(trusted.exit_code, 0) << trusted.output;
  ASSERT_EQ(items(trusted.output, "check").size(), 1u) << trusted.output;
  EXPECT_EQ(items(trusted.output, "check")[0].at("name"), "home");

  // Another CA (the handshake fails, before the token is sent), or none
  // (plaintext to a TLS server): no call gets through.
  for (const auto& args : {std::vector<std::string>{"--ca", (dir / "stranger-ca.pem").string(), "list-checks"},
                           std::vector<std::string>{"list-checks"}}) {
    auto refused = run_command(client_args(port, args), env);
    EXPECT_EQ(refused.exit_code, 1) << refused.output;
    EXPECT_NE(refused.output.find("error: ListChecks: UNAVAILABLE"), std::string::npos) << refused.output;
    EXPECT_TRUE(items(refused.output, "check").empty()) << refused.output;
  }
  std::error_code ignored;
  fs::remove_all(dir, ignored);
}

// ---------------------------------------------------------------------------
// Incidents: the edge stack of tests/e2e/stack.h (three probes, each through its own
// colo of the lab's fake edge), a 520 everywhere switched on and off.
// ---------------------------------------------------------------------------

std::string utc_now_rfc3339() {
  const auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return text;
}

bool has_event(const Process& watch, const std::string& type) {
  for (const auto& e : items(watch.output(), "event")) {
    if (e.at("type") == type) return true;
  }
  return false;
}

TEST_F(NodeClientTest, WatchesAnIncidentOpenAndResolveThroughACoordinatorCrashAndResumesAfterAnEventId) {
  Stack stack(edge_stack("{resolve_consecutive: 2}"));
  ASSERT_NO_FATAL_FAILURE(stack.start_coordinator());
  stack.start_probes();
  ASSERT_TRUE(eventually([&] { return stack.stored(0) > 1 && stack.stored(1) > 1 && stack.stored(2) > 1; },
                         seconds(30)))
      << stack.coordinator().output();
  const auto reader = add_token(stack, "node-watcher", "read");

  // Not served to a wrong token.
  auto refused = client(stack, std::string(64, 'f'), {"watch-incidents"});
  EXPECT_EQ(refused.exit_code, 1) << refused.output;
  EXPECT_NE(refused.output.find("error: WatchIncidents: UNAUTHENTICATED: "), std::string::npos) << refused.output;

  // --since a moment before the fault: the opening is sent however late the
  // watch's stream is established (no race with the correlator).
  Process watch(client_args(stack, {"watch-incidents", "--check", "shop", "--since", utc_now_rfc3339()}),
                {{"VANTAGE_TOKEN", reader}});
  ASSERT_NO_FATAL_FAILURE(set_fault(stack, "name=empty-reply"));
  ASSERT_TRUE(eventually([&] { return has_event(watch, "opened"); }, seconds(60)))
      << watch.output() << stack.coordinator().output();
  const auto opened = items(watch.output(), "event").front();
  EXPECT_EQ(opened.at("type"), "opened") << watch.output();
  EXPECT_EQ(opened.at("check"), "shop");
  EXPECT_EQ(opened.at("kind"), "outage");
  EXPECT_EQ(opened.at("state"), "open");
  EXPECT_NE(opened.at("scope"), "unspecified");
  EXPECT_EQ(stack.query_int(fmt::format("SELECT count(*) FROM incidents WHERE id = '{}'", opened.at("incident"))), 1)
      << "the incident the client printed is the one stored: " << watch.output();

  // The coordinator crashes and comes back on the same address while the
  // incident is open: the client resumes after the last event it printed.
  const auto listen = "127.0.0.1:" + std::to_string(stack.grpc_port());
  stack.coordinator().signal(SIGKILL);
  stack.coordinator().wait(seconds(10));
  ASSERT_NO_FATAL_FAILURE(stack.start_coordinator(listen));
  ASSERT_TRUE(watch.wait_for_output("resume: ", seconds(30))) << watch.output();

  ASSERT_NO_FATAL_FAILURE(set_fault(stack, "name=none"));
  ASSERT_TRUE(eventually([&] { return has_event(watch, "resolved"); }, seconds(60)))
      << watch.output() << stack.coordinator().output();
  const auto seen = items(watch.output(), "event");
  std::vector<std::string> ids;
  for (const auto& e : seen) {
    EXPECT_EQ(e.at("incident"), opened.at("incident")) << "one incident: " << watch.output();
    EXPECT_EQ(e.at("check"), "shop");
    if (!ids.empty()) {
      EXPECT_GT(std::atoll(e.at("id").c_str()), std::atoll(ids.back().c_str()))
          << "in event id order, none twice: " << watch.output();
    }
    ids.push_back(e.at("id"));
  }
  std::printf("NodeClient.Watch: what watch-incidents printed:\n%s", watch.output().c_str());
  EXPECT_EQ(seen.back().at("type"), "resolved") << watch.output();
  EXPECT_EQ(seen.back().at("state"), "resolved") << watch.output();
  watch.signal(SIGTERM);
  EXPECT_EQ(watch.wait(seconds(10)), 0) << "interrupted, it stops cleanly: " << watch.output();

  // Resuming after the opening sends exactly what followed it: nothing missed,
  // nothing twice.
  const auto after = std::to_string(ids.size() - 1);
  auto resumed = client(stack, reader, {"watch-incidents", "--check", "shop", "--after-event-id", ids.front(),
                                        "--count", after});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  std::vector<std::string> resumed_ids;
  for (const auto& e : items(resumed.output, "event")) resumed_ids.push_back(e.at("id"));
  EXPECT_EQ(resumed_ids, std::vector<std::string>(ids.begin() + 1, ids.end())) << resumed.output;
}

}  // namespace
}  // namespace vantage::testing
