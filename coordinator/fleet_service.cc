#include "coordinator/fleet_service.h"

#include <fmt/format.h>

#include <cstring>
#include <unordered_map>

#include "common/log.h"
#include "common/proto_time.h"
#include "common/text.h"

namespace vantage::coordinator {

namespace {

constexpr std::string_view kPageTokenTag = "probes.v1:";  // a token of another list or format is refused
constexpr size_t kMaxPageTokenBytes = 4096;
constexpr size_t kMaxRegionBytes = 256;
constexpr char kBase64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string base64url(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  uint32_t bits = 0;
  int count = 0;
  for (unsigned char b : bytes) {
    bits = (bits << 8) | b;
    count += 8;
    while (count >= 6) {
      count -= 6;
      out.push_back(kBase64Url[(bits >> count) & 0x3f]);
    }
  }
  if (count > 0) out.push_back(kBase64Url[(bits << (6 - count)) & 0x3f]);
  return out;  // unpadded
}

std::optional<std::string> from_base64url(std::string_view text) {
  std::string out;
  uint32_t bits = 0;
  int count = 0;
  for (char ch : text) {
    const char* at = std::strchr(kBase64Url, ch);
    if (ch == '\0' || at == nullptr) return std::nullopt;
    bits = (bits << 6) | static_cast<uint32_t>(at - kBase64Url);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out.push_back(static_cast<char>((bits >> count) & 0xff));
    }
  }
  // Leftover bits are padding: fewer than a byte, and zero (one encoding per name).
  if (count >= 6 || (bits & ((1u << count) - 1)) != 0) return std::nullopt;
  return out;
}

}  // namespace

std::string encode_page_token(std::string_view tag, std::string_view last_name) {
  return base64url(std::string(tag) + std::string(last_name));
}

std::optional<std::string> decode_page_token(std::string_view tag, std::string_view token) {
  if (token.size() > kMaxPageTokenBytes) return std::nullopt;
  auto bytes = from_base64url(token);
  if (!bytes || !bytes->starts_with(tag) || bytes->size() == tag.size()) return std::nullopt;
  auto name = bytes->substr(tag.size());
  // What a name in PostgreSQL's text can be: a crafted token must not reach it.
  if (!is_valid_utf8(name) || name.find('\0') != std::string::npos) return std::nullopt;
  return name;
}

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

  if (request->page_size() < 0 || request->page_size() > options_.max_page_size) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        fmt::format("page_size: {} is out of range: 0 (the default, {}) to {}", request->page_size(),
                                    options_.default_page_size, options_.max_page_size));
  }
  const size_t page_size =
      static_cast<size_t>(request->page_size() == 0 ? options_.default_page_size : request->page_size());
  if (request->region().size() > kMaxRegionBytes) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        fmt::format("region: {} bytes, more than the {} a region may have", request->region().size(),
                                    kMaxRegionBytes));
  }
  if (request->region().find('\0') != std::string::npos) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "region: contains a NUL character");
  }
  std::string after;
  if (!request->page_token().empty()) {
    auto decoded = decode_probe_page_token(request->page_token());
    if (!decoded) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "page_token: not a token this API gave (pass next_page_token of the previous page "
                          "unchanged, or none for the first page)");
    }
    after = std::move(*decoded);
  }

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

  std::unordered_map<std::string, size_t> connected;
  if (connected_) {
    for (auto& probe : connected_()) connected.emplace(std::move(probe.name), probe.checks_assigned);
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
      out->set_checks_assigned(static_cast<uint32_t>(it->second));
    }
    out->set_results_per_second(rates_.per_second(probe.name));
    // spool_backlog stays unset: probes do not report it on their stream yet.
  }
  if (more) response->set_next_page_token(encode_probe_page_token(probes.back().name));
  return grpc::Status::OK;
}

}  // namespace vantage::coordinator
