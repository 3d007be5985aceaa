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
#include "coordinator/alertmanager_pusher.h"
#include "coordinator/api_auth.h"
#include "coordinator/check_registry.h"
#include "coordinator/check_runner.h"
#include "coordinator/check_service.h"
#include "coordinator/checks_reloader.h"
#include "coordinator/fleet_service.h"
#include "coordinator/incident_alerts.h"
#include "coordinator/incident_feed.h"
#include "coordinator/incident_service.h"
#include "coordinator/incident_tracker.h"
#include "coordinator/ingest.h"
#include "coordinator/metrics.h"
#include "coordinator/probe_service.h"
#include "coordinator/probe_sessions.h"
#include "coordinator/result_service.h"
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

// A PEM file that must hold a `-----BEGIN ...<kind>-----` block.
std::string read_pem(const std::string& path, const char* flag, const char* kind) {
  auto text = read_file(path, flag);
  if (text.find(fmt::format("{}-----", kind)) == std::string::npos) {
    throw std::runtime_error(fmt::format("{} {}: no PEM {} in the file", flag, path, kind));
  }
  return text;
}

// The gRPC port's credentials; throws naming the flag when the TLS options
// do not fit or a file cannot be used.
std::shared_ptr<grpc::ServerCredentials> server_credentials(const CoordinatorOptions& o) {
  if (!o.tls_client_ca_file.empty() && (o.tls_cert_file.empty() || o.tls_key_file.empty())) {
    throw std::runtime_error("--tls-client-ca needs --tls-cert and --tls-key (client certificates need TLS)");
  }
  if (o.require_probe_client_cert && o.tls_client_ca_file.empty()) {
    throw std::runtime_error("--require-probe-client-cert needs --tls-client-ca (the CA that signs the probes' "
                             "certificates)");
  }
  if (o.tls_cert_file.empty() && o.tls_key_file.empty()) {
    if (!is_loopback(o.listen)) {
      log::warn("serving gRPC without TLS on a non-loopback address: tokens cross the network in clear",
                "listen", o.listen);
    }
    return grpc::InsecureServerCredentials();
  }
  if (o.tls_cert_file.empty() || o.tls_key_file.empty()) {
    throw std::runtime_error("--tls-cert and --tls-key go together");
  }
  // Requested, not required, at the handshake: API clients authenticate
  // with their tokens; ProbeService decides for probes (require_probe_client_cert).
  // A certificate presented is verified: one of another CA fails the handshake.
  grpc::SslServerCredentialsOptions ssl(o.tls_client_ca_file.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                                                     : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  if (!o.tls_client_ca_file.empty()) ssl.pem_root_certs = read_pem(o.tls_client_ca_file, "--tls-client-ca", "CERTIFICATE");
  ssl.pem_key_cert_pairs.push_back(
      {read_pem(o.tls_key_file, "--tls-key", "PRIVATE KEY"), read_pem(o.tls_cert_file, "--tls-cert", "CERTIFICATE")});
  return grpc::SslServerCredentials(ssl);
}

}  // namespace

struct Coordinator::Impl {
  CoordinatorOptions options;
  std::unique_ptr<storage::PgStore> store;
  CheckRegistry checks;
  std::unique_ptr<CoordinatorMetrics> metrics;
  std::unique_ptr<prometheus::Exposer> exposer;
  RealClock clock;
  ResultRates result_rates{clock};  // fed by every commit, read by FleetService
  // The probes' open streams: built before everything that sends to them
  // (the tracker's re-checks, reloads' diffs, the probe service, the API).
  std::unique_ptr<ProbeSessions> sessions;
  std::unique_ptr<IncidentFeed> incident_feed;  // stored incident events to WatchIncidents; outlives both
  // Incidents as alerts: the rules' input series, and pushed to Alertmanager.
  std::unique_ptr<OpenIncidentSeries> open_incident_series;
  std::unique_ptr<AlertmanagerPusher> alert_pusher;
  // vantage_check_cert_expiry_timestamp_seconds from the results just stored
  // that carry the edge's certificate.
  void export_certificates(const std::vector<const storage::ResultBatch*>& batches) {
    for (const auto* batch : batches) {
      for (const auto& result : batch->results) {
        const auto& connection = result.edge().connection();
        if (!connection.has_cert_not_after()) continue;
        const auto name = checks.name_of(result.check_id());
        if (name.empty()) continue;
        metrics->cert_expiry.Add({{"check", name}, {"region", batch->probe.region}})
            .Set(static_cast<double>(connection.cert_not_after().seconds()));
      }
    }
  }
  // Every incident change after it is stored (the tracker's thread, or start()).
  void incidents_changed(const std::vector<v1::Incident>& changed) {
    for (const auto& incident : changed) open_incident_series->update(incident);
    alert_pusher->update(changed);
  }
  std::unique_ptr<IncidentTracker> incidents;
  std::unique_ptr<CheckPublisher> publisher;  // every change of the set of checks: the file's and the API's
  std::unique_ptr<ChecksReloader> reloader;  // with a checks file only
  // RunCheck's waits, fed by every commit: built before Ingest, gone after it.
  std::unique_ptr<CheckRunner> runner;
  std::unique_ptr<Ingest> ingest;
  std::unique_ptr<ProbeServiceImpl> probe_service;
  // The public API: one authorizer for every public service.
  std::unique_ptr<ApiAuthorizer> api_auth;
  std::unique_ptr<FleetServiceImpl> fleet_service;
  std::unique_ptr<CheckServiceImpl> check_service;
  std::unique_ptr<IncidentServiceImpl> incident_service;
  std::unique_ptr<ResultServiceImpl> result_service;
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
  // The TLS files too: read before anything starts, so that a wrong path
  // does not wait for the database.
  const auto credentials = server_credentials(o);
  // Validate the checks first: a typo in the file should not wait for the
  // database (the reloader loads it again once the database is there).
  if (!o.checks_file.empty()) load_checks_file(o.checks_file);

  impl_->store = std::make_unique<storage::PgStore>(o.database_url, o.database_connections);
  const int applied = impl_->store->migrate();
  if (applied > 0) log::info("database migrated", "migrations_applied", applied);

  impl_->metrics = std::make_unique<CoordinatorMetrics>(std::make_shared<prometheus::Registry>());
  if (o.retention_days < 1) throw std::runtime_error("--retention-days must be at least 1");
  impl_->maintain_partitions();
  impl_->maintenance = std::thread([this] { impl_->maintenance_loop(); });
  try {
    impl_->exposer = std::make_unique<prometheus::Exposer>(o.metrics_listen);
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("--metrics-listen {}: cannot listen: {}", o.metrics_listen, e.what()));
  }
  impl_->exposer->RegisterCollectable(impl_->metrics->registry);

  impl_->sessions = std::make_unique<ProbeSessions>(impl_->checks, *impl_->metrics);
  impl_->incident_feed = std::make_unique<IncidentFeed>(IncidentFeedOptions{}, impl_->metrics->registry.get());
  AlertmanagerOptions alertmanager;
  alertmanager.urls = o.alertmanager_urls;
  impl_->alert_pusher = std::make_unique<AlertmanagerPusher>(alertmanager, *impl_->metrics, impl_->clock);
  impl_->open_incident_series = std::make_unique<OpenIncidentSeries>(impl_->metrics->check_incident_open);
  impl_->alert_pusher->start();
  IncidentTrackerOptions tracker_options;
  // What was open (or recently resolved) before a restart: the tracker
  // announces only what it stores from now on. (Resolved alerts older than
  // IncidentAlerts::keep_resolved are dropped by the pusher before it posts.)
  tracker_options.on_restored = [impl = impl_.get()](const auto& restored) { impl->incidents_changed(restored); };
  tracker_options.on_events_stored = [impl = impl_.get()](const auto& events, const auto& incidents) {
    impl->incident_feed->publish(events, incidents);
    std::vector<v1::Incident> changed;
    changed.reserve(incidents.size());
    for (const auto& [id, incident] : incidents) changed.push_back(incident);
    impl->incidents_changed(changed);
  };
  // Incidents first: restored and replayed before new results arrive.
  impl_->incidents = std::make_unique<IncidentTracker>(
      *impl_->store, *impl_->store, *impl_->metrics, impl_->clock, std::move(tracker_options),
      [sessions = impl_->sessions.get()](int64_t check_id, const std::vector<std::string>& regions,
                                         const std::string& request_id, const std::string& reason) {
        return sessions->request_recheck(check_id, regions, request_id, reason);
      });
  impl_->publisher =
      std::make_unique<CheckPublisher>(impl_->checks, *impl_->sessions, *impl_->incidents, *impl_->metrics);
  // The checks: the file's (synced to PostgreSQL, then watched), or those stored.
  if (o.checks_file.empty()) {
    impl_->publisher->publish([store = impl_->store.get()] { return store->list_checks(); }, nullptr);
  } else {
    impl_->reloader = std::make_unique<ChecksReloader>(o.checks_file, *impl_->store, impl_->checks, *impl_->publisher,
                                                       *impl_->metrics, o.checks_poll_interval);
    impl_->reloader->load_initial();
  }
  impl_->incidents->start();
  impl_->runner = std::make_unique<CheckRunner>(
      [sessions = impl_->sessions.get()](int64_t check_id, const std::vector<std::string>& regions,
                                         const std::string& request_id) {
        return sessions->request_run(check_id, regions, request_id);
      },
      *impl_->store, impl_->clock);
  impl_->ingest = std::make_unique<Ingest>(*impl_->store, *impl_->metrics, IngestOptions{},
                                           [impl = impl_.get()](const auto& batches) {
                                             impl->result_rates.add(batches);
                                             impl->export_certificates(batches);
                                             impl->runner->committed(batches);
                                             impl->incidents->add(batches);
                                           });
  ProbeServiceOptions probe_options;
  probe_options.hello_timeout = o.hello_timeout;
  probe_options.require_client_cert = o.require_probe_client_cert;
  impl_->probe_service = std::make_unique<ProbeServiceImpl>(*impl_->store, *impl_->ingest, *impl_->sessions,
                                                            *impl_->metrics, probe_options);
  impl_->api_auth = std::make_unique<ApiAuthorizer>(*impl_->store, impl_->metrics->api_auth_failures, impl_->clock);
  impl_->fleet_service = std::make_unique<FleetServiceImpl>(
      *impl_->store, *impl_->api_auth, [sessions = impl_->sessions.get()] {
        std::vector<ConnectedProbe> connected;
        for (auto& session : sessions->list()) {
          connected.push_back({std::move(session.probe), session.assigned_checks, session.produced_sequence});
        }
        return connected;
      },
      impl_->result_rates);
  impl_->check_service = std::make_unique<CheckServiceImpl>(*impl_->store, *impl_->store, *impl_->api_auth,
                                                            *impl_->publisher, *impl_->runner, o.checks_file);
  impl_->result_service = std::make_unique<ResultServiceImpl>(*impl_->store, *impl_->api_auth, impl_->clock);
  impl_->incident_service = std::make_unique<IncidentServiceImpl>(*impl_->store, *impl_->store, *impl_->api_auth,
                                                                  *impl_->incident_feed, impl_->clock);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
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
  builder.RegisterService(impl_->fleet_service.get());
  builder.RegisterService(impl_->check_service.get());
  builder.RegisterService(impl_->incident_service.get());
  builder.RegisterService(impl_->result_service.get());
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
  // Watched only once probes can connect: a change before is in the first load.
  if (impl_->reloader) impl_->reloader->start_watching();
  log::info("coordinator started", "grpc", fmt::format("{}", o.listen), "grpc_port", impl_->grpc_port,
            "metrics_port", metrics_port(), "checks", impl_->checks.size());
}

bool Coordinator::reload_checks(std::vector<std::string>* problems) {
  if (!impl_->reloader) {
    log::info("no checks file to reload (serve --checks FILE)");
    return false;
  }
  auto outcome = impl_->reloader->reload();
  if (problems) *problems = std::move(outcome.problems);
  return outcome.ok;
}

void Coordinator::shutdown() {
  if (impl_->reloader) impl_->reloader->stop();
  if (impl_->server) {
    // Cancelled streams stop waiting for their commits (see Ingest::submit).
    impl_->sessions->cancel_all();
    if (impl_->incident_service) impl_->incident_service->end_watches();
    impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    impl_->server->Wait();
    impl_->server.reset();
  }
  if (impl_->ingest) impl_->ingest->stop();
  if (impl_->incidents) impl_->incidents->stop();
  if (impl_->alert_pusher) impl_->alert_pusher->stop();
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
