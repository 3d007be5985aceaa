#pragma once
// How the correlator's decisions become incident events (docs/correlation.md,
// "Event stamps" and "Opening"): stamps that never go back within an
// incident, openings announced once per call with what the call showed, and
// a snapshot of every incident the call touched.

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "coordinator/correlation/state.h"

namespace vantage::correlation {

// One observe() or tick(): its output, and the incidents it touched
// (snapshotted when it ends) and gave a pending opening (announced then).
struct Call {
  Output out;
  std::vector<std::pair<const CheckState*, const Incident*>> touched;
  std::vector<std::pair<CheckState*, Incident*>> openings;
};

// `inc` changed: the call's output will hold its snapshot.
void touch(Call& call, const CheckState& cs, const Incident& inc);

// An event of `inc` stamped at `t` (raised to its previous stamp). A change
// of scope or cause within one interval of a pending opening's confirmation
// is folded into the opening; any other event announces the opening first.
void emit(Call& call, CheckState& cs, Incident& inc, v1::IncidentEventType type, TimePoint t, std::string message);

// Sets the scope, keeping the widest; an event unless `silent`.
void change_scope(Call& call, CheckState& cs, Incident& inc, v1::Scope scope, TimePoint stamp, bool silent);

// `inc` opened (or reopened) at `t`: announced when the call ends, or before
// its next event that is not folded into it.
void defer_opening(Call& call, CheckState& cs, Incident& inc, v1::IncidentEventType type, TimePoint t,
                   size_t episodes);

// Emits the pending opening with the incident as it is now (and the
// flapping change the opening brings).
void announce(Call& call, CheckState& cs, Incident& inc);

// Before an incident's slot is reused: its pending opening and snapshot go
// out now.
void release(Call& call, CheckState& cs, Incident& inc);

// At the end of the call: pending openings, then the snapshots.
void finish(Call& call);

v1::Incident snapshot(const CheckState& cs, const Incident& inc);

}  // namespace vantage::correlation
