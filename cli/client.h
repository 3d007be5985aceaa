#pragma once
// vantagectl's connection to the coordinator: the channel (plaintext, or TLS
// with a given CA), the bearer token on every call, the per-call deadline,
// and what a failed call means for the exit code.

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>

namespace vantage::ctl {

// The exit codes scripts can rely on (documented in --help and
// docs/vantagectl.md).
enum ExitCode : int {
  kExitOk = 0,
  kExitUsage = 1,        // bad flags or values, a checks file that is not valid, an unreadable file
  kExitRefused = 2,      // the server refused the request (INVALID_ARGUMENT, NOT_FOUND, ...)
  kExitAuth = 3,         // UNAUTHENTICATED, PERMISSION_DENIED
  kExitUnavailable = 4,  // UNAVAILABLE, DEADLINE_EXCEEDED: the coordinator is down, unreachable or too slow
};

int exit_code_for(grpc::StatusCode code);
// "NOT_FOUND" for grpc::StatusCode::NOT_FOUND.
std::string status_code_name(grpc::StatusCode code);

// Prints the one-line error ("vantagectl: NOT_FOUND: <server's message>")
// on stderr and returns the exit code for it.
int report(const grpc::Status& status);
// Prints "vantagectl: <message>" on stderr and returns kExitUsage.
int usage_error(const std::string& message);

struct ConnectionOptions {
  std::string address;
  std::string token;       // empty: none sent (the server says UNAUTHENTICATED)
  std::string tls_ca_pem;  // empty: plaintext
  std::chrono::milliseconds timeout{std::chrono::seconds(10)};
};

class Client {
 public:
  explicit Client(ConnectionOptions options);
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }
  // A context with the token and a deadline of the global timeout plus `extra`.
  void prepare(grpc::ClientContext& context, std::chrono::milliseconds extra = std::chrono::milliseconds(0)) const;
  // A context with the token and no deadline (streams that run until stopped).
  void prepare_stream(grpc::ClientContext& context) const;

 private:
  ConnectionOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
};

}  // namespace vantage::ctl
