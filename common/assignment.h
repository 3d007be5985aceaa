#pragma once
// The full CheckAssignment, as the messages that carry it (see
// CheckAssignment in probe_service.proto): what the coordinator sends a
// probe when it connects.

#include <vector>

#include "vantage/v1/probe_service.pb.h"

namespace vantage {

// Bounded so that a probe parses one part at a time and no part nears gRPC's
// 4 MiB message limit, whatever the checks hold: a part ends at this many
// checks or this many bytes, whichever comes first.
inline constexpr size_t kChecksPerAssignmentPart = 500;
inline constexpr size_t kAssignmentPartBytes = 1 << 20;

// One message for a probe that does not accept parts, otherwise consecutive
// parts (at least one message, even for no checks; at least one check in a
// part, so a single check larger than `part_bytes` is a part of its own).
std::vector<v1::CoordinatorMessage> assignment_messages(std::vector<v1::Check> checks, bool accepts_parts,
                                                        size_t per_part = kChecksPerAssignmentPart,
                                                        size_t part_bytes = kAssignmentPartBytes);

}  // namespace vantage
