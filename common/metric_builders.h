#pragma once
// A metric declared in one call: the family, or its one series without labels.
// For the binaries' metrics (probe/metrics.cc, coordinator/metrics.cc), which
// link prometheus-cpp (vantage_common itself does not).

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <string>

#include "common/build_info.h"

namespace vantage::metrics {

inline prometheus::Family<prometheus::Counter>& counter_family(prometheus::Registry& registry, const std::string& name,
                                                               const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(registry);
}
inline prometheus::Counter& counter(prometheus::Registry& registry, const std::string& name, const std::string& help) {
  return counter_family(registry, name, help).Add({});
}
inline prometheus::Family<prometheus::Gauge>& gauge_family(prometheus::Registry& registry, const std::string& name,
                                                           const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(registry);
}
inline prometheus::Gauge& gauge(prometheus::Registry& registry, const std::string& name, const std::string& help) {
  return gauge_family(registry, name, help).Add({});
}
inline prometheus::Histogram& histogram(prometheus::Registry& registry, const std::string& name,
                                        const std::string& help, prometheus::Histogram::BucketBoundaries buckets) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(registry).Add({}, std::move(buckets));
}

// vantage_build_info{version,revision,component} 1: which build is running.
inline void add_build_info(prometheus::Registry& registry, const std::string& component) {
  gauge_family(registry, "vantage_build_info", "Always 1; the labels say which build is running.")
      .Add({{"version", kVersion}, {"revision", kRevision}, {"component", component}})
      .Set(1);
}

}  // namespace vantage::metrics
