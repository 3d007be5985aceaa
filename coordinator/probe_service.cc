#include "coordinator/probe_service.h"

#include <fmt/format.h>

#include "common/assignment.h"
#include "common/build_info.h"
#include "common/log.h"
#include "common/token.h"

namespace vantage::coordinator {

namespace {

constexpr uint32_t kMaxBatchResults = 5'000;
constexpr int kHeartbeatSeconds = 15;

grpc::Status storage_status(const storage::StorageError& e) {
  return grpc::Status(e.kind() == storage::StorageError::Kind::kUnavailable
                          ? grpc::StatusCode::UNAVAILABLE
                          : grpc::StatusCode::INTERNAL,
                      e.what());
}

}  // namespace

ProbeServiceImpl::ProbeServiceImpl(storage::ProbeRegistry& probes, Ingest& ingest,
                                   const CheckRegistry& checks, CoordinatorMetrics& metrics)
    : probes_(probes), ingest_(ingest), checks_(checks), metrics_(metrics) {}

grpc::Status ProbeServiceImpl::authenticate(grpc::ServerContext* context, storage::ProbeRecord* probe) {
  const auto& metadata = context->client_metadata();
  auto it = metadata.find("authorization");
  std::string_view token;
  if (it != metadata.end()) token = bearer_token(std::string_view(it->second.data(), it->second.size()));
  if (token.empty()) {
    metrics_.probe_auth_failures.Add({{"reason", "missing_token"}}).Increment();
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "missing probe token: send metadata 'authorization: Bearer <token>'");
  }
  auto found = probes_.find_probe_by_token(token_sha256_hex(token));
  if (!found) {
    metrics_.probe_auth_failures.Add({{"reason", "unknown_token"}}).Increment();
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "unknown probe token");
  }
  *probe = std::move(*found);
  return grpc::Status::OK;
}

grpc::Status ProbeServiceImpl::Connect(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::CoordinatorMessage, v1::ProbeMessage>* stream) {
  // Nothing may escape a gRPC handler: storage errors become statuses.
  storage::ProbeRecord probe;
  bool accepts_assignment_parts = false;
  try {
    if (auto status = authenticate(context, &probe); !status.ok()) {
      log::warn("probe refused", "peer", context->peer(), "error", status.error_message());
      return status;
    }
    v1::ProbeMessage first;
    if (!stream->Read(&first)) return grpc::Status(grpc::StatusCode::CANCELLED, "stream closed before hello");
    if (!first.has_hello()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the first message must be a hello");
    }
    const auto& hello = first.hello();
    if (hello.probe_id() != probe.name) {
      metrics_.probe_auth_failures.Add({{"reason", "wrong_probe_id"}}).Increment();
      log::warn("probe refused", "peer", context->peer(), "hello_probe_id", hello.probe_id(), "token_probe", probe.name);
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                          fmt::format("hello.probe_id \"{}\" does not match the token's probe", hello.probe_id()));
    }
    if (hello.region().empty()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "hello.region is empty");
    }
    probe = probes_.record_hello(probe.key, hello.region(), hello.version());
    accepts_assignment_parts = hello.accepts_assignment_parts();
  } catch (const storage::StorageError& e) {
    log::error("cannot accept probe", "error", e.what());
    return storage_status(e);
  }

  auto session = std::make_shared<Session>();
  session->context = context;
  session->stream = stream;
  session->region = probe.region;
  {
    std::lock_guard lock(mu_);
    auto [it, inserted] = sessions_.emplace(probe.name, session);
    if (!inserted) {
      it->second->context->TryCancel();  // the probe reconnected before the old stream died
      it->second = session;
    }
  }
  metrics_.probes_connected.Increment();
  log::info("probe connected", "probe", probe.name, "region", probe.region, "peer", context->peer(),
            "stored_sequence", probe.last_sequence);

  grpc::Status status = grpc::Status::OK;
  v1::CoordinatorMessage out;
  auto* welcome = out.mutable_welcome();
  welcome->set_last_stored_sequence(probe.last_sequence);
  welcome->set_coordinator_version(kVersion);
  welcome->mutable_heartbeat_interval()->set_seconds(kHeartbeatSeconds);
  welcome->set_max_batch_results(kMaxBatchResults);
  bool open = session->write(out);
  if (open) {
    for (const auto& part : assignment_messages(checks_.for_region(probe.region), accepts_assignment_parts)) {
      if (!(open = session->write(part))) break;
    }
  }
  uint64_t last_sequence = 0;  // highest received on this stream
  v1::ProbeMessage in;
  while (open && stream->Read(&in)) {
    if (!in.has_results()) continue;  // heartbeats keep the stream warm
    out.Clear();
    status = ingest(context, probe, *in.mutable_results(), &last_sequence, out.mutable_ack());
    if (!status.ok()) break;
    open = session->write(out);
  }

  {
    std::lock_guard lock(mu_);
    auto it = sessions_.find(probe.name);
    if (it != sessions_.end() && it->second == session) sessions_.erase(it);
  }
  metrics_.probes_connected.Decrement();
  log::info("probe disconnected", "probe", probe.name, "error", status.error_message());
  return status;
}

grpc::Status ProbeServiceImpl::ingest(grpc::ServerContext* context, const storage::ProbeRecord& probe,
                                      v1::ResultBatch& batch,
                                      uint64_t* last_sequence, v1::Ack* ack) {
  if (batch.results_size() > static_cast<int>(kMaxBatchResults)) {
    metrics_.ingest_errors.Add({{"reason", "invalid_batch"}}).Increment();
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        fmt::format("results: {} in one batch, more than the {} allowed",
                                    batch.results_size(), kMaxBatchResults));
  }
  storage::ResultBatch stored{probe, {}};
  stored.results.reserve(batch.results_size());
  auto invalid = [&](std::string message) {
    metrics_.ingest_errors.Add({{"reason", "invalid_batch"}}).Increment();
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::move(message));
  };
  for (auto& r : *batch.mutable_results()) {
    if (r.sequence() <= *last_sequence) {
      return invalid(fmt::format("results.sequence {} is not above {}: sequence numbers must "
                                 "increase within a stream", r.sequence(), *last_sequence));
    }
    if (r.check_id() <= 0 || r.check_id() > INT32_MAX) {
      return invalid(fmt::format("results.check_id {} (sequence {}) is not a check id", r.check_id(), r.sequence()));
    }
    if (r.start_time().seconds() <= 0) {
      return invalid(fmt::format("results.start_time is missing (sequence {})", r.sequence()));
    }
    *last_sequence = r.sequence();
    stored.results.push_back(std::move(r));
  }
  if (stored.results.empty()) return grpc::Status::OK;
  const size_t count = stored.results.size();
  auto outcome = ingest_.submit(std::move(stored), [context] { return context->IsCancelled(); });
  if (!outcome.ok) {
    // The probe keeps the results and sends them again on its next stream.
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "results not stored: " + outcome.error);
  }
  ack->set_sequence(outcome.write.acked_sequence);
  log::debug("batch stored", "probe", probe.name, "results", count, "inserted", outcome.write.inserted,
             "acked", outcome.write.acked_sequence);
  return grpc::Status::OK;
}

void ProbeServiceImpl::cancel_all() {
  std::lock_guard lock(mu_);
  for (auto& [name, session] : sessions_) session->context->TryCancel();
}

size_t ProbeServiceImpl::request_recheck(int64_t check_id, const std::vector<std::string>& regions,
                                         const std::string& request_id, const std::string& reason) {
  std::vector<std::shared_ptr<Session>> targets;
  {
    std::lock_guard lock(mu_);
    for (const auto& [name, session] : sessions_) {
      if (std::find(regions.begin(), regions.end(), session->region) != regions.end()) targets.push_back(session);
    }
  }
  v1::CoordinatorMessage out;
  auto* recheck = out.mutable_recheck();
  recheck->set_check_id(check_id);
  recheck->set_request_id(request_id);
  recheck->set_reason(reason);
  size_t asked = 0;
  for (const auto& session : targets) {
    if (!checks_.runs_in(check_id, session->region)) continue;
    // A failed write means the stream is ending; its handler cleans up.
    if (session->write(out)) ++asked;
  }
  metrics_.rechecks_requested.Increment(static_cast<double>(asked));
  return asked;
}

}  // namespace vantage::coordinator
