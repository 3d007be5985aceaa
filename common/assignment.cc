#include "common/assignment.h"

#include <algorithm>

namespace vantage {

std::vector<v1::CoordinatorMessage> assignment_messages(std::vector<v1::Check> checks, bool accepts_parts,
                                                        size_t per_part, size_t part_bytes) {
  if (!accepts_parts) {
    per_part = std::max<size_t>(checks.size(), 1);
    part_bytes = SIZE_MAX;
  }
  per_part = std::max<size_t>(per_part, 1);
  std::vector<v1::CoordinatorMessage> messages;
  size_t next = 0;
  do {
    auto* part = messages.emplace_back().mutable_assignment();
    size_t bytes = 0;
    for (size_t in_part = 0; next < checks.size() && in_part < per_part; ++next, ++in_part) {
      // A repeated field's element costs its size plus a tag and a length
      // prefix (at most 1 + 5 bytes).
      const size_t size = checks[next].ByteSizeLong() + 6;
      if (in_part > 0 && bytes + size > part_bytes) break;
      bytes += size;
      *part->add_checks() = std::move(checks[next]);
    }
    part->set_more(next < checks.size());
  } while (next < checks.size());
  return messages;
}

}  // namespace vantage
