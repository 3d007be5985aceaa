#include "probe/metrics.h"

#include "common/build_info.h"
#include "common/failure_class.h"

namespace vantage::probe {

using prometheus::BuildCounter;
using prometheus::BuildGauge;

ProbeMetrics::ProbeMetrics()
    : registry(std::make_shared<prometheus::Registry>()),
      results(BuildCounter()
                  .Name("vantage_probe_results_total")
                  .Help("Check results produced, by failure class of the edge leg.")
                  .Register(*registry)),
      spool_results(BuildGauge()
                        .Name("vantage_probe_spool_results")
                        .Help("Results not yet acknowledged by the coordinator.")
                        .Register(*registry)
                        .Add({})),
      spool_bytes(BuildGauge()
                      .Name("vantage_probe_spool_bytes")
                      .Help("Bytes of spool segments on disk.")
                      .Register(*registry)
                      .Add({})),
      last_sequence(BuildGauge()
                        .Name("vantage_probe_spool_last_sequence")
                        .Help("Sequence number of the last result produced.")
                        .Register(*registry)
                        .Add({})),
      acked_sequence(BuildGauge()
                         .Name("vantage_probe_spool_acked_sequence")
                         .Help("Sequence number up to which the coordinator has stored every result.")
                         .Register(*registry)
                         .Add({})),
      disk_failing(BuildGauge()
                       .Name("vantage_probe_spool_disk_failing")
                       .Help("1 while writes to the spool's disk fail (full, read-only, I/O errors); results are "
                             "then kept in memory only.")
                       .Register(*registry)
                       .Add({})),
      disk_write_errors(BuildCounter()
                            .Name("vantage_probe_spool_disk_write_errors_total")
                            .Help("Writes to the spool's disk that failed.")
                            .Register(*registry)
                            .Add({})),
      dropped{},
      replayed(BuildCounter()
                   .Name("vantage_probe_results_replayed_total")
                   .Help("Results sent again on a new stream (not acknowledged on the old one).")
                   .Register(*registry)
                   .Add({})),
      connected(BuildGauge()
                    .Name("vantage_probe_stream_connected")
                    .Help("1 while the stream to the coordinator is up.")
                    .Register(*registry)
                    .Add({})),
      sessions(BuildCounter()
                   .Name("vantage_probe_stream_sessions_total")
                   .Help("Streams to the coordinator established.")
                   .Register(*registry)
                   .Add({})),
      scheduler_lag(prometheus::BuildHistogram()
                        .Name("vantage_probe_scheduler_lag_seconds")
                        .Help("How late scheduled attempts started (waiting for a free slot, a busy loop).")
                        .Register(*registry)
                        .Add({}, prometheus::Histogram::BucketBoundaries{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5,
                                                                         10, 30})),
      checks(BuildGauge()
                 .Name("vantage_probe_checks")
                 .Help("Checks assigned to this probe and scheduled.")
                 .Register(*registry)
                 .Add({})) {
  BuildGauge()
      .Name("vantage_build_info")
      .Help("Always 1; the labels say which build is running.")
      .Register(*registry)
      .Add({{"version", kVersion}, {"revision", kRevision}, {"component", "probe"}})
      .Set(1);
  // Series known in advance start at 0.
  auto& drops = BuildCounter()
                    .Name("vantage_probe_spool_dropped_total")
                    .Help("Results lost before the coordinator stored them, by reason: disk_bound (over "
                          "--spool-max-bytes), memory_bound (memory-only spool full), disk_error (could not be "
                          "written), corrupt (damaged on disk).")
                    .Register(*registry);
  for (size_t i = 0; i < kDropReasons; ++i) {
    dropped[i] = &drops.Add({{"reason", std::string(drop_reason_name(static_cast<DropReason>(i)))}});
  }
  const auto* descriptor = v1::FailureClass_descriptor();
  for (int i = 0; i < descriptor->value_count(); ++i) {
    auto c = static_cast<v1::FailureClass>(descriptor->value(i)->number());
    if (c != v1::FAILURE_CLASS_UNSPECIFIED) results.Add({{"class", failure_class_name(c)}});
  }
}

void ProbeMetrics::count_result(const v1::CheckResult& result) {
  results.Add({{"class", failure_class_name(result.edge().failure_class())}}).Increment();
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
