#pragma once
// What a restarted correlator takes from the incidents the previous run
// stored (docs/correlation.md, "Restart"): the incidents themselves, their
// openings (for the flapping and recurrence counts), when their outages were
// open, and the newest time each records (results up to it are history).

#include <cstdint>
#include <optional>
#include <vector>

#include "coordinator/correlation/state.h"

namespace vantage::correlation {

// The check of a stored incident: its check_id, else the number its id
// starts with ("{check_id}-{unix_ms}"); nothing when neither tells.
std::optional<int64_t> check_of(const v1::Incident& stored);

// The stored incident as the correlator keeps it (marked restored).
Incident from_proto(const v1::Incident& stored);

// What a stored incident's timeline says.
struct History {
  std::vector<Start> starts;       // openings and reopenings (the confirmation when none is stored)
  std::vector<Span> outage_spans;  // when it was open, for an outage
  TimePoint known{};               // the newest time it records
};
History history_of(const v1::Incident& stored, const Incident& inc);

// After every incident of `cs` is restored: orders and bounds what they
// brought, ends open spans where the restored knowledge ends, and marks the
// probes of an open outage as owing their recovery.
void settle_restored(CheckState& cs);

}  // namespace vantage::correlation
