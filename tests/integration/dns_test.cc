// Name resolution through c-ares, bounded by the attempt's deadline.
#include "probe/dns.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/use_future.hpp>

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

}  // namespace
}  // namespace vantage::probe
