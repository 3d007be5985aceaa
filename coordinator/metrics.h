#pragma once
// The coordinator's metrics, declared in one place. Label handles for the hot
// path are created on first use and cached by prometheus-cpp's families.
//
// Cardinality budget: region (tens), reason (a fixed handful). No probe id.
// The check name appears only on the per-check series users alert on
// (check_up, open incidents, certificate expiry), and colo (about 300
// Cloudflare data centres) only on the results by class.

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>

namespace vantage::coordinator {

struct CoordinatorMetrics {
  explicit CoordinatorMetrics(std::shared_ptr<prometheus::Registry> registry);

  std::shared_ptr<prometheus::Registry> registry;
  prometheus::Family<prometheus::Counter>& ingest_results;     // {region}: stored (new) results
  prometheus::Counter& ingest_duplicates;                      // replayed, already stored
  prometheus::Counter& ingest_batches;
  prometheus::Family<prometheus::Counter>& ingest_errors;      // {reason}
  prometheus::Histogram& ingest_commit_seconds;
  prometheus::Histogram& ingest_commit_results;  // results per transaction
  prometheus::Gauge& ingest_queued_results;       // waiting for a writer
  prometheus::Gauge& partitions_created;          // by the last maintenance run
  prometheus::Counter& partitions_dropped;
  prometheus::Family<prometheus::Counter>& ingest_refused;     // {reason}: results refused alone (acknowledged)
  prometheus::Family<prometheus::Counter>& probe_auth_failures;  // {reason}
  prometheus::Family<prometheus::Counter>& probe_streams_ended;  // {reason}: streams the coordinator ended
  prometheus::Gauge& probes_connected;
  prometheus::Counter& assignments_too_large;  // a message over what a probe accepts
  prometheus::Gauge& checks;

  // Correlation (correlation.md).
  prometheus::Family<prometheus::Gauge>& check_up;          // {check, region}: 1 up, 0 failing
  prometheus::Family<prometheus::Counter>& check_results;   // {class, region, colo, edge_code}
  prometheus::Family<prometheus::Gauge>& incidents_open;    // {kind, scope}
  prometheus::Family<prometheus::Counter>& incident_events; // {type}
  prometheus::Histogram& detection_seconds;                 // first failure to confirmation
  prometheus::Counter& rechecks_requested;                  // RecheckRequests sent to probes

  // Public API calls refused by coordinator/api_auth.h, {reason} (it lists them).
  prometheus::Family<prometheus::Counter>& api_auth_failures;

  // Checks file reloads (checks_reloader.h).
  prometheus::Family<prometheus::Counter>& config_reloads;  // {result}: success, failure
  prometheus::Gauge& config_last_reload_success;            // Unix time of the last good load

  // Alerting (alerts/vantage.rules.yml, alertmanager_pusher.h). One series per
  // open incident, 1 while it is open, removed when it resolves: what the
  // rules on incidents select, with the check and the cause.
  prometheus::Family<prometheus::Gauge>& check_incident_open;  // {check, incident, kind, scope, cause}
  // The edge's certificates (cert_series.h), {check, region}: the leaf's
  // expiry, and the earliest of the chain the server sent.
  prometheus::Family<prometheus::Gauge>& cert_expiry;
  prometheus::Family<prometheus::Gauge>& cert_chain_expiry;
  prometheus::Family<prometheus::Gauge>& tls_info;  // {check, region, version, cipher}: 1
  prometheus::Family<prometheus::Counter>& alertmanager_posts; // {result}: ok, error
  prometheus::Gauge& alertmanager_alerts;                      // alerts being sent (firing or just ended)
  prometheus::Counter& alertmanager_dropped;                   // changes dropped: the pusher was stuck

 private:
  void start_known_series_at_zero();
};

}  // namespace vantage::coordinator
