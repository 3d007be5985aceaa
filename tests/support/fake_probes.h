#pragma once
// An in-memory ProbeRegistry (storage/store.h) for tests that run the probe
// service without PostgreSQL: probes registered with add(), found by their
// token's hash as the real store finds them. Thread-safe: the service calls
// it from its gRPC threads.

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "common/token.h"
#include "storage/store.h"

namespace vantage::testing {

class FakeProbes : public storage::ProbeRegistry {
 public:
  // Registers a probe and returns its new bearer token.
  std::string add(const std::string& name, const std::string& region) {
    const auto token = generate_token();
    std::lock_guard lock(mu_);
    const int32_t key = static_cast<int32_t>(by_hash_.size()) + 1;
    by_hash_[token_sha256_hex(token)] = {key, name, region, 0};
    return token;
  }
  std::optional<storage::ProbeRecord> find_probe_by_token(std::string_view hash) override {
    std::lock_guard lock(mu_);
    auto it = by_hash_.find(std::string(hash));
    if (it == by_hash_.end()) return std::nullopt;
    return it->second;
  }
  storage::ProbeRecord record_hello(int32_t key, std::string_view) override {
    std::lock_guard lock(mu_);
    for (const auto& [hash, record] : by_hash_) {
      if (record.key == key) return record;
    }
    throw storage::StorageError(storage::StorageError::Kind::kInternal, "no such probe");
  }

 private:
  std::mutex mu_;
  std::map<std::string, storage::ProbeRecord> by_hash_;
};

}  // namespace vantage::testing
