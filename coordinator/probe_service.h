#pragma once
// ProbeService.Connect: authenticates a probe, sends its checks, stores its
// results and acknowledges them once committed.
//
// Nothing a peer does blocks a shared thread (architecture.md, "Trust
// boundaries"): every message to a probe goes through a bounded queue of its
// own stream, written by that stream's own writer thread, so a probe that
// stops reading stalls only itself and is ended once its queue is full; the
// hello must come within a deadline; the region is the probe's registered
// one; every result is validated alone (result_validation.h).

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "coordinator/check_registry.h"
#include "coordinator/ingest.h"
#include "coordinator/metrics.h"
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
};

// What a probe accepts in one message (gRPC's default receive limit).
inline constexpr size_t kMaxProbeMessageBytes = 4 * 1024 * 1024;

class ProbeServiceImpl final : public v1::ProbeService::Service {
 public:
  ProbeServiceImpl(storage::ProbeRegistry& probes, Ingest& ingest, const CheckRegistry& checks,
                   CoordinatorMetrics& metrics, ProbeServiceOptions options = {});
  ~ProbeServiceImpl() override;

  // Ends every open stream (on shutdown).
  void cancel_all();

  // Asks the connected probes of `regions` that run the check for an
  // immediate attempt. Never blocks on a probe: the request is queued on each
  // probe's stream. Returns how many probes were asked.
  size_t request_recheck(int64_t check_id, const std::vector<std::string>& regions, const std::string& request_id,
                         const std::string& reason);

  class Session;  // one stream: its queue, its writer thread, its state

 private:
  // The stream as bytes: a message that does not parse is then told apart
  // from the probe closing its side (gRPC's sync Read reports both as false).
  using RawStream = grpc::ServerReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>;
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
  const CheckRegistry& checks_;
  CoordinatorMetrics& metrics_;
  ProbeServiceOptions options_;

  // One open stream per probe: a newer one replaces (cancels) an older one.
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Session>> sessions_;

  // Refused results are logged at most once per interval, with a count.
  std::mutex refusal_log_mu_;
  std::chrono::steady_clock::time_point next_refusal_log_{};
  size_t refusals_not_logged_ = 0;
};

}  // namespace vantage::coordinator
