#pragma once
// A hostile TLS origin for the fault lab: it completes a TLS handshake, reads
// what the client sends first (its request), then writes bytes that are not
// TLS records straight onto the TCP connection, and closes with a FIN. What a
// broken TLS terminator or a port shared by two programs does; a prober must
// call it a malformed response (diagnosis.md section 3: the origin sends
// malformed HTTP), not a reset.
//
// Its certificate is made at start, self-signed, for "localhost" and
// 127.0.0.1, valid for a day; a client that is to get past the handshake must
// trust certificate_pem() (e.g. through SSL_CERT_FILE).

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace vantage::lab {

class TlsGarbage {
 public:
  // Listens on `address`:`port` (0: any free port) on its own thread.
  TlsGarbage(const std::string& address, uint16_t port);
  ~TlsGarbage();
  TlsGarbage(const TlsGarbage&) = delete;
  TlsGarbage& operator=(const TlsGarbage&) = delete;

  uint16_t port() const { return port_; }
  const std::string& certificate_pem() const { return certificate_pem_; }
  // Connections that completed the handshake and got the garbage.
  uint64_t garbled() const;
  void stop();

  // What a client reads after the handshake.
  static constexpr std::string_view kGarbage = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string certificate_pem_;
  uint16_t port_ = 0;
};

}  // namespace vantage::lab
