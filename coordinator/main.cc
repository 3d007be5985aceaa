// vantage-coordinator: receives the probes' results, stores them, serves the API.
//
//   vantage-coordinator serve --database URL [--checks FILE] [--listen ADDR] [--metrics-listen ADDR]
//     (the checks file is reloaded when it changes and on SIGHUP)
//   vantage-coordinator add-probe --database URL --probe-id ID --region REGION
//   vantage-coordinator check-config --checks FILE
//   vantage-coordinator add-api-token --database URL --name NAME --role read|write|admin
//   vantage-coordinator list-api-tokens --database URL
//   vantage-coordinator revoke-api-token --database URL --name NAME
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <csignal>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <map>

#include "common/build_info.h"
#include "common/check_config.h"
#include "common/log.h"
#include "common/option_error.h"
#include "common/text.h"
#include "coordinator/api_auth.h"
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

// A flag's value as an error message may show it: valid UTF-8, bounded.
std::string shown(const std::string& value) { return "\"" + vantage::safe_text(value, 80) + "\""; }

std::string api_token_name_problem(const std::string& name) {
  if (vantage::coordinator::valid_api_token_name(name)) return "";
  return fmt::format("--name {}: not a valid API token name ({})", shown(name),
                     vantage::coordinator::kApiTokenNameRule);
}

std::string utc_time(std::optional<std::chrono::system_clock::time_point> t) {
  if (!t) return "-";
  const std::time_t seconds = std::chrono::system_clock::to_time_t(*t);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// The API token subcommands, their flags already checked. A token is printed
// once, on stdout, and stored nowhere: only its SHA-256 is.
int add_api_token(vantage::storage::PgStore& store, const std::string& name, const std::string& role) {
  std::string token;
  try {
    token = store.add_api_token(name, role);
  } catch (const vantage::storage::StorageError& e) {
    if (e.kind() != vantage::storage::StorageError::Kind::kConflict) throw;
    return fail(fmt::format("--name {}: an API token of this name exists (names are not reused, even after "
                            "revoke-api-token; list-api-tokens shows them)", shown(name)));
  }
  std::cout << token << "\n";
  return 0;
}

int list_api_tokens(vantage::storage::PgStore& store) {
  const auto tokens = store.list_api_tokens();
  size_t width = 4;
  for (const auto& t : tokens) width = std::max(width, t.name.size());
  std::cout << fmt::format("{:<{}}  {:<5}  {:<20}  {:<20}  {}\n", "NAME", width, "ROLE", "CREATED", "LAST USED",
                           "REVOKED");
  for (const auto& t : tokens) {
    std::cout << fmt::format("{:<{}}  {:<5}  {:<20}  {:<20}  {}\n", t.name, width, t.role, utc_time(t.create_time),
                             utc_time(t.last_used_time), utc_time(t.revoke_time));
  }
  return 0;
}

int revoke_api_token(vantage::storage::PgStore& store, const std::string& name) {
  if (!store.revoke_api_token(name)) {
    return fail(fmt::format("--name {}: no API token of this name that is not already revoked", shown(name)));
  }
  std::cout << "revoked API token " << name << "\n";
  return 0;
}

// The flags of every subcommand, as given.
struct Flags {
  std::string database_url;
  std::string log_level = "info";
  vantage::coordinator::CoordinatorOptions options;
  std::string probe_id, region;
  std::string api_token_name, api_token_role;
};

struct Commands {
  CLI::App* serve;
  CLI::App* add_probe;
  CLI::App* add_token;
  CLI::App* list_tokens;
  CLI::App* revoke_token;
  CLI::App* check_config;
};

void add_database_flag(CLI::App* command, Flags& flags) {
  command->add_option("--database", flags.database_url, "PostgreSQL URL (default: $VANTAGE_DATABASE_URL)");
}

CLI::App* add_serve_command(CLI::App& app, Flags& flags) {
  auto& options = flags.options;
  auto* serve = app.add_subcommand("serve", "run the coordinator");
  add_database_flag(serve, flags);
  serve->add_option("--checks", options.checks_file, "YAML file of checks to run");
  serve->add_option("--listen", options.listen, "gRPC address for probes and the API")->capture_default_str();
  serve->add_option("--metrics-listen", options.metrics_listen, "address of the Prometheus /metrics endpoint")
      ->capture_default_str();
  serve->add_option("--tls-cert", options.tls_cert_file, "PEM certificate: serve gRPC over TLS");
  serve->add_option("--tls-key", options.tls_key_file, "PEM private key for --tls-cert");
  serve->add_option("--tls-client-ca", options.tls_client_ca_file,
                    "PEM CA bundle: ask clients for a certificate and verify the one presented against it (with "
                    "--tls-cert/--tls-key)");
  serve->add_flag("--require-probe-client-cert", options.require_probe_client_cert,
                  "refuse a probe stream without a client certificate verified by --tls-client-ca (API clients "
                  "still need only their token)");
  serve->add_option("--alertmanager-url", options.alertmanager_urls,
                    "Alertmanager to push incidents to, e.g. http://127.0.0.1:9093 (repeat for several)");
  serve->add_option("--retention-days", options.retention_days, "days of results kept")->capture_default_str();
  serve->add_option("--log-level", flags.log_level, "debug, info, warn or error")->capture_default_str();
  return serve;
}

Commands add_commands(CLI::App& app, Flags& flags) {
  Commands commands;
  commands.serve = add_serve_command(app, flags);
  commands.add_probe = app.add_subcommand(
      "add-probe", "register a probe (or give it a new token) and print its token once");
  add_database_flag(commands.add_probe, flags);
  commands.add_probe->add_option("--probe-id", flags.probe_id, "the probe's id")->required();
  commands.add_probe->add_option("--region", flags.region, "the probe's region")->required();

  commands.add_token = app.add_subcommand(
      "add-api-token", "create a token for the public API and print it once (only its hash is stored)");
  add_database_flag(commands.add_token, flags);
  commands.add_token->add_option("--name", flags.api_token_name, "a unique name: a-z, 0-9 and '-', up to 63")
      ->required();
  commands.add_token->add_option("--role", flags.api_token_role, "read, write or admin")->required();
  commands.list_tokens = app.add_subcommand("list-api-tokens", "list API tokens (never the tokens themselves)");
  add_database_flag(commands.list_tokens, flags);
  commands.revoke_token = app.add_subcommand(
      "revoke-api-token", "revoke an API token (a running coordinator refuses it within 10 s)");
  add_database_flag(commands.revoke_token, flags);
  commands.revoke_token->add_option("--name", flags.api_token_name, "the token's name")->required();

  commands.check_config = app.add_subcommand("check-config", "validate a checks file and exit");
  commands.check_config->add_option("--checks", flags.options.checks_file, "YAML file of checks")->required();
  return commands;
}

// The API token subcommands: bad flag values are refused before the database is asked.
int run_api_token_command(const Commands& commands, const Flags& flags) {
  if (*commands.add_token || *commands.revoke_token) {
    if (auto problem = api_token_name_problem(flags.api_token_name); !problem.empty()) return fail(problem);
  }
  if (*commands.add_token && !vantage::coordinator::parse_role(flags.api_token_role)) {
    return fail(fmt::format("--role {}: must be read, write or admin (admin implies write, write implies read)",
                            shown(flags.api_token_role)));
  }
  vantage::storage::PgStore store(flags.database_url, 1);
  store.migrate();
  if (*commands.add_token) return add_api_token(store, flags.api_token_name, flags.api_token_role);
  if (*commands.list_tokens) return list_api_tokens(store);
  return revoke_api_token(store, flags.api_token_name);
}

// Runs the coordinator until SIGINT or SIGTERM; SIGHUP reloads the checks file.
int serve(const vantage::coordinator::CoordinatorOptions& options) {
  // Blocked before any thread starts, so every thread inherits the mask and
  // only sigwait() below sees them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  vantage::coordinator::Coordinator coordinator(options);
  coordinator.start();
  int sig = 0;
  while (sigwait(&signals, &sig) == 0 && sig == SIGHUP) {
    vantage::log::info("SIGHUP: reloading the checks file");
    coordinator.reload_checks();  // logs its outcome; a rejected file changes nothing
  }
  vantage::log::info("stopping", "signal", sig);
  coordinator.shutdown();
  return 0;
}

// An option the libraries refused, as the flag that set it.
int fail(const vantage::OptionError& error) {
  static const std::map<std::string, std::string> kFlags = {
      {"database_url", "--database"},
      {"listen", "--listen"},
      {"metrics_listen", "--metrics-listen"},
      {"tls_cert_file", "--tls-cert"},
      {"tls_key_file", "--tls-key"},
      {"tls_client_ca_file", "--tls-client-ca"},
      {"require_probe_client_cert", "--require-probe-client-cert"},
      {"retention_days", "--retention-days"},
      {"alertmanager_urls", "--alertmanager-url"},
      {"log_level", "--log-level"},
  };
  const auto flag = kFlags.find(error.option());
  return fail(flag == kFlags.end() ? std::string(error.what()) : fmt::format("{}: {}", flag->second, error.what()));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"vantage-coordinator: correlates probe results, stores them and serves the API"};
  app.set_version_flag("--version", std::string(vantage::kVersion) + " (" + vantage::kRevision + ")");
  app.require_subcommand(1);
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return std::string("vantage-coordinator: ") + e.what() + " (see --help)\n";
  });
  Flags flags;
  if (const char* env = std::getenv("VANTAGE_DATABASE_URL")) flags.database_url = env;
  const Commands commands = add_commands(app, flags);
  CLI11_PARSE(app, argc, argv);

  try {
    vantage::log::init("coordinator", flags.log_level);
    if (*commands.check_config) {
      auto checks = vantage::load_checks_file(flags.options.checks_file);
      std::cout << flags.options.checks_file << ": " << checks.size() << " checks, valid\n";
      return 0;
    }
    if (flags.database_url.empty()) return fail("--database (or $VANTAGE_DATABASE_URL) is required");
    if (*commands.add_probe) {
      vantage::storage::PgStore store(flags.database_url, 1);
      store.migrate();
      std::cout << store.add_probe(flags.probe_id, flags.region) << "\n";
      return 0;
    }
    if (*commands.add_token || *commands.list_tokens || *commands.revoke_token) {
      return run_api_token_command(commands, flags);
    }
    flags.options.database_url = flags.database_url;
    return serve(flags.options);
  } catch (const vantage::ConfigError& e) {
    return fail(e);
  } catch (const vantage::OptionError& e) {
    return fail(e);
  } catch (const std::exception& e) {
    return fail(e.what());
  }
}
