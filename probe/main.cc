// vantage-probe: checks sites on the coordinator's behalf and streams the results.
//
//   vantage-probe --coordinator HOST:PORT --probe-id ID --region REGION [--token-file F] ...
//   vantage-probe diagnose URL [--origin HOST:PORT] [--resolve HOST:PORT:ADDRESS]
//                              [--connect-to HOST:PORT:ADDRESS:PORT2] [--timeout SECONDS] [--json]
//                          [--follow-up-json] [--follow-up-trace] [--keepalive [--keepalive-max-idle SECONDS]]
//                          [--allow-loopback-targets] [--follow-redirects N] [--body-limit BYTES]
//                          [--assert-body[-not] PATTERN]... [--assert-header[-not] NAME=PATTERN]...
//                          [--tls-ca FILE] [--insecure] [--ip-family FAMILY] [--cache-busting NAME]
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <charconv>
#include <csignal>
#include <cstring>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>

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

// One --assert-* flag as given. The check's assertions keep the command
// line's order: the first that fails is the one reported.
struct AssertFlag {
  std::string flag;   // --assert-body, --assert-body-not, --assert-header or --assert-header-not
  std::string value;  // PATTERN, or NAME=PATTERN for a header
};

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
  // The checks file's fetch options (docs/checks.md), as typed: diagnose()
  // parses them into the check and validate_check() judges them.
  std::optional<std::string> follow_redirects;
  std::optional<std::string> body_limit;
  std::vector<AssertFlag> assertions;  // in command-line order
  std::optional<std::string> tls_ca_file;
  bool insecure = false;
  std::optional<std::string> ip_family;
  std::optional<std::string> cache_busting;
};

// The check's fetch options from diagnose's flags (docs/checks.md keys), not
// yet validated; false with `error` naming the flag whose value is not even
// of the right shape.
bool set_fetch_options(const DiagnoseArgs& args, vantage::v1::Check& check, std::string* error) {
  using namespace vantage;
  const auto not_a_number = [&](const char* flag, const std::string& text) {
    *error = fmt::format("{}: \"{}\" is not a whole number", flag, safe_text(text, 64));
    return false;
  };
  if (args.follow_redirects) {
    const auto n = parse_whole_number(*args.follow_redirects);
    if (!n) return not_a_number("--follow-redirects", *args.follow_redirects);
    check.set_follow_redirects(*n);
  }
  if (args.body_limit) {
    const auto n = parse_whole_number(*args.body_limit);
    if (!n) return not_a_number("--body-limit", *args.body_limit);
    check.set_body_limit_bytes(*n);
  }
  for (const auto& flag : args.assertions) {
    auto& assertion = *check.add_assertions();
    assertion.set_negate(flag.flag.ends_with("-not"));
    if (flag.flag.starts_with("--assert-body")) {
      assertion.set_target(v1::Assertion::TARGET_BODY);
      assertion.set_pattern(flag.value);
      continue;
    }
    // A header name is a token, which holds no '=': the first one ends it.
    const auto equals = flag.value.find('=');
    if (equals == std::string::npos) {
      *error = fmt::format("{}: \"{}\" is not NAME=PATTERN (e.g. Content-Type=^text/html)", flag.flag,
                           safe_text(flag.value, 80));
      return false;
    }
    assertion.set_target(v1::Assertion::TARGET_HEADER);
    assertion.set_header_name(flag.value.substr(0, equals));
    assertion.set_pattern(flag.value.substr(equals + 1));
  }
  if (args.tls_ca_file) {
    const auto pem = read_ca_pem_file(*args.tls_ca_file, error);
    if (!pem) {
      *error = "--tls-ca: " + *error;
      return false;
    }
    check.mutable_tls()->set_ca_pem(*pem);
  }
  if (args.insecure) check.mutable_tls()->set_skip_verify(true);
  if (args.ip_family) {
    const auto family = ip_family_from_name(*args.ip_family);
    if (!family) {
      *error = fmt::format("--ip-family: \"{}\" is not one of any, prefer_ipv4, prefer_ipv6, ipv4, ipv6",
                           safe_text(*args.ip_family, 64));
      return false;
    }
    check.set_ip_family(*family);
  }
  if (args.cache_busting) check.set_cache_busting_param(*args.cache_busting);
  return true;
}

// A problem validate_check() found, named by the flag (or argument) that set
// the field: "--assert-body \"(\": pattern: is not an RE2 regular expression ...".
std::string problem_text(const vantage::CheckProblem& problem, const DiagnoseArgs& args) {
  using vantage::safe_text;
  constexpr std::string_view kAssertion = "assertions[";
  if (problem.field.starts_with(kAssertion)) {
    const std::string_view rest = std::string_view(problem.field).substr(kAssertion.size());
    size_t index = 0;
    const auto [stop, error] = std::from_chars(rest.data(), rest.data() + rest.size(), index);
    std::string_view sub(stop, static_cast<size_t>(rest.data() + rest.size() - stop));  // "].pattern"
    if (error == std::errc() && index < args.assertions.size() && sub.starts_with("]")) {
      sub.remove_prefix(sub.starts_with("].") ? 2 : 1);
      const auto& flag = args.assertions[index];
      return fmt::format("{} \"{}\": {}{}", flag.flag, safe_text(flag.value, 80),
                         sub.empty() ? "" : std::string(sub) + ": ", problem.message);
    }
  }
  const std::map<std::string_view, std::string> flags = {
      {"url", "the URL"},
      {"origin.address", "--origin"},
      {"timeout", "--timeout"},
      {"follow_redirects", "--follow-redirects"},
      {"body_limit_bytes", "--body-limit"},
      {"assertions", "--assert-body/--assert-header"},
      {"tls.ca_pem", "--tls-ca " + safe_text(args.tls_ca_file.value_or(""), 256)},
      {"ip_family", "--ip-family"},
      {"cache_busting_param", "--cache-busting"},
  };
  // An address literal of the other family is the URL's (or --origin's) problem
  // with --ip-family: the message names the checks file's key.
  std::string message = problem.message;
  if (const auto key = message.find("ip_family is "); key != std::string::npos) message.replace(key, 9, "--ip-family");
  const auto flag = flags.find(problem.field);
  if (flag != flags.end()) return flag->second + ": " + message;
  return problem.field.empty() ? message : problem.field + ": " + message;
}

// The operator's bytes go into a proto string and the JSON report: both need
// UTF-8. False, having said which flag is not, when one is not.
bool all_utf8(const DiagnoseArgs& args) {
  using vantage::safe_text;
  std::vector<std::pair<std::string, std::string>> texts = {{"the URL", args.url}, {"--origin", args.origin}};
  for (const auto& value : args.resolve) texts.emplace_back("--resolve", value);
  for (const auto& value : args.connect_to) texts.emplace_back("--connect-to", value);
  for (const auto& [flag, value] : args.assertions) texts.emplace_back(flag, value);
  for (const auto& [flag, value] :
       {std::pair{"--ip-family", &args.ip_family}, std::pair{"--cache-busting", &args.cache_busting}}) {
    if (*value) texts.emplace_back(flag, **value);
  }
  for (const auto& [what, text] : texts) {
    if (const auto at = vantage::first_invalid_utf8(text); at != std::string::npos) {
      std::cerr << "vantage-probe diagnose: " << what << " is not valid UTF-8 (byte " << at << " of \""
                << safe_text(text, 256) << "\")\n";
      return false;
    }
  }
  return true;
}

// One attempt at the URL (and the origin), the same code the daemon runs.
// Exit code: 0 when nothing is wrong, 1 when the check failed, 2 for bad input.
int diagnose(const DiagnoseArgs& args) {
  using namespace vantage;
  if (!all_utf8(args)) return 2;
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
  if (std::string error; !set_fetch_options(args, check, &error)) {
    std::cerr << "vantage-probe diagnose: " << error << "\n";
    return 2;
  }
  // The one validation of a check, as the checks file and the API use it.
  if (const auto problems = validate_check(check); !problems.empty()) {
    for (const auto& problem : problems) std::cerr << "vantage-probe diagnose: " << problem_text(problem, args) << "\n";
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
  // The checks file's keys of the same names (docs/checks.md); taken as text
  // so that a bad value is refused by diagnose (exit 2), naming the flag.
  const auto text = [&](const char* flag, const char* type, std::optional<std::string>& into, const char* help) {
    cmd->add_option_function<std::string>(flag, [&into](const std::string& value) { into = value; }, help)
        ->type_name(type);
  };
  text("--follow-redirects", "N", args.follow_redirects,
       "follow up to N redirects (0 to 20; default 0: the 3xx is the response); the report lists each hop");
  text("--body-limit", "BYTES", args.body_limit,
       "bytes of the body read and matched (1024 to 16777216; default: the probe's 1 MiB)");
  const std::pair<const char*, const char*> assert_flags[] = {
      {"--assert-body", "the body read must match the RE2 PATTERN somewhere (repeatable, with the others in order)"},
      {"--assert-body-not", "the body read must not match the RE2 PATTERN"},
      {"--assert-header", "some value of header NAME must match the RE2 PATTERN"},
      {"--assert-header-not", "no value of header NAME may match the RE2 PATTERN (an absent header holds)"}};
  for (const auto& [flag, help] : assert_flags) {
    cmd->add_option(flag, help)
        ->type_name(std::string_view(flag).starts_with("--assert-body") ? "PATTERN" : "NAME=PATTERN")
        ->expected(1)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  }
  text("--tls-ca", "FILE", args.tls_ca_file, "PEM file of CA certificates trusted besides the system's (a private CA)");
  cmd->add_flag("--insecure", args.insecure,
                "do not fail on a certificate that does not verify (the report still says what is wrong)");
  text("--ip-family", "FAMILY", args.ip_family,
       "any (default), prefer_ipv4, prefer_ipv6, ipv4 or ipv6 (only that family)");
  text("--cache-busting", "NAME", args.cache_busting, "query parameter NAME given a fresh random value, past caches");
  return cmd;
}

// The --assert-* flags in command-line order (CLI11 keeps each option's
// values apart; its parse order interleaves them again).
std::vector<AssertFlag> assertion_flags(const CLI::App& cmd) {
  std::map<const CLI::Option*, size_t> taken;
  std::vector<AssertFlag> flags;
  for (const CLI::Option* option : cmd.parse_order()) {
    const auto name = option->get_name();
    if (!name.starts_with("--assert-")) continue;
    const auto& values = option->results();
    if (const size_t i = taken[option]++; i < values.size()) flags.push_back({name, values[i]});
  }
  return flags;
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
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; a usage error is bad input: 2, as documented.
    return app.exit(e) == 0 ? 0 : 2;
  }

  if (*diagnose_cmd) {
    vantage::log::init("probe", "warn");
    diagnose_args.assertions = assertion_flags(*diagnose_cmd);
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
