#include "coordinator/phases.h"

#include <algorithm>

#include "common/check_config.h"
#include "coordinator/check_registry.h"

namespace vantage::coordinator {

namespace {

// SplitMix64's finalizer: consecutive ids land far apart.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

std::chrono::milliseconds phase_base(int64_t check_id, std::chrono::milliseconds interval) {
  if (interval.count() <= 0) return std::chrono::milliseconds(0);
  return std::chrono::milliseconds(
      static_cast<int64_t>(mix(static_cast<uint64_t>(check_id)) % static_cast<uint64_t>(interval.count())));
}

std::vector<std::chrono::milliseconds> spread_offsets(int64_t check_id, std::chrono::milliseconds interval,
                                                      size_t probes) {
  std::vector<std::chrono::milliseconds> offsets;
  if (probes == 0 || interval.count() <= 0) return offsets;
  offsets.reserve(probes);
  const auto base = phase_base(check_id, interval);
  const auto count = static_cast<int64_t>(probes);
  for (int64_t i = 0; i < count; ++i) {
    // i * interval / P, not i * (interval / P): the turns stay within the
    // interval to the millisecond however it divides.
    offsets.push_back((base + interval * i / count) % interval);
  }
  return offsets;
}

std::map<std::string, ProbePhases> plan_phases(const std::vector<v1::Check>& checks,
                                               const std::map<std::string, std::string>& probes) {
  std::map<std::string, ProbePhases> plan;
  std::vector<const std::string*> running;  // the probes of one check, by id (the map's order)
  for (const auto& check : checks) {
    const auto interval = to_millis(check.interval());
    if (interval.count() <= 0) continue;  // never assigned: validate_check refuses it
    running.clear();
    for (const auto& [id, region] : probes) {
      if (CheckRegistry::assigned(check, region)) running.push_back(&id);
    }
    const auto offsets = spread_offsets(check.id(), interval, running.size());
    for (size_t i = 0; i < running.size(); ++i) plan[*running[i]].emplace(check.id(), offsets[i]);
  }
  return plan;
}

}  // namespace vantage::coordinator
