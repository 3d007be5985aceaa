#pragma once
// FleetService (public API, role read): the registered probes, with what the
// database knows of them (region, version, last seen, last stored sequence),
// what the open streams know (connected, checks assigned, what the probe says
// it produced: its spool backlog) and what this
// coordinator stored of them lately (results per second).

#include <array>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "coordinator/api_auth.h"
#include "coordinator/api_pages.h"
#include "storage/store.h"
#include "vantage/v1/fleet_service.grpc.pb.h"

namespace vantage::coordinator {

// A probe with an open stream, as the owner of the probe sessions sees it.
struct ConnectedProbe {
  std::string name;
  size_t checks_assigned = 0;
  // The highest sequence it says it has produced; nullopt when it never said.
  std::optional<uint64_t> produced_sequence;
};
using ConnectedProbes = std::function<std::vector<ConnectedProbe>()>;

// Results stored per probe over the last minute, fed with every commit
// (Ingest's CommittedFn; a replay's duplicates count too). Fixed memory per
// probe: a counter per second of the window. Thread-safe.
class ResultRates {
 public:
  static constexpr int kWindowSeconds = 60;
  explicit ResultRates(const Clock& clock) : clock_(clock) {}
  void add(const std::vector<const storage::ResultBatch*>& batches);
  // Results per second over the last kWindowSeconds; 0 for a probe without any.
  double per_second(const std::string& probe) const;

 private:
  struct Second {
    int64_t second = -1;  // which second of the steady clock this slot counts
    uint64_t results = 0;
  };
  using Window = std::array<Second, kWindowSeconds>;
  int64_t now_second() const;
  const Clock& clock_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Window> by_probe_;  // registered probes only: batches come from them
};

struct FleetServiceOptions {
  PageLimits pages;
};

class FleetServiceImpl final : public v1::FleetService::Service {
 public:
  FleetServiceImpl(storage::ProbeDirectory& probes, ApiAuthorizer& auth, ConnectedProbes connected,
                   const ResultRates& rates, FleetServiceOptions options = {});

  grpc::Status ListProbes(grpc::ServerContext* context, const v1::ListProbesRequest* request,
                          v1::ListProbesResponse* response) override;

 private:
  storage::ProbeDirectory& probes_;
  ApiAuthorizer& auth_;
  ConnectedProbes connected_;
  const ResultRates& rates_;
  FleetServiceOptions options_;
};

// FleetService's page tokens. Exposed for tests.
std::string encode_probe_page_token(std::string_view last_name);
// The name after which the next page starts; nullopt if `token` was not made
// by encode_probe_page_token.
std::optional<std::string> decode_probe_page_token(std::string_view token);

}  // namespace vantage::coordinator
