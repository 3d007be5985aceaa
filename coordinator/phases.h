#pragma once
// The fleet-phased schedule (architecture.md, "The phased schedule"): when in
// its interval each probe runs a check, so that the probes running it take
// turns at even spacing (P probes: one attempt every interval / P) instead of
// each at a moment of its own choosing, where two or three could fall
// together and leave most of the interval unwatched.
//
// Pure functions of the checks and the connected probes; ProbeSessions
// recomputes the whole plan when either changes and sends each probe the
// offsets that changed (CheckPhase in probe_service.proto).

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "vantage/v1/types.pb.h"

namespace vantage::coordinator {

// Where in the interval the check's turns begin: a fixed function of the
// check id (the same in every coordinator run), so that the checks of a
// fleet do not all fire at the same instant of the minute.
std::chrono::milliseconds phase_base(int64_t check_id, std::chrono::milliseconds interval);

// The offsets of the `probes` probes running a check, in the order of their
// sorted ids: base, base + interval/P, ..., each modulo the interval, so the
// turns are interval/P apart (to the millisecond). Empty for no probe or an
// interval under 1 ms.
std::vector<std::chrono::milliseconds> spread_offsets(int64_t check_id, std::chrono::milliseconds interval,
                                                      size_t probes);

// check id -> offset, what one probe is told.
using ProbePhases = std::unordered_map<int64_t, std::chrono::milliseconds>;

// Every probe's phases: for each check, the probes that run it (those of a
// region it names, or all when it names none; `probes` is probe id ->
// region) spread over its interval. A probe with no check is absent.
std::map<std::string, ProbePhases> plan_phases(const std::vector<v1::Check>& checks,
                                               const std::map<std::string, std::string>& probes);

}  // namespace vantage::coordinator
