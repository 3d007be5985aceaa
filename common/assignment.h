#pragma once
// The full CheckAssignment, as the messages that carry it (see
// CheckAssignment in probe_service.proto): what the coordinator sends a
// probe when it connects.

#include <vector>

#include "vantage/v1/probe_service.pb.h"

namespace vantage {

// Bounded so that a probe parses one part at a time: a part is at most a few
// hundred kilobytes even for checks with many headers.
inline constexpr size_t kChecksPerAssignmentPart = 500;

// One message for a probe that does not accept parts, otherwise one per
// `per_part` checks (at least one message, even for no checks).
std::vector<v1::CoordinatorMessage> assignment_messages(std::vector<v1::Check> checks, bool accepts_parts,
                                                        size_t per_part = kChecksPerAssignmentPart);

}  // namespace vantage
