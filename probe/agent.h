#pragma once
// The probe daemon as a library: scheduler -> prober -> spool -> streamer, on
// one I/O thread plus the streamer's thread. main.cc and the tests run this.
// The agent wires them: one Timers for all their waits, the scheduler as the
// streamer's AssignmentSink, the network as the scheduler's AttemptRunner.

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <memory>
#include <thread>

#include "common/clock.h"
#include "common/timer.h"
#include "probe/attempt_runner.h"
#include "probe/metrics.h"
#include "probe/scheduler.h"
#include "probe/spool.h"
#include "probe/streamer.h"

namespace prometheus {
class Exposer;
}

namespace vantage::probe {

struct AgentOptions {
  StreamerOptions stream;
  SchedulerOptions scheduler;
  SpoolOptions spool;
  std::string metrics_listen;  // empty: no /metrics endpoint
  // On stop, how long to wait for unacknowledged results to be stored.
  std::chrono::milliseconds drain_timeout{5'000};
};

class Agent {
 public:
  // Throws OptionError ("spool.directory", "metrics_listen") when the spool
  // directory or the metrics address cannot be used. `timers` (and its clock) outlive the agent.
  Agent(AgentOptions options, Timers& timers);
  ~Agent();
  void start();
  // Stops scheduling, gives the coordinator `drain_timeout` to acknowledge
  // what is spooled, then closes the stream.
  void stop();

  const Spool& spool() const { return spool_; }
  const Streamer& streamer() const { return *streamer_; }
  int metrics_port() const;

 private:
  // Updates the gauges every second until cancelled.
  boost::asio::awaitable<void> update_metrics();

  AgentOptions options_;
  Timers& timers_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  Spool spool_;
  ProbeMetrics metrics_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::unique_ptr<Timer> metrics_timer_;
  NetworkAttemptRunner attempts_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<Streamer> streamer_;
  std::thread io_thread_;
  bool stopped_ = false;
};

}  // namespace vantage::probe
