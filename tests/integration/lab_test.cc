// The fault lab's origin, driven by the project's own prober: every fault
// path produces the failure class diagnosis.md (section 3) names for it, and
// the keep-alive settings close connections the way nginx would.
#include "tools/lab/origin.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_future.hpp>
#include <cerrno>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "common/check_config.h"
#include "common/failure_class.h"
#include "probe/attempt.h"
#include "probe/http_check.h"
#include "tests/support/result_text.h"
#include "tests/support/test_certs.h"
#include "tools/lab/tls_garbage.h"

#include <set>

namespace vantage::lab {
namespace {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using Steady = std::chrono::steady_clock;

v1::LegResult attempt(const std::string& url, milliseconds timeout = std::chrono::seconds(5)) {
  v1::Check check;
  check.set_name("lab");
  check.set_url(url);
  *check.mutable_timeout() = to_duration(timeout);
  *check.mutable_interval() = to_duration(std::chrono::seconds(60));
  std::string problem;
  EXPECT_TRUE(normalize_check(check, &problem)) << problem;
  asio::io_context io;
  auto future = asio::co_spawn(io, probe::run_http_attempt(check, RealClock::instance(), probe::HttpLimits{}),
                               asio::use_future);
  io.run();
  return future.get();
}

std::string base_url(const Origin& origin) { return "http://127.0.0.1:" + std::to_string(origin.port()); }

// A plain blocking client on a POSIX socket, every wait bounded by poll(), so
// the test sees exactly what the lab does with the connection.
class RawClient {
 public:
  explicit RawClient(uint16_t port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = fd_ >= 0 && ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  }
  ~RawClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return connected_; }

  bool send_request(const std::string& path) {
    const std::string request = "GET " + path + " HTTP/1.1\r\nHost: lab\r\nUser-Agent: lab-test\r\n\r\n";
    return ::send(fd_, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size());
  }

  // One whole response (head and Content-Length body), or nullopt if the
  // connection ended or `timeout` passed first.
  std::optional<std::string> read_response(milliseconds timeout = std::chrono::seconds(5)) {
    const auto deadline = Steady::now() + timeout;
    for (;;) {
      const auto end = pending_.find("\r\n\r\n");
      if (end != std::string::npos) {
        size_t length = 0;
        const auto field = pending_.find("Content-Length: ");
        if (field != std::string::npos && field < end) length = std::stoul(pending_.substr(field + 16));
        if (pending_.size() >= end + 4 + length) {
          std::string response = pending_.substr(0, end + 4 + length);
          pending_.erase(0, end + 4 + length);
          return response;
        }
      }
      if (receive(deadline) <= 0) return std::nullopt;
    }
  }

  enum class End { kFin, kReset, kTimeout, kData };
  // Waits for the connection to end; `elapsed` is how long it took.
  End wait_end(milliseconds timeout, milliseconds* elapsed) {
    const auto start = Steady::now();
    const auto result = receive(start + timeout);
    *elapsed = std::chrono::duration_cast<milliseconds>(Steady::now() - start);
    if (result > 0) return End::kData;
    if (result == 0) return End::kFin;
    return result == -ECONNRESET ? End::kReset : End::kTimeout;
  }

 private:
  // Bytes received (appended to pending_), 0 on FIN, -errno on error,
  // -ETIMEDOUT when the deadline passed.
  ssize_t receive(Steady::time_point deadline) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Steady::now()).count();
    pollfd p{fd_, POLLIN, 0};
    if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) != 1) return -ETIMEDOUT;
    char buffer[16 * 1024];
    const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
    if (n < 0) return -errno;
    pending_.append(buffer, static_cast<size_t>(n));
    return n;
  }

  int fd_;
  bool connected_ = false;
  std::string pending_;
};

// ---------------------------------------------------------------------------
// One running lab serves every fault, chosen by the path.

struct Fault {
  const char* name;
  std::string path;
  v1::FailureClass expected;
  v1::TransportEnd transport_end = v1::TRANSPORT_END_UNSPECIFIED;  // unspecified: not checked
  milliseconds timeout = std::chrono::seconds(5);
};

class LabFault : public ::testing::TestWithParam<Fault> {
 protected:
  static void SetUpTestSuite() { origin_ = std::make_unique<Origin>("127.0.0.1", 0); }
  static void TearDownTestSuite() { origin_.reset(); }
  static std::unique_ptr<Origin> origin_;
};
std::unique_ptr<Origin> LabFault::origin_;

TEST_P(LabFault, TheProberNamesTheFault) {
  const auto& fault = GetParam();
  auto leg = attempt(base_url(*origin_) + fault.path, fault.timeout);
  EXPECT_EQ(leg.failure_class(), fault.expected) << failure_class_name(leg.failure_class()) << ": " << leg.error();
  if (fault.transport_end != v1::TRANSPORT_END_UNSPECIFIED) {
    EXPECT_EQ(leg.response().transport_end(), fault.transport_end);
  }
}

using std::chrono::seconds;
INSTANTIATE_TEST_SUITE_P(
    Paths, LabFault,
    ::testing::Values(
        Fault{"root", "/", v1::FAILURE_CLASS_OK, v1::TRANSPORT_END_COMPLETE},
        Fault{"empty_reply", "/fault/empty-reply", v1::FAILURE_CLASS_EMPTY_REPLY, v1::TRANSPORT_END_FIN_BEFORE_ANY},
        Fault{"reset", "/fault/reset", v1::FAILURE_CLASS_CONNECTION_RESET, v1::TRANSPORT_END_RST},
        Fault{"reset_mid_body", "/fault/reset-mid-body", v1::FAILURE_CLASS_TRUNCATED_BODY, v1::TRANSPORT_END_RST},
        Fault{"partial_head", "/fault/partial-head", v1::FAILURE_CLASS_INCOMPLETE_HEAD,
              v1::TRANSPORT_END_FIN_MID_HEAD},
        Fault{"bad_status_line", "/fault/bad-status-line", v1::FAILURE_CLASS_MALFORMED_STATUS_LINE},
        Fault{"banner", "/fault/banner", v1::FAILURE_CLASS_MALFORMED_STATUS_LINE},
        Fault{"http09", "/fault/http09", v1::FAILURE_CLASS_MALFORMED_STATUS_LINE},
        Fault{"header_without_colon", "/fault/header-without-colon", v1::FAILURE_CLASS_MALFORMED_HEADER},
        Fault{"conflicting_length", "/fault/conflicting-length", v1::FAILURE_CLASS_BAD_FRAMING},
        Fault{"length_and_chunked", "/fault/length-and-chunked", v1::FAILURE_CLASS_BAD_FRAMING},
        Fault{"bad_chunk", "/fault/bad-chunk", v1::FAILURE_CLASS_BAD_FRAMING},
        Fault{"headers_16k", "/fault/headers?kb=16", v1::FAILURE_CLASS_OK},
        Fault{"headers_32k", "/fault/headers?kb=32", v1::FAILURE_CLASS_OK},
        Fault{"headers_64k", "/fault/headers?kb=64", v1::FAILURE_CLASS_OK},
        Fault{"headers_100k", "/fault/headers?kb=100", v1::FAILURE_CLASS_HEADERS_NEAR_LIMIT},
        Fault{"headers_140k", "/fault/headers?kb=140", v1::FAILURE_CLASS_HEADERS_TOO_LARGE},
        Fault{"header_fields_300", "/fault/header-fields?count=300", v1::FAILURE_CLASS_OK},
        Fault{"header_fields_301", "/fault/header-fields?count=301", v1::FAILURE_CLASS_HEADERS_TOO_LARGE},
        Fault{"truncated_body", "/fault/truncated-body", v1::FAILURE_CLASS_TRUNCATED_BODY,
              v1::TRANSPORT_END_FIN_MID_BODY},
        Fault{"stall", "/fault/stall?seconds=10", v1::FAILURE_CLASS_TIMEOUT_HEADERS, v1::TRANSPORT_END_TIMEOUT,
              milliseconds(300)},
        Fault{"trickle_head", "/fault/trickle-head?delay_ms=100", v1::FAILURE_CLASS_TIMEOUT_HEADERS,
              v1::TRANSPORT_END_TIMEOUT, milliseconds(500)},
        Fault{"big_body", "/fault/big-body?mb=8", v1::FAILURE_CLASS_OK, v1::TRANSPORT_END_COMPLETE},
        Fault{"status_502", "/status/502", v1::FAILURE_CLASS_ORIGIN_5XX},
        Fault{"unknown_fault", "/fault/no-such-fault", v1::FAILURE_CLASS_UNEXPECTED_STATUS}),
    [](const auto& info) { return std::string(info.param.name); });

// ---------------------------------------------------------------------------

TEST(Lab, HeaderBlocksAreTheSizeAndCountAsked) {
  Origin origin("127.0.0.1", 0);
  for (int kb : {16, 32, 64, 100}) {
    auto leg = attempt(base_url(origin) + "/fault/headers?kb=" + std::to_string(kb));
    EXPECT_EQ(leg.response().header_bytes(), kb * 1024u) << kb << " KiB";
    EXPECT_LE(leg.response().largest_header_bytes(), 1000u) << kb << " KiB";
    EXPECT_EQ(leg.response().status(), 200u);
  }
  // 140 KiB in fields of about 1000 bytes stays under the 300-field limit:
  // it fails on bytes, not on count.
  auto leg = attempt(base_url(origin) + "/fault/headers?kb=140");
  EXPECT_EQ(leg.failure_class(), v1::FAILURE_CLASS_HEADERS_TOO_LARGE);
  EXPECT_LT(leg.response().header_count(), 300u);
  EXPECT_GT(leg.response().header_bytes(), 128u * 1024u);

  leg = attempt(base_url(origin) + "/fault/header-fields?count=300");
  EXPECT_EQ(leg.failure_class(), v1::FAILURE_CLASS_OK) << leg.error();
  EXPECT_EQ(leg.response().header_count(), 300u);
}

TEST(Lab, BigBodyStopsAtTheProbersCapAndTheLabCarriesOn) {
  Origin origin("127.0.0.1", 0);
  auto leg = attempt(base_url(origin) + "/fault/big-body?mb=64");
  EXPECT_EQ(leg.failure_class(), v1::FAILURE_CLASS_OK) << leg.error();
  EXPECT_TRUE(leg.response().body_truncated_by_cap());
  EXPECT_EQ(leg.response().body_bytes(), probe::HttpParserLimits{}.max_body_bytes);
  EXPECT_EQ(leg.response().body_bytes(), 1024u * 1024u);
  // The prober went away mid-body; the lab stopped streaming and still serves.
  leg = attempt(base_url(origin) + "/");
  EXPECT_EQ(leg.failure_class(), v1::FAILURE_CLASS_OK) << leg.error();

  // A body the client reads to the end leaves the connection usable.
  RawClient client(origin.port());
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send_request("/fault/big-body?mb=2"));
  auto response = client.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->size(), response->find("\r\n\r\n") + 4 + 2 * 1024 * 1024);
  ASSERT_TRUE(client.send_request("/"));
  response = client.read_response();
  ASSERT_TRUE(response);
  EXPECT_TRUE(response->starts_with("HTTP/1.1 200 OK\r\n"));
}

TEST(Lab, StallsAndTricklesDoNotBlockOtherConnectionsAndStopIsPrompt) {
  auto origin = std::make_unique<Origin>("127.0.0.1", 0);
  RawClient stalled(origin->port());
  RawClient trickled(origin->port());
  ASSERT_TRUE(stalled.connected() && trickled.connected());
  ASSERT_TRUE(stalled.send_request("/fault/stall?seconds=60"));
  ASSERT_TRUE(trickled.send_request("/fault/trickle-head?delay_ms=1000"));
  milliseconds waited{};
  EXPECT_EQ(stalled.wait_end(milliseconds(200), &waited), RawClient::End::kTimeout);

  const auto start = Steady::now();
  auto leg = attempt(base_url(*origin) + "/");
  EXPECT_EQ(leg.failure_class(), v1::FAILURE_CLASS_OK) << leg.error();
  EXPECT_LT(Steady::now() - start, milliseconds(1000));

  const auto stop_start = Steady::now();
  origin.reset();
  EXPECT_LT(Steady::now() - stop_start, milliseconds(1000));
}

TEST(Lab, StallEndsWithAFinAfterItsSeconds) {
  Origin origin("127.0.0.1", 0);
  RawClient client(origin.port());
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send_request("/fault/stall?seconds=1"));
  milliseconds waited{};
  EXPECT_EQ(client.wait_end(milliseconds(5000), &waited), RawClient::End::kFin);
  EXPECT_GE(waited, milliseconds(800));
  EXPECT_LE(waited, milliseconds(3000));
}

TEST(Lab, IdleCloseSendsAFinAfterTheIdleTime) {
  Origin origin("127.0.0.1", 0);
  origin.set_idle_close(milliseconds(400));
  RawClient client(origin.port());
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send_request("/"));
  auto response = client.read_response();
  ASSERT_TRUE(response);
  EXPECT_TRUE(response->starts_with("HTTP/1.1 200 OK\r\n"));
  EXPECT_EQ(response->find("Connection: close"), std::string::npos);
  milliseconds waited{};
  EXPECT_EQ(client.wait_end(milliseconds(5000), &waited), RawClient::End::kFin);
  EXPECT_GE(waited, milliseconds(250));
  EXPECT_LE(waited, milliseconds(2000));
}

TEST(Lab, IdleConnectionsStayOpenByDefault) {
  Origin origin("127.0.0.1", 0);
  RawClient client(origin.port());
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send_request("/"));
  ASSERT_TRUE(client.read_response());
  milliseconds waited{};
  EXPECT_EQ(client.wait_end(milliseconds(700), &waited), RawClient::End::kTimeout);
  ASSERT_TRUE(client.send_request("/"));
  auto response = client.read_response();
  ASSERT_TRUE(response);
  EXPECT_TRUE(response->starts_with("HTTP/1.1 200 OK\r\n"));
  EXPECT_EQ(origin.requests(), 2u);
}

TEST(Lab, MaxRequestsClosesTheConnectionAfterTheNth) {
  Origin origin("127.0.0.1", 0);
  origin.set_max_requests(3);
  RawClient client(origin.port());
  ASSERT_TRUE(client.connected());
  for (int i = 1; i <= 3; ++i) {
    ASSERT_TRUE(client.send_request(i == 2 ? "/fault/headers?kb=4" : "/"));
    auto response = client.read_response();
    ASSERT_TRUE(response) << "request " << i;
    EXPECT_TRUE(response->starts_with("HTTP/1.1 200 OK\r\n")) << "request " << i;
    // Like nginx keepalive_requests: the last response says so.
    EXPECT_EQ(response->find("Connection: close") != std::string::npos, i == 3) << "request " << i;
  }
  milliseconds waited{};
  EXPECT_EQ(client.wait_end(milliseconds(2000), &waited), RawClient::End::kFin);
  EXPECT_EQ(origin.requests(), 3u);

  // A fresh connection starts counting again.
  RawClient again(origin.port());
  ASSERT_TRUE(again.connected());
  ASSERT_TRUE(again.send_request("/"));
  auto response = again.read_response();
  ASSERT_TRUE(response);
  EXPECT_EQ(response->find("Connection: close"), std::string::npos);
}

// ---------------------------------------------------------------------------
// Keep-alive measurements (diagnosis.md section 5) against the lab's nginx-like
// keepalive_timeout and keepalive_requests.

v1::KeepAliveMeasurement measure(const std::string& url, probe::KeepAliveOptions options) {
  v1::Check check;
  check.set_name("lab");
  check.set_url(url);
  *check.mutable_timeout() = to_duration(std::chrono::seconds(2));
  *check.mutable_interval() = to_duration(std::chrono::seconds(60));
  std::string problem;
  EXPECT_TRUE(normalize_check(check, &problem)) << problem;
  asio::io_context io;
  auto future = asio::co_spawn(io, probe::measure_keep_alive(check, RealClock::instance(), {}, std::move(options)),
                               asio::use_future);
  io.run();
  return future.get();
}

double in_seconds(const google::protobuf::Duration& d) { return static_cast<double>(d.seconds()) + d.nanos() / 1e9; }

TEST(Lab, KeepAliveMeasuresTheIdleCloseAndTheRequestsPerConnection) {
  Origin origin("127.0.0.1", 0);
  origin.set_idle_close(milliseconds(2000));
  origin.set_max_requests(5);
  probe::KeepAliveOptions options;
  options.max_idle = std::chrono::seconds(5);
  int idle_calls = 0;
  options.on_idle = [&] { ++idle_calls; };
  const auto m = measure(base_url(origin) + "/", options);
  EXPECT_EQ(m.error(), "");
  EXPECT_EQ(m.requests_per_connection(), 5u);
  EXPECT_GE(in_seconds(m.idle_close_after()), 1.8);
  EXPECT_LE(in_seconds(m.idle_close_after()), 2.5);
  EXPECT_GT(m.measure_time().seconds(), 0);
  EXPECT_EQ(idle_calls, 1);
  EXPECT_EQ(origin.requests(), 6u) << "five on the first connection, one on the idle one";
}

TEST(Lab, KeepAliveWithinTheBoundsIsZero) {
  Origin origin("127.0.0.1", 0);  // no idle close, no request limit
  probe::KeepAliveOptions options;
  options.max_idle = milliseconds(300);
  options.max_requests = 20;
  const auto start = Steady::now();
  const auto m = measure(base_url(origin) + "/", options);
  EXPECT_EQ(m.error(), "");
  EXPECT_EQ(m.requests_per_connection(), 0u) << "still open after 20";
  EXPECT_EQ(in_seconds(m.idle_close_after()), 0.0) << "still open after 300 ms";
  EXPECT_EQ(origin.requests(), 21u);
  EXPECT_LT(Steady::now() - start, milliseconds(2000));
}

TEST(Lab, KeepAliveNotMeasuredSaysWhy) {
  uint16_t port = 0;
  {
    Origin gone("127.0.0.1", 0);
    port = gone.port();
  }  // closed: nothing listens there now
  auto m = measure("http://127.0.0.1:" + std::to_string(port) + "/", {});
  EXPECT_NE(m.error().find("connect 127.0.0.1"), std::string::npos) << m.error();
  EXPECT_EQ(m.requests_per_connection(), 0u);

  // A response the connection cannot carry on from.
  Origin broken("127.0.0.1", 0);
  m = measure(base_url(broken) + "/fault/truncated-body", {});
  EXPECT_NE(m.error().find("request 1 on one connection"), std::string::npos) << m.error();
}

TEST(Lab, KeepAliveCancelEndsTheIdleWaitAtOnce) {
  Origin origin("127.0.0.1", 0);
  v1::Check check;
  check.set_name("lab");
  check.set_url(base_url(origin) + "/");
  std::string problem;
  EXPECT_TRUE(normalize_check(check, &problem)) << problem;
  asio::io_context io;
  auto cancel = std::make_shared<probe::KeepAliveCancel>();
  asio::steady_timer later(io);
  probe::KeepAliveOptions options;
  options.max_idle = std::chrono::seconds(30);
  options.max_requests = 3;
  options.cancel = cancel;
  options.on_idle = [&] {
    later.expires_after(milliseconds(200));
    later.async_wait([cancel](const boost::system::error_code&) { cancel->cancel(); });
  };
  const auto start = Steady::now();
  auto future = asio::co_spawn(io, probe::measure_keep_alive(check, RealClock::instance(), {}, options), asio::use_future);
  io.run();
  const auto m = future.get();
  EXPECT_EQ(m.error(), "cancelled");
  EXPECT_LT(Steady::now() - start, milliseconds(2000));
}

TEST(Lab, ExistingPathsKeepTheirBehaviour) {
  Origin origin("127.0.0.1", 0);
  EXPECT_EQ(attempt(base_url(origin) + "/").response().body_bytes(), 3u);
  EXPECT_EQ(attempt(base_url(origin) + "/status/503").failure_class(), v1::FAILURE_CLASS_ORIGIN_5XX);
  EXPECT_EQ(attempt(base_url(origin) + "/status/404").failure_class(), v1::FAILURE_CLASS_UNEXPECTED_STATUS);
  origin.set_fail_status(500);
  auto leg = attempt(base_url(origin) + "/fail");
  EXPECT_EQ(leg.failure_class(), v1::FAILURE_CLASS_ORIGIN_5XX);
  EXPECT_EQ(leg.response().status(), 500u);
  EXPECT_EQ(attempt(base_url(origin) + "/nowhere").response().status(), 404u);
  EXPECT_FALSE(Origin::help().empty());
}

// ---------------------------------------------------------------------------
// Hostile sites.

v1::CheckResult full_attempt(const std::string& url) {
  v1::Check check;
  check.set_name("lab");
  check.set_url(url);
  *check.mutable_timeout() = to_duration(std::chrono::seconds(5));
  *check.mutable_interval() = to_duration(std::chrono::seconds(60));
  std::string problem;
  EXPECT_TRUE(normalize_check(check, &problem)) << problem;
  asio::io_context io;
  auto future = asio::co_spawn(io, probe::run_attempt(check, RealClock::instance(), probe::HttpLimits{}),
                               asio::use_future);
  io.run();
  return future.get();
}

TEST(LabHostile, HostileHeadersLeaveAValidResultAndNoNewColos) {
  Origin origin("127.0.0.1", 0);
  std::set<std::string> colos;
  for (int i = 0; i < 20; ++i) {
    const auto result = full_attempt(base_url(origin) + "/fault/hostile-headers");
    ASSERT_EQ(result.edge().failure_class(), v1::FAILURE_CLASS_OK) << result.edge().error();
    EXPECT_EQ(test_support::bad_text_fields(result), std::vector<std::string>{});
    EXPECT_TRUE(test_support::reparses(result));
    EXPECT_FALSE(result.edge().response().server().empty());
    EXPECT_LE(result.edge().response().server().size(), 128u);
    colos.insert(result.edge().edge().colo());
  }
  // A real colo code may come up by chance; a new series per result may not.
  EXPECT_TRUE(colos.contains("other"));
  EXPECT_LE(colos.size(), 3u) << "20 random colos must not become 20 label values";
}

TEST(LabHostile, AHostileJsonErrorIsAnEdgeErrorWithBoundedText) {
  Origin origin("127.0.0.1", 0);
  const auto result = full_attempt(base_url(origin) + "/fault/hostile-edge-error");
  const auto& edge = result.edge();
  EXPECT_EQ(edge.failure_class(), v1::FAILURE_CLASS_EDGE_ERROR) << edge.error();
  EXPECT_EQ(edge.edge().rule(), v1::EDGE_RULE_JSON);
  EXPECT_TRUE(edge.edge().error_name().starts_with("bad?name?[31m")) << edge.edge().error_name();
  EXPECT_LE(edge.edge().error_name().size(), 128u);
  EXPECT_EQ(edge.edge().error_category().find('\n'), std::string::npos);
  EXPECT_EQ(test_support::bad_text_fields(result), std::vector<std::string>{});
  EXPECT_TRUE(test_support::reparses(result));
}

TEST(LabHostile, GarbageAfterATlsHandshakeIsAMalformedResponseNotAReset) {
  TlsGarbage server("127.0.0.1", 0);
  // The probe trusts the lab's self-signed certificate (set before this binary's first TLS attempt).
  vantage::testing::TrustedCertificateFile trusted(server.certificate_pem());
  const auto leg = attempt("https://127.0.0.1:" + std::to_string(server.port()) + "/");
  EXPECT_EQ(server.garbled(), 1u) << "the handshake completed: " << leg.error();
  EXPECT_EQ(leg.failure_class(), v1::FAILURE_CLASS_MALFORMED_STATUS_LINE)
      << failure_class_name(leg.failure_class()) << ": " << leg.error();
  EXPECT_EQ(leg.timings().failed_phase(), v1::PHASE_READ_HEAD);
  EXPECT_FALSE(leg.connection().tls_version().empty());
  EXPECT_FALSE(leg.connection().tls_error().empty());
  EXPECT_NE(leg.error().find("not TLS records"), std::string::npos) << leg.error();
}

}  // namespace
}  // namespace vantage::lab
