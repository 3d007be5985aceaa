// Following redirects (Check.follow_redirects, probe/redirects.h) through
// run_attempt against the fault lab's origin, and a TLS site of the test's
// own for the scheme changes: not followed by default, chains with their
// hops, relative Locations, the three redirect classes, the method after a
// 303, and one timeout for the whole chain.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "common/check_config.h"
#include "probe/attempt.h"
#include "tests/support/test_certs.h"
#include "tools/lab/origin.h"

namespace vantage::probe {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

// The test CA, trusted by the prober for the whole process (tests/support/test_certs.h).
const vantage::testing::TestCa& test_ca() { return vantage::testing::trusted_test_ca("Vantage Redirects Test CA"); }

// An https site for "localhost" that answers every request with its reply
// (set before the first request: a redirect may name the site's own port).
class TlsSite {
 public:
  explicit TlsSite(std::string reply = {})
      : acceptor_(io_, {asio::ip::make_address("127.0.0.1"), 0}),
        context_(asio::ssl::context::tls_server),
        reply_(std::move(reply)) {
    const auto leaf = test_ca().issue("localhost", "DNS:localhost", {-60, 86400});
    context_.use_certificate_chain(asio::buffer(leaf.cert));
    context_.use_private_key(asio::buffer(leaf.key_pem()), asio::ssl::context::pem);
    thread_ = std::thread([this] {
      for (;;) {
        tcp::socket socket(io_);
        boost::system::error_code ec;
        acceptor_.accept(socket, ec);
        if (ec || stopping_) return;
        asio::ssl::stream<tcp::socket&> tls(socket, context_);
        tls.handshake(asio::ssl::stream_base::server, ec);
        if (ec) continue;
        std::array<char, 4096> request;
        tls.read_some(asio::buffer(request), ec);
        asio::write(tls, asio::buffer(current_reply()), ec);
        tls.shutdown(ec);
      }
    });
  }
  ~TlsSite() {
    stopping_ = true;
    boost::system::error_code ignored;
    tcp::socket wake(io_);  // the blocked accept returns, sees stopping_, ends
    wake.connect(acceptor_.local_endpoint(), ignored);
    thread_.join();
  }
  void set_reply(std::string reply) {
    std::lock_guard lock(mutex_);
    reply_ = std::move(reply);
  }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }
  std::string url(const std::string& path = "/") const { return "https://localhost:" + std::to_string(port()) + path; }

 private:
  std::string current_reply() {
    std::lock_guard lock(mutex_);
    return reply_;
  }

  asio::io_context io_;
  tcp::acceptor acceptor_;
  asio::ssl::context context_;
  std::mutex mutex_;
  std::string reply_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

std::string redirect_reply(int status, const std::string& location) {
  return "HTTP/1.1 " + std::to_string(status) + " Moved\r\nLocation: " + location +
         "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
}

// What a URL's query value needs escaped for the lab's to= (it %-decodes it).
std::string escaped(const std::string& text) {
  std::string out;
  for (char ch : text) {
    if (ch == '?' || ch == '&' || ch == '%' || ch == '#' || ch == '=' || ch == ':') {
      out += fmt::format("%{:02X}", static_cast<unsigned char>(ch));
    } else {
      out.push_back(ch);
    }
  }
  return out;
}

class Redirects : public ::testing::Test {
 protected:
  std::string lab(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(origin_.port()) + path; }

  // A check of `url` (the defaults of the checks file: expected 200..399)
  // following `follow` redirects.
  static v1::Check check_of(const std::string& url, uint32_t follow, const std::string& method = "GET",
                            std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    v1::Check check;
    check.set_name("redirects");
    check.set_url(url);
    check.set_method(method);
    *check.mutable_timeout() = to_duration(timeout);
    *check.mutable_interval() = to_duration(std::chrono::seconds(60));
    std::string problem;
    EXPECT_TRUE(normalize_check(check, &problem)) << problem;
    check.set_follow_redirects(follow);
    return check;
  }

  static v1::CheckResult run(const v1::Check& check, AttemptOptions options = {}) {
    asio::io_context io;
    auto future =
        asio::co_spawn(io, run_attempt(check, RealClock::instance(), HttpLimits{}, std::move(options)), asio::use_future);
    io.run();
    return future.get();
  }

  lab::Origin origin_{"127.0.0.1", 0};
};

TEST_F(Redirects, NotFollowedByDefaultTheRedirectIsTheResponse) {
  auto check = check_of(lab("/fault/redirect-chain?n=3"), 0);
  auto edge = run(check).edge();
  EXPECT_EQ(edge.failure_class(), v1::FAILURE_CLASS_OK) << "302 is in the default 200..399: " << edge.error();
  EXPECT_EQ(edge.response().status(), 302u);
  EXPECT_EQ(edge.redirects_size(), 0);

  check.clear_expected_status();
  auto* only_200 = check.add_expected_status();
  only_200->set_min(200);
  only_200->set_max(200);
  edge = run(check).edge();
  EXPECT_EQ(edge.failure_class(), v1::FAILURE_CLASS_UNEXPECTED_STATUS);
  EXPECT_EQ(edge.response().status(), 302u);
  EXPECT_EQ(origin_.requests(), 2u) << "one request each, nothing followed";
}

TEST_F(Redirects, AChainOfThreeIsFollowedWithEachHopRecordedInOrder) {
  const auto result = run(check_of(lab("/fault/redirect-chain?n=3"), 5));
  const auto& edge = result.edge();
  EXPECT_EQ(edge.failure_class(), v1::FAILURE_CLASS_OK) << edge.error();
  EXPECT_EQ(edge.response().status(), 200u);
  ASSERT_EQ(edge.redirects_size(), 3);
  for (int i = 0; i < 3; ++i) {
    const auto& hop = edge.redirects(i);
    EXPECT_EQ(hop.url(), lab("/fault/redirect-chain?n=" + std::to_string(3 - i)));
    EXPECT_EQ(hop.status(), 302u);
    EXPECT_EQ(hop.location(), "/fault/redirect-chain?n=" + std::to_string(2 - i)) << "as sent";
    EXPECT_EQ(hop.connected_address(), "127.0.0.1:" + std::to_string(origin_.port()));
    EXPECT_GT(hop.timings().total_us(), 0u);
  }
  EXPECT_EQ(edge.url(), lab("/fault/redirect-chain?n=0"));
  EXPECT_FALSE(result.has_diagnosis());
}

TEST_F(Redirects, ARelativeLocationResolvesAgainstTheUrlItAnswered) {
  const auto edge = run(check_of(lab("/fault/redirect?to=..%2Fstatus%2F204"), 1)).edge();
  EXPECT_EQ(edge.failure_class(), v1::FAILURE_CLASS_OK) << edge.error();
  ASSERT_EQ(edge.redirects_size(), 1);
  EXPECT_EQ(edge.redirects(0).location(), "../status/204");
  EXPECT_EQ(edge.url(), lab("/status/204"));
  EXPECT_EQ(edge.response().status(), 204u);
}

TEST_F(Redirects, OneMoreThanAllowedIsTooManyNamingTheChain) {
  const auto result = run(check_of(lab("/fault/redirect-chain?n=3"), 2));
  const auto& edge = result.edge();
  EXPECT_EQ(edge.failure_class(), v1::FAILURE_CLASS_TOO_MANY_REDIRECTS);
  EXPECT_EQ(edge.error(), "more than 2 redirects: " + lab("/fault/redirect-chain?n=3") +
                              " -> /fault/redirect-chain?n=2 -> /fault/redirect-chain?n=1 -> /fault/redirect-chain?n=0");
  EXPECT_EQ(edge.redirects_size(), 2);
  EXPECT_EQ(edge.response().status(), 302u) << "the response that would have been one too many";
  EXPECT_EQ(origin_.requests(), 3u) << "the third redirect is not followed";
  EXPECT_EQ(result.diagnosis().cause_id(), "too_many_redirects");
}

TEST_F(Redirects, ALocationAlreadyVisitedIsALoop) {
  const auto result = run(check_of(lab("/fault/redirect-loop"), 10));
  const auto& edge = result.edge();
  EXPECT_EQ(edge.failure_class(), v1::FAILURE_CLASS_REDIRECT_LOOP);
  EXPECT_EQ(edge.error(),
            "redirect loop: " + lab("/fault/redirect-loop") + " -> /fault/redirect-loop?n=1 -> /fault/redirect-loop");
  EXPECT_EQ(edge.redirects_size(), 1);
  EXPECT_EQ(result.diagnosis().cause_id(), "redirect_loop");
}

TEST_F(Redirects, ARedirectWithoutLocationOrToAnotherSchemeIsBad) {
  auto result = run(check_of(lab("/fault/redirect?status=301"), 3));
  EXPECT_EQ(result.edge().failure_class(), v1::FAILURE_CLASS_BAD_REDIRECT);
  EXPECT_EQ(result.edge().error(), "redirect 301 without a Location: " + lab("/fault/redirect?status=301"));
  EXPECT_EQ(result.diagnosis().cause_id(), "bad_redirect");

  result = run(check_of(lab("/fault/redirect?to=ftp%3A%2F%2Ffiles.test%2F"), 3));
  EXPECT_EQ(result.edge().failure_class(), v1::FAILURE_CLASS_BAD_REDIRECT);
  EXPECT_NE(result.edge().error().find("scheme \"ftp\" is not http or https"), std::string::npos)
      << result.edge().error();
}

TEST_F(Redirects, AStatusThatIsNoRedirectToFollowEndsTheChainAsToday) {
  const auto edge = run(check_of(lab("/fault/redirect?status=304&to=%2F"), 3)).edge();
  EXPECT_EQ(edge.redirects_size(), 0);
  EXPECT_EQ(edge.response().status(), 304u);
  EXPECT_EQ(edge.failure_class(), v1::FAILURE_CLASS_OK) << "304 is in 200..399";
}

TEST_F(Redirects, SeeOtherAfterAPostIsAGetAndTemporaryKeepsThePost) {
  // /fault/method?is=M answers 405 unless the request's method is M.
  auto edge = run(check_of(lab("/fault/redirect?status=303&to=" + escaped("/fault/method?is=GET")), 1, "POST")).edge();
  EXPECT_EQ(edge.failure_class(), v1::FAILURE_CLASS_OK) << edge.error();
  EXPECT_EQ(edge.response().status(), 200u);

  edge = run(check_of(lab("/fault/redirect?status=302&to=" + escaped("/fault/method?is=GET")), 1, "POST")).edge();
  EXPECT_EQ(edge.response().status(), 200u) << "302 turns a POST into a GET, as browsers do";

  edge = run(check_of(lab("/fault/redirect?status=307&to=" + escaped("/fault/method?is=POST")), 1, "POST")).edge();
  EXPECT_EQ(edge.response().status(), 200u) << "307 keeps the POST";
  edge = run(check_of(lab("/fault/redirect?status=308&to=" + escaped("/fault/method?is=GET")), 1, "POST")).edge();
  EXPECT_EQ(edge.response().status(), 405u) << "308 keeps the POST, which /fault/method?is=GET refuses";
}

TEST_F(Redirects, FromHttpToHttpsTheHopSpeaksTlsToTheNewHost) {
  TlsSite site("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
  AttemptOptions options;
  options.resolve.push_back({"localhost", site.port(), "127.0.0.1", 0});  // for the TLS site only
  const auto edge = run(check_of(lab("/fault/redirect?status=301&to=" + escaped(site.url("/"))), 1), options).edge();
  EXPECT_EQ(edge.failure_class(), v1::FAILURE_CLASS_OK) << edge.error();
  ASSERT_EQ(edge.redirects_size(), 1);
  EXPECT_EQ(edge.redirects(0).status(), 301u);
  EXPECT_EQ(edge.redirects(0).timings().tls_us(), 0u) << "the first request was plain";
  EXPECT_EQ(edge.url(), site.url("/"));
  EXPECT_FALSE(edge.connection().tls_version().empty()) << "TLS to localhost, its certificate verified";
  EXPECT_EQ(edge.connection().connected_address(), "127.0.0.1:" + std::to_string(site.port()));
}

TEST_F(Redirects, FromHttpsToHttpTheHopDropsTls) {
  TlsSite site(redirect_reply(302, lab("/")));
  AttemptOptions options;
  options.resolve.push_back({"localhost", site.port(), "127.0.0.1", 0});
  const auto edge = run(check_of(site.url("/"), 1), options).edge();
  EXPECT_EQ(edge.failure_class(), v1::FAILURE_CLASS_OK) << edge.error();
  ASSERT_EQ(edge.redirects_size(), 1);
  EXPECT_GT(edge.redirects(0).timings().tls_us(), 0u);
  EXPECT_EQ(edge.url(), lab("/"));
  EXPECT_TRUE(edge.connection().tls_version().empty());
  EXPECT_EQ(origin_.requests(), 1u);
}

TEST_F(Redirects, AConnectToOverrideHoldsForEveryHopOnTheHostItNames) {
  // curl's --connect-to shop.test:80:127.0.0.1:LAB: the chain's relative
  // Locations stay on shop.test, so each hop goes to the lab, with Host: shop.test.
  AttemptOptions options;
  options.resolve.push_back({"shop.test", 80, "127.0.0.1", origin_.port()});
  const auto edge = run(check_of("http://shop.test/fault/redirect-chain?n=2", 3), options).edge();
  EXPECT_EQ(edge.failure_class(), v1::FAILURE_CLASS_OK) << edge.error();
  ASSERT_EQ(edge.redirects_size(), 2);
  EXPECT_EQ(edge.redirects(0).url(), "http://shop.test/fault/redirect-chain?n=2");
  EXPECT_EQ(edge.redirects(1).url(), "http://shop.test/fault/redirect-chain?n=1");
  EXPECT_EQ(edge.redirects(1).connected_address(), "127.0.0.1:" + std::to_string(origin_.port()));
  EXPECT_EQ(edge.url(), "http://shop.test/fault/redirect-chain?n=0");
}

TEST_F(Redirects, TheFlexibleSslLoopBetweenHttpAndHttpsIsNamedWithItsFix) {
  // The origin sends http to https, and the https site sends it back to http.
  TlsSite site;
  AttemptOptions options;
  options.resolve.push_back({"localhost", site.port(), "127.0.0.1", 0});
  const auto first = lab("/fault/redirect?status=301&to=" + escaped(site.url("/")));
  site.set_reply(redirect_reply(301, first));
  const auto result = run(check_of(first, 10), options);
  EXPECT_EQ(result.edge().failure_class(), v1::FAILURE_CLASS_REDIRECT_LOOP) << result.edge().error();
  EXPECT_EQ(result.edge().error(), "redirect loop: " + first + " -> " + site.url("/") + " -> " + first);
  EXPECT_EQ(result.diagnosis().cause_id(), "redirect_loop");
  EXPECT_NE(result.diagnosis().advice().find("Flexible"), std::string::npos) << result.diagnosis().advice();
}

TEST_F(Redirects, TheWholeChainSharesTheChecksOneTimeout) {
  // Each hop takes 1 s of a 1.5 s timeout: the first fits, the second has
  // only what the first left (given its own 1.5 s it would answer).
  const auto second = "/fault/redirect?delay_ms=1000&to=%2F";
  const auto check = check_of(lab("/fault/redirect?delay_ms=1000&to=" + escaped(second)), 5, "GET",
                              std::chrono::milliseconds(1500));
  const auto edge = run(check).edge();
  EXPECT_EQ(edge.failure_class(), v1::FAILURE_CLASS_TIMEOUT_HEADERS) << edge.error();
  EXPECT_EQ(edge.redirects_size(), 1);
  EXPECT_EQ(edge.url(), lab(second));
}

}  // namespace
}  // namespace vantage::probe
