// The prober's TLS: a trusted certificate, and each way a certificate or a
// handshake fails (diagnosis.md: tls_cert_invalid with its reason,
// tls_handshake_failed). Certificates are made here, with OpenSSL, per run.
#include <gtest/gtest.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

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

namespace vantage::probe {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

struct KeyPair {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  ~KeyPair() { EVP_PKEY_free(key); }
  std::string pem() const {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
    char* data;
    long n = BIO_get_mem_data(bio, &data);
    std::string out(data, n);
    BIO_free(bio);
    return out;
  }
};

// A certificate for `name`, valid from now+`from` to now+`to` seconds, signed
// by `issuer_key` under `issuer_name` (itself when it is the subject's key).
std::string certificate(const std::string& name, const KeyPair& subject, const KeyPair& issuer_key,
                        const std::string& issuer_name, long from, long to, bool ca = false) {
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  static long serial = 1;
  ASN1_INTEGER_set(X509_get_serialNumber(cert), ++serial);
  X509_gmtime_adj(X509_getm_notBefore(cert), from);
  X509_gmtime_adj(X509_getm_notAfter(cert), to);
  X509_set_pubkey(cert, subject.key);
  auto set_cn = [](X509_NAME* n, const std::string& cn) {
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  };
  set_cn(X509_get_subject_name(cert), name);
  set_cn(X509_get_issuer_name(cert), issuer_name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  auto add = [&](int nid, const std::string& value) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
  };
  if (ca) {
    add(NID_basic_constraints, "critical,CA:TRUE");
    add(NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add(NID_subject_alt_name, "DNS:" + name);
  }
  X509_sign(cert, issuer_key.key, EVP_sha256());
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert);
  char* data;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, n);
  BIO_free(bio);
  X509_free(cert);
  return out;
}

// The test CA, trusted by the prober through SSL_CERT_FILE (OpenSSL's
// default verify paths read it), set before the prober's first TLS attempt.
struct TestCa {
  KeyPair key;
  std::string pem = certificate("Vantage Test CA", key, key, "Vantage Test CA", -3600, 86400, true);
  std::filesystem::path file = std::filesystem::temp_directory_path() / ("vantage-test-ca-" + std::to_string(getpid()) + ".pem");
  TestCa() {
    std::ofstream(file) << pem;
    setenv("SSL_CERT_FILE", file.c_str(), 1);
  }
  ~TestCa() { std::filesystem::remove(file); }
};
TestCa& test_ca() {
  static TestCa ca;
  return ca;
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
  EXPECT_EQ(normalize_check(check), "");
  LegTarget target;
  target.connect_host = "127.0.0.1";  // the name is only for SNI and verification
  asio::io_context io;
  auto future = asio::co_spawn(io, run_http_attempt(check, RealClock::instance(), HttpLimits{}, target), asio::use_future);
  io.run();
  return future.get();
}

TEST(Tls, ATrustedCertificateForTheNameIsOk) {
  KeyPair key;
  TlsOrigin origin(certificate("localhost", key, test_ca().key, "Vantage Test CA", -60, 30 * 86400), key.pem());
  auto leg = attempt(origin.port());
  EXPECT_EQ(leg.failure_class(), v1::FAILURE_CLASS_OK) << leg.error();
  EXPECT_EQ(leg.response().status(), 200u);
  EXPECT_FALSE(leg.connection().tls_version().empty());
  EXPECT_GT(leg.timings().tls_us(), 0u);
  const auto expiry = leg.connection().cert_not_after().seconds() - std::time(nullptr);
  EXPECT_NEAR(static_cast<double>(expiry), 30.0 * 86400, 120) << "certificate expiry recorded";
}

TEST(Tls, AWrongNameIsACertProblem) {
  KeyPair key;
  TlsOrigin origin(certificate("other.example", key, test_ca().key, "Vantage Test CA", -60, 86400), key.pem());
  auto leg = attempt(origin.port());
  EXPECT_EQ(leg.failure_class(), v1::FAILURE_CLASS_TLS_CERT_INVALID) << leg.error();
  EXPECT_EQ(leg.connection().cert_problem(), v1::TLS_CERT_PROBLEM_NAME_MISMATCH) << leg.error();
}

TEST(Tls, AnExpiredCertificateSaysSoAndWhen) {
  KeyPair key;
  TlsOrigin origin(certificate("localhost", key, test_ca().key, "Vantage Test CA", -7 * 86400, -86400), key.pem());
  auto leg = attempt(origin.port());
  EXPECT_EQ(leg.failure_class(), v1::FAILURE_CLASS_TLS_CERT_INVALID) << leg.error();
  EXPECT_EQ(leg.connection().cert_problem(), v1::TLS_CERT_PROBLEM_EXPIRED) << leg.error();
  EXPECT_LT(leg.connection().cert_not_after().seconds(), std::time(nullptr));
}

TEST(Tls, ASelfSignedCertificateIsNamedSo) {
  KeyPair key;
  TlsOrigin origin(certificate("localhost", key, key, "localhost", -60, 86400), key.pem());
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
