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

// The lab origin, started for one test; its "host:port".
std::string start_lab(std::unique_ptr<Process>& lab) {
  lab = std::make_unique<Process>(std::vector<std::string>{kLab, "--listen", "127.0.0.1:0"});
  EXPECT_TRUE(lab->wait_for_output("msg=listening", seconds(10))) << lab->output();
  return "127.0.0.1:" + std::to_string(number_after(lab->output(), "address=127.0.0.1:"));
}

TEST(Diagnose, FollowsRedirectsAndListsEachHopInOrder) {
  std::unique_ptr<Process> lab;
  const auto base = "http://" + start_lab(lab);
  auto r = run_command({kProbe, "diagnose", base + "/fault/redirect-chain?n=2", "--follow-redirects", "5"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  const auto first = r.output.find("redirect 1: 302 " + base + "/fault/redirect-chain?n=2\n"
                                   "            Location: /fault/redirect-chain?n=1 (127.0.0.1:");
  const auto second = r.output.find("redirect 2: 302 " + base + "/fault/redirect-chain?n=1\n"
                                    "            Location: /fault/redirect-chain?n=0 (127.0.0.1:");
  const auto final_url = r.output.find("final URL " + base + "/fault/redirect-chain?n=0\n");
  ASSERT_NE(first, std::string::npos) << r.output;
  ASSERT_NE(second, std::string::npos) << r.output;
  ASSERT_NE(final_url, std::string::npos) << r.output;
  EXPECT_LT(first, second);
  EXPECT_LT(second, final_url);

  // Without the flag the 3xx is the response (and 200-399 is expected).
  r = run_command({kProbe, "diagnose", base + "/fault/redirect-chain?n=2", "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  auto report = nlohmann::json::parse(r.output, nullptr, false);
  ASSERT_FALSE(report.is_discarded()) << r.output;
  EXPECT_EQ(report["edge"]["status"], 302);
  EXPECT_TRUE(report["edge"]["redirects"].empty()) << r.output;

  // One hop fewer than the chain: too_many_redirects, the hops followed in the JSON.
  r = run_command({kProbe, "diagnose", base + "/fault/redirect-chain?n=2", "--follow-redirects", "1", "--json"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  report = nlohmann::json::parse(r.output, nullptr, false);
  ASSERT_FALSE(report.is_discarded()) << r.output;
  EXPECT_EQ(report["edge"]["class"], "too_many_redirects");
  ASSERT_EQ(report["edge"]["redirects"].size(), 1u) << r.output;
  EXPECT_EQ(report["edge"]["redirects"][0]["url"], base + "/fault/redirect-chain?n=2");
  EXPECT_EQ(report["edge"]["redirects"][0]["location"], "/fault/redirect-chain?n=1");
  EXPECT_EQ(report["edge"]["url"], base + "/fault/redirect-chain?n=1");
}

TEST(Diagnose, ARedirectLoopIsNamedWithItsChain) {
  std::unique_ptr<Process> lab;
  const auto base = "http://" + start_lab(lab);
  auto r = run_command({kProbe, "diagnose", base + "/fault/redirect-loop", "--follow-redirects", "10"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("redirect_loop, status 302"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("redirect loop: " + base +
                          "/fault/redirect-loop -> /fault/redirect-loop?n=1 -> /fault/redirect-loop"),
            std::string::npos)
      << r.output;
  // The one redirect followed; the response that pointed back is the leg's own (status 302 above).
  const auto hop = r.output.find("redirect 1: 302 " + base + "/fault/redirect-loop\n"
                                 "            Location: /fault/redirect-loop?n=1 (127.0.0.1:");
  const auto final_url = r.output.find("final URL " + base + "/fault/redirect-loop?n=1\n");
  ASSERT_NE(hop, std::string::npos) << r.output;
  ASSERT_NE(final_url, std::string::npos) << r.output;
  EXPECT_LT(hop, final_url);
  EXPECT_EQ(r.output.find("redirect 2:"), std::string::npos) << r.output;
}

TEST(Diagnose, AnAssertionFailureIsNamedInTheOrderOfTheFlags) {
  std::unique_ptr<Process> lab;
  const auto base = "http://" + start_lab(lab);  // "/" answers 200, text/plain, "ok\n"
  auto r = run_command({kProbe, "diagnose", base + "/", "--assert-header", "Content-Type=^text/plain",
                        "--assert-body-not", "maintenance", "--assert-body", "^ok\\n$"});
  EXPECT_EQ(r.exit_code, 0) << r.output;

  // A header assertion that holds, then a body one that does not: the second is named.
  r = run_command({kProbe, "diagnose", base + "/", "--assert-header-not", "Content-Type=json", "--assert-body-not",
                   "ok"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("assertion_failed, status 200"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("assertions[1] failed (--assert-body-not \"ok\"): body matches \"ok\""), std::string::npos)
      << r.output;

  r = run_command({kProbe, "diagnose", base + "/", "--assert-body", "ok", "--assert-header", "X-Missing=.", "--json"});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  const auto report = nlohmann::json::parse(r.output, nullptr, false);
  ASSERT_FALSE(report.is_discarded()) << r.output;
  const auto& failure = report["edge"]["assertion_failure"];
  EXPECT_EQ(failure["index"], 1) << r.output;
  EXPECT_EQ(failure["target"], "header");
  EXPECT_EQ(failure["header"], "X-Missing");
  EXPECT_EQ(failure["reason"], "header X-Missing absent");
}

// The lab's TLS origin completes the handshake with a self-signed certificate,
// then sends bytes that are not TLS: past the certificate, the leg fails later.
TEST(Diagnose, TlsCaAndInsecureDecideWhetherTheCertificateStopsTheLeg) {
  const auto cert = std::filesystem::temp_directory_path() / (std::to_string(getpid()) + "-lab-tls.pem");
  Process lab({kLab, "--listen", "127.0.0.1:0", "--tls-garbage-listen", "127.0.0.1:0", "--tls-garbage-cert",
               cert.string()});
  ASSERT_TRUE(lab.wait_for_output("msg=\"tls garbage listening\"", seconds(10))) << lab.output();
  const auto tls_port = number_after(lab.output(), "address=127.0.0.1:");  // the last: the TLS origin's
  std::error_code ec;
  ASSERT_TRUE(eventually([&] { return std::filesystem::file_size(cert, ec) > 0 && !ec; }, seconds(10)));
  ASSERT_GT(tls_port, 0) << lab.output();
  const auto url = "https://127.0.0.1:" + std::to_string(tls_port) + "/";

  auto leg_of = [](const RunResult& r) {
    const auto report = nlohmann::json::parse(r.output, nullptr, false);
    return report.is_discarded() ? nlohmann::json() : report["edge"];
  };
  auto r = run_command({kProbe, "diagnose", url, "--json"});
  EXPECT_EQ(leg_of(r)["class"], "tls_cert_invalid") << r.output;

  r = run_command({kProbe, "diagnose", url, "--tls-ca", cert.string(), "--json"});
  EXPECT_EQ(leg_of(r)["class"], "malformed_status_line") << r.output;
  EXPECT_EQ(leg_of(r)["cert_problem"], nullptr) << r.output;

  r = run_command({kProbe, "diagnose", url, "--insecure", "--json"});
  EXPECT_EQ(leg_of(r)["class"], "malformed_status_line") << r.output;
  EXPECT_EQ(leg_of(r)["cert_problem"], "self_signed") << r.output;
  EXPECT_EQ(leg_of(r)["verification_skipped"], true) << r.output;

  r = run_command({kProbe, "diagnose", url, "--insecure"});
  EXPECT_NE(r.output.find("certificate not required to verify (--insecure): self_signed"), std::string::npos)
      << r.output;
  std::filesystem::remove(cert);
}

TEST(Diagnose, ABadFetchFlagIsRefusedNamingTheFlag) {
  const auto not_pem = write_temp("not-a-ca.pem", "hello\n");
  const std::string url = "http://127.0.0.1:1/";
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--follow-redirects", "abc"}, "--follow-redirects: \"abc\" is not a whole number"},
      {{"--follow-redirects", "-1"}, "--follow-redirects"},
      {{"--follow-redirects", "21"}, "--follow-redirects: 21 is outside the range 0 to 20"},
      {{"--body-limit", "100"}, "--body-limit: 100 bytes is outside the range"},
      {{"--body-limit", "99999999999"}, "--body-limit: \"99999999999\" is not a whole number"},
      {{"--assert-body", "ok", "--assert-body", "("}, "--assert-body \"(\": pattern: is not an RE2 regular expression"},
      {{"--assert-body-not", ""}, "--assert-body-not \"\": pattern: is empty"},
      {{"--assert-header", "Content-Type"}, "--assert-header: \"Content-Type\" is not NAME=PATTERN"},
      {{"--assert-header-not", "Bad Name=x"}, "--assert-header-not \"Bad Name=x\": header_name: "},
      {{"--ip-family", "ipv5"}, "--ip-family: \"ipv5\" is not one of any, prefer_ipv4, prefer_ipv6, ipv4, ipv6"},
      {{"--cache-busting", "a b"}, "--cache-busting: \"a b\" is not a query parameter name"},
      {{"--tls-ca", "/nonexistent/ca.pem"}, "--tls-ca: \"/nonexistent/ca.pem\": cannot read it"},
      {{"--tls-ca", not_pem.string()}, "--tls-ca " + not_pem.string() + ": holds no PEM certificate"},
      // An IPv4 literal can never be reached over IPv6 only.
      {{"--ip-family", "ipv6"}, "the URL: 127.0.0.1 is an IPv4 address and --ip-family is ipv6"},
  };
  for (const auto& [flags, expected] : cases) {
    std::vector<std::string> argv = {kProbe, "diagnose", url};
    argv.insert(argv.end(), flags.begin(), flags.end());
    const auto r = run_command(argv);
    EXPECT_EQ(r.exit_code, 2) << flags[0] << ": " << r.output;
    EXPECT_EQ(lines(r.output), 1u) << flags[0] << ": " << r.output;
    EXPECT_NE(r.output.find("vantage-probe diagnose: " + expected), std::string::npos) << r.output;
  }
  std::filesystem::remove(not_pem);

  // Every problem of the check, one line each.
  auto r = run_command({kProbe, "diagnose", url, "--follow-redirects", "21", "--cache-busting", "a b"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_EQ(lines(r.output), 2u) << r.output;

  // A flag without its value is a usage error: bad input too.
  r = run_command({kProbe, "diagnose", url, "--assert-body"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--assert-body"), std::string::npos) << r.output;
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
