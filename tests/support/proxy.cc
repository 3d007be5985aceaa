#include "tests/support/proxy.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

namespace vantage::testing {

namespace asio = boost::asio;
using asio::ip::tcp;

struct Proxy::Link {
  explicit Link(asio::io_context& io) : client(io), upstream(io) {}
  tcp::socket client;
  tcp::socket upstream;
  void close() {
    boost::system::error_code ignored;
    client.close(ignored);
    upstream.close(ignored);
  }
};

Proxy::Proxy(uint16_t upstream_port)
    : acceptor_(io_, {asio::ip::make_address("127.0.0.1"), 0}), upstream_port_(upstream_port) {
  port_ = acceptor_.local_endpoint().port();
  asio::co_spawn(io_, accept_loop(), asio::detached);
  thread_ = std::thread([this] { io_.run(); });
}

Proxy::~Proxy() {
  io_.stop();
  thread_.join();
}

asio::awaitable<void> Proxy::accept_loop() {
  for (;;) {
    boost::system::error_code ec;
    auto socket = co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    asio::co_spawn(io_, serve(std::move(socket)), asio::detached);
  }
}

asio::awaitable<void> Proxy::serve(tcp::socket client) {
  auto link = std::make_shared<Link>(io_);
  link->client = std::move(client);
  {
    std::lock_guard lock(mu_);
    links_.push_back(link);
  }
  // Forwards one direction; while cut, what is read is dropped.
  auto pump = [this, link](tcp::socket& from, tcp::socket& to) -> asio::awaitable<void> {
    std::array<char, 16384> buffer;
    for (;;) {
      boost::system::error_code ec;
      const auto n = co_await from.async_read_some(asio::buffer(buffer), asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
      if (cut_) continue;
      co_await asio::async_write(to, asio::buffer(buffer.data(), n), asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
    }
    link->close();
  };
  if (cut_) {
    // A connection made during the cut hangs: read and drop until closed.
    std::array<char, 16384> buffer;
    boost::system::error_code ec;
    while (!ec) co_await link->client.async_read_some(asio::buffer(buffer), asio::redirect_error(asio::use_awaitable, ec));
    co_return;
  }
  boost::system::error_code ec;
  co_await link->upstream.async_connect({asio::ip::make_address("127.0.0.1"), upstream_port_},
                                        asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    link->close();
    co_return;
  }
  asio::co_spawn(io_, pump(link->upstream, link->client), asio::detached);
  co_await pump(link->client, link->upstream);
}

void Proxy::cut() { cut_ = true; }

void Proxy::restore() {
  std::vector<std::shared_ptr<Link>> survivors;
  {
    std::lock_guard lock(mu_);
    for (auto& weak : links_) {
      if (auto link = weak.lock()) survivors.push_back(link);
    }
    links_.clear();
  }
  asio::post(io_, [survivors] {
    for (auto& link : survivors) link->close();
  });
  cut_ = false;
}

}  // namespace vantage::testing
