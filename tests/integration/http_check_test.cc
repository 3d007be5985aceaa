// The plain-HTTP prober against the lab origin and against nothing at all.
#include "probe/http_check.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_future.hpp>

#include "common/check_config.h"
#include "tools/lab/origin.h"

namespace vantage::probe {
namespace {

namespace asio = boost::asio;

v1::LegResult attempt(const std::string& url, std::chrono::milliseconds timeout = std::chrono::seconds(2)) {
  v1::Check check;
  check.set_name("t");
  check.set_url(url);
  *check.mutable_timeout() = to_duration(timeout);
  *check.mutable_interval() = to_duration(std::chrono::seconds(60));
  EXPECT_EQ(normalize_check(check), "");
  asio::io_context io;
  auto future = asio::co_spawn(io, run_http_attempt(check, RealClock::instance(), HttpLimits{}),
                               asio::use_future);
  io.run();
  return future.get();
}

uint16_t closed_port() {
  // Bind, learn the port, close: nothing listens there afterwards.
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  return acceptor.local_endpoint().port();
}

TEST(HttpCheck, OkAgainstAHealthyOrigin) {
  lab::Origin origin("127.0.0.1", 0);
  auto leg = attempt("http://127.0.0.1:" + std::to_string(origin.port()) + "/");
  EXPECT_EQ(leg.failure_class(), v1::FAILURE_CLASS_OK) << leg.error();
  EXPECT_EQ(leg.response().status(), 200u);
  EXPECT_EQ(leg.response().transport_end(), v1::TRANSPORT_END_COMPLETE);
  EXPECT_EQ(leg.response().body_bytes(), 3u);
  EXPECT_GT(leg.timings().total_us(), 0u);
  EXPECT_GE(leg.timings().total_us(), leg.timings().first_byte_us());
  EXPECT_GE(leg.timings().first_byte_us(), leg.timings().request_written_us());
  EXPECT_EQ(leg.connection().connected_address(), "127.0.0.1:" + std::to_string(origin.port()));
}

TEST(HttpCheck, FiveHundredsAreOrigin5xxAndOthersUnexpected) {
  lab::Origin origin("127.0.0.1", 0);
  const auto base = "http://127.0.0.1:" + std::to_string(origin.port());
  auto leg = attempt(base + "/status/503");
  EXPECT_EQ(leg.failure_class(), v1::FAILURE_CLASS_ORIGIN_5XX);
  EXPECT_EQ(leg.response().status(), 503u);
  leg = attempt(base + "/status/404");
  EXPECT_EQ(leg.failure_class(), v1::FAILURE_CLASS_UNEXPECTED_STATUS);
  EXPECT_EQ(leg.response().status(), 404u);
}

TEST(HttpCheck, RefusedConnectionIsConnectRefused) {
  auto leg = attempt("http://127.0.0.1:" + std::to_string(closed_port()) + "/");
  EXPECT_EQ(leg.failure_class(), v1::FAILURE_CLASS_CONNECT_REFUSED) << leg.error();
  EXPECT_EQ(leg.timings().failed_phase(), v1::PHASE_CONNECT);
  EXPECT_EQ(leg.response().transport_end(), v1::TRANSPORT_END_NOT_CONNECTED);
}

TEST(HttpCheck, SilentServerIsTimeoutHeaders) {
  // Accepts the connection (the kernel does, from the backlog) and never answers.
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  auto leg = attempt("http://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()) + "/",
                     std::chrono::milliseconds(300));
  EXPECT_EQ(leg.failure_class(), v1::FAILURE_CLASS_TIMEOUT_HEADERS) << leg.error();
  EXPECT_EQ(leg.timings().failed_phase(), v1::PHASE_READ_HEAD);
  EXPECT_GE(leg.timings().time_to_error_us(), 250'000u);
}

}  // namespace
}  // namespace vantage::probe
