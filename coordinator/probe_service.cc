#include "coordinator/probe_service.h"

#include <fmt/format.h>

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

ProbeServiceImpl::ProbeServiceImpl(storage::ProbeRegistry& probes, storage::ResultSink& results,
                                   const CheckRegistry& checks, CoordinatorMetrics& metrics)
    : probes_(probes), results_(results), checks_(checks), metrics_(metrics) {}

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
  } catch (const storage::StorageError& e) {
    log::error("cannot accept probe", "error", e.what());
    return storage_status(e);
  }

  {
    std::lock_guard lock(mu_);
    auto [it, inserted] = sessions_.emplace(probe.name, context);
    if (!inserted) {
      it->second->TryCancel();  // the probe reconnected before the old stream died
      it->second = context;
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
  bool open = stream->Write(out);
  if (open) {
    out.Clear();
    for (auto& c : checks_.for_region(probe.region)) *out.mutable_assignment()->add_checks() = std::move(c);
    open = stream->Write(out);
  }
  uint64_t last_sequence = 0;  // highest received on this stream
  v1::ProbeMessage in;
  while (open && stream->Read(&in)) {
    if (!in.has_results()) continue;  // heartbeats keep the stream warm
    out.Clear();
    status = ingest(probe, *in.mutable_results(), &last_sequence, out.mutable_ack());
    if (!status.ok()) break;
    open = stream->Write(out);
  }

  {
    std::lock_guard lock(mu_);
    auto it = sessions_.find(probe.name);
    if (it != sessions_.end() && it->second == context) sessions_.erase(it);
  }
  metrics_.probes_connected.Decrement();
  log::info("probe disconnected", "probe", probe.name, "error", status.error_message());
  return status;
}

grpc::Status ProbeServiceImpl::ingest(const storage::ProbeRecord& probe, v1::ResultBatch& batch,
                                      uint64_t* last_sequence, v1::Ack* ack) {
  if (batch.results_size() > static_cast<int>(kMaxBatchResults)) {
    metrics_.ingest_errors.Add({{"reason", "invalid_batch"}}).Increment();
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        fmt::format("results: {} in one batch, more than the {} allowed",
                                    batch.results_size(), kMaxBatchResults));
  }
  std::vector<v1::CheckResult> results;
  results.reserve(batch.results_size());
  for (auto& r : *batch.mutable_results()) {
    if (r.sequence() <= *last_sequence) {
      metrics_.ingest_errors.Add({{"reason", "invalid_batch"}}).Increment();
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          fmt::format("results.sequence {} is not above {}: sequence numbers must "
                                      "increase within a stream", r.sequence(), *last_sequence));
    }
    *last_sequence = r.sequence();
    results.push_back(std::move(r));
  }
  if (results.empty()) return grpc::Status::OK;
  try {
    const auto start = std::chrono::steady_clock::now();
    auto outcome = results_.write_results(probe, results);
    metrics_.ingest_commit_seconds.Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    metrics_.ingest_batches.Increment();
    metrics_.ingest_results.Add({{"region", probe.region}}).Increment(static_cast<double>(outcome.inserted));
    metrics_.ingest_duplicates.Increment(static_cast<double>(outcome.duplicates));
    ack->set_sequence(outcome.acked_sequence);
    log::debug("batch stored", "probe", probe.name, "results", results.size(), "inserted",
               outcome.inserted, "acked", outcome.acked_sequence);
    return grpc::Status::OK;
  } catch (const storage::StorageError& e) {
    metrics_.ingest_errors
        .Add({{"reason", e.kind() == storage::StorageError::Kind::kUnavailable ? "storage_unavailable"
                                                                                : "storage_error"}})
        .Increment();
    log::error("cannot store results; the probe will send them again", "probe", probe.name, "error", e.what());
    return storage_status(e);
  }
}

void ProbeServiceImpl::cancel_all() {
  std::lock_guard lock(mu_);
  for (auto& [name, context] : sessions_) context->TryCancel();
}

}  // namespace vantage::coordinator
