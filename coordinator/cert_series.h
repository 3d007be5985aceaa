#pragma once
// The certificate expiry series users alert on (alerts/vantage.rules.yml),
// per check and region, from the edge leg of each result stored:
//   vantage_check_cert_expiry_timestamp_seconds{check,region}        the leaf's notAfter
//   vantage_check_cert_chain_expiry_timestamp_seconds{check,region}  the earliest notAfter of every certificate the
//                                                                   server sent (an intermediate can expire first)
//   vantage_check_tls_info{check,region,version,cipher}              1: the TLS version and cipher spoken last
//                                                                   (one series per check and region, replaced
//                                                                   when they change)
// Bounded by the checks and the regions: a check's series go when it is no
// longer configured (deleted, or renamed: the old name's).

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "coordinator/check_registry.h"
#include "coordinator/metrics.h"
#include "storage/store.h"

namespace vantage::coordinator {

class CertificateSeries {
 public:
  CertificateSeries(CoordinatorMetrics& metrics, const CheckRegistry& checks) : metrics_(metrics), checks_(checks) {}
  // The results just stored (Ingest's commit callback); results of checks the
  // registry does not know (any more) are skipped.
  void update(const std::vector<const storage::ResultBatch*>& batches);
  // After the registry got a new set of checks (CheckPublisher): the series
  // of checks not in it are removed.
  void forget_removed();

 private:
  CoordinatorMetrics& metrics_;
  const CheckRegistry& checks_;
  // Held across the registry's read and the gauges' change, so that a result
  // of a check being deleted cannot bring its series back after forget_removed.
  std::mutex mu_;
  struct Tls {
    std::string version, cipher;  // the labels of its vantage_check_tls_info series; empty: none
  };
  // Sets the check's and region's vantage_check_tls_info series, replacing one of other labels.
  void set_tls_info(const std::string& check, const std::string& region, const v1::ConnectionInfo& connection);
  std::map<std::string, std::map<std::string, Tls>> regions_;  // the series set, by check name and region
};

}  // namespace vantage::coordinator
