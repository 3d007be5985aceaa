#pragma once
// ProbeService.Connect: authenticates a probe, sends its checks, stores its
// results and acknowledges them once committed.

#include <map>
#include <mutex>
#include <string>

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

 private:
  grpc::Status authenticate(grpc::ServerContext* context, storage::ProbeRecord* probe);
  grpc::Status ingest(grpc::ServerContext* context, const storage::ProbeRecord& probe, v1::ResultBatch& batch,
                      uint64_t* last_sequence, v1::Ack* ack);

  storage::ProbeRegistry& probes_;
  Ingest& ingest_;
  const CheckRegistry& checks_;
  CoordinatorMetrics& metrics_;

  std::mutex mu_;
  // One open stream per probe: a newer one replaces (cancels) an older one.
  std::map<std::string, grpc::ServerContext*> sessions_;
};

}  // namespace vantage::coordinator
