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
#include <functional>
#include <thread>

#include "common/check_config.h"
#include "common/failure_class.h"
#include "probe/http_check.h"
#include "probe/tls_facts.h"
#include "tests/support/test_certs.h"

namespace vantage::probe {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

using vantage::testing::make_certificate;
using vantage::testing::TestKey;

// The test CA, trusted by the prober for the whole process (tests/support/test_certs.h).
const vantage::testing::TestCa& test_ca() { return vantage::testing::trusted_test_ca("Vantage Test CA"); }

// Serves one connection: a TLS handshake with `cert_pem`/`key_pem` (none: no
// certificate at all), or plain HTTP when `plain` is set.
class TlsOrigin {
 public:
  // `configure`: the server's own settings (versions, ciphers).
  TlsOrigin(std::string cert_pem, std::string key_pem, bool plain = false,
            const std::function<void(SSL_CTX*)>& configure = {})
      : acceptor_(io_, {asio::ip::make_address("127.0.0.1"), 0}), context_(asio::ssl::context::tls_server) {
    if (configure) configure(context_.native_handle());
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

v1::LegResult attempt(uint16_t port, const std::string& name = "localhost", const v1::TlsSettings& tls = {}) {
  test_ca();
  v1::Check check;
  check.set_name("tls");
  check.set_url("https://" + name + ":" + std::to_string(port) + "/");
  *check.mutable_timeout() = to_duration(std::chrono::seconds(5));
  *check.mutable_interval() = to_duration(std::chrono::seconds(60));
  std::string problem;
  EXPECT_TRUE(normalize_check(check, &problem)) << problem;
  // After validation, as a check from a coordinator that does not validate them arrives.
  *check.mutable_tls() = tls;
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

v1::TlsSettings trusting(const std::string& ca_pem) {
  v1::TlsSettings tls;
  tls.set_ca_pem(ca_pem);
  return tls;
}

v1::TlsSettings skipping_verification() {
  v1::TlsSettings tls;
  tls.set_skip_verify(true);
  return tls;
}

double days_from_now(const google::protobuf::Timestamp& t) {
  return static_cast<double>(t.seconds() - std::time(nullptr)) / 86400;
}

TEST(Tls, TheVersionAndTheCiphersStandardNameAreRecorded) {
  const auto leaf = test_ca().issue("localhost", "DNS:localhost", {-60, 30 * 86400});
  // TLS 1.2 with one cipher the server allows: the name recorded is the IANA one, not OpenSSL's.
  TlsOrigin origin(leaf.cert, leaf.key_pem(), false, [](SSL_CTX* ctx) {
    SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_cipher_list(ctx, "ECDHE-ECDSA-AES128-GCM-SHA256");
  });
  auto leg = attempt(origin.port());
  ASSERT_EQ(leg.failure_class(), v1::FAILURE_CLASS_OK) << leg.error();
  EXPECT_EQ(leg.connection().tls_version(), "TLSv1.2");
  EXPECT_EQ(leg.connection().tls_cipher(), "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256");
  EXPECT_FALSE(leg.connection().verification_skipped());
  EXPECT_EQ(leg.connection().cert_problem(), v1::TLS_CERT_PROBLEM_UNSPECIFIED);
}

TEST(Tls, TlsOneThreeIsRecordedWithItsCipher) {
  const auto leaf = test_ca().issue("localhost", "DNS:localhost", {-60, 30 * 86400});
  TlsOrigin origin(leaf.cert, leaf.key_pem(), false,
                   [](SSL_CTX* ctx) { SSL_CTX_set_ciphersuites(ctx, "TLS_CHACHA20_POLY1305_SHA256"); });
  auto leg = attempt(origin.port());
  ASSERT_EQ(leg.failure_class(), v1::FAILURE_CLASS_OK) << leg.error();
  EXPECT_EQ(leg.connection().tls_version(), "TLSv1.3");
  EXPECT_EQ(leg.connection().tls_cipher(), "TLS_CHACHA20_POLY1305_SHA256");
  // The leaf alone was sent: the chain's earliest expiry is the leaf's.
  EXPECT_EQ(leg.connection().chain_not_after().seconds(), leg.connection().cert_not_after().seconds());
}

TEST(Tls, AnIntermediateThatExpiresFirstIsTheChainsExpiry) {
  vantage::testing::TestKey intermediate_key;
  const auto intermediate = make_certificate("Vantage Test Intermediate", intermediate_key, test_ca().key,
                                             test_ca().name, /*ca=*/true, "", {-60, 10 * 86400});
  TestKey leaf_key;
  const auto leaf = make_certificate("localhost", leaf_key, intermediate_key, "Vantage Test Intermediate",
                                     /*ca=*/false, "DNS:localhost", {-60, 30 * 86400});
  TlsOrigin origin(leaf + intermediate, leaf_key.pem());
  auto leg = attempt(origin.port());
  ASSERT_EQ(leg.failure_class(), v1::FAILURE_CLASS_OK) << leg.error();
  EXPECT_NEAR(days_from_now(leg.connection().cert_not_after()), 30, 0.01) << "the leaf's own";
  EXPECT_NEAR(days_from_now(leg.connection().chain_not_after()), 10, 0.01) << "the intermediate's";
}

TEST(Tls, TheChainIsRecordedWhenVerificationFails) {
  const auto leaf = test_ca().issue("localhost", "DNS:localhost", {-7 * 86400, -86400});
  TlsOrigin origin(leaf.cert, leaf.key_pem());
  auto leg = attempt(origin.port());
  ASSERT_EQ(leg.connection().cert_problem(), v1::TLS_CERT_PROBLEM_EXPIRED) << leg.error();
  EXPECT_NEAR(days_from_now(leg.connection().cert_not_after()), -1, 0.01);
  EXPECT_NEAR(days_from_now(leg.connection().chain_not_after()), -1, 0.01);
}

TEST(Tls, APrivateCaInTheCheckMakesItsCertificatesVerify) {
  const vantage::testing::TestCa private_ca("Vantage Private CA");
  const auto leaf = private_ca.issue("localhost", "DNS:localhost", {-60, 86400});
  {
    TlsOrigin origin(leaf.cert, leaf.key_pem());
    auto leg = attempt(origin.port());
    EXPECT_EQ(leg.failure_class(), v1::FAILURE_CLASS_TLS_CERT_INVALID) << "not in the system's store";
    // The issuer is nowhere to be found: OpenSSL's "unable to get local issuer certificate".
    EXPECT_EQ(leg.connection().cert_problem(), v1::TLS_CERT_PROBLEM_INCOMPLETE_CHAIN) << leg.error();
  }
  TlsOrigin origin(leaf.cert, leaf.key_pem());
  auto leg = attempt(origin.port(), "localhost", trusting(private_ca.pem));
  EXPECT_EQ(leg.failure_class(), v1::FAILURE_CLASS_OK) << leg.error();
  EXPECT_EQ(leg.response().status(), 200u);
  EXPECT_EQ(leg.connection().cert_problem(), v1::TLS_CERT_PROBLEM_UNSPECIFIED);
}

TEST(Tls, ACheckCaIsTrustedBesidesTheSystemStore) {
  const vantage::testing::TestCa other_ca("Vantage Other CA");
  const vantage::testing::TestCa private_ca("Vantage Private CA");
  const auto leaf = private_ca.issue("localhost", "DNS:localhost", {-60, 86400});
  {
    TlsOrigin origin(leaf.cert, leaf.key_pem());
    auto leg = attempt(origin.port(), "localhost", trusting(other_ca.pem));
    EXPECT_EQ(leg.failure_class(), v1::FAILURE_CLASS_TLS_CERT_INVALID) << "a CA that did not sign it";
    EXPECT_NE(leg.connection().cert_problem(), v1::TLS_CERT_PROBLEM_UNSPECIFIED) << leg.error();
  }
  // The system's store (the test CA) still counts: one check's edge leg has a
  // public certificate while its origin leg has one of a private CA.
  const auto system_leaf = test_ca().issue("localhost", "DNS:localhost", {-60, 86400});
  TlsOrigin origin(system_leaf.cert, system_leaf.key_pem());
  auto leg = attempt(origin.port(), "localhost", trusting(private_ca.pem));
  EXPECT_EQ(leg.failure_class(), v1::FAILURE_CLASS_OK) << leg.error();
}

TEST(Tls, ACaPemThatDoesNotParseIsAnInvalidCheck) {
  const vantage::testing::TestCa ca("Vantage Private CA");
  auto corrupt = ca.pem;
  corrupt.replace(corrupt.find('\n') + 5, 4, "!!!!");
  for (const std::string& pem : {std::string("not a certificate"), corrupt,
                                 std::string(kMaxCaPemBytes + 1, 'a')}) {
    // Nothing listens on port 1: the attempt ends before any connection.
    auto leg = attempt(1, "localhost", trusting(pem));
    EXPECT_EQ(leg.failure_class(), v1::FAILURE_CLASS_INVALID_CHECK) << leg.error();
    EXPECT_NE(leg.error().find("tls.ca_pem"), std::string::npos) << leg.error();
    EXPECT_EQ(leg.timings().connect_us(), 0u);
  }
}

TEST(Tls, ACaPemIsParsedOnceAndShared) {
  const vantage::testing::TestCa ca("Vantage Private CA");
  const auto first = tls_trust_for(ca.pem);
  ASSERT_TRUE(first.context) << first.error;
  EXPECT_EQ(tls_trust_for(ca.pem).context, first.context);
  const auto bad = tls_trust_for("garbage");
  EXPECT_FALSE(bad.context);
  EXPECT_EQ(tls_trust_for("garbage").error, bad.error);
  // The cache is bounded: after as many other PEMs, the first one is parsed again.
  for (size_t i = 0; i < kMaxCachedCas; ++i) tls_trust_for("garbage " + std::to_string(i));
  EXPECT_NE(tls_trust_for(ca.pem).context, first.context);
}

TEST(Tls, OnlyACheckWithItsOwnCaHasAContextOfItsOwn) {
  const vantage::testing::TestCa ca("Vantage Private CA");
  v1::Check check;
  check.set_method("GET");
  check.set_url("https://localhost/");
  EXPECT_FALSE(plan_leg(check, HttpLimits{}).tls_context) << "the default context, nothing parsed";
  check.mutable_tls()->set_ca_pem(ca.pem);
  v1::Check same = check;
  same.set_url("https://localhost/other");
  const auto plan = plan_leg(check, HttpLimits{});
  ASSERT_TRUE(plan.tls_context) << plan.invalid;
  EXPECT_EQ(plan_leg(same, HttpLimits{}).tls_context, plan.tls_context) << "one context per PEM, shared";
}

// skip_verify: the handshake goes on and the response is judged; the
// certificate's problem is the one the verifying check fails on.
TEST(Tls, SkipVerifyAcceptsABadCertificateAndSaysWhatIsWrong) {
  TestKey self_signed_key;
  const auto self_signed = make_certificate("localhost", self_signed_key, self_signed_key, "localhost",
                                            /*ca=*/false, "DNS:localhost", {-60, 86400});
  const auto expired = test_ca().issue("localhost", "DNS:localhost", {-7 * 86400, -86400});
  const auto wrong_name = test_ca().issue("other.example", "DNS:other.example", {-60, 86400});
  struct Case {
    const char* what;
    std::string cert, key;
    v1::TlsCertProblem problem;
  };
  for (const auto& c : {Case{"expired", expired.cert, expired.key_pem(), v1::TLS_CERT_PROBLEM_EXPIRED},
                        Case{"self-signed", self_signed, self_signed_key.pem(), v1::TLS_CERT_PROBLEM_SELF_SIGNED},
                        Case{"wrong name", wrong_name.cert, wrong_name.key_pem(),
                             v1::TLS_CERT_PROBLEM_NAME_MISMATCH}}) {
    SCOPED_TRACE(c.what);
    v1::LegResult verified;
    {
      TlsOrigin origin(c.cert, c.key);
      verified = attempt(origin.port());
    }
    TlsOrigin origin(c.cert, c.key);
    auto leg = attempt(origin.port(), "localhost", skipping_verification());
    EXPECT_EQ(leg.failure_class(), v1::FAILURE_CLASS_OK) << leg.error();
    EXPECT_EQ(leg.response().status(), 200u);
    EXPECT_TRUE(leg.connection().verification_skipped());
    EXPECT_EQ(leg.connection().cert_problem(), c.problem);
    EXPECT_EQ(verified.failure_class(), v1::FAILURE_CLASS_TLS_CERT_INVALID);
    EXPECT_EQ(leg.connection().cert_problem(), verified.connection().cert_problem()) << "as the verifying check";
    EXPECT_GT(leg.connection().cert_not_after().seconds(), 0);
    EXPECT_FALSE(leg.connection().tls_cipher().empty());
  }
}

TEST(Tls, SkipVerifyOnAGoodCertificateRecordsNoProblem) {
  const auto leaf = test_ca().issue("localhost", "DNS:localhost", {-60, 86400});
  TlsOrigin origin(leaf.cert, leaf.key_pem());
  auto leg = attempt(origin.port(), "localhost", skipping_verification());
  EXPECT_EQ(leg.failure_class(), v1::FAILURE_CLASS_OK) << leg.error();
  EXPECT_TRUE(leg.connection().verification_skipped());
  EXPECT_EQ(leg.connection().cert_problem(), v1::TLS_CERT_PROBLEM_UNSPECIFIED);
}

TEST(Tls, SkipVerifyStillFailsAHandshakeThatIsNotTls) {
  TlsOrigin origin("", "", /*plain=*/true);
  auto leg = attempt(origin.port(), "localhost", skipping_verification());
  EXPECT_EQ(leg.failure_class(), v1::FAILURE_CLASS_TLS_HANDSHAKE_FAILED) << leg.error();
}

}  // namespace
}  // namespace vantage::probe
