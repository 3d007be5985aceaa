#pragma once
// The checks the coordinator currently runs, and which probe gets which.

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
      if (c.regions().empty() ||
          std::find(c.regions().begin(), c.regions().end(), region) != c.regions().end()) {
        out.push_back(c);
      }
    }
    return out;
  }
  size_t size() const {
    std::lock_guard lock(mu_);
    return checks_.size();
  }

 private:
  mutable std::mutex mu_;
  std::vector<v1::Check> checks_;
};

}  // namespace vantage::coordinator
