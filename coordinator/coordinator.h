#pragma once
// The coordinator daemon as a library: storage, the gRPC server (probe
// stream, health, reflection) and /metrics. main.cc and the tests run this.

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/option_error.h"

namespace vantage::coordinator {

struct CoordinatorOptions {
  std::string listen = "127.0.0.1:7000";          // gRPC: probes and API
  std::string metrics_listen = "127.0.0.1:9464";  // Prometheus /metrics
  std::string database_url;
  std::string checks_file;  // optional YAML; reloaded when it changes (and on reload_checks())
  // How often the checks file is looked at (a stat(); read only when it
  // changed). A change is taken at the second look that sees it unchanged,
  // so within two intervals: well inside the one second a change may take
  // to reach the probes.
  std::chrono::milliseconds checks_poll_interval{200};
  std::string tls_cert_file;  // PEM; with tls_key_file, serve gRPC over TLS
  std::string tls_key_file;
  // PEM CA bundle (needs the two above): clients are asked for a
  // certificate, and one presented must be signed by this CA or the
  // handshake fails. API clients may still connect without one.
  std::string tls_client_ca_file;
  // With tls_client_ca_file: ProbeService.Connect refuses (UNAUTHENTICATED)
  // a stream whose connection presented no verified client certificate.
  bool require_probe_client_cert = false;
  size_t database_connections = 8;
  int retention_days = 30;      // result partitions older than this are dropped
  int partitions_ahead_days = 3;
  // A probe's stream must say hello within this, else it is ended.
  std::chrono::milliseconds hello_timeout{10'000};
  // gRPC threads at most (grpc::ResourceQuota): each open probe stream holds
  // one (and a writer thread of its own), so this bounds what a flood of
  // connections can take; past it new calls are refused (RESOURCE_EXHAUSTED).
  int max_grpc_threads = 1'000;
  // Alertmanager base URLs (http://host:port): incidents are pushed there as
  // they open, change and resolve (alertmanager_pusher.h). Empty: not pushed.
  std::vector<std::string> alertmanager_urls;
};

class Coordinator {
 public:
  explicit Coordinator(CoordinatorOptions options);
  ~Coordinator();

  // Connects to PostgreSQL, migrates, loads the checks file and starts
  // listening. Throws OptionError naming the option (a field of
  // CoordinatorOptions) when an option cannot be used, ConfigError for the
  // checks file, else std::runtime_error; each with a one-line reason.
  void start();
  void shutdown();
  // Reloads the checks file now (SIGHUP). False, with every problem logged
  // and returned, when it was rejected (the last good checks stay in force).
  bool reload_checks(std::vector<std::string>* problems = nullptr);
  int grpc_port() const;
  int metrics_port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vantage::coordinator
