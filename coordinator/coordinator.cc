#include "coordinator/coordinator.h"

#include <fmt/format.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <prometheus/exposer.h>

#include <atomic>
#include <fstream>
#include <sstream>

#include "common/check_config.h"
#include "common/log.h"
#include "coordinator/check_registry.h"
#include "coordinator/incident_tracker.h"
#include "coordinator/ingest.h"
#include "coordinator/metrics.h"
#include "coordinator/probe_service.h"
#include "storage/pg_store.h"

namespace vantage::coordinator {

namespace {

std::string read_file(const std::string& path, const char* flag) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(fmt::format("{} {}: cannot read: {}", flag, path, std::strerror(errno)));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

bool is_loopback(const std::string& listen) {
  return listen.starts_with("127.") || listen.starts_with("localhost:") || listen.starts_with("[::1]");
}

}  // namespace

struct Coordinator::Impl {
  CoordinatorOptions options;
  std::unique_ptr<storage::PgStore> store;
  CheckRegistry checks;
  std::unique_ptr<CoordinatorMetrics> metrics;
  std::unique_ptr<prometheus::Exposer> exposer;
  RealClock clock;
  std::unique_ptr<IncidentTracker> incidents;
  std::unique_ptr<Ingest> ingest;
  std::unique_ptr<ProbeServiceImpl> probe_service;
  // The tracker's thread asks for re-checks through it; set once the
  // service exists.
  std::atomic<ProbeServiceImpl*> recheck_service{nullptr};
  std::unique_ptr<grpc::Server> server;
  int grpc_port = 0;

  // Partition upkeep: at start, then hourly (creating ahead, dropping old).
  std::thread maintenance;
  std::mutex maintenance_mu;
  std::condition_variable maintenance_cv;
  bool stopping = false;

  void maintain_partitions() {
    const auto today = std::chrono::floor<std::chrono::days>(std::chrono::system_clock::now());
    auto [created, dropped] = store->maintain_partitions(today, options.partitions_ahead_days, options.retention_days);
    metrics->partitions_created.Set(created);
    metrics->partitions_dropped.Increment(dropped);
    if (created > 0 || dropped > 0) {
      log::info("result partitions maintained", "created", created, "dropped", dropped, "retention_days",
                options.retention_days);
    }
  }
  void maintenance_loop() {
    std::unique_lock lock(maintenance_mu);
    while (!maintenance_cv.wait_for(lock, std::chrono::hours(1), [&] { return stopping; })) {
      lock.unlock();
      try {
        maintain_partitions();
      } catch (const std::exception& e) {
        log::error("cannot maintain result partitions; will retry in an hour", "error", e.what());
      }
      lock.lock();
    }
  }
};

Coordinator::Coordinator(CoordinatorOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
}

Coordinator::~Coordinator() { shutdown(); }

void Coordinator::start() {
  auto& o = impl_->options;
  if (o.database_url.empty()) throw std::runtime_error("--database is required (a PostgreSQL URL)");
  // Read the checks first: a typo in the file should not wait for the database.
  std::vector<v1::Check> file_checks;
  if (!o.checks_file.empty()) file_checks = load_checks_file(o.checks_file);

  impl_->store = std::make_unique<storage::PgStore>(o.database_url, o.database_connections);
  const int applied = impl_->store->migrate();
  if (applied > 0) log::info("database migrated", "migrations_applied", applied);
  impl_->checks.replace(o.checks_file.empty() ? impl_->store->list_checks()
                                              : impl_->store->sync_file_checks(file_checks));

  impl_->metrics = std::make_unique<CoordinatorMetrics>(std::make_shared<prometheus::Registry>());
  impl_->metrics->checks.Set(static_cast<double>(impl_->checks.size()));
  if (o.retention_days < 1) throw std::runtime_error("--retention-days must be at least 1");
  impl_->maintain_partitions();
  impl_->maintenance = std::thread([this] { impl_->maintenance_loop(); });
  try {
    impl_->exposer = std::make_unique<prometheus::Exposer>(o.metrics_listen);
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("--metrics-listen {}: cannot listen: {}", o.metrics_listen, e.what()));
  }
  impl_->exposer->RegisterCollectable(impl_->metrics->registry);

  // Incidents first: restored and replayed before new results arrive.
  impl_->incidents = std::make_unique<IncidentTracker>(
      *impl_->store, *impl_->store, *impl_->metrics, impl_->clock, IncidentTrackerOptions{},
      [impl = impl_.get()](int64_t check_id, const std::vector<std::string>& regions, const std::string& request_id,
                           const std::string& reason) -> size_t {
        auto* service = impl->recheck_service.load();
        return service ? service->request_recheck(check_id, regions, request_id, reason) : 0;
      });
  impl_->incidents->set_checks(impl_->checks.all());
  impl_->incidents->start();
  impl_->ingest = std::make_unique<Ingest>(*impl_->store, *impl_->metrics, IngestOptions{},
                                           [impl = impl_.get()](const auto& batches) { impl->incidents->add(batches); });
  ProbeServiceOptions probe_options;
  probe_options.hello_timeout = o.hello_timeout;
  impl_->probe_service = std::make_unique<ProbeServiceImpl>(*impl_->store, *impl_->ingest, impl_->checks,
                                                            *impl_->metrics, probe_options);
  impl_->recheck_service = impl_->probe_service.get();
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  std::shared_ptr<grpc::ServerCredentials> credentials;
  if (!o.tls_cert_file.empty() || !o.tls_key_file.empty()) {
    if (o.tls_cert_file.empty() || o.tls_key_file.empty()) {
      throw std::runtime_error("--tls-cert and --tls-key go together");
    }
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back(
        {read_file(o.tls_key_file, "--tls-key"), read_file(o.tls_cert_file, "--tls-cert")});
    credentials = grpc::SslServerCredentials(ssl);
  } else {
    credentials = grpc::InsecureServerCredentials();
    if (!is_loopback(o.listen)) {
      log::warn("serving gRPC without TLS on a non-loopback address: tokens cross the network in clear",
                "listen", o.listen);
    }
  }
  grpc::ServerBuilder builder;
  builder.AddListeningPort(o.listen, credentials, &impl_->grpc_port);
  // Streams are refused before they take a thread past this bound.
  if (o.max_grpc_threads < 4) throw std::runtime_error("max_grpc_threads must be at least 4");
  grpc::ResourceQuota quota("vantage-coordinator");
  quota.SetMaxThreads(o.max_grpc_threads);
  builder.SetResourceQuota(quota);
  // A probe needs one stream; no single connection may take many threads.
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, 32);
  builder.RegisterService(impl_->probe_service.get());
  // Probes keep their stream for days: let their keepalive pings through,
  // and ping them too, so a probe behind a dead path is noticed in ~40 s.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10'000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 30'000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10'000);
  impl_->server = builder.BuildAndStart();
  if (!impl_->server || impl_->grpc_port == 0) {
    throw std::runtime_error(fmt::format("--listen {}: cannot listen (address in use or not local?)", o.listen));
  }
  log::info("coordinator started", "grpc", fmt::format("{}", o.listen), "grpc_port", impl_->grpc_port,
            "metrics_port", metrics_port(), "checks", impl_->checks.size());
}

void Coordinator::shutdown() {
  if (impl_->server) {
    // Cancelled streams stop waiting for their commits (see Ingest::submit).
    impl_->probe_service->cancel_all();
    impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    impl_->server->Wait();
    impl_->server.reset();
  }
  if (impl_->ingest) impl_->ingest->stop();
  if (impl_->incidents) impl_->incidents->stop();
  if (impl_->maintenance.joinable()) {
    {
      std::lock_guard lock(impl_->maintenance_mu);
      impl_->stopping = true;
    }
    impl_->maintenance_cv.notify_all();
    impl_->maintenance.join();
  }
  impl_->exposer.reset();
}

int Coordinator::grpc_port() const { return impl_->grpc_port; }

int Coordinator::metrics_port() const {
  if (!impl_->exposer) return 0;
  auto ports = impl_->exposer->GetListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

}  // namespace vantage::coordinator
