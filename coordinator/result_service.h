#pragma once
// ResultService (public API, role read): a check's stored results, newest
// first with opaque page tokens (the last row's key: no repeat, no skip while
// results arrive), and its summary over a window: reachability, uptime by the
// check's periods, latency percentiles overall and by region, failure classes
// and the 52x by region and colo. PostgreSQL computes them
// (storage::ResultQueries).

#include <string>
#include <string_view>

#include "common/clock.h"
#include "coordinator/api_auth.h"
#include "coordinator/api_pages.h"
#include "storage/store.h"
#include "vantage/v1/result_service.grpc.pb.h"

namespace vantage::coordinator {

struct ResultServiceOptions {
  PageLimits pages;  // 100 by default, at most 1000
};

class ResultServiceImpl final : public v1::ResultService::Service {
 public:
  ResultServiceImpl(storage::ResultQueries& results, ApiAuthorizer& auth, const Clock& clock,
                    ResultServiceOptions options = {});

  grpc::Status ListResults(grpc::ServerContext* context, const v1::ListResultsRequest* request,
                           v1::ListResultsResponse* response) override;
  grpc::Status GetCheckSummary(grpc::ServerContext* context, const v1::GetCheckSummaryRequest* request,
                               v1::GetCheckSummaryResponse* response) override;

 private:
  // The stored check named `name`, or INVALID_ARGUMENT / NOT_FOUND naming
  // `field`, or a storage status.
  grpc::Status find_check(const std::string& name, const char* field, storage::ResultCheck* check);

  storage::ResultQueries& results_;
  ApiAuthorizer& auth_;
  const Clock& clock_;
  ResultServiceOptions options_;
};

}  // namespace vantage::coordinator
