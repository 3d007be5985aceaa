#include "coordinator/metrics.h"

#include "common/metric_builders.h"
#include "coordinator/result_validation.h"

namespace vantage::coordinator {

using metrics::counter;
using metrics::counter_family;
using metrics::gauge;
using metrics::gauge_family;

CoordinatorMetrics::CoordinatorMetrics(std::shared_ptr<prometheus::Registry> r)
    : registry(std::move(r)),
      ingest_results(counter_family(*registry, "vantage_ingest_results_total",
                                    "Results stored, by the region of the probe that sent them.")),
      ingest_duplicates(counter(*registry, "vantage_ingest_duplicate_results_total",
                                "Results received again after a replay and stored only once.")),
      ingest_batches(counter(*registry, "vantage_ingest_batches_total", "Result batches committed to PostgreSQL.")),
      ingest_errors(counter_family(*registry, "vantage_ingest_errors_total",
                                   "Result batches not stored, by reason; the probe keeps them and sends them again.")),
      ingest_commit_seconds(metrics::histogram(
          *registry, "vantage_ingest_commit_seconds", "Time to store one result batch, COPY to commit.",
          prometheus::Histogram::BucketBoundaries{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5})),
      ingest_commit_results(metrics::histogram(
          *registry, "vantage_ingest_commit_results", "Results per transaction (batches of many probes are merged).",
          prometheus::Histogram::BucketBoundaries{1, 10, 50, 100, 250, 500, 1000, 2500, 5000})),
      ingest_queued_results(gauge(*registry, "vantage_ingest_queued_results",
                                  "Results received and waiting to be stored.")),
      partitions_created(gauge(*registry, "vantage_storage_partitions_created",
                               "Result partitions created by the last maintenance run.")),
      partitions_dropped(counter(*registry, "vantage_storage_partitions_dropped_total",
                                 "Result partitions dropped for retention.")),
      ingest_refused(counter_family(*registry, "vantage_ingest_refused_results_total",
                                    "Results refused alone, by reason (out of range, unknown enum, unassigned check); "
                                    "acknowledged, so the probe does not send them again.")),
      probe_auth_failures(counter_family(*registry, "vantage_probe_auth_failures_total",
                                         "Probe streams refused, by reason.")),
      probe_streams_ended(counter_family(*registry, "vantage_probe_streams_ended_total",
                                         "Probe streams the coordinator ended, by reason: stopped_reading (its queue "
                                         "of messages to send was full), hello_timeout, unreadable_message, "
                                         "assignment_too_large.")),
      probes_connected(gauge(*registry, "vantage_probes_connected", "Probe streams open now.")),
      assignments_too_large(counter(*registry, "vantage_probe_assignments_too_large_total",
                                    "Assignment messages larger than a probe accepts (a probe that does not take "
                                    "parts, or a single huge check); the stream is ended with an error.")),
      checks(gauge(*registry, "vantage_checks", "Checks configured.")),
      check_up(gauge_family(*registry, "vantage_check_up",
                            "1 when the latest results of the region's probes for the check succeed, 0 when they "
                            "fail.")),
      check_results(counter_family(*registry, "vantage_check_results_total",
                                   "Results by the edge leg's failure class, region, Cloudflare colo and edge code "
                                   "(colo and edge_code empty when there was none).")),
      incidents_open(gauge_family(*registry, "vantage_incidents_open",
                                  "Open incidents by kind (outage, intermittent) and current scope.")),
      incident_events(counter_family(*registry, "vantage_incident_events_total",
                                     "Incident timeline events by type (opened, scope_changed, reopened, resolved, "
                                     "...).")),
      detection_seconds(metrics::histogram(
          *registry, "vantage_incident_detection_seconds", "From an incident's first failure to its confirmation.",
          prometheus::Histogram::BucketBoundaries{0.5, 1, 2, 3, 5, 10, 30, 60, 120, 300, 900, 3600})),
      rechecks_requested(counter(*registry, "vantage_rechecks_requested_total",
                                 "Immediate re-checks asked of probes to confirm a first failure.")),
      api_auth_failures(counter_family(*registry, "vantage_api_auth_failures_total",
                                       "Public API calls refused, by reason: missing_token, malformed_header, "
                                       "unknown_token, revoked_token, insufficient_role.")),
      config_reloads(counter_family(*registry, "vantage_config_reload_total",
                                    "Reloads of the checks file (on a change or SIGHUP) by result; a failure keeps the "
                                    "last good checks.")),
      config_last_reload_success(gauge(*registry, "vantage_config_last_reload_success_timestamp_seconds",
                                       "When the checks file was last loaded successfully (Unix time; 0 without a "
                                       "checks file).")),
      check_incident_open(gauge_family(*registry, "vantage_check_incident_open",
                                       "1 for each open incident, labelled with its check, id, kind, scope and cause; "
                                       "the series goes when the incident resolves.")),
      cert_expiry(gauge_family(*registry, "vantage_check_cert_expiry_timestamp_seconds",
                               "When the certificate a check's site served last expires (Unix time), by region.")),
      cert_chain_expiry(gauge_family(*registry, "vantage_check_cert_chain_expiry_timestamp_seconds",
                                     "When the first of the certificates a check's site served last (the leaf and "
                                     "the intermediates it sent) expires (Unix time), by region.")),
      tls_info(gauge_family(*registry, "vantage_check_tls_info",
                            "1, labelled with the TLS version and cipher a check's site spoke last, by region.")),
      alertmanager_posts(counter_family(*registry, "vantage_alertmanager_posts_total",
                                        "Posts of incidents to Alertmanager, by result: ok, error.")),
      alertmanager_alerts(gauge(*registry, "vantage_alertmanager_alerts",
                                "Incident alerts being sent to Alertmanager (firing or recently resolved).")),
      alertmanager_dropped(counter(*registry, "vantage_alertmanager_dropped_total",
                                   "Incident changes not handed to the Alertmanager pusher (it was stuck).")) {
  metrics::add_build_info(*registry, "coordinator");
  start_known_series_at_zero();
}

// Series known in advance start at 0 (a rate over a series that appears at its first increment misses it).
void CoordinatorMetrics::start_known_series_at_zero() {
  for (const char* reason : {"storage_unavailable", "storage_error", "invalid_batch"}) {
    ingest_errors.Add({{"reason", reason}});
  }
  for (const char* reason : {"missing_token", "unknown_token", "wrong_probe_id", "wrong_region",
                             "missing_client_cert"}) {
    probe_auth_failures.Add({{"reason", reason}});
  }
  for (const auto reason : kAllRefusalReasons) ingest_refused.Add({{"reason", std::string(refusal_label(reason))}});
  for (const char* reason : {"stopped_reading", "hello_timeout", "unreadable_message", "assignment_too_large"}) {
    probe_streams_ended.Add({{"reason", reason}});
  }
  for (const char* result : {"success", "failure"}) config_reloads.Add({{"result", result}});
  for (const char* result : {"ok", "error"}) alertmanager_posts.Add({{"result", result}});
}

}  // namespace vantage::coordinator
