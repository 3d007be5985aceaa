#pragma once

#include <vector>

namespace vantage::storage {

struct Migration {
  int version;
  const char* name;
  const char* sql;
};

// Every migration in storage/migrations/, in version order.
const std::vector<Migration>& migrations();

}  // namespace vantage::storage
