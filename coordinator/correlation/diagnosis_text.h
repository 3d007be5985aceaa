#pragma once
// What an incident says to a person (docs/diagnosis.md sections 4 and 5):
// its cause and what to do, and the evidence lines of its diagnosis.

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "coordinator/correlation/state.h"

namespace vantage::correlation {

struct Cause {
  std::string id, text, advice;
};

// An outage's cause from its dominant failure: the probe's diagnosis, else
// the failure class (a probe that sent no diagnosis).
Cause outage_cause(const Failure& f);

// An intermittent incident's dominant failure (the most counted class and
// edge code) and cause: the keep-alive race when every episode is a 52x and
// no origin leg failed, and either an origin leg was fine or the colos vary;
// else the most common cause of its episodes. Nothing for what its tallies
// cannot tell (no episode counted).
struct IntermittentCause {
  std::optional<std::pair<v1::FailureClass, uint32_t>> dominant;
  std::optional<Cause> cause;
};
IntermittentCause intermittent_cause(const Incident& inc);

// The diagnosis of `inc` with its evidence. `keep_alive`: the check's latest
// keep-alive measurement, compared with the edge's reuse of idle connections.
v1::Diagnosis diagnosis_of(const Incident& inc, const std::optional<KeepAlive>& keep_alive,
                           std::chrono::milliseconds edge_keepalive_reuse);

// "10 min", "1 h", "24 h", "90 s".
std::string duration_text(std::chrono::milliseconds d);

}  // namespace vantage::correlation
