#pragma once
// The checks the coordinator currently runs, and which probe gets which.
// Replaced whole, by CheckPublisher (checks_reloader.h), at start, after each
// good reload of the checks file and after each change through CheckService;
// ProbeSessions turns a replacement into diffs.

#include <algorithm>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "vantage/v1/types.pb.h"

namespace vantage::coordinator {

class CheckRegistry {
 public:
  void replace(std::vector<v1::Check> checks) {
    std::unordered_map<int64_t, std::string> names;
    for (const auto& c : checks) names.emplace(c.id(), c.name());
    std::lock_guard lock(mu_);
    checks_ = std::move(checks);
    names_ = std::move(names);
  }
  // The name of the check with this id; empty if there is none now.
  std::string name_of(int64_t check_id) const {
    std::lock_guard lock(mu_);
    auto it = names_.find(check_id);
    return it == names_.end() ? std::string() : it->second;
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
  // Whether a probe in `region` runs the check.
  static bool assigned(const v1::Check& c, const std::string& region) {
    return c.regions().empty() || std::find(c.regions().begin(), c.regions().end(), region) != c.regions().end();
  }

 private:
  mutable std::mutex mu_;
  std::vector<v1::Check> checks_;
  std::unordered_map<int64_t, std::string> names_;  // by id
};

}  // namespace vantage::coordinator
