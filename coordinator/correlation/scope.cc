#include "coordinator/correlation/scope.h"

#include <algorithm>
#include <vector>

namespace vantage::correlation {

namespace {

struct RegionVerdict {
  std::string_view region;
  bool all_failing = true;
};

// Each region once, in order of first appearance, failing when all its probes fail.
std::vector<RegionVerdict> by_region(std::span<const ProbeVerdict> probes) {
  std::vector<RegionVerdict> regions;
  for (const auto& p : probes) {
    auto it = std::find_if(regions.begin(), regions.end(), [&](const RegionVerdict& r) { return r.region == p.region; });
    if (it == regions.end()) it = regions.insert(regions.end(), RegionVerdict{p.region});
    it->all_failing = it->all_failing && p.failing;
  }
  return regions;
}

// Every failing probe names a colo, every probe through a failing colo
// fails, some probe is served fine through a colo, and the evidence reaches
// beyond one region: a failing colo fails from two regions, or a failing
// probe's region has a probe served fine through another colo.
bool colos_explain(std::span<const ProbeVerdict> probes) {
  const bool healthy_colo =
      std::any_of(probes.begin(), probes.end(), [](const ProbeVerdict& p) { return !p.failing && !p.colo.empty(); });
  bool beyond_region = false;
  for (const auto& failing : probes) {
    if (!failing.failing) continue;
    if (failing.colo.empty()) return false;
    for (const auto& other : probes) {
      if (other.colo == failing.colo) {
        if (!other.failing) return false;
        beyond_region |= other.region != failing.region;
      } else if (other.region == failing.region && !other.failing && !other.colo.empty()) {
        beyond_region = true;  // served fine in the same region through another colo
      }
    }
  }
  return beyond_region && healthy_colo;
}

}  // namespace

uint32_t global_quorum(uint32_t configured, size_t reporting_regions) {
  if (configured > 0) return configured;
  return std::max<uint32_t>(2, static_cast<uint32_t>((reporting_regions + 1) / 2));
}

size_t region_count(std::span<const ProbeVerdict> probes) { return by_region(probes).size(); }

v1::Scope outage_scope(std::span<const ProbeVerdict> probes, uint32_t configured_quorum) {
  if (std::none_of(probes.begin(), probes.end(), [](const ProbeVerdict& p) { return p.failing; })) {
    return v1::SCOPE_UNSPECIFIED;
  }
  const auto regions = by_region(probes);
  const auto failing_regions = static_cast<size_t>(
      std::count_if(regions.begin(), regions.end(), [](const RegionVerdict& r) { return r.all_failing; }));
  // Global wins over colo: a quorum of regions down is what visitors feel.
  if (failing_regions >= global_quorum(configured_quorum, regions.size())) return v1::SCOPE_GLOBAL;
  if (colos_explain(probes)) return v1::SCOPE_COLO;
  if (failing_regions > 0) return v1::SCOPE_REGION;
  return v1::SCOPE_PROBE;
}

v1::Scope intermittent_scope(const EpisodeSpread& spread, uint32_t quorum) {
  if (spread.probes <= 1) return v1::SCOPE_PROBE;
  if (spread.regions >= quorum) return v1::SCOPE_GLOBAL;
  if (spread.regions >= 2 && spread.one_known_colo) return v1::SCOPE_COLO;
  return v1::SCOPE_REGION;
}

}  // namespace vantage::correlation
