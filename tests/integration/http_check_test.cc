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
#include <nlohmann/json.hpp>
#include <thread>

#include "common/text.h"
#include "probe/attempt.h"
#include "probe/report.h"
#include "tests/support/fake_dns.h"
#include "tests/support/result_text.h"
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
  std::string problem;
  EXPECT_TRUE(normalize_check(check, &problem)) << problem;
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
// with a FIN, or with a RST when `reset` is set; with several replies, one
// connection each, in order.
class ScriptedOrigin {
 public:
  ScriptedOrigin(std::string reply, bool reset = false) : ScriptedOrigin(std::vector<std::string>{std::move(reply)}, reset) {}
  ScriptedOrigin(std::vector<std::string> replies, bool reset = false)
      : acceptor_(io_, {asio::ip::make_address("127.0.0.1"), 0}) {
    thread_ = std::thread([this, replies = std::move(replies), reset] {
      for (const auto& reply : replies) {
        asio::ip::tcp::socket socket(io_);
        acceptor_.accept(socket);
        std::array<char, 4096> request;
        boost::system::error_code ec;
        socket.read_some(asio::buffer(request), ec);
        asio::write(socket, asio::buffer(reply), ec);
        if (reset) socket.set_option(asio::socket_base::linger(true, 0));
        socket.close(ec);
      }
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

// ---------------------------------------------------------------------------
// Hostile sites: whatever they send, the result is valid and bounded.

v1::Check normalized(const std::string& url, std::chrono::milliseconds timeout = std::chrono::seconds(2)) {
  v1::Check check;
  check.set_name("t");
  check.set_url(url);
  *check.mutable_timeout() = to_duration(timeout);
  *check.mutable_interval() = to_duration(std::chrono::seconds(60));
  std::string problem;
  EXPECT_TRUE(normalize_check(check, &problem)) << problem;
  return check;
}

v1::CheckResult full_attempt(const v1::Check& check, HttpLimits limits = {}) {
  asio::io_context io;
  auto future = asio::co_spawn(io, run_attempt(check, RealClock::instance(), limits), asio::use_future);
  io.run();
  return future.get();
}

v1::LegResult leg_attempt(const v1::Check& check, HttpLimits limits = {}, LegTarget target = {}) {
  asio::io_context io;
  auto future =
      asio::co_spawn(io, run_http_attempt(check, RealClock::instance(), limits, target), asio::use_future);
  io.run();
  return future.get();
}

std::string e_acute(int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += "\xc3\xa9";
  return out;
}

struct Hostile {
  const char* name;
  std::string reply;
};

class HttpCheckHostile : public ::testing::TestWithParam<Hostile> {};

TEST_P(HttpCheckHostile, TheResultIsValidUtf8AndParsesBack) {
  ScriptedOrigin origin(GetParam().reply);
  auto check = normalized(origin.url());
  const auto result = full_attempt(check);
  EXPECT_EQ(test_support::bad_text_fields(result), std::vector<std::string>{}) << result.ShortDebugString();
  EXPECT_TRUE(test_support::reparses(result)) << "ParseFromString must accept what the probe sends";
  EXPECT_LE(result.edge().response().server().size(), 128u);
  EXPECT_LE(result.edge().response().cf_cache_status().size(), 32u);
  EXPECT_LE(result.edge().edge().error_name().size(), 128u);
  EXPECT_LE(result.edge().error().size(), 1024u);
  const auto colo = result.edge().edge().colo();
  EXPECT_TRUE(colo.empty() || colo == "other" || colo == "FRA") << colo;
}

INSTANTIATE_TEST_SUITE_P(
    Replies, HttpCheckHostile,
    ::testing::Values(
        Hostile{"server_not_utf8",
                "HTTP/1.1 200 OK\r\nServer: \xff\xfe\xc3(" + e_acute(200) +
                    "\r\nCF-Cache-Status: H\xc0\xafT\r\nContent-Length: 0\r\n\r\n"},
        // 'a' then two-byte characters: a cut at 128 bytes lands inside one.
        Hostile{"server_cut_inside_a_character", "HTTP/1.1 200 OK\r\nServer: a" + e_acute(100) +
                                                     "\r\nContent-Length: 0\r\n\r\n"},
        Hostile{"cache_status_cut", "HTTP/1.1 200 OK\r\nCF-Cache-Status: x" + e_acute(40) +
                                        "\r\nContent-Length: 0\r\n\r\n"},
        Hostile{"bad_bytes_in_a_header_name", "HTTP/1.1 200 OK\r\nX-\xff\xfe: v\r\nContent-Length: 0\r\n\r\n"},
        Hostile{"bad_bytes_in_the_status_line", "\xff\xfe\xfd\x00\x1b[31m\r\n\r\n"},
        Hostile{"json_error_with_nul_and_escapes",
                [] {
                  const std::string body = "{\"cloudflare_error\":true,\"error_code\":520,\"error_name\":\"a\\u0000b\\u001b[2J" +
                                           e_acute(500) + "\",\"error_category\":\"\\r\\nX: 1\"}";
                  return fmt::format("HTTP/1.1 520 \r\ncf-ray: 8f1a2b3c4d5e6f70-FRA\r\nContent-Type: "
                                     "application/json\r\nContent-Length: {}\r\n\r\n{}",
                                     body.size(), body);
                }()},
        Hostile{"minted_colo", "HTTP/1.1 520 \r\ncf-ray: 8f1a2b3c4d5e6f70-QQXZ\r\nServer: \xe2\x82\r\n"
                               "Content-Length: 15\r\n\r\nerror code: 520"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(HttpCheckHostileText, TheCheckersSeeTextThatIsNotUtf8) {
  v1::CheckResult result;
  result.mutable_edge()->mutable_response()->set_server("\xff\xfe");  // what the probe used to send
  EXPECT_EQ(test_support::bad_text_fields(result), std::vector<std::string>{"edge.response.server"});
  EXPECT_FALSE(test_support::reparses(result));
  result.mutable_edge()->mutable_response()->set_server("ok");
  result.mutable_diagnosis()->add_evidence(std::string("a\0b", 3));
  EXPECT_EQ(test_support::bad_text_fields(result), std::vector<std::string>{"diagnosis.evidence"});
}

TEST(HttpCheckHostileText, AServerValueCutInsideACharacterEndsOnABoundary) {
  ScriptedOrigin origin("HTTP/1.1 200 OK\r\nServer: a" + e_acute(100) + "\r\nContent-Length: 0\r\n\r\n");
  const auto leg = leg_attempt(normalized(origin.url()));
  EXPECT_EQ(leg.failure_class(), v1::FAILURE_CLASS_OK) << leg.error();
  EXPECT_TRUE(is_valid_utf8(leg.response().server()));
  EXPECT_TRUE(leg.response().server().starts_with("a\xc3\xa9\xc3\xa9")) << leg.response().server();
  EXPECT_LE(leg.response().server().size(), 128u);
}

TEST(HttpCheckHostileText, AColoNoCloudflareDataCentreHasIsOther) {
  ScriptedOrigin origin("HTTP/1.1 520 \r\ncf-ray: 8f1a2b3c4d5e6f70-QQXZ\r\nContent-Length: 15\r\n\r\nerror code: 520");
  const auto leg = leg_attempt(normalized(origin.url()));
  EXPECT_EQ(leg.edge().colo(), "other");
  EXPECT_EQ(leg.edge().ray_id(), "8f1a2b3c4d5e6f70");
  EXPECT_EQ(leg.failure_class(), v1::FAILURE_CLASS_EDGE_ERROR);
}

TEST(HttpCheckHostileText, ATraceFollowUpWithAMintedColoIsOther) {
  ScriptedOrigin origin(std::vector<std::string>{
      "HTTP/1.1 520 \r\ncf-ray: 8f1a2b3c4d5e6f70-FRA\r\nContent-Length: 15\r\n\r\nerror code: 520",
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 27\r\n\r\nfl=1\ncolo=QQX\nloc=\xff\xfeZZ\nh=x\n"});
  auto check = normalized(origin.url());
  check.set_follow_up_trace(true);
  const auto result = full_attempt(check);
  EXPECT_EQ(result.edge().edge().trace_colo(), "other");
  EXPECT_EQ(test_support::bad_text_fields(result), std::vector<std::string>{});
  EXPECT_TRUE(test_support::reparses(result));
}

// ---------------------------------------------------------------------------
// Requests that would inject lines are never sent.

// A listener that tells whether anyone connected (without accepting in between).
class Listener {
 public:
  Listener() : acceptor_(io_, {asio::ip::make_address("127.0.0.1"), 0}) { acceptor_.non_blocking(true); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()) + "/"; }
  bool connected() {
    asio::ip::tcp::socket socket(io_);
    boost::system::error_code ec;
    acceptor_.accept(socket, ec);
    return !ec;
  }

 private:
  asio::io_context io_;
  asio::ip::tcp::acceptor acceptor_;
};

TEST(HttpCheckInjection, CrLfOrNulInAHeaderValueOrABadNameIsRefusedBeforeConnecting) {
  const std::vector<std::pair<std::string, std::string>> headers = {
      {"X-A", "1\r\nX-Injected: yes"}, {"X-B", "line\nbreak"}, {"X-C", std::string("a\0b", 3)},
      {"Bad Name", "x"}, {"X-D:", "x"}, {"", "x"}};
  for (const auto& [name, value] : headers) {
    Listener listener;
    auto check = normalized(listener.url());
    (*check.mutable_headers())[name] = value;  // as if validation had let it through
    const auto leg = leg_attempt(check);
    EXPECT_EQ(leg.failure_class(), v1::FAILURE_CLASS_INVALID_CHECK) << name;
    EXPECT_NE(leg.error().find("request not sent"), std::string::npos) << leg.error();
    EXPECT_TRUE(is_valid_utf8(leg.error()) && leg.error().find('\r') == std::string::npos) << leg.error();
    EXPECT_FALSE(listener.connected()) << "no byte on the wire for header " << safe_text(name, 64);
  }
}

TEST(HttpCheckInjection, CrLfInTheHostOrMethodIsRefusedBeforeConnecting) {
  {
    Listener listener;
    LegTarget target;
    target.host_header = "example.com\r\nX-Injected: yes";
    const auto leg = leg_attempt(normalized(listener.url()), {}, target);
    EXPECT_EQ(leg.failure_class(), v1::FAILURE_CLASS_INVALID_CHECK);
    EXPECT_NE(leg.error().find("Host header has CR"), std::string::npos) << leg.error();
    EXPECT_FALSE(listener.connected());
  }
  {
    Listener listener;
    auto check = normalized(listener.url());
    check.set_method("GET / HTTP/1.1\r\nX: y\r\n\r\nGET");
    const auto leg = leg_attempt(check);
    EXPECT_NE(leg.error().find("method"), std::string::npos) << leg.error();
    EXPECT_FALSE(listener.connected());
  }
  {
    Listener listener;
    auto check = normalized(listener.url());
    check.set_url(listener.url() + "a\r\nX-Injected:%20yes");
    const auto leg = leg_attempt(check);
    EXPECT_EQ(leg.failure_class(), v1::FAILURE_CLASS_INVALID_CHECK) << leg.error();
    EXPECT_FALSE(listener.connected());
  }
}

TEST(HttpCheckInjection, AKeepAliveMeasurementRefusesTheSameRequests) {
  Listener listener;
  auto check = normalized(listener.url());
  (*check.mutable_headers())["X-A"] = "1\r\nX-Injected: yes";
  asio::io_context io;
  auto future = asio::co_spawn(io, measure_keep_alive(check, RealClock::instance(), {}, {}), asio::use_future);
  io.run();
  EXPECT_NE(future.get().error().find("request not sent"), std::string::npos) << future.get().error();
  EXPECT_FALSE(listener.connected());
}

// ---------------------------------------------------------------------------
// Where a name may point.

TEST(HttpCheckTargets, ALoopbackAnswerIsRefusedUnlessAllowed) {
  lab::Origin origin("127.0.0.1", 0);
  const auto check = normalized(fmt::format("http://localhost:{}/", origin.port()));
  auto leg = leg_attempt(check);
  EXPECT_EQ(leg.failure_class(), v1::FAILURE_CLASS_DNS_FAILURE) << leg.error();
  EXPECT_EQ(leg.timings().failed_phase(), v1::PHASE_DNS);
  EXPECT_NE(leg.error().find("loopback"), std::string::npos) << leg.error();
  EXPECT_EQ(origin.requests(), 0u);

  HttpLimits allowed;
  allowed.targets.allow_loopback = true;
  leg = leg_attempt(check, allowed);
  EXPECT_EQ(leg.failure_class(), v1::FAILURE_CLASS_OK) << leg.error();
  EXPECT_EQ(origin.requests(), 1u);
}

TEST(HttpCheckTargets, TheUnspecifiedAddressIsNeverATarget) {
  lab::Origin origin("127.0.0.1", 0);  // a connection to 0.0.0.0 would reach it
  HttpLimits allowed;
  allowed.targets.allow_loopback = true;
  for (const char* host : {"0.0.0.0", "[::]"}) {
    const auto leg = leg_attempt(normalized(fmt::format("http://{}:{}/", host, origin.port())), allowed);
    EXPECT_EQ(leg.failure_class(), v1::FAILURE_CLASS_DNS_FAILURE) << host << ": " << leg.error();
    EXPECT_NE(leg.error().find("unspecified"), std::string::npos) << leg.error();
  }
  EXPECT_EQ(origin.requests(), 0u);
}

TEST(HttpCheckTargets, ANameAnsweredWithTheUnspecifiedAddressIsADnsFailure) {
  lab::Origin origin("127.0.0.1", 0);
  test_support::FakeDns dns({"0.0.0.0"}, false);
  HttpLimits limits;
  limits.targets.dns_servers = dns.servers();
  limits.targets.allow_loopback = true;
  const auto result = full_attempt(normalized(fmt::format("http://shop.example.com:{}/", origin.port())), limits);
  EXPECT_EQ(result.edge().failure_class(), v1::FAILURE_CLASS_DNS_FAILURE) << result.edge().error();
  EXPECT_NE(result.edge().error().find("0.0.0.0 is an unspecified address"), std::string::npos)
      << result.edge().error();
  EXPECT_EQ(origin.requests(), 0u);
}

TEST(HttpCheckTargets, RefusedAnswersAreSkippedWhenOthersRemain) {
  lab::Origin origin("127.0.0.1", 0);
  test_support::FakeDns dns({"0.0.0.0", "127.0.0.1"}, false);
  HttpLimits limits;
  limits.targets.dns_servers = dns.servers();
  limits.targets.allow_loopback = true;
  const auto leg = leg_attempt(normalized(fmt::format("http://shop.example.com:{}/", origin.port())), limits);
  EXPECT_EQ(leg.failure_class(), v1::FAILURE_CLASS_OK) << leg.error();
  EXPECT_EQ(leg.connection().connected_address(), fmt::format("127.0.0.1:{}", origin.port()));
}

TEST(HttpCheckTargets, AKeepAliveMeasurementRefusesALoopbackAnswer) {
  lab::Origin origin("127.0.0.1", 0);
  const auto check = normalized(fmt::format("http://localhost:{}/", origin.port()));
  asio::io_context io;
  auto future = asio::co_spawn(io, measure_keep_alive(check, RealClock::instance(), {}, {}), asio::use_future);
  io.run();
  EXPECT_NE(future.get().error().find("loopback"), std::string::npos) << future.get().error();
  EXPECT_EQ(origin.requests(), 0u);
}

// ---------------------------------------------------------------------------
// diagnose's report of a URL whose bytes are not UTF-8.

TEST(HttpCheckReport, TheJsonAndTextReportsOfAHostileUrlAreValid) {
  lab::Origin origin("127.0.0.1", 0);
  const auto base = fmt::format("http://127.0.0.1:{}/", origin.port());
  v1::Check check = normalized(base);
  check.set_url(base + "\xff\xfe\x1b[2J");  // bypasses validation, as a CLI argument could
  const auto result = full_attempt(check);
  const std::string url = check.url();
  std::string json_text;
  ASSERT_NO_THROW(json_text = report_json(url, "\xc3(", result));
  EXPECT_TRUE(is_valid_utf8(json_text));
  EXPECT_TRUE(nlohmann::json::accept(json_text)) << json_text;
  const auto text = report_text(url, "\xc3(", result);
  EXPECT_TRUE(is_valid_utf8(text));
  EXPECT_EQ(text.find('\x1b'), std::string::npos) << "no terminal escapes from the URL";
}

}  // namespace
}  // namespace vantage::probe
