#pragma once
// A fake origin for tests and demos. It writes raw bytes on purpose, so it can
// later misbehave in every way diagnosis.md lists; today it answers:
//   GET /               200 "ok"
//   GET /status/NNN     status NNN with a short body
//   GET /fail           the status set with set_fail_status() (default 200)
// Connections are keep-alive unless the request says close.

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

namespace vantage::lab {

class Origin {
 public:
  // Listens on `address`:`port` (0: any free port) on its own thread.
  Origin(const std::string& address, uint16_t port);
  ~Origin();
  Origin(const Origin&) = delete;
  Origin& operator=(const Origin&) = delete;

  uint16_t port() const { return port_; }
  // What /fail answers from now on.
  void set_fail_status(int status) { fail_status_ = status; }
  uint64_t requests() const { return requests_; }
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  uint16_t port_ = 0;
  std::atomic<int> fail_status_{200};
  std::atomic<uint64_t> requests_{0};
};

}  // namespace vantage::lab
