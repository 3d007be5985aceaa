#include "probe/metrics.h"

#include "common/failure_class.h"
#include "common/metric_builders.h"

namespace vantage::probe {

using metrics::counter;
using metrics::counter_family;
using metrics::gauge;

ProbeMetrics::ProbeMetrics()
    : registry(std::make_shared<prometheus::Registry>()),
      results(counter_family(*registry, "vantage_probe_results_total",
                             "Check results produced, by failure class of the edge leg.")),
      spool_results(
          gauge(*registry, "vantage_probe_spool_results", "Results not yet acknowledged by the coordinator.")),
      spool_bytes(gauge(*registry, "vantage_probe_spool_bytes", "Bytes of spool segments on disk.")),
      last_sequence(
          gauge(*registry, "vantage_probe_spool_last_sequence", "Sequence number of the last result produced.")),
      acked_sequence(gauge(*registry, "vantage_probe_spool_acked_sequence",
                           "Sequence number up to which the coordinator has stored every result.")),
      disk_failing(gauge(*registry, "vantage_probe_spool_disk_failing",
                         "1 while writes to the spool's disk fail (full, read-only, I/O errors); results are "
                         "then kept in memory only.")),
      disk_write_errors(
          counter(*registry, "vantage_probe_spool_disk_write_errors_total", "Writes to the spool's disk that failed.")),
      dropped{},
      replayed(counter(*registry, "vantage_probe_results_replayed_total",
                       "Results sent again on a new stream (not acknowledged on the old one).")),
      connected(gauge(*registry, "vantage_probe_stream_connected", "1 while the stream to the coordinator is up.")),
      sessions(counter(*registry, "vantage_probe_stream_sessions_total", "Streams to the coordinator established.")),
      scheduler_lag(metrics::histogram(
          *registry, "vantage_probe_scheduler_lag_seconds",
          "How late scheduled attempts started (waiting for a free slot, a busy loop).",
          prometheus::Histogram::BucketBoundaries{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30})),
      checks(gauge(*registry, "vantage_probe_checks", "Checks assigned to this probe and scheduled.")) {
  metrics::add_build_info(*registry, "probe");
  // Series known in advance start at 0.
  auto& drops = counter_family(*registry, "vantage_probe_spool_dropped_total",
                               "Results lost before the coordinator stored them, by reason: disk_bound (over the "
                               "spool's disk bound), memory_bound (memory-only spool full), disk_error (could not be "
                               "written), corrupt (damaged on disk).");
  for (size_t i = 0; i < kDropReasons; ++i) {
    dropped[i] = &drops.Add({{"reason", std::string(drop_reason_name(static_cast<DropReason>(i)))}});
  }
  const auto* descriptor = v1::FailureClass_descriptor();
  for (int i = 0; i < descriptor->value_count(); ++i) {
    auto c = static_cast<v1::FailureClass>(descriptor->value(i)->number());
    if (c == v1::FAILURE_CLASS_UNSPECIFIED || c < 0) continue;
    if (static_cast<size_t>(c) >= results_by_class_.size()) results_by_class_.resize(static_cast<size_t>(c) + 1);
    results_by_class_[static_cast<size_t>(c)] = &results.Add({{"class", failure_class_name(c)}});
  }
}

void ProbeMetrics::count_result(const v1::CheckResult& result) {
  const auto c = result.edge().failure_class();
  if (c >= 0 && static_cast<size_t>(c) < results_by_class_.size() && results_by_class_[static_cast<size_t>(c)]) {
    results_by_class_[static_cast<size_t>(c)]->Increment();
    return;
  }
  results.Add({{"class", failure_class_name(c)}}).Increment();
}

void ProbeMetrics::update(const Spool::Stats& spool, bool is_connected, uint64_t session_count, size_t check_count) {
  checks.Set(static_cast<double>(check_count));
  spool_results.Set(static_cast<double>(spool.results));
  spool_bytes.Set(static_cast<double>(spool.disk_bytes));
  last_sequence.Set(static_cast<double>(spool.last_sequence));
  acked_sequence.Set(static_cast<double>(spool.acked_sequence));
  disk_failing.Set(spool.disk_failing ? 1 : 0);
  disk_write_errors.Increment(static_cast<double>(spool.disk_write_errors - seen_write_errors_));
  seen_write_errors_ = spool.disk_write_errors;
  for (size_t i = 0; i < kDropReasons; ++i) {
    dropped[i]->Increment(static_cast<double>(spool.dropped_by_reason[i] - seen_dropped_[i]));
  }
  seen_dropped_ = spool.dropped_by_reason;
  replayed.Increment(static_cast<double>(spool.replayed - seen_replayed_));
  sessions.Increment(static_cast<double>(session_count - seen_sessions_));
  seen_replayed_ = spool.replayed;
  seen_sessions_ = session_count;
  connected.Set(is_connected ? 1 : 0);
}

}  // namespace vantage::probe
