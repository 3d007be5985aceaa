// vantagectl end to end: the real binary against a real coordinator (and
// probes, and the lab) on real PostgreSQL. What a person or a script sees:
// the diff of `checks apply`, tables, JSON lines that parse, exit codes;
// then run, results summary and incidents (list, show --evidence, watch
// across a coordinator crash) during an outage switched on at the lab.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "tests/e2e/stack.h"
#include "tests/support/postgres.h"
#include "tests/support/process.h"
#include "tests/support/test_certs.h"

namespace vantage::testing {
namespace {

using nlohmann::json;
using std::chrono::seconds;

[[maybe_unused]] auto* const kPostgres = ::testing::AddGlobalTestEnvironment(new PostgresEnvironment);

// A token printed by `vantage-coordinator add-api-token` (its last line).
std::string add_api_token(const Stack& stack, const std::string& name, const std::string& role) {
  auto r = run_command(
      {VANTAGE_COORDINATOR_BIN, "add-api-token", "--database", stack.database(), "--name", name, "--role", role});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  auto text = r.output.substr(0, r.output.find_last_not_of('\n') + 1);
  auto token = text.substr(text.rfind('\n') + 1);
  EXPECT_EQ(token.size(), 64u) << r.output;
  return token;
}

// Runs vantagectl against the stack's coordinator with `token`.
struct Ctl {
  std::string addr;
  std::string token;
  RunResult operator()(std::vector<std::string> args, std::map<std::string, std::string> env = {}) const {
    std::vector<std::string> argv{VANTAGECTL_BIN, "--addr", addr};
    if (!token.empty()) argv.insert(argv.end(), {"--token", token});
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv, std::move(env), seconds(60));
  }
};

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// Every line of --json output is one JSON object.
std::vector<json> json_lines(const std::string& text) {
  std::vector<json> out;
  for (const auto& line : lines(text)) {
    EXPECT_FALSE(line.empty());
    json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    EXPECT_TRUE(j.is_object()) << "not a JSON object: " << line;
    out.push_back(std::move(j));
  }
  return out;
}

bool has_line(const std::string& output, const std::string& line) {
  for (const auto& l : lines(output)) {
    if (l == line) return true;
  }
  return false;
}

size_t count_of(const std::string& text, const std::string& part) {
  size_t n = 0;
  for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

class TempFile {
 public:
  TempFile() {
    static int n = 0;
    path_ = std::filesystem::temp_directory_path() / fmt::format("vantagectl-test-{}-{}.yaml", getpid(), ++n);
  }
  ~TempFile() {
    std::error_code ignored;
    std::filesystem::remove(path_, ignored);
  }
  const std::string write(const std::string& text) {
    std::ofstream(path_, std::ios::trunc) << text;
    return path_.string();
  }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

std::string addr_of(const Stack& stack) { return "127.0.0.1:" + std::to_string(stack.grpc_port()); }

TEST(Vantagectl, ApplyMakesTheApiChecksMatchAFileAndPrintsTheDiff) {
  Stack stack;  // its checks file has "home", owned by the file
  ASSERT_NO_FATAL_FAILURE(stack.start_coordinator());
  const Ctl ctl{addr_of(stack), add_api_token(stack, "deployer", "write")};
  TempFile file;
  const auto first = file.write(
      "checks:\n"
      "  - name: a\n    url: http://127.0.0.1:9/a\n    interval: 1h\n    labels: {team: shop}\n"
      "  - name: b\n    url: http://127.0.0.1:9/b\n    interval: 30s\n");

  auto dry = ctl({"checks", "apply", "-f", first, "--dry-run"});
  EXPECT_EQ(dry.exit_code, 0) << "a dry run with changes exits 0: " << dry.output;
  EXPECT_TRUE(has_line(dry.output, "+ a")) << dry.output;
  EXPECT_TRUE(has_line(dry.output, "+ b")) << dry.output;
  EXPECT_NE(dry.output.find("dry run, nothing changed: 2 to create"), std::string::npos) << dry.output;
  auto listed = ctl({"--json", "checks", "list"});
  ASSERT_EQ(listed.exit_code, 0) << listed.output;
  EXPECT_EQ(json_lines(listed.output).size(), 1u) << "the dry run created nothing: " << listed.output;

  auto applied = ctl({"checks", "apply", "-f", first});
  ASSERT_EQ(applied.exit_code, 0) << applied.output;
  EXPECT_TRUE(has_line(applied.output, "+ a")) << applied.output;
  EXPECT_TRUE(has_line(applied.output, "+ b")) << applied.output;
  EXPECT_TRUE(has_line(applied.output, "applied: 2 created, 0 updated, 0 deleted, 0 unchanged")) << applied.output;

  auto again = ctl({"checks", "apply", "-f", first});
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_EQ(again.output, "applied: 0 created, 0 updated, 0 deleted, 2 unchanged\n")
      << "what the server stored reads back as the file says";

  // b changes, c is new, a is gone from the file, and home belongs to the
  // coordinator's own file.
  const auto second = file.write(
      "checks:\n"
      "  - name: b\n    url: http://127.0.0.1:9/b\n    interval: 2m\n    labels: {team: shop}\n"
      "  - name: c\n    url: http://127.0.0.1:9/c\n    interval: 1m\n"
      "  - name: home\n    url: http://127.0.0.1:9/\n    interval: 1m\n");
  auto dry2 = ctl({"checks", "apply", "-f", second, "--dry-run"});
  ASSERT_EQ(dry2.exit_code, 0) << dry2.output;
  EXPECT_TRUE(has_line(dry2.output, "~ b (interval, labels)")) << dry2.output;
  auto edited = ctl({"checks", "apply", "-f", second});
  ASSERT_EQ(edited.exit_code, 0) << edited.output;
  EXPECT_TRUE(has_line(edited.output, "~ b (interval, labels)")) << edited.output;
  EXPECT_TRUE(has_line(edited.output, "+ c")) << edited.output;
  EXPECT_TRUE(has_line(edited.output, "? a (not in the file: kept; --prune deletes it)")) << edited.output;
  EXPECT_NE(edited.output.find("! home (owned by the coordinator's checks file"), std::string::npos) << edited.output;
  EXPECT_TRUE(has_line(edited.output, "applied: 1 created, 1 updated, 0 deleted, 0 unchanged")) << edited.output;

  auto pruned = ctl({"--json", "checks", "apply", "-f", second, "--prune"});
  ASSERT_EQ(pruned.exit_code, 0) << pruned.output;
  std::map<std::string, std::string> actions;
  for (const auto& j : json_lines(pruned.output)) actions[j.at("name")] = j.at("action");
  EXPECT_EQ(actions, (std::map<std::string, std::string>{
                         {"a", "delete"}, {"b", "unchanged"}, {"c", "unchanged"}, {"home", "file_owned"}}));

  // list: a table for people, JSON lines for scripts.
  auto table = ctl({"checks", "list"});
  ASSERT_EQ(table.exit_code, 0) << table.output;
  auto rows = lines(table.output);
  ASSERT_EQ(rows.size(), 4u) << table.output;
  EXPECT_EQ(rows[0].rfind("NAME  SOURCE  VERSION  INTERVAL  REGIONS  LABELS     URL", 0), 0u) << table.output;
  EXPECT_EQ(rows[1].rfind("b     api     2        2m        all      team=shop  http://127.0.0.1:9/b", 0), 0u)
      << table.output;
  EXPECT_EQ(rows[3].rfind("home  file", 0), 0u) << table.output;
  auto as_json = ctl({"--json", "checks", "list"});
  ASSERT_EQ(as_json.exit_code, 0) << as_json.output;
  auto checks = json_lines(as_json.output);
  ASSERT_EQ(checks.size(), 3u) << as_json.output;
  EXPECT_EQ(checks[0].at("name"), "b");
  EXPECT_EQ(checks[0].at("source"), "CHECK_SOURCE_API");
  EXPECT_EQ(checks[0].at("version"), "2");  // int64 is a string in protobuf's JSON
  EXPECT_EQ(checks[0].at("interval"), "120s");
  EXPECT_EQ(checks[2].at("source"), "CHECK_SOURCE_FILE");
  // Every page is followed: three pages of one check each.
  auto paged = ctl({"--json", "checks", "list", "--page-size", "1"});
  ASSERT_EQ(paged.exit_code, 0) << paged.output;
  EXPECT_EQ(paged.output, as_json.output);
  auto labelled = ctl({"--json", "checks", "list", "--label", "team=shop"});
  ASSERT_EQ(labelled.exit_code, 0) << labelled.output;
  ASSERT_EQ(json_lines(labelled.output).size(), 1u) << labelled.output;
  EXPECT_EQ(json_lines(labelled.output)[0].at("name"), "b");

  auto got = ctl({"checks", "get", "b"});
  ASSERT_EQ(got.exit_code, 0) << got.output;
  EXPECT_TRUE(has_line(got.output, "interval:         2m")) << got.output;
  EXPECT_TRUE(has_line(got.output, "labels:           team=shop")) << got.output;
  auto got_json = ctl({"--json", "checks", "get", "c"});
  ASSERT_EQ(got_json.exit_code, 0) << got_json.output;
  ASSERT_EQ(json_lines(got_json.output).size(), 1u);
  EXPECT_EQ(json_lines(got_json.output)[0].at("url"), "http://127.0.0.1:9/c");

  auto deleted = ctl({"checks", "delete", "c"});
  ASSERT_EQ(deleted.exit_code, 0) << deleted.output;
  EXPECT_EQ(deleted.output, "deleted check c\n");
  auto gone = ctl({"checks", "get", "c"});
  EXPECT_EQ(gone.exit_code, 2) << gone.output;
  EXPECT_EQ(gone.output.rfind("vantagectl: NOT_FOUND: ", 0), 0u) << gone.output;
  EXPECT_EQ(lines(gone.output).size(), 1u) << "one line: " << gone.output;
}

TEST(Vantagectl, ExitCodesTellScriptsWhatWentWrong) {
  Stack stack;
  ASSERT_NO_FATAL_FAILURE(stack.start_coordinator());
  const auto addr = addr_of(stack);
  const auto write_token = add_api_token(stack, "writer", "write");
  const auto read_token = add_api_token(stack, "reader", "read");
  const Ctl ctl{addr, write_token};
  TempFile file;
  const auto one = file.write("checks:\n  - name: x\n    url: http://127.0.0.1:9/\n");

  auto ok = ctl({"checks", "list"});
  EXPECT_EQ(ok.exit_code, 0) << ok.output;

  // 1: usage, before anything is sent.
  auto bad_flag = ctl({"checks", "list", "--no-such-flag"});
  EXPECT_EQ(bad_flag.exit_code, 1) << bad_flag.output;
  EXPECT_NE(bad_flag.output.find("--no-such-flag"), std::string::npos) << bad_flag.output;
  EXPECT_EQ(ctl({"incidents", "list", "--state", "sideways"}).exit_code, 1);
  EXPECT_EQ(ctl({"--timeout", "soon", "checks", "list"}).exit_code, 1);
  EXPECT_EQ(ctl({"checks"}).exit_code, 1);
  TempFile bad_file;
  auto invalid = ctl({"checks", "apply", "-f",
                      bad_file.write("checks:\n  - name: x\n    url: http://127.0.0.1:9/\n"
                                     "    interval: 0s\n")});
  EXPECT_EQ(invalid.exit_code, 1) << invalid.output;
  EXPECT_NE(invalid.output.find(bad_file.path() + ":4:"), std::string::npos)
      << "the checks file's own errors, file:line:column: " << invalid.output;
  EXPECT_EQ(ctl({"checks", "apply", "-f", "/nonexistent/checks.yaml"}).exit_code, 1);

  // 2: the server refused.
  auto unknown = ctl({"checks", "get", "no-such-check"});
  EXPECT_EQ(unknown.exit_code, 2) << unknown.output;
  EXPECT_EQ(unknown.output.rfind("vantagectl: NOT_FOUND: ", 0), 0u) << unknown.output;
  auto file_owned = ctl({"checks", "delete", "home"});
  EXPECT_EQ(file_owned.exit_code, 2) << file_owned.output;
  EXPECT_EQ(file_owned.output.rfind("vantagectl: FAILED_PRECONDITION: ", 0), 0u) << file_owned.output;

  // 3: authentication and permission.
  auto wrong = Ctl{addr, std::string(64, 'a')}({"checks", "list"});
  EXPECT_EQ(wrong.exit_code, 3) << wrong.output;
  EXPECT_EQ(wrong.output.rfind("vantagectl: UNAUTHENTICATED: ", 0), 0u) << wrong.output;
  auto none = Ctl{addr, ""}({"checks", "list"});
  EXPECT_EQ(none.exit_code, 3) << none.output;
  auto reader = Ctl{addr, read_token}({"checks", "apply", "-f", one});
  EXPECT_EQ(reader.exit_code, 3) << reader.output;
  EXPECT_NE(reader.output.find("PERMISSION_DENIED"), std::string::npos) << reader.output;
  const Ctl read_ctl{addr, read_token};
  EXPECT_EQ(read_ctl({"checks", "list"}).exit_code, 0);

  // The token and address from a file and from the environment.
  TempFile token_file;
  auto from_file = Ctl{addr, ""}({"--token-file", token_file.write(read_token + "\n"), "checks", "list"});
  EXPECT_EQ(from_file.exit_code, 0) << from_file.output;
  auto from_env =
      run_command({VANTAGECTL_BIN, "checks", "list"}, {{"VANTAGE_ADDR", addr}, {"VANTAGE_TOKEN", read_token}});
  EXPECT_EQ(from_env.exit_code, 0) << from_env.output;
  EXPECT_EQ(lines(from_env.output).size(), 2u) << from_env.output;  // header and home

  // 4: the coordinator is down.
  stack.coordinator().signal(SIGTERM);
  ASSERT_TRUE(stack.coordinator().wait(seconds(20)));
  auto down = ctl({"checks", "list"});
  EXPECT_EQ(down.exit_code, 4) << down.output;
  EXPECT_EQ(down.output.rfind("vantagectl: UNAVAILABLE: ", 0), 0u) << down.output;
}

TEST(Vantagectl, ProbesListShowsTheFleet) {
  Stack stack;
  ASSERT_NO_FATAL_FAILURE(stack.start_coordinator());
  stack.start_probes();
  const Ctl ctl{addr_of(stack), add_api_token(stack, "viewer", "read")};
  std::vector<json> probes;
  ASSERT_TRUE(eventually(
      [&] {
        auto r = ctl({"--json", "probes", "list"});
        if (r.exit_code != 0) return false;
        probes = json_lines(r.output);
        return probes.size() == 3 && std::all_of(probes.begin(), probes.end(), [](const json& p) {
                 return p.at("connected") == true && p.at("checks_assigned") == 1;
               });
      },
      seconds(30)))
      << ctl({"probes", "list"}).output;
  EXPECT_EQ(probes[0].at("id"), "ap-1");
  EXPECT_EQ(probes[0].at("region"), "ap");
  auto table = ctl({"probes", "list"});
  ASSERT_EQ(table.exit_code, 0) << table.output;
  auto rows = lines(table.output);
  ASSERT_EQ(rows.size(), 4u) << table.output;
  EXPECT_EQ(rows[0].rfind("ID    REGION  VERSION", 0), 0u) << table.output;
  EXPECT_EQ(rows[2].rfind("eu-1  eu", 0), 0u) << table.output;
  EXPECT_NE(rows[2].find("  yes  "), std::string::npos) << table.output;
}

TEST(Vantagectl, TlsWithTheGivenCa) {
  const auto db = PostgresEnvironment::fresh_database();
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("vantagectl-tls-{}", getpid());
  std::filesystem::create_directories(dir);
  const TestCa ca("vantage-test-ca"), other("another-ca");
  const auto server = ca.issue("coordinator", "IP:127.0.0.1");
  std::ofstream(dir / "ca.pem") << ca.pem;
  std::ofstream(dir / "other.pem") << other.pem;
  std::ofstream(dir / "server.pem") << server.cert;
  std::ofstream(dir / "server.key") << server.key_pem();
  auto token =
      run_command({VANTAGE_COORDINATOR_BIN, "add-api-token", "--database", db, "--name", "tls", "--role", "read"});
  ASSERT_EQ(token.exit_code, 0) << token.output;
  const auto text = token.output.substr(0, token.output.find_last_not_of('\n') + 1);
  Process coordinator({VANTAGE_COORDINATOR_BIN, "serve", "--database", db, "--listen", "127.0.0.1:0",
                       "--metrics-listen", "127.0.0.1:0", "--tls-cert", (dir / "server.pem").string(), "--tls-key",
                       (dir / "server.key").string()});
  ASSERT_TRUE(coordinator.wait_for_output("msg=\"coordinator started\"", seconds(20))) << coordinator.output();
  const Ctl ctl{"127.0.0.1:" + std::to_string(number_after(coordinator.output(), "grpc_port=")),
                text.substr(text.rfind('\n') + 1)};

  auto verified = ctl({"--tls-ca", (dir / "ca.pem").string(), "probes", "list"});
  EXPECT_EQ(verified.exit_code, 0) << verified.output;
  EXPECT_EQ(verified.output.rfind("ID  REGION", 0), 0u) << verified.output;
  auto plaintext = ctl({"probes", "list"});
  EXPECT_EQ(plaintext.exit_code, 4) << plaintext.output;
  EXPECT_EQ(plaintext.output.rfind("vantagectl: UNAVAILABLE: ", 0), 0u) << plaintext.output;
  auto untrusted = ctl({"--tls-ca", (dir / "other.pem").string(), "probes", "list"});
  EXPECT_EQ(untrusted.exit_code, 4) << "a certificate the CA did not sign: " << untrusted.output;
  auto missing = ctl({"--tls-ca", (dir / "missing.pem").string(), "probes", "list"});
  EXPECT_EQ(missing.exit_code, 1) << missing.output;
  EXPECT_NE(missing.output.find("--tls-ca"), std::string::npos) << missing.output;
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
}

// The edge scenario of tests/e2e/stack.h (as incidents_test.cc runs it):
// three probes, each through its own colo of the lab's fake edge, the origin
// leg straight at the lab origin; faults switched on at the lab.
TEST(Vantagectl, RunSummaryAndIncidentsDuringALabOutage) {
  Stack stack(edge_stack("{resolve_consecutive: 2}"));
  ASSERT_NO_FATAL_FAILURE(stack.start_coordinator());
  stack.start_probes();
  ASSERT_TRUE(
      eventually([&] { return stack.stored(0) > 1 && stack.stored(1) > 1 && stack.stored(2) > 1; }, seconds(30)))
      << stack.coordinator().output();
  const auto addr = addr_of(stack);
  const Ctl ctl{addr, add_api_token(stack, "operator", "write")};

  // run: a fresh result from every region.
  auto ran = ctl({"run", "shop", "--timeout", "20s"});
  ASSERT_EQ(ran.exit_code, 0) << ran.output;
  auto rows = lines(ran.output);
  ASSERT_GE(rows.size(), 4u) << ran.output;
  EXPECT_EQ(rows[0].rfind("REGION  PROBE  CLASS  STATUS  TOTAL", 0), 0u) << ran.output;
  for (const auto& region : {"ap  ", "eu  ", "us  "}) {
    EXPECT_TRUE(std::any_of(rows.begin() + 1, rows.end(),
                            [&](const std::string& r) {
                              return r.rfind(region, 0) == 0 && r.find(" ok ") != std::string::npos &&
                                     r.find(" ms ") != std::string::npos;
                            }))
        << region << ran.output;
  }
  auto ran_json = ctl({"--json", "run", "shop"});
  ASSERT_EQ(ran_json.exit_code, 0) << ran_json.output;
  ASSERT_EQ(json_lines(ran_json.output).size(), 1u) << ran_json.output;
  EXPECT_EQ(json_lines(ran_json.output)[0].at("results").size(), 3u) << ran_json.output;

  // results summary: a table for people, one JSON object for scripts.
  auto summary = ctl({"results", "summary", "shop", "--window", "1h"});
  ASSERT_EQ(summary.exit_code, 0) << summary.output;
  EXPECT_NE(summary.output.find("uptime:"), std::string::npos) << summary.output;
  EXPECT_NE(summary.output.find("reachability:"), std::string::npos) << summary.output;
  EXPECT_NE(summary.output.find("REGION  ATTEMPTS  SUCCESSES  REACHABILITY  P50"), std::string::npos) << summary.output;
  auto summary_json = ctl({"--json", "results", "summary", "shop"});
  ASSERT_EQ(summary_json.exit_code, 0) << summary_json.output;
  auto s = json_lines(summary_json.output);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].at("check"), "shop");
  EXPECT_GT(std::stoll(s[0].at("attempts").get<std::string>()), 0);
  EXPECT_EQ(s[0].at("by_region").size(), 3u) << summary_json.output;
  EXPECT_EQ(ctl({"results", "summary", "shop", "--window", "sometime"}).exit_code, 1);
  EXPECT_EQ(ctl({"results", "summary", "no-such-check"}).exit_code, 2);

  // watch from before the outage, across a coordinator crash.
  Process watch(
      {VANTAGECTL_BIN, "--addr", addr, "--token", ctl.token, "incidents", "watch", "--check", "shop", "--since", "1h"});
  set_fault(stack, "name=empty-reply");
  ASSERT_TRUE(watch.wait_for_output("  opened  ", seconds(30))) << watch.output() << stack.coordinator().output();
  auto opened_line = watch.output();
  EXPECT_NE(opened_line.find("  shop  opened  global  outage  "), std::string::npos) << opened_line;

  auto listed = ctl({"--json", "incidents", "list", "--check", "shop", "--state", "open"});
  ASSERT_EQ(listed.exit_code, 0) << listed.output;
  auto incidents = json_lines(listed.output);
  ASSERT_EQ(incidents.size(), 1u) << listed.output;
  const std::string id = incidents[0].at("id");
  EXPECT_EQ(incidents[0].at("widest_scope"), "SCOPE_GLOBAL");
  auto table = ctl({"incidents", "list", "--scope", "global", "--since", "1h"});
  ASSERT_EQ(table.exit_code, 0) << table.output;
  EXPECT_EQ(lines(table.output).size(), 2u) << table.output;
  EXPECT_NE(table.output.find(id + "  shop   open   outage  global"), std::string::npos) << table.output;

  // show --evidence: what a Cloudflare support ticket asks for.
  ASSERT_TRUE(eventually(
      [&] {
        return count_of(ctl({"incidents", "show", id, "--evidence"}).output, " 520 ") >= 3;
      },
      seconds(20)));
  auto shown = ctl({"incidents", "show", id, "--evidence"});
  ASSERT_EQ(shown.exit_code, 0) << shown.output;
  EXPECT_NE(shown.output.find("scope:"), std::string::npos) << shown.output;
  const auto evidence_at = shown.output.find("\nEVIDENCE (");
  ASSERT_NE(evidence_at, std::string::npos) << shown.output;
  const auto evidence = shown.output.substr(evidence_at);
  for (const auto& column : {"RAY ID", "COLO", "EDGE ERROR", "ORIGIN REPLY"}) {
    EXPECT_NE(lines(evidence)[2].find(column), std::string::npos) << column << evidence;
  }
  for (const auto& colo : kEdgeColos)
    EXPECT_NE(evidence.find("  " + colo + "   520"), std::string::npos) << colo << evidence;
  EXPECT_NE(evidence.find("ok 200"), std::string::npos) << "the origin's own reply, straight at it: " << evidence;
  auto shown_json = ctl({"--json", "incidents", "show", id, "--evidence"});
  ASSERT_EQ(shown_json.exit_code, 0) << shown_json.output;
  auto detail = json_lines(shown_json.output);
  ASSERT_EQ(detail.size(), 1u);
  ASSERT_FALSE(detail[0].at("evidence").empty());
  const auto& edge = detail[0].at("evidence")[0].at("result").at("edge").at("edge");
  EXPECT_EQ(edge.at("edge_code"), 520);
  EXPECT_FALSE(edge.at("ray_id").get<std::string>().empty());
  EXPECT_EQ(ctl({"incidents", "show", "no-such-incident"}).exit_code, 2);

  // The coordinator crashes and comes back on the same port: the watch
  // resumes after the last event it printed.
  stack.coordinator().signal(SIGKILL);
  stack.coordinator().wait(seconds(10));
  ASSERT_TRUE(watch.wait_for_output("resuming after event", seconds(30))) << watch.output();
  ASSERT_NO_FATAL_FAILURE(stack.start_coordinator(addr));
  set_fault(stack, "name=none");
  ASSERT_TRUE(watch.wait_for_output("  resolved  ", seconds(60))) << watch.output() << stack.coordinator().output();
  watch.signal(SIGTERM);
  watch.wait(seconds(10));
  const auto watched = watch.output();
  std::printf("Vantagectl.RunSummaryAndIncidentsDuringALabOutage: what `incidents watch` printed:\n%s",
              watched.c_str());
  EXPECT_EQ(count_of(watched, "  opened  "), 1u) << "nothing repeated after the reconnect: " << watched;
  EXPECT_EQ(count_of(watched, "  resolved  "), 1u) << watched;
  EXPECT_EQ(count_of(watched, "  " + id + "  "), count_of(watched, "  shop  ")) << watched;

  auto resolved = ctl({"--json", "incidents", "list", "--state", "resolved"});
  ASSERT_EQ(resolved.exit_code, 0) << resolved.output;
  ASSERT_EQ(json_lines(resolved.output).size(), 1u) << resolved.output;
  EXPECT_EQ(json_lines(resolved.output)[0].at("id"), id);
}

}  // namespace
}  // namespace vantage::testing
