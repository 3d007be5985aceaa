#include "coordinator/metrics.h"

#include "common/build_info.h"
#include "coordinator/result_validation.h"

namespace vantage::coordinator {

namespace {
using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;
}  // namespace

CoordinatorMetrics::CoordinatorMetrics(std::shared_ptr<prometheus::Registry> r)
    : registry(std::move(r)),
      ingest_results(BuildCounter()
                         .Name("vantage_ingest_results_total")
                         .Help("Results stored, by the region of the probe that sent them.")
                         .Register(*registry)),
      ingest_duplicates(BuildCounter()
                            .Name("vantage_ingest_duplicate_results_total")
                            .Help("Results received again after a replay and stored only once.")
                            .Register(*registry)
                            .Add({})),
      ingest_batches(BuildCounter()
                         .Name("vantage_ingest_batches_total")
                         .Help("Result batches committed to PostgreSQL.")
                         .Register(*registry)
                         .Add({})),
      ingest_errors(BuildCounter()
                        .Name("vantage_ingest_errors_total")
                        .Help("Result batches not stored, by reason; the probe keeps them and sends them again.")
                        .Register(*registry)),
      ingest_commit_seconds(BuildHistogram()
                                .Name("vantage_ingest_commit_seconds")
                                .Help("Time to store one result batch, COPY to commit.")
                                .Register(*registry)
                                .Add({}, prometheus::Histogram::BucketBoundaries{
                                             0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                             0.25, 0.5, 1, 2.5, 5})),
      ingest_commit_results(BuildHistogram()
                                .Name("vantage_ingest_commit_results")
                                .Help("Results per transaction (batches of many probes are merged).")
                                .Register(*registry)
                                .Add({}, prometheus::Histogram::BucketBoundaries{
                                             1, 10, 50, 100, 250, 500, 1000, 2500, 5000})),
      ingest_queued_results(BuildGauge()
                                .Name("vantage_ingest_queued_results")
                                .Help("Results received and waiting to be stored.")
                                .Register(*registry)
                                .Add({})),
      partitions_created(BuildGauge()
                             .Name("vantage_storage_partitions_created")
                             .Help("Result partitions created by the last maintenance run.")
                             .Register(*registry)
                             .Add({})),
      partitions_dropped(BuildCounter()
                             .Name("vantage_storage_partitions_dropped_total")
                             .Help("Result partitions dropped for retention.")
                             .Register(*registry)
                             .Add({})),
      ingest_refused(BuildCounter()
                         .Name("vantage_ingest_refused_results_total")
                         .Help("Results refused alone, by reason (out of range, unknown enum, unassigned check); "
                               "acknowledged, so the probe does not send them again.")
                         .Register(*registry)),
      probe_auth_failures(BuildCounter()
                              .Name("vantage_probe_auth_failures_total")
                              .Help("Probe streams refused, by reason.")
                              .Register(*registry)),
      probe_streams_ended(BuildCounter()
                              .Name("vantage_probe_streams_ended_total")
                              .Help("Probe streams the coordinator ended, by reason: stopped_reading (its queue of "
                                    "messages to send was full), hello_timeout, unreadable_message, "
                                    "assignment_too_large.")
                              .Register(*registry)),
      probes_connected(BuildGauge()
                           .Name("vantage_probes_connected")
                           .Help("Probe streams open now.")
                           .Register(*registry)
                           .Add({})),
      assignments_too_large(BuildCounter()
                                .Name("vantage_probe_assignments_too_large_total")
                                .Help("Assignment messages larger than a probe accepts (a probe that does not take "
                                      "parts, or a single huge check); the stream is ended with an error.")
                                .Register(*registry)
                                .Add({})),
      checks(BuildGauge()
                 .Name("vantage_checks")
                 .Help("Checks configured.")
                 .Register(*registry)
                 .Add({})),
      check_up(BuildGauge()
                   .Name("vantage_check_up")
                   .Help("1 when the latest results of the region's probes for the check succeed, 0 when they fail.")
                   .Register(*registry)),
      check_results(BuildCounter()
                        .Name("vantage_check_results_total")
                        .Help("Results by the edge leg's failure class, region, Cloudflare colo and edge code "
                              "(colo and edge_code empty when there was none).")
                        .Register(*registry)),
      incidents_open(BuildGauge()
                         .Name("vantage_incidents_open")
                         .Help("Open incidents by kind (outage, intermittent) and current scope.")
                         .Register(*registry)),
      incident_events(BuildCounter()
                          .Name("vantage_incident_events_total")
                          .Help("Incident timeline events by type (opened, scope_changed, reopened, resolved, ...).")
                          .Register(*registry)),
      detection_seconds(BuildHistogram()
                            .Name("vantage_incident_detection_seconds")
                            .Help("From an incident's first failure to its confirmation.")
                            .Register(*registry)
                            .Add({}, prometheus::Histogram::BucketBoundaries{
                                         0.5, 1, 2, 3, 5, 10, 30, 60, 120, 300, 900, 3600})),
      rechecks_requested(BuildCounter()
                             .Name("vantage_rechecks_requested_total")
                             .Help("Immediate re-checks asked of probes to confirm a first failure.")
                             .Register(*registry)
                             .Add({})),
      api_auth_failures(BuildCounter()
                            .Name("vantage_api_auth_failures_total")
                            .Help("Public API calls refused, by reason: missing_token, malformed_header, "
                                  "unknown_token, revoked_token, insufficient_role.")
                            .Register(*registry)),
      config_reloads(BuildCounter()
                         .Name("vantage_config_reload_total")
                         .Help("Reloads of the checks file (on a change or SIGHUP) by result; a failure keeps "
                               "the last good checks.")
                         .Register(*registry)),
      config_last_reload_success(BuildGauge()
                                     .Name("vantage_config_last_reload_success_timestamp_seconds")
                                     .Help("When the checks file was last loaded successfully (Unix time; "
                                           "0 without a checks file).")
                                     .Register(*registry)
                                     .Add({})),
      check_incident_open(BuildGauge()
                              .Name("vantage_check_incident_open")
                              .Help("1 for each open incident, labelled with its check, id, kind, scope and "
                                    "cause; the series goes when the incident resolves.")
                              .Register(*registry)),
      cert_expiry(BuildGauge()
                      .Name("vantage_check_cert_expiry_timestamp_seconds")
                      .Help("When the certificate a check's site served last expires (Unix time), by region.")
                      .Register(*registry)),
      alertmanager_posts(BuildCounter()
                             .Name("vantage_alertmanager_posts_total")
                             .Help("Posts of incidents to Alertmanager, by result: ok, error.")
                             .Register(*registry)),
      alertmanager_alerts(BuildGauge()
                              .Name("vantage_alertmanager_alerts")
                              .Help("Incident alerts being sent to Alertmanager (firing or recently resolved).")
                              .Register(*registry)
                              .Add({})),
      alertmanager_dropped(BuildCounter()
                               .Name("vantage_alertmanager_dropped_total")
                               .Help("Incident changes not handed to the Alertmanager pusher (it was stuck).")
                               .Register(*registry)
                               .Add({})) {
  BuildGauge()
      .Name("vantage_build_info")
      .Help("Always 1; the labels say which build is running.")
      .Register(*registry)
      .Add({{"version", kVersion}, {"revision", kRevision}, {"component", "coordinator"}})
      .Set(1);
  // Series known in advance start at 0.
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
