// Name resolution through c-ares, bounded by the attempt's deadline.
#include "probe/dns.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/use_future.hpp>
#include <fmt/format.h>

#include "tests/support/fake_dns.h"

namespace vantage::probe {
namespace {

namespace asio = boost::asio;
using std::chrono::milliseconds;

DnsAnswer resolve(const std::string& host, milliseconds timeout, const std::string& servers = "") {
  asio::io_context io;
  auto future = asio::co_spawn(io, resolve_host(host, timeout, servers), asio::use_future);
  io.run();
  return future.get();
}

TEST(Dns, AddressLiteralsNeedNoQuery) {
  auto answer = resolve("127.0.0.1", milliseconds(100), "127.0.0.1:1");
  ASSERT_TRUE(answer.error.empty()) << answer.error;
  ASSERT_EQ(answer.addresses.size(), 1u);
  EXPECT_EQ(answer.addresses[0].to_string(), "127.0.0.1");
  answer = resolve("::1", milliseconds(100));
  ASSERT_EQ(answer.addresses.size(), 1u);
  EXPECT_TRUE(answer.addresses[0].is_v6());
}

TEST(Dns, LocalhostResolvesFromTheHostsFile) {
  auto answer = resolve("localhost", milliseconds(2000));
  ASSERT_TRUE(answer.error.empty()) << answer.error;
  ASSERT_FALSE(answer.addresses.empty());
}

TEST(Dns, ASilentServerTimesOutWithinTheDeadline) {
  // A UDP socket that never answers stands in for a dead resolver.
  asio::io_context io;
  asio::ip::udp::socket silent(io, {asio::ip::make_address("127.0.0.1"), 0});
  const auto servers = "127.0.0.1:" + std::to_string(silent.local_endpoint().port());
  const auto start = std::chrono::steady_clock::now();
  auto answer = resolve("shop.example.com", milliseconds(400), servers);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_FALSE(answer.error.empty());
  EXPECT_TRUE(answer.timed_out) << answer.error;
  EXPECT_TRUE(answer.addresses.empty());
  EXPECT_LT(took, milliseconds(2000)) << "bounded by the deadline, not the system's resolver timeouts";
}

std::vector<std::string> many_addresses(int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back(fmt::format("198.51.100.{}", i + 1));
  return out;
}

TEST(Dns, ATruncatedUdpAnswerIsAskedAgainOverTcp) {
  // 40 A records: about 670 bytes, more than a UDP answer carries.
  test_support::FakeDns server(many_addresses(40), /*truncate_udp=*/true);
  auto answer = resolve("many.example.com", milliseconds(3000), server.servers());
  ASSERT_TRUE(answer.error.empty()) << answer.error;
  ASSERT_EQ(answer.addresses.size(), 40u);
  EXPECT_EQ(answer.addresses.front().to_string(), "198.51.100.1");
  EXPECT_EQ(answer.addresses.back().to_string(), "198.51.100.40");
  EXPECT_GE(server.udp_queries(), 1);
  EXPECT_GE(server.tcp_queries(), 1) << "the truncated answer must be asked for again over TCP";
}

TEST(Dns, AnUntruncatedAnswerNeedsNoTcp) {
  test_support::FakeDns server({"198.51.100.7"}, /*truncate_udp=*/false);
  auto answer = resolve("one.example.com", milliseconds(3000), server.servers());
  ASSERT_TRUE(answer.error.empty()) << answer.error;
  ASSERT_EQ(answer.addresses.size(), 1u);
  EXPECT_EQ(answer.addresses[0].to_string(), "198.51.100.7");
  EXPECT_EQ(server.tcp_queries(), 0);
}

std::string refused(const std::string& address, bool literal, bool allow_loopback) {
  return refused_target(asio::ip::make_address(address), literal, allow_loopback);
}

TEST(Dns, UnspecifiedAddressesAreNeverTargets) {
  for (const char* address : {"0.0.0.0", "0.1.2.3", "::", "::ffff:0.0.0.0"}) {
    for (bool literal : {false, true}) {
      for (bool allow : {false, true}) {
        EXPECT_NE(refused(address, literal, allow).find("unspecified"), std::string::npos)
            << address << " literal " << literal << " allow " << allow;
      }
    }
  }
}

TEST(Dns, LoopbackFromDnsOnlyWhenAllowedAndLiteralsAreConsent) {
  for (const char* address : {"127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"}) {
    EXPECT_NE(refused(address, false, false).find("loopback"), std::string::npos) << address;
    EXPECT_EQ(refused(address, false, true), "") << address;
    EXPECT_EQ(refused(address, true, false), "") << address;
  }
  for (const char* address : {"169.254.169.254", "fe80::1"}) {
    EXPECT_NE(refused(address, false, true).find("link-local"), std::string::npos) << address;
    EXPECT_EQ(refused(address, true, false), "") << address;
  }
  for (const char* address : {"198.51.100.1", "2001:db8::1", "10.0.0.1", "1.0.0.1"}) {
    EXPECT_EQ(refused(address, false, false), "") << address;
  }
}

}  // namespace
}  // namespace vantage::probe
