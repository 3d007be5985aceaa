#include "coordinator/fleet_service.h"

#include <fmt/format.h>

#include <unordered_map>

#include "common/log.h"
#include "common/proto_time.h"
#include "common/text.h"

namespace vantage::coordinator {

namespace {

constexpr std::string_view kPageTokenTag = "probes.v1:";  // a token of another list or format is refused
constexpr size_t kMaxRegionBytes = 256;

}  // namespace

std::string encode_probe_page_token(std::string_view last_name) { return encode_page_token(kPageTokenTag, last_name); }

std::optional<std::string> decode_probe_page_token(std::string_view token) {
  return decode_page_token(kPageTokenTag, token);
}

int64_t ResultRates::now_second() const {
  return std::chrono::duration_cast<std::chrono::seconds>(clock_.steady_now().time_since_epoch()).count();
}

void ResultRates::add(const std::vector<const storage::ResultBatch*>& batches) {
  const int64_t now = now_second();
  std::lock_guard lock(mu_);
  for (const auto* batch : batches) {
    if (batch->results.empty()) continue;
    auto& slot = by_probe_[batch->probe.name][static_cast<size_t>(now % kWindowSeconds)];
    if (slot.second != now) slot = Second{now, 0};
    slot.results += batch->results.size();
  }
}

double ResultRates::per_second(const std::string& probe) const {
  const int64_t now = now_second();
  std::lock_guard lock(mu_);
  auto it = by_probe_.find(probe);
  if (it == by_probe_.end()) return 0;
  uint64_t results = 0;
  for (const auto& slot : it->second) {
    if (slot.second > now - kWindowSeconds) results += slot.results;
  }
  return static_cast<double>(results) / kWindowSeconds;
}

FleetServiceImpl::FleetServiceImpl(storage::ProbeDirectory& probes, ApiAuthorizer& auth, ConnectedProbes connected,
                                   const ResultRates& rates, FleetServiceOptions options)
    : probes_(probes), auth_(auth), connected_(std::move(connected)), rates_(rates), options_(options) {}

grpc::Status FleetServiceImpl::ListProbes(grpc::ServerContext* context, const v1::ListProbesRequest* request,
                                          v1::ListProbesResponse* response) {
  ApiCaller caller;
  if (auto status = auth_.authorize(context, Role::kRead, &caller); !status.ok()) return status;

  size_t page_size = 0;
  if (auto status = coordinator::page_size(request->page_size(), options_.pages, &page_size); !status.ok()) {
    return status;
  }
  if (request->region().size() > kMaxRegionBytes) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        fmt::format("region: {} bytes, more than the {} a region may have", request->region().size(),
                                    kMaxRegionBytes));
  }
  if (request->region().find('\0') != std::string::npos) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "region: contains a NUL character");
  }
  std::string after;
  if (auto status = page_position(kPageTokenTag, request->page_token(), &after); !status.ok()) return status;

  std::vector<storage::ProbeListing> probes;
  try {
    // One more than the page: whether there is a next page.
    probes = probes_.list_probes(after, request->region(), page_size + 1);
  } catch (const storage::StorageError& e) {
    log::warn("cannot list probes", "caller", caller.name, "error", e.what());
    return api_storage_status(e, "cannot list probes");
  }
  const bool more = probes.size() > page_size;
  if (more) probes.resize(page_size);

  std::unordered_map<std::string, ConnectedProbe> connected;
  if (connected_) {
    for (auto& probe : connected_()) connected.emplace(probe.name, std::move(probe));
  }
  for (const auto& probe : probes) {
    auto* out = response->add_probes();
    out->set_id(probe.name);
    out->set_region(probe.region);
    out->set_version(probe.version);
    out->set_last_stored_sequence(probe.last_sequence);
    if (probe.last_seen_time) *out->mutable_last_seen_time() = to_timestamp(*probe.last_seen_time);
    if (auto it = connected.find(probe.name); it != connected.end()) {
      out->set_connected(true);
      out->set_checks_assigned(static_cast<uint32_t>(it->second.checks_assigned));
      // What it produced and is not stored yet. Unset for a probe that does
      // not say what it produced; never negative (what is stored may have
      // moved past its last word).
      if (const auto produced = it->second.produced_sequence) {
        out->set_spool_backlog(*produced > probe.last_sequence ? *produced - probe.last_sequence : 0);
      }
    }
    out->set_results_per_second(rates_.per_second(probe.name));
  }
  if (more) response->set_next_page_token(encode_probe_page_token(probes.back().name));
  return grpc::Status::OK;
}

}  // namespace vantage::coordinator
