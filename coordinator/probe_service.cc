#include "coordinator/probe_service.h"

#include <fmt/format.h>
#include <grpcpp/support/method_handler.h>

#include <algorithm>
#include <optional>

#include "common/build_info.h"
#include "common/log.h"
#include "common/text.h"
#include "common/token.h"

namespace vantage::coordinator {

namespace {

constexpr uint32_t kMaxBatchResults = 5'000;
constexpr int kHeartbeatSeconds = 15;
constexpr auto kRefusalLogInterval = std::chrono::seconds(10);

grpc::Status storage_status(const storage::StorageError& e) {
  return grpc::Status(e.kind() == storage::StorageError::Kind::kUnavailable
                          ? grpc::StatusCode::UNAVAILABLE
                          : grpc::StatusCode::INTERNAL,
                      e.what());
}

}  // namespace

ProbeServiceImpl::ProbeServiceImpl(storage::ProbeRegistry& probes, Ingest& ingest, ProbeSessions& sessions,
                                   CoordinatorMetrics& metrics, ProbeServiceOptions options)
    : probes_(probes), ingest_(ingest), sessions_(sessions), metrics_(metrics), options_(std::move(options)) {
  // Connect as raw bytes (see RawStream). The wire format is unchanged.
  MarkMethodStreamed(0, new grpc::internal::BidiStreamingHandler<ProbeServiceImpl, grpc::ByteBuffer, grpc::ByteBuffer>(
                            [](ProbeServiceImpl* service, grpc::ServerContext* context, RawStream* stream) {
                              return service->serve(context, stream);
                            },
                            this));
}

ProbeServiceImpl::~ProbeServiceImpl() = default;

grpc::Status ProbeServiceImpl::authenticate(grpc::ServerContext* context, storage::ProbeRecord* probe) {
  if (options_.require_client_cert) {
    // With GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY, a certificate in
    // the auth context is one the handshake verified against the client CA.
    const auto auth = context->auth_context();
    if (!auth || auth->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME).empty()) {
      metrics_.probe_auth_failures.Add({{"reason", "missing_client_cert"}}).Increment();
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          "this coordinator requires probes to present a TLS client certificate signed by its "
                          "client CA; this connection presented none");
    }
  }
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

grpc::Status ProbeServiceImpl::accept_hello(grpc::ServerContext* context, const v1::Hello& hello,
                                            storage::ProbeRecord* probe) {
  constexpr size_t kMaxShown = 64;  // of a peer's text in a message or a log line
  if (hello.probe_id() != probe->name) {
    metrics_.probe_auth_failures.Add({{"reason", "wrong_probe_id"}}).Increment();
    log::warn("probe refused", "peer", context->peer(), "hello_probe_id", safe_text(hello.probe_id(), kMaxShown),
              "token_probe", probe->name);
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        fmt::format("hello.probe_id \"{}\" does not match the token's probe",
                                    safe_text(hello.probe_id(), kMaxShown)));
  }
  if (hello.region().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "hello.region is empty");
  }
  // The region is the one the probe was registered with: a probe cannot
  // take another region's checks by claiming it.
  if (hello.region() != probe->region) {
    metrics_.probe_auth_failures.Add({{"reason", "wrong_region"}}).Increment();
    const auto claimed = safe_text(hello.region(), kMaxShown);
    log::warn("probe refused", "probe", probe->name, "hello_region", claimed, "registered_region", probe->region);
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        fmt::format("hello.region \"{}\" is not probe {}'s registered region \"{}\" "
                                    "(the region is set when the probe is registered)",
                                    claimed, probe->name, probe->region));
  }
  // The version goes to a text column: no NUL, bounded.
  *probe = probes_.record_hello(probe->key, safe_text(hello.version(), kMaxShown));
  return grpc::Status::OK;
}

grpc::Status ProbeServiceImpl::serve(grpc::ServerContext* context, RawStream* stream) {
  // Refused before any thread of ours is spent on the stream.
  storage::ProbeRecord probe;
  try {
    if (auto status = authenticate(context, &probe); !status.ok()) {
      log::warn("probe refused", "peer", context->peer(), "error", status.error_message());
      return status;
    }
  } catch (const storage::StorageError& e) {
    log::error("cannot accept probe", "error", e.what());
    return storage_status(e);
  }
  auto session = std::make_shared<Session>(context, stream, options_.max_queued_messages, options_.hello_timeout);
  grpc::Status status = run(context, stream, session, probe);
  session->finish(options_.drain_timeout);
  sessions_.close(session);
  if (const auto reason = session->end_reason()) {
    metrics_.probe_streams_ended.Add({{"reason", end_label(*reason)}}).Increment();
    switch (*reason) {
      case EndReason::kStoppedReading:
        // The peer is not reading, so it will see only a cancellation; the
        // log and the metric say why.
        status = grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                              fmt::format("the probe stopped reading its stream: more than {} messages "
                                          "(acknowledgements, re-checks, assignment changes) were waiting for it",
                                          options_.max_queued_messages));
        break;
      case EndReason::kHelloTimeout:
        status = grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                              fmt::format("no hello within {} ms of the stream's start", options_.hello_timeout.count()));
        break;
      default:
        break;  // the handler's own status already says why
    }
    log::warn("probe stream ended by the coordinator", "probe", probe.name, "reason", end_label(*reason), "error",
              status.error_message());
  } else {
    log::info("probe disconnected", "probe", probe.name, "error", status.error_message());
  }
  return status;
}

grpc::Status ProbeServiceImpl::run(grpc::ServerContext* context, RawStream* stream,
                                   const std::shared_ptr<Session>& shared, storage::ProbeRecord& probe) {
  Session& session = *shared;
  // Reads one message; a message that does not parse ends the stream with a
  // status that says so (not OK, which would make the probe resend it forever).
  uint64_t messages = 0;
  std::optional<grpc::Status> unreadable;
  auto read = [&](v1::ProbeMessage* message) {
    grpc::ByteBuffer bytes;
    if (!stream->Read(&bytes)) return false;
    ++messages;
    const size_t size = bytes.Length();
    message->Clear();
    auto parsed = grpc::SerializationTraits<v1::ProbeMessage>::Deserialize(&bytes, message);
    if (!parsed.ok()) {
      session.ending(EndReason::kUnreadableMessage);
      unreadable = grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          fmt::format("message {} of the stream ({} bytes) does not parse as a vantage.v1.ProbeMessage (a string "
                      "field that is not valid UTF-8?){}",
                      messages, size, parsed.error_message().empty() ? "" : ": " + parsed.error_message()));
      return false;
    }
    return true;
  };

  bool accepts_assignment_parts = false;
  try {
    v1::ProbeMessage first;
    if (!read(&first)) {
      if (unreadable) return *unreadable;
      return grpc::Status(grpc::StatusCode::CANCELLED, "stream closed before hello");
    }
    session.hello_received();
    if (!first.has_hello()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the first message must be a hello");
    }
    if (auto status = accept_hello(context, first.hello(), &probe); !status.ok()) return status;
    accepts_assignment_parts = first.hello().accepts_assignment_parts();
  } catch (const storage::StorageError& e) {
    log::error("cannot accept probe", "error", e.what());
    return storage_status(e);
  }

  session.probe = probe;
  v1::CoordinatorMessage welcome;
  auto* w = welcome.mutable_welcome();
  w->set_last_stored_sequence(probe.last_sequence);
  w->set_coordinator_version(kVersion);
  w->mutable_heartbeat_interval()->set_seconds(kHeartbeatSeconds);
  w->set_max_batch_results(kMaxBatchResults);
  // Queues the welcome and the assignment, then shares the session.
  if (auto status = sessions_.open(shared, std::move(welcome), accepts_assignment_parts); !status.ok()) {
    return status;
  }
  log::info("probe connected", "probe", probe.name, "region", probe.region, "peer", context->peer(),
            "stored_sequence", probe.last_sequence);

  grpc::Status status = grpc::Status::OK;
  uint64_t last_sequence = 0;  // highest received on this stream
  v1::ProbeMessage in;
  bool open = true;
  while (open && read(&in)) {
    // What the probe has produced, for its spool backlog (FleetService);
    // what is stored of it is at least what this stream sent or was welcomed with.
    if (in.has_results() || in.has_heartbeat()) {
      session.record_produced(in.has_results() ? in.results().produced_sequence() : in.heartbeat().produced_sequence(),
                              std::max(probe.last_sequence, last_sequence));
    }
    if (!in.has_results()) continue;  // heartbeats keep the stream warm
    v1::CoordinatorMessage ack;
    status = ingest(context, session, *in.mutable_results(), &last_sequence, ack.mutable_ack());
    if (!status.ok()) break;
    // A full queue ends the stream (the probe stopped reading).
    open = session.push(std::move(ack)) == Session::Push::kQueued;
  }
  if (unreadable) return *unreadable;
  return status;
}

void ProbeServiceImpl::refused(const Session& session, uint64_t sequence, const Refusal& refusal) {
  metrics_.ingest_refused.Add({{"reason", std::string(refusal_label(refusal.reason))}}).Increment();
  std::lock_guard lock(refusal_log_mu_);
  const auto now = std::chrono::steady_clock::now();
  if (now < next_refusal_log_) {
    ++refusals_not_logged_;
    return;
  }
  next_refusal_log_ = now + kRefusalLogInterval;
  log::warn("result refused; acknowledged so that the probe does not send it again", "probe", session.probe.name,
            "sequence", sequence, "reason", refusal_label(refusal.reason), "error", refusal.message,
            "refused_since_last_line", refusals_not_logged_);
  refusals_not_logged_ = 0;
}

grpc::Status ProbeServiceImpl::ingest(grpc::ServerContext* context, Session& session, v1::ResultBatch& batch,
                                      uint64_t* last_sequence, v1::Ack* ack) {
  auto invalid = [&](std::string message) {
    metrics_.ingest_errors.Add({{"reason", "invalid_batch"}}).Increment();
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::move(message));
  };
  if (batch.results_size() > static_cast<int>(kMaxBatchResults)) {
    return invalid(fmt::format("results: {} in one batch, more than the {} allowed", batch.results_size(),
                               kMaxBatchResults));
  }
  if (batch.results_size() == 0) return grpc::Status::OK;
  storage::ResultBatch stored{session.probe, {}, 0};
  stored.results.reserve(batch.results_size());
  const auto now = std::chrono::system_clock::now();
  for (auto& r : *batch.mutable_results()) {
    // The sequence is the stream's order and what is acknowledged: a bad one
    // is a broken stream, not a bad result.
    if (r.sequence() <= *last_sequence) {
      return invalid(fmt::format("results.sequence {} is not above {}: sequence numbers must "
                                 "increase within a stream", r.sequence(), *last_sequence));
    }
    if (r.sequence() > static_cast<uint64_t>(INT64_MAX)) {
      return invalid(fmt::format("results.sequence {} is beyond the largest sequence number, {}", r.sequence(),
                                 INT64_MAX));
    }
    *last_sequence = r.sequence();
    auto refusal = validate_result(r, now, options_.result_limits);
    // A check the probe's region does not run. The probe may still be
    // sending results of checks this stream assigned it: those are accepted
    // (the set of a stream only grows); results for checks removed before
    // the stream began are refused.
    if (!refusal && !session.runs(r.check_id())) {
      refusal = Refusal{RefusalReason::kUnassignedCheck,
                        fmt::format("check {} is not assigned to region {}", r.check_id(), session.probe.region)};
    }
    if (refusal) {
      refused(session, r.sequence(), *refusal);
      continue;
    }
    stored.results.push_back(std::move(r));
  }
  // Refused results are acknowledged with the batch (storage::ResultBatch).
  stored.last_sequence = *last_sequence;
  const size_t count = stored.results.size();
  auto outcome = ingest_.submit(std::move(stored), [context] { return context->IsCancelled(); });
  if (!outcome.ok) {
    // The probe keeps the results and sends them again on its next stream.
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "results not stored: " + outcome.error);
  }
  ack->set_sequence(outcome.write.acked_sequence);
  log::debug("batch stored", "probe", session.probe.name, "results", count, "inserted", outcome.write.inserted,
             "acked", outcome.write.acked_sequence);
  return grpc::Status::OK;
}

}  // namespace vantage::coordinator
