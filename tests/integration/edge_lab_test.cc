// The fault lab's fake Cloudflare edge in front of the lab origin, driven by
// the project's own attempt code (edge leg through the edge, origin leg
// straight at the origin): every row of diagnosis.md section 4 the lab can
// produce ends in its cause_id, each error page format is recognised by the
// rule of section 2 that names it, and the keep-alive race of section 5 is
// reproduced on demand.
#include "tools/lab/edge.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/check_config.h"
#include "common/failure_class.h"
#include "probe/attempt.h"
#include "probe/edge.h"
#include "tools/lab/origin.h"

namespace vantage::lab {
namespace {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using Steady = std::chrono::steady_clock;

std::string address(uint16_t port) { return "127.0.0.1:" + std::to_string(port); }

// A check whose URL goes through the edge listener `edge_port` and whose
// origin leg goes straight at `origin_port`, as a user would declare it.
v1::Check make_check(uint16_t edge_port, const std::string& path, uint16_t origin_port,
                     milliseconds timeout = std::chrono::seconds(5)) {
  v1::Check check;
  check.set_name("edge-lab");
  check.set_url("http://" + address(edge_port) + path);
  check.mutable_origin()->set_address(address(origin_port));
  *check.mutable_timeout() = to_duration(timeout);
  *check.mutable_interval() = to_duration(std::chrono::seconds(60));
  std::string problem;
  EXPECT_TRUE(normalize_check(check, &problem)) << problem;
  return check;
}

v1::CheckResult run(const v1::Check& check, probe::AttemptOptions options = {}) {
  asio::io_context io;
  auto future = asio::co_spawn(
      io, probe::run_attempt(check, RealClock::instance(), probe::HttpLimits{}, std::move(options)), asio::use_future);
  io.run();
  return future.get();
}

// A port nothing listens on: bound once, then closed.
uint16_t closed_port() {
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return acceptor.local_endpoint().port();
}

// A blocking GET with Connection: close; the whole response (head and body)
// or what arrived before `timeout`.
std::string raw_get(uint16_t port, const std::string& path, milliseconds timeout = std::chrono::seconds(5)) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) {
    const std::string request =
        "GET " + path + " HTTP/1.1\r\nHost: shop.example.com\r\nUser-Agent: edge-lab-test\r\nConnection: close\r\n\r\n";
    ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    const auto deadline = Steady::now() + timeout;
    for (;;) {
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - Steady::now()).count();
      pollfd p{fd, POLLIN, 0};
      if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) != 1) break;
      char buffer[16 * 1024];
      const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n <= 0) break;
      response.append(buffer, static_cast<size_t>(n));
    }
  }
  if (fd >= 0) ::close(fd);
  return response;
}

std::string body_of(const std::string& response) {
  const auto end = response.find("\r\n\r\n");
  return end == std::string::npos ? "" : response.substr(end + 4);
}

// ---------------------------------------------------------------------------
// Section 4: one origin fault through the edge -> the cause.

struct Row {
  const char* name;
  std::string path;
  uint32_t edge_code;
  v1::FailureClass origin_class;
  const char* cause_id;
};

class EdgeDiagnosis : public ::testing::TestWithParam<Row> {
 protected:
  static void SetUpTestSuite() {
    origin_ = std::make_unique<Origin>("127.0.0.1", 0);
    EdgeSettings settings;
    settings.colos = {"FRA", "AMS", "IAD"};
    settings.origin_port = origin_->port();
    edge_ = std::make_unique<Edge>(settings);
  }
  static void TearDownTestSuite() {
    edge_.reset();
    origin_.reset();
  }
  static std::unique_ptr<Origin> origin_;
  static std::unique_ptr<Edge> edge_;
};
std::unique_ptr<Origin> EdgeDiagnosis::origin_;
std::unique_ptr<Edge> EdgeDiagnosis::edge_;

TEST_P(EdgeDiagnosis, NamesTheCause) {
  const auto& row = GetParam();
  const auto result = run(make_check(edge_->port("FRA"), row.path, origin_->port()));
  const auto& edge = result.edge();
  EXPECT_EQ(edge.failure_class(), v1::FAILURE_CLASS_EDGE_ERROR) << edge.error();
  EXPECT_EQ(edge.response().status(), row.edge_code);
  EXPECT_EQ(edge.edge().edge_code(), row.edge_code);
  EXPECT_TRUE(edge.edge().edge_generated());
  EXPECT_EQ(edge.edge().rule(), v1::EDGE_RULE_HTML_TEMPLATE);
  EXPECT_EQ(edge.edge().error_source(), v1::ERROR_SOURCE_HOST);
  EXPECT_EQ(edge.edge().colo(), "FRA");
  EXPECT_EQ(edge.edge().ray_id().size(), 16u);
  EXPECT_TRUE(edge.edge().via_cloudflare());
  ASSERT_TRUE(result.has_origin());
  EXPECT_EQ(result.origin().failure_class(), row.origin_class)
      << failure_class_name(result.origin().failure_class()) << ": " << result.origin().error();
  EXPECT_EQ(result.diagnosis().cause_id(), row.cause_id) << result.diagnosis().cause();
}

INSTANTIATE_TEST_SUITE_P(
    Section4, EdgeDiagnosis,
    ::testing::Values(
        Row{"empty_reply", "/fault/empty-reply", 520, v1::FAILURE_CLASS_EMPTY_REPLY, "origin_empty_reply"},
        Row{"reset", "/fault/reset", 520, v1::FAILURE_CLASS_CONNECTION_RESET, "origin_resets_connections"},
        Row{"partial_head", "/fault/partial-head", 520, v1::FAILURE_CLASS_INCOMPLETE_HEAD,
            "origin_crashes_mid_response"},
        Row{"truncated_body", "/fault/truncated-body", 520, v1::FAILURE_CLASS_TRUNCATED_BODY,
            "origin_crashes_mid_response"},
        Row{"reset_mid_body", "/fault/reset-mid-body", 520, v1::FAILURE_CLASS_TRUNCATED_BODY,
            "origin_crashes_mid_response"},
        Row{"bad_status_line", "/fault/bad-status-line", 520, v1::FAILURE_CLASS_MALFORMED_STATUS_LINE,
            "origin_malformed_http"},
        Row{"banner", "/fault/banner", 520, v1::FAILURE_CLASS_MALFORMED_STATUS_LINE, "origin_malformed_http"},
        Row{"http09", "/fault/http09", 520, v1::FAILURE_CLASS_MALFORMED_STATUS_LINE, "origin_malformed_http"},
        Row{"header_without_colon", "/fault/header-without-colon", 520, v1::FAILURE_CLASS_MALFORMED_HEADER,
            "origin_malformed_http"},
        Row{"conflicting_length", "/fault/conflicting-length", 520, v1::FAILURE_CLASS_BAD_FRAMING,
            "origin_malformed_http"},
        Row{"length_and_chunked", "/fault/length-and-chunked", 520, v1::FAILURE_CLASS_BAD_FRAMING,
            "origin_malformed_http"},
        Row{"bad_chunk", "/fault/bad-chunk", 520, v1::FAILURE_CLASS_BAD_FRAMING, "origin_malformed_http"},
        Row{"headers_140kb", "/fault/headers?kb=140", 520, v1::FAILURE_CLASS_HEADERS_TOO_LARGE,
            "origin_headers_too_large"},
        Row{"header_fields_400", "/fault/header-fields?count=400", 520, v1::FAILURE_CLASS_HEADERS_TOO_LARGE,
            "origin_headers_too_large"}),
    [](const ::testing::TestParamInfo<Row>& info) { return std::string(info.param.name); });

TEST_F(EdgeDiagnosis, HealthyOriginPassesThroughWithRayAndColoOfEachListener) {
  for (const char* colo : {"FRA", "AMS", "IAD"}) {
    const auto result = run(make_check(edge_->port(colo), "/", origin_->port()));
    EXPECT_EQ(result.edge().failure_class(), v1::FAILURE_CLASS_OK) << result.edge().error();
    EXPECT_EQ(result.edge().response().status(), 200u);
    EXPECT_EQ(result.edge().edge().colo(), colo);
    EXPECT_EQ(result.edge().edge().ray_id().size(), 16u);
    EXPECT_FALSE(result.has_origin());  // the origin leg runs on failures only
    EXPECT_FALSE(result.has_diagnosis());
  }
}

TEST_F(EdgeDiagnosis, LabFaultRulesPickTheColoAndScatterPeriodicFailures) {
  auto status = [](uint16_t port) { return raw_get(port, "/").substr(0, 12); };
  // Only requests through FRA fail; the origin reached directly is fine.
  ASSERT_NE(raw_get(origin_->port(), "/lab/fault?name=empty-reply&colo=FRA").find("fault set"), std::string::npos);
  EXPECT_EQ(status(edge_->port("FRA")), "HTTP/1.1 520");
  EXPECT_EQ(status(edge_->port("AMS")), "HTTP/1.1 200");
  EXPECT_EQ(status(origin_->port()), "HTTP/1.1 200");
  // A periodic rule for every colo fails once per period, each time through
  // another colo.
  raw_get(origin_->port(), "/lab/fault?name=none");
  raw_get(origin_->port(), "/lab/fault?name=empty-reply&every_s=1");
  EXPECT_EQ(status(edge_->port("IAD")), "HTTP/1.1 520");
  EXPECT_EQ(status(edge_->port("IAD")), "HTTP/1.1 200") << "within the period";
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  EXPECT_EQ(status(edge_->port("IAD")), "HTTP/1.1 200") << "the same colo again is skipped";
  EXPECT_EQ(status(edge_->port("AMS")), "HTTP/1.1 520");
  raw_get(origin_->port(), "/lab/fault?name=none");
  EXPECT_EQ(status(edge_->port("FRA")), "HTTP/1.1 200");
  EXPECT_NE(raw_get(origin_->port(), "/lab/fault?colo=FRA").find("400 Bad Request"), std::string::npos);
}

TEST_F(EdgeDiagnosis, Origin503IsPassedThroughUnchanged) {
  const auto result = run(make_check(edge_->port("AMS"), "/status/503", origin_->port()));
  EXPECT_EQ(result.edge().failure_class(), v1::FAILURE_CLASS_ORIGIN_5XX);
  EXPECT_EQ(result.edge().edge().rule(), v1::EDGE_RULE_ORIGIN_BODY);
  EXPECT_FALSE(result.edge().edge().edge_generated());
  EXPECT_EQ(result.edge().edge().colo(), "AMS");
  const auto response = raw_get(edge_->port("AMS"), "/status/503");
  EXPECT_EQ(body_of(response), "status 503\n");
  EXPECT_NE(response.find("Server: cloudflare\r\n"), std::string::npos);
  EXPECT_NE(response.find("-AMS\r\n"), std::string::npos);
}

TEST_F(EdgeDiagnosis, TraceIsAnsweredByTheEdge) {
  const uint64_t before = origin_->requests();
  for (const char* colo : {"FRA", "AMS", "IAD"}) {
    const auto response = raw_get(edge_->port(colo), "/cdn-cgi/trace");
    ASSERT_TRUE(response.starts_with("HTTP/1.1 200 ")) << response;
    EXPECT_NE(response.find("cf-ray: "), std::string::npos);
    EXPECT_NE(response.find("Server: cloudflare"), std::string::npos);
    const auto trace = probe::parse_trace(body_of(response));
    ASSERT_TRUE(trace.has_value()) << response;
    EXPECT_EQ(trace->colo, colo);
    EXPECT_EQ(trace->http, "http/1.1");
    EXPECT_EQ(trace->tls, "off");
    EXPECT_FALSE(trace->loc.empty());
    EXPECT_EQ(trace->fields.at("ip"), "127.0.0.1");
    EXPECT_EQ(trace->fields.at("h"), "shop.example.com");
    for (const char* key : {"fl", "ts"}) EXPECT_TRUE(trace->fields.contains(key)) << key;
  }
  EXPECT_EQ(origin_->requests(), before);  // never forwarded
}

TEST_F(EdgeDiagnosis, AcceptJsonGetsJsonWhateverTheFormat) {
  auto check = make_check(edge_->port("IAD"), "/fault/empty-reply", origin_->port());
  (*check.mutable_headers())["Accept"] = "application/json";
  const auto result = run(check);
  EXPECT_EQ(result.edge().edge().rule(), v1::EDGE_RULE_JSON);
  EXPECT_EQ(result.edge().edge().edge_code(), 520u);
  EXPECT_EQ(result.edge().edge().error_name(), "web_server_unknown_error");
  EXPECT_EQ(result.edge().edge().error_category(), "origin");
  EXPECT_EQ(result.edge().edge().colo(), "IAD");
  EXPECT_EQ(result.diagnosis().cause_id(), "origin_empty_reply");
}

// ---------------------------------------------------------------------------
// Section 2: each body format of the edge's own pages -> its rule.

struct FormatCase {
  const char* name;
  EdgeErrorFormat format;
  std::string path;
  uint32_t code;
  v1::EdgeRule rule;
};

class EdgeFormat : public ::testing::TestWithParam<FormatCase> {};

TEST_P(EdgeFormat, RecognisedByItsRule) {
  const auto& c = GetParam();
  Origin origin("127.0.0.1", 0);
  EdgeSettings settings;
  settings.colos = {"WAW"};
  settings.origin_port = origin.port();
  settings.format = c.format;
  Edge edge(settings);
  const auto result = run(make_check(edge.port("WAW"), c.path, origin.port()));
  EXPECT_EQ(result.edge().failure_class(), v1::FAILURE_CLASS_EDGE_ERROR) << result.edge().error();
  EXPECT_EQ(result.edge().edge().rule(), c.rule);
  EXPECT_EQ(result.edge().edge().edge_code(), c.code);
  EXPECT_TRUE(result.edge().edge().edge_generated());
  EXPECT_EQ(result.edge().edge().colo(), "WAW");
}

INSTANTIATE_TEST_SUITE_P(
    Section2, EdgeFormat,
    ::testing::Values(
        FormatCase{"json_520", EdgeErrorFormat::kJson, "/fault/empty-reply", 520, v1::EDGE_RULE_JSON},
        FormatCase{"html_520", EdgeErrorFormat::kHtml, "/fault/empty-reply", 520, v1::EDGE_RULE_HTML_TEMPLATE},
        FormatCase{"compact_520", EdgeErrorFormat::kCompact, "/fault/empty-reply", 520, v1::EDGE_RULE_COMPACT},
        // The unbranded page is for Cloudflare's internal errors; a 52x falls back to the template.
        FormatCase{"unbranded_520_is_html", EdgeErrorFormat::kUnbranded, "/fault/empty-reply", 520,
                   v1::EDGE_RULE_HTML_TEMPLATE},
        FormatCase{"unbranded_502", EdgeErrorFormat::kUnbranded, "/cdn-cgi/lab/error/502", 502,
                   v1::EDGE_RULE_UNBRANDED},
        FormatCase{"compact_502", EdgeErrorFormat::kCompact, "/cdn-cgi/lab/error/502", 502, v1::EDGE_RULE_COMPACT},
        FormatCase{"json_521", EdgeErrorFormat::kJson, "/cdn-cgi/lab/error/521", 521, v1::EDGE_RULE_JSON}),
    [](const ::testing::TestParamInfo<FormatCase>& info) { return std::string(info.param.name); });

TEST(EdgeLab, InternalErrorTemplateMarksTheCloudflareBox) {
  Origin origin("127.0.0.1", 0);
  EdgeSettings settings;
  settings.origin_port = origin.port();
  Edge edge(settings);
  const auto result = run(make_check(edge.port("FRA"), "/cdn-cgi/lab/error/500", origin.port()));
  EXPECT_EQ(result.edge().edge().rule(), v1::EDGE_RULE_HTML_TEMPLATE);
  EXPECT_EQ(result.edge().edge().error_source(), v1::ERROR_SOURCE_CLOUDFLARE);
  EXPECT_EQ(result.edge().edge().edge_code(), 500u);
}

TEST(EdgeLab, BrandedOrigin502IsOrigin5xx) {
  Origin origin("127.0.0.1", 0);
  EdgeSettings settings;
  settings.origin_port = origin.port();
  settings.origin_502_branded = true;
  Edge edge(settings);
  const auto result = run(make_check(edge.port("FRA"), "/status/502", origin.port()));
  EXPECT_EQ(result.edge().failure_class(), v1::FAILURE_CLASS_ORIGIN_5XX) << result.edge().error();
  EXPECT_EQ(result.edge().edge().rule(), v1::EDGE_RULE_HTML_TEMPLATE);
  EXPECT_EQ(result.edge().edge().error_source(), v1::ERROR_SOURCE_HOST);
  EXPECT_EQ(result.edge().edge().edge_code(), 502u);
  EXPECT_FALSE(result.edge().edge().edge_generated());
  ASSERT_TRUE(result.has_origin());
  EXPECT_EQ(result.origin().failure_class(), v1::FAILURE_CLASS_ORIGIN_5XX);
  EXPECT_EQ(result.diagnosis().cause_id(), "origin_5xx") << result.diagnosis().cause();
}

// ---------------------------------------------------------------------------
// Section 4: connect and timeout rows.

TEST(EdgeLab, RefusedOriginIs521OriginRefusing) {
  const uint16_t port = closed_port();
  EdgeSettings settings;
  settings.origin_port = port;
  Edge edge(settings);
  const auto result = run(make_check(edge.port("FRA"), "/", port));
  EXPECT_EQ(result.edge().edge().edge_code(), 521u);
  EXPECT_EQ(result.edge().edge().error_source(), v1::ERROR_SOURCE_HOST);
  ASSERT_TRUE(result.has_origin());
  EXPECT_EQ(result.origin().failure_class(), v1::FAILURE_CLASS_CONNECT_REFUSED);
  EXPECT_EQ(result.diagnosis().cause_id(), "origin_refusing");
}

TEST(EdgeLab, StalledOriginIs524OriginTooSlow) {
  Origin origin("127.0.0.1", 0);
  EdgeSettings settings;
  settings.origin_port = origin.port();
  settings.read_timeout = milliseconds(800);
  Edge edge(settings);
  // The check waits a bit longer than the edge's read timeout, so the edge
  // answers 524 in time and the origin leg itself times out.
  const auto start = Steady::now();
  const auto result = run(make_check(edge.port("FRA"), "/fault/stall?seconds=5", origin.port(), milliseconds(1500)));
  EXPECT_EQ(result.edge().edge().edge_code(), 524u) << result.edge().error();
  EXPECT_EQ(result.edge().edge().colo(), "FRA");
  ASSERT_TRUE(result.has_origin());
  EXPECT_EQ(result.origin().failure_class(), v1::FAILURE_CLASS_TIMEOUT_HEADERS);
  EXPECT_EQ(result.diagnosis().cause_id(), "origin_too_slow");
  EXPECT_LT(Steady::now() - start, std::chrono::seconds(4));
}

// A listener that never accepts, its accept queue full: further SYNs are
// dropped (tcp_abort_on_overflow 0, the Linux default), so connecting times
// out, like an origin whose firewall drops packets.
class BlackholeListener {
 public:
  BlackholeListener() : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof sa;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(fd_, 0) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &length) != 0) {
      return;
    }
    port_ = ntohs(sa.sin_port);
    // Fill the queue (backlog 0 still admits one or two) with connections nobody accepts.
    for (int i = 0; i < 4; ++i) {
      const int c = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      ::connect(c, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
      fillers_.push_back(c);
    }
    std::this_thread::sleep_for(milliseconds(100));
  }
  ~BlackholeListener() {
    for (int c : fillers_) ::close(c);
    if (fd_ >= 0) ::close(fd_);
  }
  uint16_t port() const { return port_; }

 private:
  int fd_;
  uint16_t port_ = 0;
  std::vector<int> fillers_;
};

TEST(EdgeLab, ConnectTimeoutIs522OriginDropping) {
  BlackholeListener blackhole;
  ASSERT_NE(blackhole.port(), 0);
  EdgeSettings settings;
  settings.origin_port = blackhole.port();
  settings.connect_timeout = milliseconds(300);
  Edge edge(settings);
  const auto result = run(make_check(edge.port("FRA"), "/", blackhole.port(), milliseconds(1000)));
  if (result.edge().edge().edge_code() != 522) {
    GTEST_SKIP() << "this kernel does not drop SYNs to a full accept queue: the edge answered "
                 << result.edge().edge().edge_code();
  }
  EXPECT_EQ(result.edge().edge().error_source(), v1::ERROR_SOURCE_HOST);
  ASSERT_TRUE(result.has_origin());
  EXPECT_EQ(result.origin().failure_class(), v1::FAILURE_CLASS_CONNECT_TIMEOUT) << result.origin().error();
  EXPECT_EQ(result.diagnosis().cause_id(), "origin_dropping_connections");
}

// Historical limits: an edge with an older, smaller header limit rejects what
// the origin leg (today's limit) accepts: 520 through the edge only.
TEST(EdgeLab, SmallerEdgeHeaderLimitIsEdgeOnly520) {
  Origin origin("127.0.0.1", 0);
  EdgeSettings settings;
  settings.origin_port = origin.port();
  settings.max_header_bytes = 32 * 1024;
  Edge edge(settings);
  const auto result = run(make_check(edge.port("FRA"), "/fault/headers?kb=48", origin.port()));
  EXPECT_EQ(result.edge().edge().edge_code(), 520u);
  ASSERT_TRUE(result.has_origin());
  EXPECT_EQ(result.origin().failure_class(), v1::FAILURE_CLASS_OK);
  EXPECT_EQ(result.diagnosis().cause_id(), "edge_only_520");
}

// ---------------------------------------------------------------------------
// Section 5: the keep-alive race.

TEST(EdgeLab, KeepAliveRaceIsEdgeOnly520) {
  Origin origin("127.0.0.1", 0);
  origin.set_idle_close(milliseconds(200));
  EdgeSettings settings;
  settings.colos = {"FRA", "AMS"};
  settings.origin_port = origin.port();  // edge_idle_reuse stays 900 s
  Edge edge(settings);
  const auto check = make_check(edge.port("FRA"), "/", origin.port());

  const auto first = run(check);
  EXPECT_EQ(first.edge().failure_class(), v1::FAILURE_CLASS_OK) << first.edge().error();
  std::this_thread::sleep_for(milliseconds(400));  // the origin closes the idle connection at 200 ms
  const auto second = run(check);
  EXPECT_EQ(second.edge().edge().edge_code(), 520u) << second.edge().error();
  EXPECT_EQ(second.edge().edge().colo(), "FRA");
  ASSERT_TRUE(second.has_origin());
  EXPECT_EQ(second.origin().failure_class(), v1::FAILURE_CLASS_OK);
  EXPECT_EQ(second.diagnosis().cause_id(), "edge_only_520") << second.diagnosis().cause();
  EXPECT_EQ(edge.origin_connections(), 1u);  // the second request went out on the reused connection

  // The pool is per colo: AMS has no stale connection, and FRA's was dropped.
  EXPECT_EQ(run(make_check(edge.port("AMS"), "/", origin.port())).edge().failure_class(), v1::FAILURE_CLASS_OK);
  EXPECT_EQ(run(check).edge().failure_class(), v1::FAILURE_CLASS_OK);
}

TEST(EdgeLab, NoRaceWhenEdgeReuseIsShorterThanOriginIdleClose) {
  Origin origin("127.0.0.1", 0);
  origin.set_idle_close(milliseconds(200));
  EdgeSettings settings;
  settings.origin_port = origin.port();
  settings.edge_idle_reuse = milliseconds(100);
  Edge edge(settings);
  const auto check = make_check(edge.port("FRA"), "/", origin.port());
  EXPECT_EQ(run(check).edge().failure_class(), v1::FAILURE_CLASS_OK);
  std::this_thread::sleep_for(milliseconds(400));
  EXPECT_EQ(run(check).edge().failure_class(), v1::FAILURE_CLASS_OK);
  EXPECT_EQ(edge.origin_connections(), 2u);
}

TEST(EdgeLab, ReusesOriginConnections) {
  Origin origin("127.0.0.1", 0);
  EdgeSettings settings;
  settings.origin_port = origin.port();
  Edge edge(settings);
  const auto check = make_check(edge.port("FRA"), "/", origin.port());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(run(check).edge().failure_class(), v1::FAILURE_CLASS_OK);
  EXPECT_EQ(edge.origin_connections(), 1u);
  EXPECT_EQ(origin.requests(), 3u);
}

// ---------------------------------------------------------------------------
// Section 2: the follow-ups after a 5xx through the edge.

bool has_evidence(const v1::CheckResult& result, const std::string& text) {
  for (const auto& line : result.diagnosis().evidence()) {
    if (line.find(text) != std::string::npos) return true;
  }
  return false;
}

std::string evidence_of(const v1::CheckResult& result) {
  std::string out;
  for (const auto& line : result.diagnosis().evidence()) out += line + "\n";
  return out;
}

TEST(EdgeLab, JsonFollowUpFillsWhatOnlyTheJsonErrorCarries) {
  Origin origin("127.0.0.1", 0);
  EdgeSettings settings;  // HTML pages: no error name or category in them
  settings.origin_port = origin.port();
  Edge edge(settings);
  auto check = make_check(edge.port("FRA"), "/fault/empty-reply", origin.port());
  const auto plain = run(check);
  EXPECT_EQ(plain.edge().edge().error_name(), "");
  const uint64_t before = origin.requests();

  check.set_follow_up_json(true);
  const auto result = run(check);
  const auto& evidence = result.edge().edge();
  EXPECT_EQ(result.edge().failure_class(), v1::FAILURE_CLASS_EDGE_ERROR);
  EXPECT_EQ(evidence.rule(), v1::EDGE_RULE_HTML_TEMPLATE) << "the 5xx's own page keeps its verdict";
  EXPECT_EQ(evidence.edge_code(), 520u);
  EXPECT_EQ(evidence.error_name(), "web_server_unknown_error");
  EXPECT_EQ(evidence.error_category(), "origin");
  EXPECT_EQ(evidence.colo(), "FRA");
  EXPECT_EQ(evidence.ray_id().size(), 16u);
  EXPECT_EQ(result.diagnosis().cause_id(), "origin_empty_reply");
  EXPECT_TRUE(has_evidence(result, "JSON follow-up: Cloudflare error 520 web_server_unknown_error (origin)"))
      << evidence_of(result);
  // The edge leg, one follow-up, the origin leg: no more.
  EXPECT_EQ(origin.requests() - before, 3u);
}

TEST(EdgeLab, TraceFollowUpConfirmsTheColo) {
  Origin origin("127.0.0.1", 0);
  EdgeSettings settings;
  settings.colos = {"FRA", "AMS"};
  settings.origin_port = origin.port();
  Edge edge(settings);
  auto check = make_check(edge.port("AMS"), "/fault/reset", origin.port());
  check.set_follow_up_trace(true);
  const auto result = run(check);
  EXPECT_EQ(result.edge().edge().trace_colo(), "AMS");
  EXPECT_EQ(result.edge().edge().trace_loc(), "NL");
  EXPECT_EQ(result.edge().edge().error_name(), "") << "no JSON follow-up asked for";
  EXPECT_TRUE(has_evidence(result, "trace follow-up: colo AMS, loc NL")) << evidence_of(result);
}

TEST(EdgeLab, ARetryAfterBeyondTheAttemptSkipsTheFollowUps) {
  // Seconds, and an HTTP date an hour ahead: both far past a 5 s attempt.
  const auto in_an_hour = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now() + std::chrono::hours(1));
  std::tm tm{};
  gmtime_r(&in_an_hour, &tm);
  char date[64];
  std::strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  for (const std::string& retry_after : {std::string("120"), std::string(date)}) {
    Origin origin("127.0.0.1", 0);
    EdgeSettings settings;
    settings.origin_port = origin.port();
    settings.retry_after = retry_after;
    Edge edge(settings);
    auto check = make_check(edge.port("FRA"), "/fault/empty-reply", origin.port());
    check.set_follow_up_json(true);
    check.set_follow_up_trace(true);
    const auto result = run(check);
    const auto seconds = result.edge().response().retry_after_seconds();
    EXPECT_GE(seconds, 120u) << retry_after;
    EXPECT_LE(seconds, 3600u) << retry_after;
    EXPECT_EQ(result.edge().edge().error_name(), "") << retry_after;
    EXPECT_EQ(result.edge().edge().trace_colo(), "") << retry_after;
    EXPECT_TRUE(has_evidence(result, fmt::format("follow-ups (JSON, trace) skipped: the edge said Retry-After {} s",
                                                 seconds)))
        << evidence_of(result);
    EXPECT_EQ(origin.requests(), 2u) << "the edge leg and the origin leg only";
  }
}

TEST(EdgeLab, AShortRetryAfterIsWaitedOutBeforeTheFollowUp) {
  Origin origin("127.0.0.1", 0);
  EdgeSettings settings;
  settings.origin_port = origin.port();
  settings.retry_after = "1";
  Edge edge(settings);
  auto check = make_check(edge.port("FRA"), "/fault/empty-reply", origin.port());
  check.set_follow_up_json(true);
  const auto start = Steady::now();
  const auto result = run(check);
  EXPECT_GE(Steady::now() - start, milliseconds(1000));
  EXPECT_EQ(result.edge().edge().error_name(), "web_server_unknown_error");
  EXPECT_TRUE(has_evidence(result, "JSON follow-up sent after the Retry-After of 1 s")) << evidence_of(result);
}

TEST(EdgeLab, FollowUpsStayWithinTheEdgeLegsDeadline) {
  Origin origin("127.0.0.1", 0);
  EdgeSettings settings;
  settings.origin_port = origin.port();
  settings.read_timeout = milliseconds(700);
  settings.retry_after = "1";
  Edge edge(settings);
  // The 524 takes 0.7 s of a 1.5 s attempt: a 1 s Retry-After no longer fits.
  auto check = make_check(edge.port("FRA"), "/fault/stall?seconds=3", origin.port(), milliseconds(1500));
  check.set_follow_up_json(true);
  const auto start = Steady::now();
  const auto result = run(check);
  EXPECT_EQ(result.edge().edge().edge_code(), 524u);
  EXPECT_TRUE(has_evidence(result, "JSON follow-up skipped: the edge said Retry-After 1 s, more than the"))
      << evidence_of(result);
  EXPECT_LT(Steady::now() - start, milliseconds(1500 + 1500 + 500)) << "edge leg and origin leg, nothing more";
}

// ---------------------------------------------------------------------------
// Section 4: the other edge codes.

// TCP to a multicast address: Linux refuses at once with ENETUNREACH, the
// edge says 523 and the origin leg unreachable, as with a missing route.
TEST(EdgeLab, NoRouteToTheOriginIs523) {
  EdgeSettings settings;
  settings.origin_host = "224.0.0.1";
  settings.origin_port = 80;
  Edge edge(settings);
  auto check = make_check(edge.port("FRA"), "/", 80, milliseconds(2000));
  check.mutable_origin()->set_address("224.0.0.1:80");
  const auto result = run(check);
  ASSERT_TRUE(result.has_origin());
  if (result.origin().failure_class() != v1::FAILURE_CLASS_UNREACHABLE) {
    GTEST_SKIP() << "this host does not refuse TCP to multicast: " << result.origin().error();
  }
  EXPECT_EQ(result.edge().failure_class(), v1::FAILURE_CLASS_EDGE_ERROR);
  EXPECT_EQ(result.edge().edge().edge_code(), 523u);
  EXPECT_EQ(result.diagnosis().cause_id(), "no_route_to_origin") << result.diagnosis().cause();
}

// A plain-HTTP origin where TLS was expected (SSL mode Full on port 80's
// server): the handshake fails both from the edge (525) and from the probe.
TEST(EdgeLab, FailedTlsHandshakeToTheOriginIs525) {
  Origin origin("127.0.0.1", 0);
  EdgeSettings settings;
  settings.origin_port = origin.port();
  settings.origin_tls = true;
  settings.connect_timeout = milliseconds(500);  // the plain origin waits for a request head that never comes
  Edge edge(settings);
  auto check = make_check(edge.port("FRA"), "/", origin.port(), milliseconds(1500));
  check.mutable_origin()->set_scheme("https");
  const auto result = run(check);
  EXPECT_EQ(result.edge().failure_class(), v1::FAILURE_CLASS_EDGE_ERROR);
  EXPECT_EQ(result.edge().edge().edge_code(), 525u) << result.edge().error();
  EXPECT_EQ(result.edge().edge().error_source(), v1::ERROR_SOURCE_HOST);
  ASSERT_TRUE(result.has_origin());
  EXPECT_EQ(result.origin().failure_class(), v1::FAILURE_CLASS_TLS_HANDSHAKE_FAILED) << result.origin().error();
  EXPECT_EQ(result.diagnosis().cause_id(), "edge_origin_tls");
}

// A TLS origin with a self-signed certificate: every handshake ends at the
// client's verification, so it serves nothing else.
class SelfSignedTlsOrigin {
 public:
  SelfSignedTlsOrigin() : acceptor_(io_, {asio::ip::make_address("127.0.0.1"), 0}), context_(asio::ssl::context::tls_server) {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
    X509_set_pubkey(cert, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("127.0.0.1"), -1, -1, 0);
    X509_set_issuer_name(cert, X509_get_subject_name(cert));
    X509_sign(cert, key, EVP_sha256());
    SSL_CTX_use_certificate(context_.native_handle(), cert);
    SSL_CTX_use_PrivateKey(context_.native_handle(), key);
    X509_free(cert);
    EVP_PKEY_free(key);
    asio::co_spawn(io_, serve(), asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~SelfSignedTlsOrigin() {
    io_.stop();
    thread_.join();
  }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }

 private:
  asio::awaitable<void> serve() {
    for (;;) {
      boost::system::error_code ec;
      auto socket = co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      asio::ssl::stream<asio::ip::tcp::socket> tls(std::move(socket), context_);
      co_await tls.async_handshake(asio::ssl::stream_base::server, asio::redirect_error(asio::use_awaitable, ec));
    }
  }
  asio::io_context io_;
  asio::ip::tcp::acceptor acceptor_;
  asio::ssl::context context_;
  std::thread thread_;
};

TEST(EdgeLab, InvalidOriginCertificateIs526) {
  SelfSignedTlsOrigin origin;
  EdgeSettings settings;
  settings.origin_port = origin.port();
  settings.origin_tls = true;
  Edge edge(settings);
  auto check = make_check(edge.port("FRA"), "/", origin.port());
  check.mutable_origin()->set_scheme("https");
  const auto result = run(check);
  EXPECT_EQ(result.edge().failure_class(), v1::FAILURE_CLASS_EDGE_ERROR);
  EXPECT_EQ(result.edge().edge().edge_code(), 526u) << result.edge().error();
  ASSERT_TRUE(result.has_origin());
  EXPECT_EQ(result.origin().failure_class(), v1::FAILURE_CLASS_TLS_CERT_INVALID) << result.origin().error();
  EXPECT_EQ(result.origin().connection().cert_problem(), v1::TLS_CERT_PROBLEM_SELF_SIGNED);
  EXPECT_EQ(result.diagnosis().cause_id(), "edge_origin_tls");
}

// An origin name that does not resolve (.invalid never does, RFC 6761): 530
// with Cloudflare's 1016 in the body, in every format.
TEST(EdgeLab, UnresolvableOriginIs530With1016) {
  for (const auto format : {EdgeErrorFormat::kHtml, EdgeErrorFormat::kJson, EdgeErrorFormat::kCompact}) {
    const std::string name(edge_error_format_name(format));
    EdgeSettings settings;
    settings.origin_host = "origin.invalid";
    settings.origin_port = 80;
    settings.connect_timeout = milliseconds(1000);  // bounds the lookup too
    settings.format = format;
    Edge edge(settings);
    auto check = make_check(edge.port("FRA"), "/", 80, milliseconds(3000));
    check.mutable_origin()->set_address("origin.invalid:80");
    const auto result = run(check);
    EXPECT_EQ(result.edge().failure_class(), v1::FAILURE_CLASS_EDGE_ERROR) << name;
    EXPECT_EQ(result.edge().response().status(), 530u) << name;
    EXPECT_EQ(result.edge().edge().edge_code(), 530u) << name;
    EXPECT_EQ(result.edge().edge().edge_error_code(), 1016u) << name;
    EXPECT_TRUE(result.edge().edge().edge_generated()) << name;
    ASSERT_TRUE(result.has_origin());
    EXPECT_EQ(result.origin().failure_class(), v1::FAILURE_CLASS_DNS_FAILURE) << name;
    EXPECT_EQ(result.diagnosis().cause_id(), "origin_dns") << name;
  }
}

// The cache mode: the edge serves its stored copy while the origin fails.
TEST(EdgeLab, ACachedCopyHidesAFailingOrigin) {
  Origin origin("127.0.0.1", 0);
  EdgeSettings settings;
  settings.origin_port = origin.port();
  settings.cache = true;
  Edge edge(settings);
  const auto check = make_check(edge.port("FRA"), "/fail", origin.port());
  probe::AttemptOptions both;
  both.origin_always = true;  // as diagnose and the origin schedule do
  const auto fresh = run(check, both);
  EXPECT_EQ(fresh.edge().response().cf_cache_status(), "MISS");
  EXPECT_FALSE(fresh.has_diagnosis());

  origin.set_fail_status(500);
  const auto result = run(check, both);
  EXPECT_EQ(result.edge().failure_class(), v1::FAILURE_CLASS_OK) << result.edge().error();
  EXPECT_EQ(result.edge().response().status(), 200u);
  EXPECT_EQ(result.edge().response().cf_cache_status(), "STALE");
  ASSERT_TRUE(result.has_origin());
  EXPECT_EQ(result.origin().failure_class(), v1::FAILURE_CLASS_ORIGIN_5XX);
  EXPECT_EQ(result.diagnosis().cause_id(), "edge_hiding_origin_problem") << result.diagnosis().cause();
}

// ---------------------------------------------------------------------------
// Bounded.

TEST(EdgeLab, DestructorReturnsPromptlyWithAStalledRequest) {
  Origin origin("127.0.0.1", 0);
  EdgeSettings settings;
  settings.origin_port = origin.port();
  auto edge = std::make_unique<Edge>(settings);
  std::thread client([port = edge->port("FRA")] { raw_get(port, "/fault/stall?seconds=30", milliseconds(3000)); });
  std::this_thread::sleep_for(milliseconds(300));
  const auto start = Steady::now();
  edge.reset();
  EXPECT_LT(Steady::now() - start, milliseconds(500));
  client.join();
}

TEST(EdgeLab, RejectsBadSettings) {
  EdgeSettings settings;
  settings.colos = {"fra"};
  EXPECT_THROW(Edge{settings}, std::exception);
  settings.colos = {"FRA", "FRA"};
  EXPECT_THROW(Edge{settings}, std::exception);
  settings.colos = {};
  EXPECT_THROW(Edge{settings}, std::exception);
  EXPECT_EQ(parse_edge_error_format("compact"), EdgeErrorFormat::kCompact);
  EXPECT_FALSE(parse_edge_error_format("xml").has_value());
}

}  // namespace
}  // namespace vantage::lab
