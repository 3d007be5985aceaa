#include "tools/lab/origin.h"

#include <fmt/format.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <charconv>

namespace vantage::lab {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

constexpr size_t kMaxRequestHead = 16 * 1024;

const char* reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 404: return "Not Found";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 520: return "Unknown Error";
    default: return "Status";
  }
}

}  // namespace

struct Origin::Impl {
  asio::io_context io;
  tcp::acceptor acceptor{io};
  std::thread thread;

  asio::awaitable<void> serve(tcp::socket socket, Origin* self) {
    asio::streambuf buffer(kMaxRequestHead);
    for (;;) {
      boost::system::error_code ec;
      const auto n = co_await asio::async_read_until(socket, buffer, "\r\n\r\n",
                                                     asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      std::string head(asio::buffers_begin(buffer.data()), asio::buffers_begin(buffer.data()) + n);
      buffer.consume(n);
      ++self->requests_;
      // "GET /path HTTP/1.1"
      auto sp1 = head.find(' ');
      auto sp2 = head.find(' ', sp1 + 1);
      std::string path = sp1 == std::string::npos ? "/" : head.substr(sp1 + 1, sp2 - sp1 - 1);
      int status = 200;
      if (path.starts_with("/status/")) {
        auto code = std::string_view(path).substr(8);
        std::from_chars(code.data(), code.data() + code.size(), status);
      } else if (path == "/fail") {
        status = self->fail_status_;
      } else if (path != "/") {
        status = 404;
      }
      const bool close = head.find("Connection: close") != std::string::npos ||
                         head.find("connection: close") != std::string::npos;
      std::string body = status == 200 ? "ok\n" : fmt::format("status {}\n", status);
      std::string response = fmt::format(
          "HTTP/1.1 {} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n{}", status,
          reason(status), body.size(), close ? "Connection: close\r\n" : "", body);
      boost::system::error_code wec;
      co_await asio::async_write(socket, asio::buffer(response), asio::redirect_error(asio::use_awaitable, wec));
      if (wec || close) co_return;
    }
  }

  asio::awaitable<void> accept_loop(Origin* self) {
    for (;;) {
      boost::system::error_code ec;
      auto socket = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      asio::co_spawn(io, serve(std::move(socket), self), asio::detached);
    }
  }
};

Origin::Origin(const std::string& address, uint16_t port) : impl_(std::make_unique<Impl>()) {
  tcp::endpoint endpoint(asio::ip::make_address(address), port);
  impl_->acceptor.open(endpoint.protocol());
  impl_->acceptor.set_option(tcp::acceptor::reuse_address(true));
  impl_->acceptor.bind(endpoint);
  impl_->acceptor.listen();
  port_ = impl_->acceptor.local_endpoint().port();
  asio::co_spawn(impl_->io, impl_->accept_loop(this), asio::detached);
  impl_->thread = std::thread([this] { impl_->io.run(); });
}

Origin::~Origin() { stop(); }

void Origin::stop() {
  if (!impl_->thread.joinable()) return;
  impl_->io.stop();
  impl_->thread.join();
}

}  // namespace vantage::lab
