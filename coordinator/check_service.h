#pragma once
// CheckService (public API): the checks, read with role read, changed with
// role write. A check created here is owned by the API (source api); a check
// of the checks file is read here but changed only in the file. Every change
// reaches the registry, the incident tracker and the probes through the same
// CheckPublisher a file reload uses.

#include <string>

#include "coordinator/api_auth.h"
#include "coordinator/check_runner.h"
#include "coordinator/api_pages.h"
#include "coordinator/checks_reloader.h"
#include "storage/store.h"
#include "vantage/v1/check_service.grpc.pb.h"

namespace vantage::coordinator {

struct CheckServiceOptions {
  PageLimits pages;
};

class CheckServiceImpl final : public v1::CheckService::Service {
 public:
  // `checks_file`: the file that owns the file's checks (named in errors).
  CheckServiceImpl(storage::CheckRepository& checks, storage::ApiCheckStore& api_checks, ApiAuthorizer& auth,
                   CheckPublisher& publisher, CheckRunner& runner, std::string checks_file,
                   CheckServiceOptions options = {});

  grpc::Status CreateCheck(grpc::ServerContext* context, const v1::CreateCheckRequest* request,
                           v1::CreateCheckResponse* response) override;
  grpc::Status GetCheck(grpc::ServerContext* context, const v1::GetCheckRequest* request,
                        v1::GetCheckResponse* response) override;
  grpc::Status ListChecks(grpc::ServerContext* context, const v1::ListChecksRequest* request,
                          v1::ListChecksResponse* response) override;
  grpc::Status UpdateCheck(grpc::ServerContext* context, const v1::UpdateCheckRequest* request,
                           v1::UpdateCheckResponse* response) override;
  grpc::Status DeleteCheck(grpc::ServerContext* context, const v1::DeleteCheckRequest* request,
                           v1::DeleteCheckResponse* response) override;
  // Role write; check_runner.h.
  grpc::Status RunCheck(grpc::ServerContext* context, const v1::RunCheckRequest* request,
                        v1::RunCheckResponse* response) override;

 private:
  // The stored check named `name`, or NOT_FOUND / a storage status.
  grpc::Status find(const std::string& name, v1::Check* check);
  // After a stored change: the new set to the registry, tracker and probes.
  void publish(const std::string& what, const std::string& name);
  // The status of a write storage refused (not kOk).
  grpc::Status write_refused(const storage::ApiCheckWrite& write, const std::string& name, int64_t expected_version);
  grpc::Status file_owned(const std::string& name, const char* what) const;

  storage::CheckRepository& checks_;
  storage::ApiCheckStore& api_checks_;
  ApiAuthorizer& auth_;
  CheckPublisher& publisher_;
  CheckRunner& runner_;
  const std::string checks_file_;
  CheckServiceOptions options_;
};

}  // namespace vantage::coordinator
