#pragma once
// Ships results to the coordinator over ProbeService.Connect and carries the
// coordinator's messages (assignments, acks, re-checks) back. Reconnects with
// backoff when the coordinator goes away; each new stream starts by resending
// everything unacknowledged. What the coordinator says about checks goes to
// an AssignmentSink (the agent wires the scheduler); every wait is on the
// injected Timers' clock.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "common/backoff.h"
#include "common/timer.h"
#include "probe/assignment_sink.h"
#include "probe/spool.h"

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
  // PEM client certificate and its key (with tls_ca_file), for a coordinator
  // that verifies its probes' certificates.
  std::string tls_client_cert_file;
  std::string tls_client_key_file;
  size_t max_batch = 500;
  std::chrono::milliseconds batch_wait{200};
  // After a batch that was not full, the next one gathers results this long
  // before it is sent: one message (and one ack) per linger, not per result.
  // A full batch (a backlog, a replay) goes at once.
  std::chrono::milliseconds batch_linger{100};
  std::chrono::milliseconds backoff_initial{500};
  std::chrono::milliseconds backoff_max{30'000};
  // A stream that lasted this long counts as healthy even without an ack
  // (an idle probe has nothing to acknowledge).
  std::chrono::milliseconds healthy_session{30'000};
};

// How a stream to the coordinator ended, for the log and for the backoff.
enum class StreamEnd {
  kRefused,      // UNAUTHENTICATED, PERMISSION_DENIED: the token or probe id
  kTooLarge,     // RESOURCE_EXHAUSTED: a message over gRPC's size limit
  kUnreachable,  // UNAVAILABLE before the welcome: no coordinator there
  kLost,         // UNAVAILABLE after the welcome: the connection broke
  kEnded,        // the coordinator closed the stream with a status of its own
  kFailed,       // anything else (deadline, internal errors, cancelled)
};
StreamEnd classify_stream_end(int grpc_code, bool welcomed);
// "UNAVAILABLE", "OK", ...: gRPC's name for a status code.
std::string_view grpc_code_name(int grpc_code);

// When to connect again. The delay grows across failed streams and starts
// over only after a healthy one (an ack came, or it lasted `healthy_session`):
// a coordinator that welcomes and then ends every stream is not hammered.
class ReconnectPolicy {
 public:
  ReconnectPolicy(std::chrono::milliseconds initial, std::chrono::milliseconds max,
                  std::chrono::milliseconds healthy_session, std::function<double()> uniform);
  struct Session {
    bool welcomed = false;
    bool acked = false;  // at least one ack arrived
    std::chrono::steady_clock::duration lasted{};
  };
  // The delay before the next attempt, after `session` ended.
  std::chrono::milliseconds after(const Session& session);
  // Failed attempts since the last healthy stream (1 after the first failure).
  int failures() const { return backoff_.attempts(); }

 private:
  Backoff backoff_;
  std::chrono::milliseconds healthy_session_;
};

// A PEM file that must hold a "-----BEGIN ...<kind>-----" block (kind:
// "CERTIFICATE", "PRIVATE KEY"); nullopt, with `error` naming the file and
// what is wrong, when it cannot be read or holds no such block.
std::optional<std::string> read_pem_file(const std::string& path, std::string_view kind, std::string* error);
// The coordinator's PEM CA bundle (tls_ca_file): read_pem_file for a certificate.
std::optional<std::string> read_ca_file(const std::string& path, std::string* error);
// The TLS options together (files readable, pairs complete). Throws
// OptionError naming the option as AgentOptions does ("stream.tls_ca_file").
void check_tls_options(const StreamerOptions& options);

class Streamer {
 public:
  enum class State { kIdle, kConnecting, kConnected, kBackingOff };

  // `spool`, `sink` and `timers` outlive the streamer.
  Streamer(StreamerOptions options, Spool& spool, AssignmentSink& sink, Timers& timers,
           std::function<double()> uniform);
  ~Streamer();

  void start();
  void stop();
  State state() const { return state_; }
  // Streams that reached the Welcome; for tests and metrics.
  uint64_t sessions() const { return sessions_; }
  // Waits until the spool holds nothing unacknowledged (true) or the clock
  // reaches `deadline` (false); each ack wakes it.
  bool wait_until_drained(std::chrono::steady_clock::time_point deadline);

 private:
  using TimePoint = std::chrono::steady_clock::time_point;
  struct Session;  // one stream: its context, its gRPC stream, what it saw

  void loop();
  void log_stream_end(const ReconnectPolicy& policy, std::chrono::milliseconds delay);
  // One stream, from Connect to its end.
  void run_session();
  // Connect, the hello, the welcome: false when no welcome came.
  bool handshake(Session& session);
  // The coordinator's messages until the stream ends (on a thread of its own).
  void read_messages(Session& session);
  // Results and heartbeats until the stream ends or the streamer stops.
  void write_messages(Session& session);
  // Until `deadline` (true) or stop() (false).
  bool sleep_until(TimePoint deadline);
  TimePoint now() const { return timers_.clock().steady_now(); }

  StreamerOptions options_;
  Spool& spool_;
  AssignmentSink& sink_;
  Timers& timers_;
  std::function<double()> uniform_;
  std::atomic<State> state_{State::kIdle};
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> sessions_{0};
  std::mutex mu_;  // guards context_; the mutex of wake_
  ClockCondition wake_{timers_, mu_};  // stop, and acks (for wait_until_drained)
  grpc::ClientContext* context_ = nullptr;
  // How the last stream ended; streamer thread only.
  int last_code_ = 0;
  std::string last_error_;
  ReconnectPolicy::Session last_session_;
  std::optional<StreamEnd> last_logged_end_;
  std::thread thread_;
};

}  // namespace vantage::probe
