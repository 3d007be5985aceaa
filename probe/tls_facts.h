#pragma once
// The probe's TLS client side, apart from the connection's steps: the
// contexts a handshake starts from (the system's trust store, with a check's
// own CA added, Check.tls.ca_pem) and what a handshake tells about the server's
// certificates and the session (ConnectionInfo).
//
// A check without a CA of its own uses the one default context and pays
// nothing more. A check's CA is parsed once per distinct PEM into a context
// kept in a small cache shared by every check with that PEM; a PEM that does
// not parse is cached as its error too, so no attempt parses it again.

#include <openssl/ssl.h>

#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <string>

#include "vantage/v1/types.pb.h"

namespace vantage::probe {

// TLS 1.2+, ALPN http/1.1 (what we speak), the system's trust store (without
// one every certificate fails as untrusted), peer verification on. Made on
// first use (tests set SSL_CERT_FILE before).
boost::asio::ssl::context& default_tls_context();

// The trust a check's Check.tls.ca_pem asks for.
struct TlsTrust {
  // The default context's settings, trusting the PEM's certificates besides
  // the system's store (so one check can reach a public edge and an origin
  // with a private certificate, such as Cloudflare's Origin CA); null when
  // the PEM does not parse.
  std::shared_ptr<boost::asio::ssl::context> context;
  // Why the PEM was refused ("bad tls.ca_pem: ..."), or empty.
  std::string error;
};
// From the cache (at most kMaxCachedCas distinct PEMs, the least recently
// used one dropped first; a context in use stays alive with its connections).
// Thread-safe. `ca_pem` must not be empty.
TlsTrust tls_trust_for(const std::string& ca_pem);
inline constexpr size_t kMaxCachedCas = 64;
// A larger PEM is refused (a whole public bundle is about 220 KiB).
inline constexpr size_t kMaxCaPemBytes = 512 * 1024;

// What OpenSSL's verification result says is wrong with the certificate.
v1::TlsCertProblem cert_problem(long verify_result);

// Check.tls.skip_verify, before the handshake: it goes on whatever the
// certificate. OpenSSL still verifies the chain (SSL_VERIFY_NONE only ignores
// the result) and stops at the first problem, as the verifying path does, so
// the problem recorded is the one a verifying check would fail on.
void skip_verification(SSL* ssl);
// After that handshake: what verification found (cert_problem, unset when
// nothing) and verification_skipped.
void record_skipped_verification(SSL* ssl, v1::ConnectionInfo& connection);

// The server's certificates as it sent them, verified or not (also after a
// handshake that failed on them): the leaf's notAfter (cert_not_after) and
// the earliest notAfter of all of them (chain_not_after).
void record_certificates(SSL* ssl, v1::ConnectionInfo& connection);

// The session after a handshake: TLS version, cipher (its standard name),
// ALPN.
void record_tls_session(SSL* ssl, v1::ConnectionInfo& connection);

}  // namespace vantage::probe
