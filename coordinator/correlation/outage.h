#pragma once
// Is a check down (docs/correlation.md, "Outage")? When a failure confirms
// an outage, which failure is its cause, which probes it holds, and when it
// has recovered. Decisions over one check's state; the events that announce
// them are coordinator/correlator.cc's.

#include <cstdint>
#include <vector>

#include "coordinator/correlation/scope.h"
#include "coordinator/correlation/state.h"

namespace vantage::correlation {

// The latest result of each probe not stale as of `as_of`.
std::vector<ProbeVerdict> fresh_verdicts(const CheckState& cs, TimePoint as_of);

// The outage scope of the fresh probes as of `as_of`.
v1::Scope current_scope(const CheckState& cs, TimePoint as_of);

// `p`, failing at `t`, confirms an outage: confirm_consecutive failures in a
// row, or a fresh probe of another region failing within one interval of it.
bool confirms_outage(const CheckState& cs, const ProbeState& p, TimePoint t);

// Where an outage confirmed at `t` begins: the earliest episode start of the
// fresh failing probes, and their failures so far.
struct OutageStart {
  TimePoint first_failure;
  uint64_t failures = 0;
};
OutageStart outage_start(const CheckState& cs, TimePoint t);

// The most common failure among the fresh failing probes (the latest of its
// kind); ties keep the incident's current one, else the most recent. Null
// when none fails.
const Failure* dominant_failure(const CheckState& cs, const Incident& inc, TimePoint as_of);

// Makes `f` the outage's cause; its first failure of that cause stays the
// sample the evidence shows.
void set_outage_cause(Incident& inc, const Failure& f);

// `p` is part of the outage: it must recover before the outage resolves, its
// episode is not isolated, and its region, colo and ray join the incident's.
void attach(Incident& inc, ProbeState& p);

// After `just_ok` succeeded at `t`: every probe that failed in the outage has
// resolve_consecutive successes (or, when none is owed, `just_ok` has and no
// fresh probe fails).
bool outage_recovered(const CheckState& cs, const ProbeState& just_ok, TimePoint t);

// The episode `p` ends at `t` failed while a restored outage was open: the
// previous run attached it, so it is not isolated.
bool in_restored_outage(const CheckState& cs, const ProbeState& p, TimePoint t);

}  // namespace vantage::correlation
