#pragma once
// Ships results to the coordinator over ProbeService.Connect and carries the
// coordinator's messages (assignments, acks, re-checks) back. Reconnects with
// backoff when the coordinator goes away; each new stream starts by resending
// everything unacknowledged.

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "probe/spool.h"
#include "probe/scheduler.h"

namespace grpc {
class ClientContext;
}

namespace vantage::probe {

struct StreamerOptions {
  std::string coordinator;  // host:port
  std::string token;
  std::string probe_id;
  std::string region;
  std::string version;
  std::string tls_ca_file;  // empty: plaintext (loopback and tests only)
  size_t max_batch = 500;
  std::chrono::milliseconds batch_wait{200};
  // After a batch that was not full, the next one gathers results this long
  // before it is sent: one message (and one ack) per linger, not per result.
  // A full batch (a backlog, a replay) goes at once.
  std::chrono::milliseconds batch_linger{100};
  std::chrono::milliseconds backoff_initial{500};
  std::chrono::milliseconds backoff_max{30'000};
};

// The PEM CA bundle named by --tls-ca; nullopt, with `error` naming the file
// and what is wrong, when it cannot be read or holds no certificate.
std::optional<std::string> read_ca_file(const std::string& path, std::string* error);

class Streamer {
 public:
  enum class State { kIdle, kConnecting, kConnected, kBackingOff };

  Streamer(StreamerOptions options, Spool& spool, Scheduler& scheduler,
           std::function<double()> uniform);
  ~Streamer();

  void start();
  void stop();
  State state() const { return state_; }
  // Streams that reached the Welcome; for tests and metrics.
  uint64_t sessions() const { return sessions_; }

 private:
  void loop();
  // One stream, from Connect to its end.
  void run_session();
  void sleep_interruptibly(std::chrono::milliseconds d);

  StreamerOptions options_;
  Spool& spool_;
  Scheduler& scheduler_;
  std::function<double()> uniform_;
  std::atomic<State> state_{State::kIdle};
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> sessions_{0};
  std::mutex mu_;  // guards context_ and wakes sleep
  std::condition_variable cv_;
  grpc::ClientContext* context_ = nullptr;
  // How the last stream ended; streamer thread only.
  std::string last_error_;
  bool refused_ = false;
  std::thread thread_;
};

}  // namespace vantage::probe
