// vantage-coordinator: receives the probes' results, stores them, serves the API.
//
//   vantage-coordinator serve --database URL [--checks FILE] [--listen ADDR] [--metrics-listen ADDR]
//   vantage-coordinator add-probe --database URL --probe-id ID --region REGION
//   vantage-coordinator check-config --checks FILE
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdlib>
#include <iostream>

#include "common/build_info.h"
#include "common/check_config.h"
#include "common/log.h"
#include "coordinator/coordinator.h"
#include "storage/pg_store.h"

namespace {

// libpq's messages span lines; a start-up error must be one line.
std::string one_line(std::string text) {
  std::string out;
  bool space = false;
  for (char ch : text) {
    if (ch == '\n' || ch == '\r' || ch == '\t' || ch == ' ') {
      space = !out.empty();
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.push_back(ch);
  }
  return out;
}

int fail(const std::string& message) {
  std::cerr << "vantage-coordinator: " << one_line(message) << "\n";
  return 1;
}

// A checks file's problems, one line each ("file:line:column: ..."), the same
// from check-config and serve: both load the file with load_checks_file().
int fail(const vantage::ConfigError& error) {
  for (const auto& problem : error.problems()) std::cerr << "vantage-coordinator: " << one_line(problem) << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"vantage-coordinator: correlates probe results, stores them and serves the API"};
  app.set_version_flag("--version", std::string(vantage::kVersion) + " (" + vantage::kRevision + ")");
  app.require_subcommand(1);
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return std::string("vantage-coordinator: ") + e.what() + " (see --help)\n";
  });
  std::string database_url;
  if (const char* env = std::getenv("VANTAGE_DATABASE_URL")) database_url = env;
  std::string log_level = "info";

  vantage::coordinator::CoordinatorOptions options;
  auto* serve = app.add_subcommand("serve", "run the coordinator");
  serve->add_option("--database", database_url, "PostgreSQL URL (default: $VANTAGE_DATABASE_URL)");
  serve->add_option("--checks", options.checks_file, "YAML file of checks to run");
  serve->add_option("--listen", options.listen, "gRPC address for probes and the API")->capture_default_str();
  serve->add_option("--metrics-listen", options.metrics_listen, "address of the Prometheus /metrics endpoint")
      ->capture_default_str();
  serve->add_option("--tls-cert", options.tls_cert_file, "PEM certificate: serve gRPC over TLS");
  serve->add_option("--tls-key", options.tls_key_file, "PEM private key for --tls-cert");
  serve->add_option("--retention-days", options.retention_days, "days of results kept")->capture_default_str();
  serve->add_option("--log-level", log_level, "debug, info, warn or error")->capture_default_str();

  std::string probe_id, region;
  auto* add_probe = app.add_subcommand(
      "add-probe", "register a probe (or give it a new token) and print its token once");
  add_probe->add_option("--database", database_url, "PostgreSQL URL (default: $VANTAGE_DATABASE_URL)");
  add_probe->add_option("--probe-id", probe_id, "the probe's id")->required();
  add_probe->add_option("--region", region, "the probe's region")->required();

  auto* check = app.add_subcommand("check-config", "validate a checks file and exit");
  check->add_option("--checks", options.checks_file, "YAML file of checks")->required();

  CLI11_PARSE(app, argc, argv);

  try {
    vantage::log::init("coordinator", log_level);
    if (*check) {
      auto checks = vantage::load_checks_file(options.checks_file);
      std::cout << options.checks_file << ": " << checks.size() << " checks, valid\n";
      return 0;
    }
    if (database_url.empty()) return fail("--database (or $VANTAGE_DATABASE_URL) is required");
    if (*add_probe) {
      vantage::storage::PgStore store(database_url, 1);
      store.migrate();
      std::cout << store.add_probe(probe_id, region) << "\n";
      return 0;
    }
    options.database_url = database_url;

    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    vantage::coordinator::Coordinator coordinator(options);
    coordinator.start();
    int sig = 0;
    sigwait(&signals, &sig);
    vantage::log::info("stopping", "signal", sig);
    coordinator.shutdown();
    return 0;
  } catch (const vantage::ConfigError& e) {
    return fail(e);
  } catch (const std::exception& e) {
    return fail(e.what());
  }
}
