// Check.ip_family through run_attempt against the fault lab: a name with an
// A and an AAAA record (tests/support/fake_dns.h) for a lab origin listening
// on 127.0.0.1 and ::1 at the same port, so which family a leg used shows in
// the address it connected to. Every leg says where it connected: the edge
// leg, the origin leg, each redirect hop and the follow-ups (their evidence).
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <memory>

#include <fmt/format.h>

#include "common/check_config.h"
#include "probe/attempt.h"
#include "tests/support/fake_dns.h"
#include "tools/lab/edge.h"
#include "tools/lab/origin.h"

namespace vantage::probe {
namespace {

namespace asio = boost::asio;

// The lab origin on 127.0.0.1 and on ::1, at one port (another is tried
// when that port is taken on ::1).
std::unique_ptr<lab::Origin> dual_stack_origin() {
  for (int tries = 0; tries < 20; ++tries) {
    auto origin = std::make_unique<lab::Origin>("127.0.0.1", 0);
    if (origin->also_listen("::1")) return origin;
  }
  ADD_FAILURE() << "no port free on both 127.0.0.1 and ::1";
  return nullptr;
}

v1::Check check_of(const std::string& url, v1::IpFamily family) {
  v1::Check check;
  check.set_name("family");
  check.set_url(url);
  check.set_ip_family(family);
  *check.mutable_timeout() = to_duration(std::chrono::seconds(5));
  *check.mutable_interval() = to_duration(std::chrono::seconds(60));
  std::string problem;
  EXPECT_TRUE(normalize_check(check, &problem)) << problem;
  return check;
}

HttpLimits resolving_with(const test_support::FakeDns& dns) {
  HttpLimits limits;
  limits.targets.dns_servers = dns.servers();
  limits.targets.allow_loopback = true;
  return limits;
}

v1::CheckResult run(const v1::Check& check, const HttpLimits& limits, AttemptOptions options = {}) {
  asio::io_context io;
  auto future = asio::co_spawn(io, run_attempt(check, RealClock::instance(), limits, std::move(options)),
                               asio::use_future);
  io.run();
  return future.get();
}

std::vector<std::string> addresses_of(const v1::LegResult& leg) {
  std::vector<std::string> out;
  for (const auto& a : leg.connection().addresses()) out.push_back(a.address());
  return out;
}

using Texts = std::vector<std::string>;

class IpFamilyLab : public ::testing::Test {
 protected:
  void SetUp() override {
    origin_ = dual_stack_origin();
    ASSERT_TRUE(origin_);
  }
  std::string url(const std::string& path = "/") const {
    return fmt::format("http://dual.example.com:{}{}", origin_->port(), path);
  }
  std::string v4() const { return fmt::format("127.0.0.1:{}", origin_->port()); }
  std::string v6() const { return fmt::format("[::1]:{}", origin_->port()); }

  std::unique_ptr<lab::Origin> origin_;
  test_support::FakeDns dns_{{"127.0.0.1"}, false, {"::1"}};
};

TEST_F(IpFamilyLab, EachFamilySettingConnectsOverTheFamilyItAsksFor) {
  struct Case {
    v1::IpFamily family;
    std::string connected;
    uint32_t version;
    Texts tried;
  };
  const std::vector<Case> cases = {
      {v1::IP_FAMILY_UNSPECIFIED, v4(), 4, {"127.0.0.1", "::1"}},
      {v1::IP_FAMILY_PREFER_V4, v4(), 4, {"127.0.0.1", "::1"}},
      {v1::IP_FAMILY_PREFER_V6, v6(), 6, {"::1", "127.0.0.1"}},
      {v1::IP_FAMILY_ONLY_V4, v4(), 4, {"127.0.0.1"}},
      {v1::IP_FAMILY_ONLY_V6, v6(), 6, {"::1"}},
  };
  for (const auto& c : cases) {
    const auto result = run(check_of(url(), c.family), resolving_with(dns_));
    const auto& edge = result.edge();
    EXPECT_EQ(edge.failure_class(), v1::FAILURE_CLASS_OK) << c.family << ": " << edge.error();
    EXPECT_EQ(edge.connection().connected_address(), c.connected) << c.family;
    EXPECT_EQ(edge.connection().ip_family(), c.version) << c.family;
    EXPECT_EQ(addresses_of(edge), c.tried) << c.family;
  }
  EXPECT_EQ(origin_->requests(), cases.size());
}

TEST_F(IpFamilyLab, APreferredFamilyThatRefusesFallsBackToTheOther) {
  lab::Origin v4_only("127.0.0.1", 0);  // nothing on [::1] at its port
  const auto result =
      run(check_of(fmt::format("http://dual.example.com:{}/", v4_only.port()), v1::IP_FAMILY_PREFER_V6),
          resolving_with(dns_));
  EXPECT_EQ(result.edge().failure_class(), v1::FAILURE_CLASS_OK) << result.edge().error();
  EXPECT_EQ(result.edge().connection().connected_address(), fmt::format("127.0.0.1:{}", v4_only.port()));
  EXPECT_EQ(result.edge().connection().ip_family(), 4u);
}

TEST_F(IpFamilyLab, OnlyTheOtherFamilyIsNeverTried) {
  lab::Origin v4_only("127.0.0.1", 0);
  const auto result =
      run(check_of(fmt::format("http://dual.example.com:{}/", v4_only.port()), v1::IP_FAMILY_ONLY_V6),
          resolving_with(dns_));
  EXPECT_EQ(result.edge().failure_class(), v1::FAILURE_CLASS_CONNECT_REFUSED) << result.edge().error();
  EXPECT_EQ(addresses_of(result.edge()), Texts{"::1"});
  EXPECT_EQ(v4_only.requests(), 0u) << "the IPv4 address that would have answered is never tried";
}

TEST_F(IpFamilyLab, ANameWithoutAnAddressOfTheOnlyFamilyIsADnsFailureThatSaysWhatItHas) {
  test_support::FakeDns v4_name({"127.0.0.1"}, false);
  const auto result = run(check_of(url(), v1::IP_FAMILY_ONLY_V6), resolving_with(v4_name));
  EXPECT_EQ(result.edge().failure_class(), v1::FAILURE_CLASS_DNS_FAILURE);
  EXPECT_EQ(result.edge().error(),
            "resolve dual.example.com: no IPv6 address (ip_family: ipv6); it has 127.0.0.1");
  test_support::FakeDns v6_name({}, false, {"::1"});
  const auto v6_only = run(check_of(url(), v1::IP_FAMILY_ONLY_V4), resolving_with(v6_name));
  EXPECT_EQ(v6_only.edge().failure_class(), v1::FAILURE_CLASS_DNS_FAILURE);
  EXPECT_EQ(v6_only.edge().error(), "resolve dual.example.com: no IPv4 address (ip_family: ipv4); it has ::1");
  EXPECT_EQ(origin_->requests(), 0u);
}

TEST_F(IpFamilyLab, AnAddressLiteralOfTheOtherFamilyIsAnInvalidCheck) {
  // Validation refuses this check (check_config.h); a probe still refuses it
  // from a coordinator that did not (an older one).
  auto contradiction = check_of(fmt::format("http://127.0.0.1:{}/", origin_->port()), v1::IP_FAMILY_UNSPECIFIED);
  contradiction.set_ip_family(v1::IP_FAMILY_ONLY_V6);
  const auto result = run(contradiction, resolving_with(dns_));
  EXPECT_EQ(result.edge().failure_class(), v1::FAILURE_CLASS_INVALID_CHECK);
  EXPECT_EQ(result.edge().error(), "127.0.0.1 is an IPv4 address and the check's ip_family is ipv6");
  const auto v6_literal =
      run(check_of(fmt::format("http://[::1]:{}/", origin_->port()), v1::IP_FAMILY_ONLY_V6), resolving_with(dns_));
  EXPECT_EQ(v6_literal.edge().failure_class(), v1::FAILURE_CLASS_OK) << v6_literal.edge().error();
  EXPECT_EQ(v6_literal.edge().connection().connected_address(), v6());
  EXPECT_EQ(origin_->requests(), 1u) << "nothing sent for the contradiction";
}

TEST_F(IpFamilyLab, TheOriginLegConnectsOverTheChecksFamilyAndSaysWhere) {
  auto check = check_of(url(), v1::IP_FAMILY_ONLY_V6);
  check.mutable_origin()->set_address(fmt::format("dual.example.com:{}", origin_->port()));
  AttemptOptions both;
  both.origin_always = true;
  const auto result = run(check, resolving_with(dns_), both);
  ASSERT_TRUE(result.has_origin());
  EXPECT_EQ(result.origin().failure_class(), v1::FAILURE_CLASS_OK) << result.origin().error();
  EXPECT_EQ(result.origin().connection().connected_address(), v6());
  EXPECT_EQ(result.origin().connection().ip_family(), 6u);
  EXPECT_EQ(result.origin().url(), url());
  EXPECT_EQ(result.edge().url(), url());
}

TEST_F(IpFamilyLab, EachRedirectHopSaysWhereItConnected) {
  auto check = check_of(url("/fault/redirect?to=/"), v1::IP_FAMILY_PREFER_V6);
  check.set_follow_redirects(3);
  const auto result = run(check, resolving_with(dns_));
  EXPECT_EQ(result.edge().failure_class(), v1::FAILURE_CLASS_OK) << result.edge().error();
  ASSERT_EQ(result.edge().redirects_size(), 1);
  EXPECT_EQ(result.edge().redirects(0).connected_address(), v6());
  EXPECT_EQ(result.edge().connection().connected_address(), v6());
  EXPECT_EQ(result.edge().url(), url());
}

// The follow-ups after a 5xx through the (IPv4-only) lab edge: each evidence
// line names the address its request connected to.
TEST(IpFamilyFollowUps, EachFollowUpSaysWhereItConnected) {
  lab::Origin origin("127.0.0.1", 0);
  lab::EdgeSettings settings;
  settings.origin_port = origin.port();
  lab::Edge edge(settings);
  const auto edge_address = fmt::format("127.0.0.1:{}", edge.port("FRA"));
  auto check = check_of(fmt::format("http://{}/fault/empty-reply", edge_address), v1::IP_FAMILY_ONLY_V4);
  check.set_follow_up_json(true);
  check.set_follow_up_trace(true);
  const auto result = run(check, HttpLimits{});
  EXPECT_EQ(result.edge().connection().connected_address(), edge_address);
  int via = 0;
  for (const auto& line : result.diagnosis().evidence()) {
    if (line.ends_with(", via " + edge_address)) ++via;
  }
  EXPECT_EQ(via, 2) << "the JSON and the trace follow-up";
}

}  // namespace
}  // namespace vantage::probe
