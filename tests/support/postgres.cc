#include "tests/support/postgres.h"

#include <fmt/format.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <pqxx/pqxx>
#include <stdexcept>

namespace vantage::testing {

namespace {

std::string g_dir;
std::string g_url;
std::string g_error;

std::string run(const std::string& command) {
  std::string out;
  // Only stdout is the answer (a URL); stderr (pg_ctl's retries and warnings)
  // goes to the test's own output, where a failure can be read.
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) throw std::runtime_error("popen failed: " + command);
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, pipe)) out.append(buf, n);
  const int status = pclose(pipe);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  if (status != 0) throw std::runtime_error(fmt::format("`{}` failed: {}", command, out));
  return out;
}

std::string script() { return std::string(VANTAGE_SOURCE_DIR) + "/scripts/local-postgres.sh"; }

}  // namespace

void PostgresEnvironment::SetUp() {
  char templ[] = "/tmp/vantage-test-pg-XXXXXX";
  if (!mkdtemp(templ)) {
    g_error = "mkdtemp failed";
    return;
  }
  g_dir = templ;
  try {
    g_url = run(fmt::format("{} start {} --fast", script(), g_dir));
  } catch (const std::exception& e) {
    g_error = e.what();
  }
}

void PostgresEnvironment::TearDown() {
  if (g_dir.empty()) return;
  try {
    run(fmt::format("{} stop {}", script(), g_dir));
  } catch (const std::exception& e) {
    fprintf(stderr, "stopping the test PostgreSQL: %s\n", e.what());
  }
  std::error_code ignored;
  std::filesystem::remove_all(g_dir, ignored);
}

const std::string& PostgresEnvironment::url() {
  if (g_url.empty()) throw std::runtime_error("the test PostgreSQL did not start: " + g_error);
  return g_url;
}

std::string PostgresEnvironment::fresh_database() {
  static std::atomic<int> counter{0};
  const auto name = fmt::format("test_{}_{}", getpid(), ++counter);
  pqxx::connection c(url());
  pqxx::nontransaction(c).exec("CREATE DATABASE " + name);
  auto base = url().substr(0, url().rfind('/'));
  return base + "/" + name;
}

void PostgresEnvironment::stop_server() { run(fmt::format("{} stop {}", script(), g_dir)); }

void PostgresEnvironment::start_server() {
  // local-postgres.sh starts on the cluster's previous port: the URL stays valid.
  if (run(fmt::format("{} start {} --fast", script(), g_dir)) != g_url) {
    throw std::runtime_error("the test PostgreSQL came back on another port");
  }
}

}  // namespace vantage::testing
