#pragma once
// The probe's metrics, declared in one place. Cardinality: class (23 values),
// reason (4); no check names, no probe ids (a probe's own endpoint identifies it).

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <memory>
#include <vector>

#include "probe/spool.h"
#include "vantage/v1/types.pb.h"

namespace vantage::probe {

struct ProbeMetrics {
  ProbeMetrics();

  // Called for every result produced.
  void count_result(const v1::CheckResult& result);
  // Copies the spool's, the stream's and the scheduler's state into the
  // gauges and counters.
  void update(const Spool::Stats& spool, bool connected, uint64_t sessions, size_t checks);

  std::shared_ptr<prometheus::Registry> registry;
  prometheus::Family<prometheus::Counter>& results;  // {class}
  prometheus::Gauge& spool_results;  // unacknowledged, still held
  prometheus::Gauge& spool_bytes;
  prometheus::Gauge& last_sequence;   // the last result produced
  prometheus::Gauge& acked_sequence;  // the last the coordinator stored
  prometheus::Gauge& disk_failing;    // 1 while writes to the spool's disk fail
  prometheus::Counter& disk_write_errors;
  std::array<prometheus::Counter*, kDropReasons> dropped;  // {reason}, by DropReason
  prometheus::Counter& replayed;
  prometheus::Gauge& connected;
  prometheus::Counter& sessions;
  prometheus::Histogram& scheduler_lag;  // seconds a scheduled attempt started late
  prometheus::Gauge& checks;

 private:
  // results' series by FailureClass number, found once: a label lookup per
  // result cost more than the rest of counting it. Null: not known in advance.
  std::vector<prometheus::Counter*> results_by_class_;
  std::array<uint64_t, kDropReasons> seen_dropped_{};
  uint64_t seen_write_errors_ = 0;
  uint64_t seen_replayed_ = 0;
  uint64_t seen_sessions_ = 0;
};

}  // namespace vantage::probe
