#pragma once
// The probe daemon as a library: scheduler -> prober -> spool -> streamer, on
// one I/O thread plus the streamer's thread. main.cc and the tests run this.

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <thread>

#include "common/clock.h"
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
  // Throws std::runtime_error when the spool directory or the metrics
  // address cannot be used.
  Agent(AgentOptions options, const Clock& clock);
  ~Agent();
  void start();
  // Stops scheduling, gives the coordinator `drain_timeout` to acknowledge
  // what is spooled, then closes the stream.
  void stop();

  const Spool& spool() const { return spool_; }
  const Streamer& streamer() const { return *streamer_; }
  int metrics_port() const;

 private:
  void schedule_metrics_update();

  AgentOptions options_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  Spool spool_;
  ProbeMetrics metrics_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  boost::asio::steady_timer metrics_timer_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<Streamer> streamer_;
  std::thread io_thread_;
  bool stopped_ = false;
};

}  // namespace vantage::probe
