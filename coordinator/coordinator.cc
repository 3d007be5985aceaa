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
#include "common/option_error.h"
#include "common/timer.h"
#include "coordinator/alertmanager_pusher.h"
#include "coordinator/api_auth.h"
#include "coordinator/cert_series.h"
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

// A file named by `option`, which `what` describes ("TLS key file").
std::string read_file(const std::string& path, const char* option, const char* what) {
  std::ifstream in(path);
  if (!in) throw OptionError(option, fmt::format("{} {}: cannot read: {}", what, path, std::strerror(errno)));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

bool is_loopback(const std::string& listen) {
  return listen.starts_with("127.") || listen.starts_with("localhost:") || listen.starts_with("[::1]");
}

// A PEM file that must hold a `-----BEGIN ...<kind>-----` block.
std::string read_pem(const std::string& path, const char* option, const char* what, const char* kind) {
  auto text = read_file(path, option, what);
  if (text.find(fmt::format("{}-----", kind)) == std::string::npos) {
    throw OptionError(option, fmt::format("{} {}: no PEM {} in the file", what, path, kind));
  }
  return text;
}

// Options that cannot work whatever the machine holds; checked before
// anything starts (OptionError names the option).
void check_options(const CoordinatorOptions& o) {
  if (o.database_url.empty()) throw OptionError("database_url", "no database URL (a PostgreSQL URL is required)");
  if (o.retention_days < 1) {
    throw OptionError("retention_days", fmt::format("a retention of {} days: it must be at least 1", o.retention_days));
  }
  if (o.max_grpc_threads < 4) {
    throw OptionError("max_grpc_threads", fmt::format("{} gRPC threads: at least 4 are needed", o.max_grpc_threads));
  }
  if (!o.tls_client_ca_file.empty() && (o.tls_cert_file.empty() || o.tls_key_file.empty())) {
    throw OptionError("tls_client_ca_file",
                      "a client CA needs the server's TLS certificate and key (client certificates need TLS)");
  }
  if (o.require_probe_client_cert && o.tls_client_ca_file.empty()) {
    throw OptionError("require_probe_client_cert",
                      "requiring probes' client certificates needs a client CA (the CA that signs the probes' "
                      "certificates)");
  }
  if (o.tls_cert_file.empty() != o.tls_key_file.empty()) {
    throw OptionError(o.tls_cert_file.empty() ? "tls_cert_file" : "tls_key_file",
                      "the TLS certificate and key go together");
  }
}

// The gRPC port's credentials; throws OptionError when a file cannot be used.
std::shared_ptr<grpc::ServerCredentials> server_credentials(const CoordinatorOptions& o) {
  if (o.tls_cert_file.empty()) {
    if (!is_loopback(o.listen)) {
      log::warn("serving gRPC without TLS on a non-loopback address: tokens cross the network in clear",
                "listen", o.listen);
    }
    return grpc::InsecureServerCredentials();
  }
  // Requested, not required, at the handshake: API clients authenticate
  // with their tokens; ProbeService decides for probes (require_probe_client_cert).
  // A certificate presented is verified: one of another CA fails the handshake.
  grpc::SslServerCredentialsOptions ssl(o.tls_client_ca_file.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                                                     : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  if (!o.tls_client_ca_file.empty()) {
    ssl.pem_root_certs = read_pem(o.tls_client_ca_file, "tls_client_ca_file", "client CA file", "CERTIFICATE");
  }
  ssl.pem_key_cert_pairs.push_back({read_pem(o.tls_key_file, "tls_key_file", "TLS key file", "PRIVATE KEY"),
                                    read_pem(o.tls_cert_file, "tls_cert_file", "TLS certificate file", "CERTIFICATE")});
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
  // The certificate expiry series, from the results just stored.
  std::unique_ptr<CertificateSeries> certificates;
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
  ClockCondition maintenance_cv{RealTimers::instance(), maintenance_mu};
  bool stopping = false;

  // The steps of start(), in order: each uses what the ones before built.
  void open_storage();   // connects and migrates
  void start_metrics();  // metrics, partition upkeep, /metrics
  void start_incidents();  // probe sessions, incident feed and alerts, the tracker, the checks
  void start_ingest();     // RunCheck's waits and the result writers
  void build_services();   // ProbeService and the public API
  void serve(const std::shared_ptr<grpc::ServerCredentials>& credentials);

  void maintain_partitions() {
    const auto today = std::chrono::floor<std::chrono::days>(clock.now());
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
  const auto& o = impl_->options;
  check_options(o);
  // The TLS files too: read before anything starts, so that a wrong path
  // does not wait for the database.
  const auto credentials = server_credentials(o);
  // Validate the checks first: a typo in the file should not wait for the
  // database (the reloader loads it again once the database is there).
  if (!o.checks_file.empty()) load_checks_file(o.checks_file);

  impl_->open_storage();
  impl_->start_metrics();
  impl_->start_incidents();
  impl_->start_ingest();
  impl_->build_services();
  impl_->serve(credentials);
  // Watched only once probes can connect: a change before is in the first load.
  if (impl_->reloader) impl_->reloader->start_watching();
  log::info("coordinator started", "grpc", fmt::format("{}", o.listen), "grpc_port", impl_->grpc_port,
            "metrics_port", metrics_port(), "checks", impl_->checks.size());
}

void Coordinator::Impl::open_storage() {
  store = std::make_unique<storage::PgStore>(options.database_url, options.database_connections);
  const int applied = store->migrate();
  if (applied > 0) log::info("database migrated", "migrations_applied", applied);
}

void Coordinator::Impl::start_metrics() {
  metrics = std::make_unique<CoordinatorMetrics>(std::make_shared<prometheus::Registry>());
  maintain_partitions();
  maintenance = std::thread([this] { maintenance_loop(); });
  try {
    exposer = std::make_unique<prometheus::Exposer>(options.metrics_listen);
  } catch (const std::exception& e) {
    throw OptionError("metrics_listen",
                      fmt::format("metrics address {}: cannot listen: {}", options.metrics_listen, e.what()));
  }
  exposer->RegisterCollectable(metrics->registry);
}

void Coordinator::Impl::start_incidents() {
  sessions = std::make_unique<ProbeSessions>(checks, *metrics);
  incident_feed = std::make_unique<IncidentFeed>(IncidentFeedOptions{}, metrics->registry.get());
  AlertmanagerOptions alertmanager;
  alertmanager.urls = options.alertmanager_urls;
  alert_pusher = std::make_unique<AlertmanagerPusher>(alertmanager, *metrics, RealTimers::instance());
  open_incident_series = std::make_unique<OpenIncidentSeries>(metrics->check_incident_open);
  alert_pusher->start();
  IncidentTrackerOptions tracker_options;
  // What was open (or recently resolved) before a restart: the tracker
  // announces only what it stores from now on. (Resolved alerts older than
  // IncidentAlerts::keep_resolved are dropped by the pusher before it posts.)
  tracker_options.on_restored = [this](const auto& restored) { incidents_changed(restored); };
  tracker_options.on_events_stored = [this](const auto& events, const auto& stored) {
    incident_feed->publish(events, stored);
    std::vector<v1::Incident> changed;
    changed.reserve(stored.size());
    for (const auto& [id, incident] : stored) changed.push_back(incident);
    incidents_changed(changed);
  };
  // Incidents first: restored and replayed before new results arrive.
  incidents = std::make_unique<IncidentTracker>(
      *store, *store, *metrics, RealTimers::instance(), std::move(tracker_options),
      [sessions = sessions.get()](int64_t check_id, const std::vector<std::string>& regions,
                                  const std::string& request_id, const std::string& reason) {
        return sessions->request_recheck(check_id, regions, request_id, reason);
      });
  certificates = std::make_unique<CertificateSeries>(*metrics, checks);
  publisher = std::make_unique<CheckPublisher>(checks, *sessions, *incidents, *metrics,
                                               [this] { certificates->forget_removed(); });
  // The checks: the file's (synced to PostgreSQL, then watched), or those stored.
  if (options.checks_file.empty()) {
    publisher->publish([store = store.get()] { return store->list_checks(); }, nullptr);
  } else {
    reloader = std::make_unique<ChecksReloader>(options.checks_file, *store, checks, *publisher, *metrics,
                                                options.checks_poll_interval);
    reloader->load_initial();
  }
  incidents->start();
}

void Coordinator::Impl::start_ingest() {
  runner = std::make_unique<CheckRunner>(
      [sessions = sessions.get()](int64_t check_id, const std::vector<std::string>& regions,
                                  const std::string& request_id) {
        return sessions->request_run(check_id, regions, request_id);
      },
      *store, clock);
  ingest = std::make_unique<Ingest>(*store, *metrics, IngestOptions{}, [this](const auto& batches) {
    result_rates.add(batches);
    certificates->update(batches);
    runner->committed(batches);
    incidents->add(batches);
  });
}

void Coordinator::Impl::build_services() {
  ProbeServiceOptions probe_options;
  probe_options.hello_timeout = options.hello_timeout;
  probe_options.require_client_cert = options.require_probe_client_cert;
  probe_service = std::make_unique<ProbeServiceImpl>(*store, *ingest, *sessions, *metrics, probe_options);
  api_auth = std::make_unique<ApiAuthorizer>(*store, metrics->api_auth_failures, clock);
  fleet_service = std::make_unique<FleetServiceImpl>(
      *store, *api_auth,
      [sessions = sessions.get()] {
        std::vector<ConnectedProbe> connected;
        for (auto& session : sessions->list()) {
          connected.push_back({std::move(session.probe), session.assigned_checks, session.produced_sequence});
        }
        return connected;
      },
      result_rates);
  check_service =
      std::make_unique<CheckServiceImpl>(*store, *store, *api_auth, *publisher, *runner, options.checks_file);
  result_service = std::make_unique<ResultServiceImpl>(*store, *api_auth, clock);
  incident_service = std::make_unique<IncidentServiceImpl>(*store, *store, *api_auth, *incident_feed, clock);
}

void Coordinator::Impl::serve(const std::shared_ptr<grpc::ServerCredentials>& credentials) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, credentials, &grpc_port);
  // Streams are refused before they take a thread past this bound.
  grpc::ResourceQuota quota("vantage-coordinator");
  quota.SetMaxThreads(options.max_grpc_threads);
  builder.SetResourceQuota(quota);
  // A probe needs one stream; no single connection may take many threads.
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, 32);
  builder.RegisterService(probe_service.get());
  builder.RegisterService(fleet_service.get());
  builder.RegisterService(check_service.get());
  incident_service->register_with(builder);
  builder.RegisterService(result_service.get());
  // Probes keep their stream for days: let their keepalive pings through,
  // and ping them too, so a probe behind a dead path is noticed in ~40 s.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10'000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 30'000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10'000);
  server = builder.BuildAndStart();
  if (!server || grpc_port == 0) {
    throw OptionError("listen",
                      fmt::format("gRPC address {}: cannot listen (address in use or not local?)", options.listen));
  }
  incident_service->start_watching();
}

bool Coordinator::reload_checks(std::vector<std::string>* problems) {
  if (!impl_->reloader) {
    log::info("no checks file to reload (the coordinator was started without one)");
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
    if (impl_->incident_service) impl_->incident_service->stop_watching();
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
