#pragma once
// The probe's metrics, declared in one place. Cardinality: class (23 values);
// no check names, no probe ids (a probe's own endpoint identifies it).

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <memory>

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
  prometheus::Gauge& spool_results;
  prometheus::Gauge& spool_bytes;
  prometheus::Counter& dropped;
  prometheus::Counter& replayed;
  prometheus::Gauge& connected;
  prometheus::Counter& sessions;
  prometheus::Histogram& scheduler_lag;  // seconds a scheduled attempt started late
  prometheus::Gauge& checks;

 private:
  uint64_t seen_dropped_ = 0;
  uint64_t seen_replayed_ = 0;
  uint64_t seen_sessions_ = 0;
};

}  // namespace vantage::probe
