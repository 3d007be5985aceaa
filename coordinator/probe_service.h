#pragma once
// ProbeService.Connect: authenticates a probe, sends its checks, stores its
// results and acknowledges them once committed.

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "coordinator/check_registry.h"
#include "coordinator/ingest.h"
#include "coordinator/metrics.h"
#include "storage/store.h"
#include "vantage/v1/probe_service.grpc.pb.h"

namespace vantage::coordinator {

class ProbeServiceImpl final : public v1::ProbeService::Service {
 public:
  ProbeServiceImpl(storage::ProbeRegistry& probes, Ingest& ingest, const CheckRegistry& checks,
                   CoordinatorMetrics& metrics);

  grpc::Status Connect(grpc::ServerContext* context,
                       grpc::ServerReaderWriter<v1::CoordinatorMessage, v1::ProbeMessage>* stream) override;

  // Ends every open stream (on shutdown).
  void cancel_all();

  // Asks the connected probes of `regions` that run the check for an
  // immediate attempt. Returns how many probes were asked.
  size_t request_recheck(int64_t check_id, const std::vector<std::string>& regions, const std::string& request_id,
                         const std::string& reason);

 private:
  grpc::Status authenticate(grpc::ServerContext* context, storage::ProbeRecord* probe);
  grpc::Status ingest(grpc::ServerContext* context, const storage::ProbeRecord& probe, v1::ResultBatch& batch,
                      uint64_t* last_sequence, v1::Ack* ack);

  storage::ProbeRegistry& probes_;
  Ingest& ingest_;
  const CheckRegistry& checks_;
  CoordinatorMetrics& metrics_;

  // One open stream per probe: a newer one replaces (cancels) an older one.
  struct Session {
    grpc::ServerContext* context;
    grpc::ServerReaderWriter<v1::CoordinatorMessage, v1::ProbeMessage>* stream;
    std::string region;
    std::mutex write_mu;  // gRPC allows one Write at a time per stream
    bool write(const v1::CoordinatorMessage& message) {
      std::lock_guard lock(write_mu);
      return stream->Write(message);
    }
  };
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Session>> sessions_;
};

}  // namespace vantage::coordinator
