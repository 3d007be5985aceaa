#pragma once
// An HTTP server on loopback that records every POST it receives (path, body,
// arrival time) and answers 200: the receiving end of Alertmanager's webhooks
// in tests.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <optional>
#include <vector>

namespace vantage::testing {

class WebhookReceiver {
 public:
  struct Request {
    std::string path;
    std::string body;
    std::chrono::steady_clock::time_point arrived;
  };

  WebhookReceiver();  // listens on 127.0.0.1, a free port
  ~WebhookReceiver();
  int port() const { return port_; }
  std::vector<Request> requests() const;
  // Waits until some request satisfies `match`; returns it, or nullopt-like
  // empty path at the deadline.
  std::optional<Request> wait_for(const std::function<bool(const Request&)>& match,
                                  std::chrono::milliseconds timeout) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

// A TCP port on 127.0.0.1 free a moment ago (for servers that need a port
// number up front, such as Prometheus and Alertmanager).
int free_port();

}  // namespace vantage::testing
