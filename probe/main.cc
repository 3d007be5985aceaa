// vantage-probe: checks sites on the coordinator's behalf and streams the results.
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iostream>

#include "common/build_info.h"
#include "common/log.h"
#include "probe/agent.h"

namespace {

std::string read_token(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("--token-file " + path + ": cannot read: " + std::strerror(errno));
  std::string token;
  std::getline(in, token);
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  if (token.empty()) throw std::runtime_error("--token-file " + path + ": the file is empty");
  return token;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"vantage-probe: checks sites and streams the results to a Vantage coordinator"};
  app.set_version_flag("--version", std::string(vantage::kVersion) + " (" + vantage::kRevision + ")");
  vantage::probe::AgentOptions options;
  auto& stream = options.stream;
  std::string token_file;
  std::string log_level = "info";
  app.add_option("--coordinator", stream.coordinator, "coordinator address, host:port")->required();
  app.add_option("--probe-id", stream.probe_id, "this probe's id, as registered with the coordinator")->required();
  app.add_option("--region", stream.region, "the region this probe runs in, e.g. eu-west")->required();
  app.add_option("--token-file", token_file,
                 "file holding this probe's bearer token (default: $VANTAGE_PROBE_TOKEN)");
  app.add_option("--tls-ca", stream.tls_ca_file, "PEM CA bundle: connect with TLS and verify the coordinator");
  app.add_option("--spool-dir", options.spool.directory,
                 "directory where unacknowledged results are kept across outages and restarts "
                 "(default: memory only)");
  app.add_option("--spool-max-bytes", options.spool.max_disk_bytes,
                 "disk the spool may use before the oldest results are dropped")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--spool-memory-results", options.spool.max_memory_results,
                 "newest unacknowledged results kept in memory (without --spool-dir: all that is kept)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--metrics-listen", options.metrics_listen,
                 "address of this probe's Prometheus /metrics endpoint, e.g. 127.0.0.1:9465 (default: none)");
  app.add_option("--log-level", log_level, "debug, info, warn or error");
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return std::string("vantage-probe: ") + e.what() + " (see --help)\n";
  });
  CLI11_PARSE(app, argc, argv);

  try {
    vantage::log::init("probe", log_level);
    if (!token_file.empty()) {
      stream.token = read_token(token_file);
    } else if (const char* env = std::getenv("VANTAGE_PROBE_TOKEN"); env && *env) {
      stream.token = env;
    } else {
      throw std::runtime_error("no token: pass --token-file or set VANTAGE_PROBE_TOKEN");
    }
  } catch (const std::exception& e) {
    std::cerr << "vantage-probe: " << e.what() << "\n";
    return 2;
  }
  stream.version = vantage::kVersion;

  // Signals are taken synchronously by this thread; block them before any
  // other thread starts so they inherit the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::unique_ptr<vantage::probe::Agent> agent;
  try {
    agent = std::make_unique<vantage::probe::Agent>(options, vantage::RealClock::instance());
  } catch (const std::exception& e) {
    std::cerr << "vantage-probe: " << e.what() << "\n";
    return 1;
  }
  agent->start();
  vantage::log::info("started", "probe", stream.probe_id, "region", stream.region, "coordinator",
                     stream.coordinator, "version", vantage::kVersion);
  int sig = 0;
  sigwait(&signals, &sig);
  vantage::log::info("stopping", "signal", sig);
  agent->stop();
  return 0;
}
