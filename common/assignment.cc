#include "common/assignment.h"

#include <algorithm>

namespace vantage {

std::vector<v1::CoordinatorMessage> assignment_messages(std::vector<v1::Check> checks, bool accepts_parts,
                                                        size_t per_part) {
  if (!accepts_parts) per_part = std::max<size_t>(checks.size(), 1);
  per_part = std::max<size_t>(per_part, 1);
  std::vector<v1::CoordinatorMessage> messages;
  size_t next = 0;
  do {
    auto* part = messages.emplace_back().mutable_assignment();
    const size_t end = std::min(checks.size(), next + per_part);
    for (; next < end; ++next) *part->add_checks() = std::move(checks[next]);
    part->set_more(next < checks.size());
  } while (next < checks.size());
  return messages;
}

}  // namespace vantage
