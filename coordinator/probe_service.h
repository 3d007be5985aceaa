#pragma once
// ProbeService.Connect: authenticates a probe, opens its session (which sends
// its checks; probe_sessions.h), stores its results and acknowledges them
// once committed.
//
// Nothing a peer does blocks a shared thread (architecture.md, "Trust
// boundaries"): every message to a probe goes through a bounded queue of its
// own stream, written by that stream's own writer thread, so a probe that
// stops reading stalls only itself and is ended once its queue is full; the
// hello must come within a deadline; the region is the probe's registered
// one; every result is validated alone (result_validation.h).

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "coordinator/ingest.h"
#include "coordinator/metrics.h"
#include "coordinator/probe_sessions.h"
#include "coordinator/result_validation.h"
#include "storage/store.h"
#include "vantage/v1/probe_service.grpc.pb.h"

namespace vantage::coordinator {

struct ProbeServiceOptions {
  std::chrono::milliseconds hello_timeout{10'000};
  // Messages waiting to be written to one probe (acknowledgements,
  // re-checks); the assignment sent at connection does not count. A probe
  // whose queue is full has stopped reading: its stream is ended.
  size_t max_queued_messages = 256;
  // At the end of a stream, how long its last messages may take to go out
  // before the stream is cancelled.
  std::chrono::milliseconds drain_timeout{5'000};
  ResultLimits result_limits;
  // Refuse a stream whose TLS connection presented no client certificate
  // (one presented was verified in the handshake: --tls-client-ca).
  bool require_client_cert = false;
};

class ProbeServiceImpl final : public v1::ProbeService::Service {
 public:
  // Opened streams are registered in `sessions`, which sends them their
  // checks, diffs and re-checks (and ends them all on shutdown).
  ProbeServiceImpl(storage::ProbeRegistry& probes, Ingest& ingest, ProbeSessions& sessions,
                   CoordinatorMetrics& metrics, ProbeServiceOptions options = {});
  ~ProbeServiceImpl() override;

 private:
  using Session = ProbeSession;
  // The stream as bytes: a message that does not parse is then told apart
  // from the probe closing its side (gRPC's sync Read reports both as false).
  using RawStream = ProbeSession::RawStream;
  grpc::Status serve(grpc::ServerContext* context, RawStream* stream);
  grpc::Status run(grpc::ServerContext* context, RawStream* stream, const std::shared_ptr<Session>& session,
                   storage::ProbeRecord& probe);
  grpc::Status authenticate(grpc::ServerContext* context, storage::ProbeRecord* probe);
  grpc::Status accept_hello(grpc::ServerContext* context, const v1::Hello& hello, storage::ProbeRecord* probe);
  grpc::Status ingest(grpc::ServerContext* context, Session& session, v1::ResultBatch& batch,
                      uint64_t* last_sequence, v1::Ack* ack);
  void refused(const Session& session, uint64_t sequence, const Refusal& refusal);

  storage::ProbeRegistry& probes_;
  Ingest& ingest_;
  ProbeSessions& sessions_;
  CoordinatorMetrics& metrics_;
  ProbeServiceOptions options_;

  // Refused results are logged at most once per interval, with a count.
  std::mutex refusal_log_mu_;
  std::chrono::steady_clock::time_point next_refusal_log_{};
  size_t refusals_not_logged_ = 0;
};

}  // namespace vantage::coordinator
