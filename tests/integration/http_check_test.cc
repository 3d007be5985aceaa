// The plain-HTTP prober against the lab origin and against nothing at all.
#include "probe/http_check.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_future.hpp>

#include "common/check_config.h"
#include "common/diagnosis.h"
#include "common/failure_class.h"

#include <boost/asio/write.hpp>
#include <fmt/format.h>
#include <thread>
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

// An origin that answers one connection with scripted bytes, then closes it
// with a FIN, or with a RST when `reset` is set.
class ScriptedOrigin {
 public:
  ScriptedOrigin(std::string reply, bool reset = false)
      : acceptor_(io_, {asio::ip::make_address("127.0.0.1"), 0}) {
    thread_ = std::thread([this, reply = std::move(reply), reset] {
      asio::ip::tcp::socket socket(io_);
      acceptor_.accept(socket);
      std::array<char, 4096> request;
      boost::system::error_code ec;
      socket.read_some(asio::buffer(request), ec);
      asio::write(socket, asio::buffer(reply), ec);
      if (reset) socket.set_option(asio::socket_base::linger(true, 0));
      socket.close(ec);
    });
  }
  ~ScriptedOrigin() { thread_.join(); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()) + "/"; }

 private:
  asio::io_context io_;
  asio::ip::tcp::acceptor acceptor_;
  std::thread thread_;
};

std::string header_block(size_t bytes) {
  std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n";
  for (int i = 0; head.size() + 1100 < bytes; ++i) head += fmt::format("X-Filler-{:05d}: {}\r\n", i, std::string(1000, 'a'));
  return head + "\r\n";
}

struct Scripted {
  const char* name;
  std::string reply;
  bool reset;
  v1::FailureClass expected;
};

class HttpCheckScripted : public ::testing::TestWithParam<Scripted> {};

TEST_P(HttpCheckScripted, TheStrictParserNamesWhatWentWrong) {
  ScriptedOrigin origin(GetParam().reply, GetParam().reset);
  auto leg = attempt(origin.url());
  EXPECT_EQ(leg.failure_class(), GetParam().expected)
      << failure_class_name(leg.failure_class()) << ": " << leg.error();
}

INSTANTIATE_TEST_SUITE_P(
    Classes, HttpCheckScripted,
    ::testing::Values(
        Scripted{"empty_reply", "", false, v1::FAILURE_CLASS_EMPTY_REPLY},
        Scripted{"reset", "", true, v1::FAILURE_CLASS_CONNECTION_RESET},
        Scripted{"partial_head", "HTTP/1.1 200 OK\r\nContent-Ty", false, v1::FAILURE_CLASS_INCOMPLETE_HEAD},
        Scripted{"banner", "SSH-2.0-OpenSSH_9.2\r\n", false, v1::FAILURE_CLASS_MALFORMED_STATUS_LINE},
        Scripted{"no_colon", "HTTP/1.1 200 OK\r\nBroken header\r\n\r\n", false, v1::FAILURE_CLASS_MALFORMED_HEADER},
        Scripted{"two_lengths", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", false,
                 v1::FAILURE_CLASS_BAD_FRAMING},
        Scripted{"truncated", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", false,
                 v1::FAILURE_CLASS_TRUNCATED_BODY},
        Scripted{"headers_140k", header_block(140 * 1024), false, v1::FAILURE_CLASS_HEADERS_TOO_LARGE},
        Scripted{"headers_100k", header_block(100 * 1024), false, v1::FAILURE_CLASS_HEADERS_NEAR_LIMIT},
        Scripted{"headers_64k", header_block(64 * 1024), false, v1::FAILURE_CLASS_OK},
        Scripted{"origin_503", "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy", false,
                 v1::FAILURE_CLASS_ORIGIN_5XX},
        Scripted{"edge_520", "HTTP/1.1 520 \r\ncf-ray: 8f1a2b3c4d5e6f70-FRA\r\nContent-Length: 15\r\n\r\nerror code: 520",
                 false, v1::FAILURE_CLASS_EDGE_ERROR}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(HttpCheck, AnEdge520CarriesItsColoRayAndRule) {
  ScriptedOrigin origin(
      "HTTP/1.1 520 \r\ncf-ray: 8f1a2b3c4d5e6f70-FRA\r\nServer: cloudflare\r\nContent-Length: 15\r\n\r\nerror code: 520");
  auto leg = attempt(origin.url());
  EXPECT_EQ(leg.edge().edge_code(), 520u);
  EXPECT_EQ(leg.edge().colo(), "FRA");
  EXPECT_EQ(leg.edge().ray_id(), "8f1a2b3c4d5e6f70");
  EXPECT_EQ(leg.edge().rule(), v1::EDGE_RULE_COMPACT);
  EXPECT_TRUE(leg.edge().edge_generated());
  EXPECT_EQ(leg.response().server(), "cloudflare");
  EXPECT_EQ(diagnose(leg, nullptr).cause_id(), "edge_520");
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
