// The certificate expiry series (coordinator/cert_series.h): set from the
// edge leg of each stored result, per check and region; gone with the check.
#include "coordinator/cert_series.h"

#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include "tests/support/process.h"

namespace vantage::coordinator {
namespace {

using vantage::testing::metric_value;

v1::Check check(int64_t id, const std::string& name) {
  v1::Check c;
  c.set_id(id);
  c.set_name(name);
  return c;
}

v1::CheckResult result(int64_t check_id, std::optional<int64_t> leaf, std::optional<int64_t> chain) {
  v1::CheckResult r;
  r.set_check_id(check_id);
  auto* connection = r.mutable_edge()->mutable_connection();
  if (leaf) connection->mutable_cert_not_after()->set_seconds(*leaf);
  if (chain) connection->mutable_chain_not_after()->set_seconds(*chain);
  return r;
}

storage::ResultBatch batch(const std::string& region, std::vector<v1::CheckResult> results) {
  storage::ResultBatch b;
  b.probe.region = region;
  b.results = std::move(results);
  return b;
}

struct Fixture {
  CoordinatorMetrics metrics{std::make_shared<prometheus::Registry>()};
  CheckRegistry checks;
  CertificateSeries series{metrics, checks};

  std::string exposition() const { return prometheus::TextSerializer().Serialize(metrics.registry->Collect()); }
  std::optional<double> leaf(const std::string& check, const std::string& region) const {
    return metric_value(exposition(), "vantage_check_cert_expiry_timestamp_seconds{check=\"" + check +
                                          "\",region=\"" + region + "\"}");
  }
  std::optional<double> chain(const std::string& check, const std::string& region) const {
    return metric_value(exposition(), "vantage_check_cert_chain_expiry_timestamp_seconds{check=\"" + check +
                                          "\",region=\"" + region + "\"}");
  }
};

TEST(CertificateSeries, AStoredResultSetsTheLeafAndChainExpiryOfItsCheckAndRegion) {
  Fixture f;
  f.checks.replace({check(7, "shop"), check(8, "blog")});
  const auto eu = batch("eu-west", {result(7, 2'000'000'000, 1'900'000'000)});
  const auto us = batch("us-east", {result(7, 2'100'000'000, 2'100'000'000), result(8, std::nullopt, std::nullopt)});
  f.series.update({&eu, &us});
  EXPECT_EQ(f.leaf("shop", "eu-west"), 2'000'000'000.0);
  EXPECT_EQ(f.chain("shop", "eu-west"), 1'900'000'000.0) << "the intermediate expires first";
  EXPECT_EQ(f.leaf("shop", "us-east"), 2'100'000'000.0);
  EXPECT_EQ(f.chain("shop", "us-east"), 2'100'000'000.0);
  EXPECT_FALSE(f.leaf("blog", "us-east")) << "a result without TLS makes no series";

  const auto later = batch("eu-west", {result(7, 2'050'000'000, 2'050'000'000)});
  f.series.update({&later});
  EXPECT_EQ(f.leaf("shop", "eu-west"), 2'050'000'000.0) << "the latest result's certificate";
  EXPECT_EQ(f.chain("shop", "eu-west"), 2'050'000'000.0);
}

TEST(CertificateSeries, AResultOfAnUnknownCheckMakesNoSeries) {
  Fixture f;
  f.checks.replace({check(7, "shop")});
  const auto b = batch("eu-west", {result(99, 2'000'000'000, 2'000'000'000)});
  f.series.update({&b});
  EXPECT_EQ(f.exposition().find("check=\""), std::string::npos) << f.exposition();
}

TEST(CertificateSeries, ADeletedOrRenamedChecksSeriesGo) {
  Fixture f;
  f.checks.replace({check(7, "shop"), check(8, "blog")});
  const auto b = batch("eu-west", {result(7, 2'000'000'000, 1'900'000'000), result(8, 2'000'000'000, 2'000'000'000)});
  f.series.update({&b});
  f.checks.replace({check(7, "store")});  // shop renamed store, blog deleted
  f.series.forget_removed();
  EXPECT_FALSE(f.leaf("shop", "eu-west"));
  EXPECT_FALSE(f.chain("shop", "eu-west"));
  EXPECT_FALSE(f.leaf("blog", "eu-west"));
  EXPECT_FALSE(f.chain("blog", "eu-west"));
  // The renamed check's next result is exported under its new name.
  f.series.update({&b});
  EXPECT_EQ(f.leaf("store", "eu-west"), 2'000'000'000.0);
  EXPECT_FALSE(f.leaf("blog", "eu-west"));
}

TEST(CertificateSeries, TheTlsVersionAndCipherSpokenLastAreOneSeriesPerCheckAndRegion) {
  Fixture f;
  f.checks.replace({check(7, "shop")});
  auto tls = [](const std::string& version, const std::string& cipher) {
    auto r = result(7, 2'000'000'000, 2'000'000'000);
    r.mutable_edge()->mutable_connection()->set_tls_version(version);
    r.mutable_edge()->mutable_connection()->set_tls_cipher(cipher);
    return r;
  };
  auto info = [&f](const std::string& version, const std::string& cipher) {
    return metric_value(f.exposition(), "vantage_check_tls_info{check=\"shop\",cipher=\"" + cipher +
                                            "\",region=\"eu-west\",version=\"" + version + "\"}");
  };
  const auto first = batch("eu-west", {tls("TLSv1.2", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")});
  f.series.update({&first});
  EXPECT_EQ(info("TLSv1.2", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"), 1.0) << f.exposition();
  const auto upgraded = batch("eu-west", {tls("TLSv1.3", "TLS_AES_128_GCM_SHA256")});
  f.series.update({&upgraded});
  EXPECT_EQ(info("TLSv1.3", "TLS_AES_128_GCM_SHA256"), 1.0);
  EXPECT_FALSE(info("TLSv1.2", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")) << "replaced, not added";
  f.checks.replace({});
  f.series.forget_removed();
  EXPECT_EQ(f.exposition().find("vantage_check_tls_info{"), std::string::npos) << f.exposition();
}

}  // namespace
}  // namespace vantage::coordinator
