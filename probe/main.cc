// vantage-probe: checks sites on the coordinator's behalf and streams the results.
//
//   vantage-probe --coordinator HOST:PORT --probe-id ID --region REGION [--token-file F] ...
//   vantage-probe diagnose URL [--origin HOST:PORT] [--resolve HOST:PORT:ADDRESS]
//                              [--connect-to HOST:PORT:ADDRESS:PORT2] [--timeout SECONDS] [--json]
//                          [--follow-up-json] [--follow-up-trace] [--keepalive [--keepalive-max-idle SECONDS]]
//                          [--allow-loopback-targets]
#include <CLI/CLI.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>

#include "common/build_info.h"
#include "common/check_config.h"
#include "common/log.h"
#include "common/option_error.h"
#include "common/text.h"
#include "probe/agent.h"
#include "probe/attempt.h"
#include "probe/report.h"

namespace {

std::string read_token(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("--token-file " + path + ": cannot read: " + std::strerror(errno));
  std::string line;
  std::getline(in, line);
  const std::string token(vantage::trim_ascii(line));
  if (token.empty()) throw std::runtime_error("--token-file " + path + ": the file is empty");
  return token;
}

struct DiagnoseArgs {
  std::string url;
  std::string origin;
  std::vector<std::string> resolve;
  std::vector<std::string> connect_to;
  double timeout_seconds = 30;
  bool json = false;
  bool follow_up_json = false;
  bool follow_up_trace = false;
  bool keep_alive = false;
  double keep_alive_max_idle_seconds = 1000;
  bool allow_loopback_targets = false;
};

// One attempt at the URL (and the origin), the same code the daemon runs.
// Exit code: 0 when nothing is wrong, 1 when the check failed, 2 for bad input.
int diagnose(const DiagnoseArgs& args) {
  using namespace vantage;
  // The operator's bytes go into a proto string and the JSON report: both need UTF-8.
  std::vector<std::pair<std::string, std::string>> texts = {{"the URL", args.url}, {"--origin", args.origin}};
  for (const auto& value : args.resolve) texts.emplace_back("--resolve", value);
  for (const auto& value : args.connect_to) texts.emplace_back("--connect-to", value);
  for (const auto& [what, text] : texts) {
    if (const auto at = first_invalid_utf8(text); at != std::string::npos) {
      std::cerr << "vantage-probe diagnose: " << what << " is not valid UTF-8 (byte " << at << " of \""
                << safe_text(text, 256) << "\")\n";
      return 2;
    }
  }
  v1::Check check;
  check.set_name("diagnose");
  check.set_url(args.url);
  // The bounds of every check's timeout (check_config.h); written so that NaN fails.
  if (!(args.timeout_seconds * 1000 >= check_limits::kMinTimeout.count() &&
        args.timeout_seconds * 1000 <= check_limits::kMaxTimeout.count())) {
    std::cerr << "vantage-probe diagnose: --timeout must be between " << check_limits::kMinTimeout.count() / 1000.0
              << " and " << check_limits::kMaxTimeout.count() / 1000 << " seconds\n";
    return 2;
  }
  const auto timeout = std::chrono::milliseconds(static_cast<long long>(args.timeout_seconds * 1000));
  *check.mutable_timeout() = to_duration(timeout);
  *check.mutable_interval() = to_duration(std::max(timeout, std::chrono::milliseconds(1000)));
  if (!args.origin.empty()) check.mutable_origin()->set_address(args.origin);
  check.set_follow_up_json(args.follow_up_json);
  check.set_follow_up_trace(args.follow_up_trace);
  if (args.keep_alive_max_idle_seconds <= 0 || args.keep_alive_max_idle_seconds > 86400) {
    std::cerr << "vantage-probe diagnose: --keepalive-max-idle must be between 0 and 86400 seconds\n";
    return 2;
  }
  if (std::string problem; !normalize_check(check, &problem)) {
    std::cerr << "vantage-probe diagnose: " << problem << "\n";
    return 2;
  }
  probe::AttemptOptions options;
  options.origin_always = true;
  probe::HttpLimits limits;
  limits.targets.allow_loopback = args.allow_loopback_targets;
  if (std::string error; !probe::parse_overrides(args.resolve, args.connect_to, &options.resolve, &error)) {
    std::cerr << "vantage-probe diagnose: " << error << "\n";
    return 2;
  }
  boost::asio::io_context io;
  auto future = boost::asio::co_spawn(
      io, probe::run_attempt(check, RealClock::instance(), limits, options), boost::asio::use_future);
  io.run();
  auto result = future.get();
  if (args.keep_alive) {
    // Holds an idle connection until the server closes it: up to --keepalive-max-idle.
    if (!args.json) {  // a script reading JSON (perhaps with 2>&1) wants nothing else
      std::cerr << "measuring keep-alive: an idle connection is held until the server closes it, at most "
                << args.keep_alive_max_idle_seconds << " s\n";
    }
    probe::KeepAliveOptions keep_alive;
    keep_alive.max_idle = std::chrono::milliseconds(static_cast<long long>(args.keep_alive_max_idle_seconds * 1000));
    keep_alive.targets = limits.targets;
    io.restart();
    auto measured = boost::asio::co_spawn(
        io, probe::measure_keep_alive(check, RealClock::instance(), probe::keep_alive_target(check, options), keep_alive),
        boost::asio::use_future);
    io.run();
    *result.mutable_keep_alive() = measured.get();
  }
  std::cout << (args.json ? probe::report_json(args.url, args.origin, result)
                          : probe::report_text(args.url, args.origin, result));
  const bool ok = result.edge().failure_class() == v1::FAILURE_CLASS_OK &&
                  (!result.has_origin() || result.origin().failure_class() == v1::FAILURE_CLASS_OK);
  return ok ? 0 : 1;
}

// The daemon's flags, as given; daemon_options() checks and completes them.
struct DaemonFlags {
  vantage::probe::AgentOptions options;
  std::string token_file;
  std::string log_level = "info";
  std::vector<std::string> resolve, connect_to;
  double keep_alive_interval_hours = 6;
};

void add_daemon_flags(CLI::App& app, DaemonFlags& flags) {
  auto& options = flags.options;
  auto& stream = options.stream;
  app.add_option("--coordinator", stream.coordinator, "coordinator address, host:port (required)");
  app.add_option("--probe-id", stream.probe_id, "this probe's id, as registered with the coordinator (required)");
  app.add_option("--region", stream.region, "the region this probe runs in, e.g. eu-west (required)");
  app.add_option("--token-file", flags.token_file,
                 "file holding this probe's bearer token (default: $VANTAGE_PROBE_TOKEN)");
  app.add_option("--tls-ca", stream.tls_ca_file, "PEM CA bundle: connect with TLS and verify the coordinator");
  app.add_option("--tls-client-cert", stream.tls_client_cert_file,
                 "PEM client certificate for a coordinator that verifies probes' certificates (with --tls-ca and "
                 "--tls-client-key)");
  app.add_option("--tls-client-key", stream.tls_client_key_file, "PEM private key of --tls-client-cert");
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
  app.add_option("--max-concurrent", options.scheduler.max_concurrent, "attempts in flight at once")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--log-level", flags.log_level, "debug, info, warn or error");
  app.add_option("--resolve", flags.resolve,
                 "HOST:PORT:ADDRESS, like curl's: connect to ADDRESS for URLs naming HOST:PORT (repeatable)");
  app.add_option("--connect-to", flags.connect_to,
                 "HOST:PORT:ADDRESS:PORT2, like curl's: connect to ADDRESS:PORT2 instead, e.g. to reach a site "
                 "through one edge location (repeatable)");
  app.add_flag("--allow-loopback-targets", options.scheduler.limits.targets.allow_loopback,
               "let a check's host name resolve to this machine's loopback addresses (127.0.0.0/8, ::1): tests "
               "and labs on this machine; address literals in a URL, --resolve or --connect-to need no flag");
  app.add_option("--keepalive-interval", flags.keep_alive_interval_hours,
                 "hours between measurements of each origin's keep-alive behaviour (checks with an origin "
                 "address; 0: never)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
}

CLI::App* add_diagnose_command(CLI::App& app, DiagnoseArgs& args) {
  auto* cmd = app.add_subcommand("diagnose",
                                 "check a URL once, through the edge and (with --origin) straight at the origin, and "
                                 "say why it fails");
  cmd->add_option("url", args.url, "the URL as visitors use it")->required();
  cmd->add_option("--origin", args.origin, "the origin's address, HOST:PORT, for the origin leg");
  cmd->add_option("--resolve", args.resolve, "HOST:PORT:ADDRESS, like curl's --resolve");
  cmd->add_option("--connect-to", args.connect_to, "HOST:PORT:ADDRESS:PORT2, like curl's --connect-to");
  cmd->add_option("--timeout", args.timeout_seconds, "seconds for each leg")->capture_default_str();
  cmd->add_flag("--json", args.json, "print JSON instead of a report");
  cmd->add_flag("--follow-up-json", args.follow_up_json,
                "after a 5xx through the edge, ask again with Accept: application/json");
  cmd->add_flag("--follow-up-trace", args.follow_up_trace,
                "after a 5xx through the edge, GET /cdn-cgi/trace for the colo");
  cmd->add_flag("--keepalive", args.keep_alive,
                "also measure the origin's (or the URL's) idle-close time and requests per connection");
  cmd->add_option("--keepalive-max-idle", args.keep_alive_max_idle_seconds,
                  "seconds to hold an idle connection open waiting for the server to close it")
      ->capture_default_str();
  cmd->add_flag("--allow-loopback-targets", args.allow_loopback_targets,
                "let the URL's host name resolve to this machine's loopback addresses (an address literal "
                "needs no flag)");
  return cmd;
}

// The agent's options from the flags; throws saying what is wrong (error_text()
// names the flag of an OptionError's option).
vantage::probe::AgentOptions daemon_options(DaemonFlags flags) {
  auto& options = flags.options;
  auto& stream = options.stream;
  for (auto [flag, value] : {std::pair{"--coordinator", &stream.coordinator}, std::pair{"--probe-id", &stream.probe_id},
                             std::pair{"--region", &stream.region}}) {
    if (value->empty()) throw std::runtime_error(std::string(flag) + " is required");
  }
  if (!flags.token_file.empty()) {
    stream.token = read_token(flags.token_file);
  } else if (const char* env = std::getenv("VANTAGE_PROBE_TOKEN"); env && *env) {
    stream.token = env;
  } else {
    throw std::runtime_error("no token: pass --token-file or set VANTAGE_PROBE_TOKEN");
  }
  vantage::probe::check_tls_options(stream);  // throws OptionError
  if (std::string error; !vantage::probe::parse_overrides(flags.resolve, flags.connect_to,
                                                          &options.scheduler.resolve, &error)) {
    throw std::runtime_error(error);
  }
  options.scheduler.keep_alive.targets = options.scheduler.limits.targets;
  options.scheduler.keep_alive_interval =
      std::chrono::milliseconds(static_cast<long long>(flags.keep_alive_interval_hours * 3'600'000));
  stream.version = vantage::kVersion;
  return std::move(options);
}

// What went wrong, for people: an option the libraries refused is named by
// the flag that set it.
std::string error_text(const std::exception& e) {
  const auto* option = dynamic_cast<const vantage::OptionError*>(&e);
  if (option == nullptr) return e.what();
  static const std::map<std::string, std::string> kFlags = {
      {"spool.directory", "--spool-dir"},
      {"stream.tls_ca_file", "--tls-ca"},
      {"stream.tls_client_cert_file", "--tls-client-cert"},
      {"stream.tls_client_key_file", "--tls-client-key"},
      {"metrics_listen", "--metrics-listen"},
      {"log_level", "--log-level"},
  };
  const auto flag = kFlags.find(option->option());
  return flag == kFlags.end() ? e.what() : flag->second + ": " + e.what();
}

// Runs the agent until SIGINT or SIGTERM.
int run_daemon(const vantage::probe::AgentOptions& options) {
  // Signals are taken synchronously by this thread; block them before any
  // other thread starts so they inherit the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::unique_ptr<vantage::probe::Agent> agent;
  try {
    agent = std::make_unique<vantage::probe::Agent>(options, vantage::RealTimers::instance());
  } catch (const std::exception& e) {
    std::cerr << "vantage-probe: " << error_text(e) << "\n";
    return 1;
  }
  agent->start();
  const auto& stream = options.stream;
  vantage::log::info("started", "probe", stream.probe_id, "region", stream.region, "coordinator",
                     stream.coordinator, "version", vantage::kVersion);
  int sig = 0;
  sigwait(&signals, &sig);
  vantage::log::info("stopping", "signal", sig);
  agent->stop();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"vantage-probe: checks sites and streams the results to a Vantage coordinator"};
  app.set_version_flag("--version", std::string(vantage::kVersion) + " (" + vantage::kRevision + ")");
  app.require_subcommand(0, 1);
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return std::string("vantage-probe: ") + e.what() + " (see --help)\n";
  });
  DaemonFlags daemon_flags;
  add_daemon_flags(app, daemon_flags);
  DiagnoseArgs diagnose_args;
  auto* diagnose_cmd = add_diagnose_command(app, diagnose_args);
  CLI11_PARSE(app, argc, argv);

  if (*diagnose_cmd) {
    vantage::log::init("probe", "warn");
    return diagnose(diagnose_args);
  }
  vantage::probe::AgentOptions options;
  try {
    vantage::log::init("probe", daemon_flags.log_level);
    options = daemon_options(std::move(daemon_flags));
  } catch (const std::exception& e) {
    std::cerr << "vantage-probe: " << error_text(e) << "\n";
    return 2;
  }
  return run_daemon(options);
}
