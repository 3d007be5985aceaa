#pragma once
// A TCP proxy on loopback that can cut the network between its two sides,
// the way a partition does: while cut, bytes in both directions vanish and
// new connections hang (accepted, never forwarded). When the cut ends, the
// connections that lived through it are closed, as their TCP state would not
// survive minutes of silence; new connections are forwarded again.

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace vantage::testing {

class Proxy {
 public:
  explicit Proxy(uint16_t upstream_port);
  ~Proxy();
  uint16_t port() const { return port_; }
  void cut();
  void restore();

 private:
  struct Link;
  boost::asio::awaitable<void> accept_loop();
  boost::asio::awaitable<void> serve(boost::asio::ip::tcp::socket client);

  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  uint16_t upstream_port_;
  uint16_t port_ = 0;
  std::atomic<bool> cut_{false};
  std::mutex mu_;
  std::vector<std::weak_ptr<Link>> links_;
  std::thread thread_;
};

}  // namespace vantage::testing
