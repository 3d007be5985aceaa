#include "tools/lab/tls_garbage.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <array>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <stdexcept>
#include <thread>

#include "tools/lab/socket.h"

namespace vantage::lab {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

// PEM of a BIO-writing OpenSSL call.
template <typename Write>
std::string to_pem(Write write) {
  BIO* bio = BIO_new(BIO_s_mem());
  write(bio);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(bio);
  return out;
}

struct KeyAndCertificate {
  std::string key_pem, certificate_pem;
};

// A self-signed P-256 certificate for localhost and 127.0.0.1, valid from an
// hour ago for a day.
KeyAndCertificate make_certificate() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  if (key == nullptr || cert == nullptr) throw std::runtime_error("cannot make the lab's TLS certificate");
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
  X509_set_issuer_name(cert, name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* san = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
  X509_add_ext(cert, san, -1);
  X509_EXTENSION_free(san);
  X509_sign(cert, key, EVP_sha256());
  KeyAndCertificate out;
  out.key_pem = to_pem([&](BIO* bio) { PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr); });
  out.certificate_pem = to_pem([&](BIO* bio) { PEM_write_bio_X509(bio, cert); });
  X509_free(cert);
  EVP_PKEY_free(key);
  return out;
}

}  // namespace

struct TlsGarbage::Impl {
  asio::io_context io;
  tcp::acceptor acceptor{io};
  asio::ssl::context context{asio::ssl::context::tls_server};
  std::thread thread;
  std::atomic<uint64_t> garbled{0};

  asio::awaitable<void> serve(tcp::socket socket) {
    // A client that stops half-way is let go after this long.
    asio::steady_timer deadline(socket.get_executor(), std::chrono::seconds(10));
    deadline.async_wait([&socket](const boost::system::error_code& ec) {
      boost::system::error_code ignored;
      if (!ec) socket.cancel(ignored);
    });
    boost::system::error_code ec;
    asio::ssl::stream<tcp::socket&> tls(socket, context);
    co_await tls.async_handshake(asio::ssl::stream_base::server, asio::redirect_error(asio::use_awaitable, ec));
    std::array<char, 4096> request;
    if (!ec) co_await tls.async_read_some(asio::buffer(request), asio::redirect_error(asio::use_awaitable, ec));
    if (!ec) {
      ++garbled;
      co_await write_all(socket, kGarbage);  // beside TLS, not through it
      socket.shutdown(tcp::socket::shutdown_send, ec);
      // Read until the client closes, so its unread bytes do not turn the close into a reset.
      while (!ec) co_await socket.async_read_some(asio::buffer(request), asio::redirect_error(asio::use_awaitable, ec));
    }
    deadline.cancel();
    close_fin(socket);
  }

  asio::awaitable<void> accept_loop() {
    for (;;) {
      boost::system::error_code ec;
      auto socket = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      asio::co_spawn(io, serve(std::move(socket)), asio::detached);
    }
  }
};

TlsGarbage::TlsGarbage(const std::string& address, uint16_t port) : impl_(std::make_unique<Impl>()) {
  const auto made = make_certificate();
  certificate_pem_ = made.certificate_pem;
  impl_->context.use_certificate_chain(asio::buffer(made.certificate_pem));
  impl_->context.use_private_key(asio::buffer(made.key_pem), asio::ssl::context::pem);
  port_ = listen_on(impl_->acceptor, address, port);
  asio::co_spawn(impl_->io, impl_->accept_loop(), asio::detached);
  impl_->thread = std::thread([this] { impl_->io.run(); });
}

TlsGarbage::~TlsGarbage() { stop(); }

uint64_t TlsGarbage::garbled() const { return impl_->garbled; }

void TlsGarbage::stop() {
  if (!impl_->thread.joinable()) return;
  impl_->io.stop();
  impl_->thread.join();
}

}  // namespace vantage::lab
