#pragma once
// Where a check fails: one probe, some colos, some regions, or everywhere
// (docs/correlation.md, "Scope"). Pure functions of the probes' latest
// verdicts; which verdicts count (fresh ones) is the caller's business.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "vantage/v1/types.pb.h"

namespace vantage::correlation {

// One probe's latest result, as scope sees it.
struct ProbeVerdict {
  std::string_view region;
  std::string_view colo;  // empty when the result named none
  bool failing = false;
};

// Failing regions that make a failure global: the configured quorum, else
// half of the reporting regions and at least 2.
uint32_t global_quorum(uint32_t configured, size_t reporting_regions);

// Distinct regions among `probes`.
size_t region_count(std::span<const ProbeVerdict> probes);

// The scope of what `probes` show (SCOPE_UNSPECIFIED when none fails):
// global when a quorum of regions fails whole, colo when the failures gather
// on colos that fail wherever they serve and the evidence reaches beyond one
// region, region when a region fails whole, else probe.
v1::Scope outage_scope(std::span<const ProbeVerdict> probes, uint32_t configured_quorum);

// What an intermittent incident's episodes came from.
struct EpisodeSpread {
  size_t probes = 0;
  size_t regions = 0;
  bool one_known_colo = false;  // every episode through the same, named colo
};

// probe (one probe), global (a quorum of regions), colo (one colo, several
// regions), else region.
v1::Scope intermittent_scope(const EpisodeSpread& spread, uint32_t quorum);

}  // namespace vantage::correlation
