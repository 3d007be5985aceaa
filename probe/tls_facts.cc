#include "probe/tls_facts.h"

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <ctime>
#include <functional>
#include <mutex>
#include <optional>
#include <string_view>
#include <unordered_map>

#include "common/text.h"

namespace vantage::probe {

namespace asio = boost::asio;

namespace {

constexpr size_t kTlsTextBytes = 256;  // ConnectionInfo.tls_version, tls_cipher, alpn

// A client context: TLS 1.2+, ALPN http/1.1, peer verification, trusting the
// system's store.
std::shared_ptr<asio::ssl::context> client_context() {
  auto c = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  c->set_options(asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                 asio::ssl::context::no_tlsv1_1);
  boost::system::error_code ignored;  // no trust store: every certificate then fails as untrusted
  c->set_default_verify_paths(ignored);
  c->set_verify_mode(asio::ssl::verify_peer);
  static const unsigned char kAlpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  SSL_CTX_set_alpn_protos(c->native_handle(), kAlpn, sizeof kAlpn);
  return c;
}

std::string openssl_reason(unsigned long error) {
  const char* reason = ERR_reason_error_string(error);
  return reason ? reason : fmt::format("OpenSSL error {:#x}", error);
}

// A context trusting the system's store and every certificate of `pem`, or why not.
TlsTrust parse_trust(const std::string& pem) {
  if (pem.size() > kMaxCaPemBytes) {
    return {nullptr, fmt::format("bad tls.ca_pem: {} bytes, more than the {} the probe takes", pem.size(),
                                 kMaxCaPemBytes)};
  }
  std::shared_ptr<asio::ssl::context> context;
  try {
    context = client_context();
  } catch (const std::exception& e) {  // the context could not be made (memory)
    return {nullptr, std::string("bad tls.ca_pem: ") + e.what()};
  }
  ERR_clear_error();
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  if (!bio) return {nullptr, "bad tls.ca_pem: out of memory"};
  X509_STORE* store = SSL_CTX_get_cert_store(context->native_handle());
  int count = 0;
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    X509_STORE_add_cert(store, cert);  // takes its own reference
    X509_free(cert);
    ++count;
  }
  // The loop ends at the first block that is not a certificate: "no start
  // line" after the last one is the end of the text, anything else a
  // certificate that does not parse.
  const unsigned long error = ERR_peek_last_error();
  ERR_clear_error();
  const bool at_end = ERR_GET_LIB(error) == ERR_LIB_PEM && ERR_GET_REASON(error) == PEM_R_NO_START_LINE;
  if (!at_end) {
    return {nullptr, fmt::format("bad tls.ca_pem: certificate {} does not parse ({})", count + 1,
                                 openssl_reason(error))};
  }
  if (count == 0) return {nullptr, "bad tls.ca_pem: no PEM certificate (-----BEGIN CERTIFICATE-----) in it"};
  return {std::move(context), {}};
}

// The contexts of the PEMs seen lately, by the PEM's hash (the PEM itself
// compared on a hit, so a collision is a miss).
class TrustCache {
 public:
  TlsTrust get(const std::string& pem) {
    const size_t key = std::hash<std::string_view>{}(pem);
    std::lock_guard lock(mu_);
    auto it = entries_.find(key);
    if (it == entries_.end() || it->second.pem != pem) {
      if (it == entries_.end() && entries_.size() >= kMaxCachedCas) evict_least_recent();
      it = entries_.insert_or_assign(key, Entry{pem, parse_trust(pem), 0}).first;
    }
    it->second.last_used = ++uses_;
    return it->second.trust;
  }

 private:
  struct Entry {
    std::string pem;
    TlsTrust trust;
    uint64_t last_used;
  };
  void evict_least_recent() {
    auto oldest = entries_.begin();
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->second.last_used < oldest->second.last_used) oldest = it;
    }
    entries_.erase(oldest);
  }
  std::mutex mu_;
  std::unordered_map<size_t, Entry> entries_;
  uint64_t uses_ = 0;
};

std::optional<int64_t> not_after(const X509* cert) {
  std::tm tm{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1) return std::nullopt;
  return static_cast<int64_t>(timegm(&tm));
}

}  // namespace

asio::ssl::context& default_tls_context() {
  static const auto context = client_context();
  return *context;
}

TlsTrust tls_trust_for(const std::string& ca_pem) {
  static TrustCache cache;
  return cache.get(ca_pem);
}

v1::TlsCertProblem cert_problem(long verify_result) {
  switch (verify_result) {
    case X509_V_ERR_CERT_HAS_EXPIRED: return v1::TLS_CERT_PROBLEM_EXPIRED;
    case X509_V_ERR_CERT_NOT_YET_VALID: return v1::TLS_CERT_PROBLEM_NOT_YET_VALID;
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT: return v1::TLS_CERT_PROBLEM_SELF_SIGNED;
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH: return v1::TLS_CERT_PROBLEM_NAME_MISMATCH;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE: return v1::TLS_CERT_PROBLEM_INCOMPLETE_CHAIN;
    default: return v1::TLS_CERT_PROBLEM_UNTRUSTED;
  }
}

void skip_verification(SSL* ssl) { SSL_set_verify(ssl, SSL_VERIFY_NONE, nullptr); }

void record_skipped_verification(SSL* ssl, v1::ConnectionInfo& connection) {
  connection.set_verification_skipped(true);
  const long verify = SSL_get_verify_result(ssl);
  if (verify != X509_V_OK) connection.set_cert_problem(cert_problem(verify));
}

void record_certificates(SSL* ssl, v1::ConnectionInfo& connection) {
  // On the client the chain starts with the leaf; it is kept even when
  // verification failed (the leaf alone is not, then).
  const STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl);
  const int count = chain ? sk_X509_num(chain) : 0;
  std::optional<int64_t> earliest;
  for (int i = 0; i < count; ++i) {
    const auto expiry = not_after(sk_X509_value(chain, i));
    if (!expiry) continue;
    if (i == 0) connection.mutable_cert_not_after()->set_seconds(*expiry);
    if (!earliest || *expiry < *earliest) earliest = expiry;
  }
  if (earliest) connection.mutable_chain_not_after()->set_seconds(*earliest);
}

void record_tls_session(SSL* ssl, v1::ConnectionInfo& connection) {
  connection.set_tls_version(safe_text(SSL_get_version(ssl), kTlsTextBytes));
  if (const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl)) {
    const char* name = SSL_CIPHER_standard_name(cipher);  // the IANA name, as other tools show it
    connection.set_tls_cipher(safe_text(name ? name : SSL_CIPHER_get_name(cipher), kTlsTextBytes));
  }
  const unsigned char* alpn = nullptr;
  unsigned alpn_length = 0;
  SSL_get0_alpn_selected(ssl, &alpn, &alpn_length);
  if (alpn_length) {
    connection.set_alpn(safe_text(std::string_view(reinterpret_cast<const char*>(alpn), alpn_length), kTlsTextBytes));
  }
}

}  // namespace vantage::probe
