#include "coordinator/cert_series.h"

#include <unordered_set>

namespace vantage::coordinator {

void CertificateSeries::update(const std::vector<const storage::ResultBatch*>& batches) {
  std::lock_guard lock(mu_);
  for (const auto* batch : batches) {
    for (const auto& result : batch->results) {
      const auto& connection = result.edge().connection();
      if (!connection.has_cert_not_after() && !connection.has_chain_not_after() && connection.tls_version().empty()) {
        continue;
      }
      const auto name = checks_.name_of(result.check_id());
      if (name.empty()) continue;
      const std::map<std::string, std::string> labels{{"check", name}, {"region", batch->probe.region}};
      if (connection.has_cert_not_after()) {
        metrics_.cert_expiry.Add(labels).Set(static_cast<double>(connection.cert_not_after().seconds()));
      }
      if (connection.has_chain_not_after()) {
        metrics_.cert_chain_expiry.Add(labels).Set(static_cast<double>(connection.chain_not_after().seconds()));
      }
      if (!connection.tls_version().empty()) set_tls_info(name, batch->probe.region, connection);
      regions_[name].try_emplace(batch->probe.region);
    }
  }
}

void CertificateSeries::set_tls_info(const std::string& check, const std::string& region,
                                     const v1::ConnectionInfo& connection) {
  auto& tls = regions_[check][region];
  if (tls.version == connection.tls_version() && tls.cipher == connection.tls_cipher()) return;
  auto labels = [&](const Tls& t) {
    return std::map<std::string, std::string>{
        {"check", check}, {"region", region}, {"version", t.version}, {"cipher", t.cipher}};
  };
  if (!tls.version.empty()) metrics_.tls_info.Remove(&metrics_.tls_info.Add(labels(tls)));
  tls = {connection.tls_version(), connection.tls_cipher()};
  metrics_.tls_info.Add(labels(tls)).Set(1);
}

void CertificateSeries::forget_removed() {
  std::unordered_set<std::string> configured;
  std::lock_guard lock(mu_);
  for (const auto& check : checks_.all()) configured.insert(check.name());
  for (auto it = regions_.begin(); it != regions_.end();) {
    if (configured.contains(it->first)) {
      ++it;
      continue;
    }
    for (const auto& [region, tls] : it->second) {
      const std::map<std::string, std::string> labels{{"check", it->first}, {"region", region}};
      // Add returns the existing series (or makes one, removed at once).
      for (auto* family : {&metrics_.cert_expiry, &metrics_.cert_chain_expiry}) family->Remove(&family->Add(labels));
      if (!tls.version.empty()) {
        auto& info = metrics_.tls_info.Add(
            {{"check", it->first}, {"region", region}, {"version", tls.version}, {"cipher", tls.cipher}});
        metrics_.tls_info.Remove(&info);
      }
    }
    it = regions_.erase(it);
  }
}

}  // namespace vantage::coordinator
