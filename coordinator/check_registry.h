#pragma once
// The checks the coordinator currently runs, and which probe gets which.
// Replaced whole, by CheckPublisher (checks_reloader.h), at start, after each
// good reload of the checks file and after each change through CheckService;
// ProbeSessions turns a replacement into diffs.

#include <algorithm>
#include <mutex>
#include <string>
#include <vector>

#include "vantage/v1/types.pb.h"

namespace vantage::coordinator {

class CheckRegistry {
 public:
  void replace(std::vector<v1::Check> checks) {
    std::lock_guard lock(mu_);
    checks_ = std::move(checks);
  }
  // The checks a probe in `region` runs: those naming the region, and those
  // naming none.
  std::vector<v1::Check> for_region(const std::string& region) const {
    std::lock_guard lock(mu_);
    std::vector<v1::Check> out;
    for (const auto& c : checks_) {
      if (assigned(c, region)) out.push_back(c);
    }
    return out;
  }
  bool runs_in(int64_t check_id, const std::string& region) const {
    std::lock_guard lock(mu_);
    for (const auto& c : checks_) {
      if (c.id() == check_id) return assigned(c, region);
    }
    return false;
  }
  std::vector<v1::Check> all() const {
    std::lock_guard lock(mu_);
    return checks_;
  }
  size_t size() const {
    std::lock_guard lock(mu_);
    return checks_.size();
  }

 private:
  static bool assigned(const v1::Check& c, const std::string& region) {
    return c.regions().empty() || std::find(c.regions().begin(), c.regions().end(), region) != c.regions().end();
  }
  mutable std::mutex mu_;
  std::vector<v1::Check> checks_;
};

}  // namespace vantage::coordinator
