#include "tests/support/webhook_receiver.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <optional>

namespace vantage::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using asio::ip::tcp;

struct WebhookReceiver::Impl {
  asio::io_context io;
  tcp::acceptor acceptor{io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)};
  mutable std::mutex mu;
  mutable std::condition_variable cv;
  std::vector<Request> requests;
  std::thread thread;

  // One request per connection (answered with Connection: close), so no
  // idle keep-alive connection can hold the thread when the receiver stops.
  void serve(tcp::socket socket) {
    beast::error_code ec;
    beast::flat_buffer buffer;
    http::request<http::string_body> request;
    http::read(socket, buffer, request, ec);
    if (ec) return;
    {
      std::lock_guard lock(mu);
      requests.push_back({std::string(request.target()), request.body(), std::chrono::steady_clock::now()});
    }
    cv.notify_all();
    http::response<http::string_body> response{http::status::ok, request.version()};
    response.keep_alive(false);
    response.prepare_payload();
    http::write(socket, response, ec);
  }
  void accept_loop() {
    while (true) {
      beast::error_code ec;
      tcp::socket socket(io);
      acceptor.accept(socket, ec);
      if (ec) return;  // closed: the receiver is going away
      serve(std::move(socket));  // one at a time is enough for Alertmanager's few posts
    }
  }
};

WebhookReceiver::WebhookReceiver() : impl_(std::make_unique<Impl>()) {
  port_ = impl_->acceptor.local_endpoint().port();
  impl_->thread = std::thread([impl = impl_.get()] { impl->accept_loop(); });
}

WebhookReceiver::~WebhookReceiver() {
  beast::error_code ignored;
  impl_->acceptor.cancel(ignored);
  ::shutdown(impl_->acceptor.native_handle(), SHUT_RDWR);
  impl_->acceptor.close(ignored);
  impl_->thread.join();
}

std::vector<WebhookReceiver::Request> WebhookReceiver::requests() const {
  std::lock_guard lock(impl_->mu);
  return impl_->requests;
}

std::optional<WebhookReceiver::Request> WebhookReceiver::wait_for(const std::function<bool(const Request&)>& match,
                                                                  std::chrono::milliseconds timeout) const {
  std::unique_lock lock(impl_->mu);
  std::optional<Request> found;
  impl_->cv.wait_for(lock, timeout, [&] {
    for (const auto& request : impl_->requests) {
      if (match(request)) {
        found = request;
        return true;
      }
    }
    return false;
  });
  return found;
}

int free_port() {
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return acceptor.local_endpoint().port();
}

}  // namespace vantage::testing
