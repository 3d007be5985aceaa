// The prober's TLS: a trusted certificate, and each way a certificate or a
// handshake fails (diagnosis.md: tls_cert_invalid with its reason,
// tls_handshake_failed). Certificates are made per run (tests/support/test_certs.h).
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <filesystem>
#include <fstream>
#include <thread>

#include "common/check_config.h"
#include "common/failure_class.h"
#include "probe/http_check.h"
#include "tests/support/test_certs.h"

namespace vantage::probe {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

using vantage::testing::make_certificate;
using vantage::testing::TestKey;

// The test CA, trusted by the prober through SSL_CERT_FILE (OpenSSL's
// default verify paths read it), set before the prober's first TLS attempt.
struct TrustedCa {
  vantage::testing::TestCa ca{"Vantage Test CA"};
  std::filesystem::path file =
      std::filesystem::temp_directory_path() / ("vantage-test-ca-" + std::to_string(getpid()) + ".pem");
  TrustedCa() {
    std::ofstream(file) << ca.pem;
    setenv("SSL_CERT_FILE", file.c_str(), 1);
  }
  ~TrustedCa() { std::filesystem::remove(file); }
};
const vantage::testing::TestCa& test_ca() {
  static TrustedCa trusted;
  return trusted.ca;
}

// Serves one connection: a TLS handshake with `cert_pem`/`key_pem` (none: no
// certificate at all), or plain HTTP when `plain` is set.
class TlsOrigin {
 public:
  TlsOrigin(std::string cert_pem, std::string key_pem, bool plain = false)
      : acceptor_(io_, {asio::ip::make_address("127.0.0.1"), 0}), context_(asio::ssl::context::tls_server) {
    if (!cert_pem.empty()) {
      context_.use_certificate_chain(asio::buffer(cert_pem));
      context_.use_private_key(asio::buffer(key_pem), asio::ssl::context::pem);
    }
    thread_ = std::thread([this, plain] {
      tcp::socket socket(io_);
      acceptor_.accept(socket);
      boost::system::error_code ec;
      const std::string reply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
      if (plain) {
        std::array<char, 4096> buf;
        socket.read_some(asio::buffer(buf), ec);
        asio::write(socket, asio::buffer(reply), ec);
        return;
      }
      asio::ssl::stream<tcp::socket&> tls(socket, context_);
      tls.handshake(asio::ssl::stream_base::server, ec);
      if (ec) return;
      std::array<char, 4096> buf;
      tls.read_some(asio::buffer(buf), ec);
      asio::write(tls, asio::buffer(reply), ec);
      tls.shutdown(ec);
    });
  }
  ~TlsOrigin() {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    thread_.join();
  }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }

 private:
  asio::io_context io_;
  tcp::acceptor acceptor_;
  asio::ssl::context context_;
  std::thread thread_;
};

v1::LegResult attempt(uint16_t port, const std::string& name = "localhost") {
  test_ca();
  v1::Check check;
  check.set_name("tls");
  check.set_url("https://" + name + ":" + std::to_string(port) + "/");
  *check.mutable_timeout() = to_duration(std::chrono::seconds(5));
  *check.mutable_interval() = to_duration(std::chrono::seconds(60));
  std::string problem;
  EXPECT_TRUE(normalize_check(check, &problem)) << problem;
  LegTarget target;
  target.connect_host = "127.0.0.1";  // the name is only for SNI and verification
  asio::io_context io;
  auto future = asio::co_spawn(io, run_http_attempt(check, RealClock::instance(), HttpLimits{}, target), asio::use_future);
  io.run();
  return future.get();
}

TEST(Tls, ATrustedCertificateForTheNameIsOk) {
  const auto leaf = test_ca().issue("localhost", "DNS:localhost", {-60, 30 * 86400});
  TlsOrigin origin(leaf.cert, leaf.key_pem());
  auto leg = attempt(origin.port());
  EXPECT_EQ(leg.failure_class(), v1::FAILURE_CLASS_OK) << leg.error();
  EXPECT_EQ(leg.response().status(), 200u);
  EXPECT_FALSE(leg.connection().tls_version().empty());
  EXPECT_GT(leg.timings().tls_us(), 0u);
  const auto expiry = leg.connection().cert_not_after().seconds() - std::time(nullptr);
  EXPECT_NEAR(static_cast<double>(expiry), 30.0 * 86400, 120) << "certificate expiry recorded";
}

TEST(Tls, AWrongNameIsACertProblem) {
  const auto leaf = test_ca().issue("other.example", "DNS:other.example", {-60, 86400});
  TlsOrigin origin(leaf.cert, leaf.key_pem());
  auto leg = attempt(origin.port());
  EXPECT_EQ(leg.failure_class(), v1::FAILURE_CLASS_TLS_CERT_INVALID) << leg.error();
  EXPECT_EQ(leg.connection().cert_problem(), v1::TLS_CERT_PROBLEM_NAME_MISMATCH) << leg.error();
}

TEST(Tls, AnExpiredCertificateSaysSoAndWhen) {
  const auto leaf = test_ca().issue("localhost", "DNS:localhost", {-7 * 86400, -86400});
  TlsOrigin origin(leaf.cert, leaf.key_pem());
  auto leg = attempt(origin.port());
  EXPECT_EQ(leg.failure_class(), v1::FAILURE_CLASS_TLS_CERT_INVALID) << leg.error();
  EXPECT_EQ(leg.connection().cert_problem(), v1::TLS_CERT_PROBLEM_EXPIRED) << leg.error();
  EXPECT_LT(leg.connection().cert_not_after().seconds(), std::time(nullptr));
}

TEST(Tls, ASelfSignedCertificateIsNamedSo) {
  TestKey key;
  TlsOrigin origin(make_certificate("localhost", key, key, "localhost", /*ca=*/false, "DNS:localhost", {-60, 86400}),
                   key.pem());
  auto leg = attempt(origin.port());
  EXPECT_EQ(leg.failure_class(), v1::FAILURE_CLASS_TLS_CERT_INVALID) << leg.error();
  EXPECT_EQ(leg.connection().cert_problem(), v1::TLS_CERT_PROBLEM_SELF_SIGNED) << leg.error();
}

TEST(Tls, PlainHttpOnATlsPortIsAHandshakeFailure) {
  TlsOrigin origin("", "", /*plain=*/true);
  auto leg = attempt(origin.port());
  EXPECT_EQ(leg.failure_class(), v1::FAILURE_CLASS_TLS_HANDSHAKE_FAILED) << leg.error();
  EXPECT_EQ(leg.timings().failed_phase(), v1::PHASE_TLS);
}

TEST(Tls, AServerWithoutACertificateIsAHandshakeFailure) {
  TlsOrigin origin("", "");
  auto leg = attempt(origin.port());
  EXPECT_EQ(leg.failure_class(), v1::FAILURE_CLASS_TLS_HANDSHAKE_FAILED) << leg.error();
}

}  // namespace
}  // namespace vantage::probe
