#pragma once
// A real child process for end-to-end tests and benchmarks: its output goes
// to a file the caller can search, and it is killed if the caller forgets it.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace vantage::testing {

class Process {
 public:
  Process(std::vector<std::string> argv, std::map<std::string, std::string> env = {});
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool running() { return !wait(std::chrono::milliseconds(0)); }
  void signal(int sig);
  // The exit code (or 128+signal), or nullopt if still running at the deadline.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  // Everything the process wrote to stdout and stderr so far.
  std::string output() const;
  // Waits until the output contains `text`; false at the deadline.
  bool wait_for_output(const std::string& text, std::chrono::milliseconds timeout) const;

 private:
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  std::string log_path_;
};

// Runs a command to completion; returns its exit code and output.
struct RunResult {
  int exit_code;
  std::string output;
};
RunResult run_command(std::vector<std::string> argv, std::map<std::string, std::string> env = {},
                      std::chrono::milliseconds timeout = std::chrono::seconds(30));

// Polls `condition` every 50 ms until it holds or the timeout passes.
template <typename Fn>
bool eventually(Fn&& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    struct timespec ts{0, 50'000'000};
    nanosleep(&ts, nullptr);
  }
  return condition();
}

// The number after `key` in a log, e.g. "grpc_port=" -> 41234; the last
// match wins; -1 when absent.
int64_t number_after(const std::string& output, const std::string& key);

// GET http://127.0.0.1:port/path; the body, or empty on any failure.
std::string http_get(int port, const std::string& path);

// Reads one sample "name{labels} value" from Prometheus text; nullopt if absent.
std::optional<double> metric_value(const std::string& exposition, const std::string& series);

}  // namespace vantage::testing
