#pragma once
// The probe daemon as a library: scheduler -> prober -> result buffer ->
// streamer, on one I/O thread plus the streamer's thread. main.cc and the
// integration tests both run this.

#include <boost/asio/io_context.hpp>
#include <memory>
#include <thread>

#include "common/clock.h"
#include "probe/result_buffer.h"
#include "probe/scheduler.h"
#include "probe/streamer.h"

namespace vantage::probe {

struct AgentOptions {
  StreamerOptions stream;
  HttpLimits limits;
  size_t max_buffered_results = 100'000;
  // On stop, how long to wait for unacknowledged results to be stored.
  std::chrono::milliseconds drain_timeout{5'000};
};

class Agent {
 public:
  Agent(AgentOptions options, const Clock& clock);
  ~Agent();
  void start();
  // Stops scheduling, gives the coordinator `drain_timeout` to acknowledge
  // what is buffered, then closes the stream.
  void stop();

  const ResultBuffer& buffer() const { return buffer_; }
  const Streamer& streamer() const { return *streamer_; }

 private:
  AgentOptions options_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  ResultBuffer buffer_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<Streamer> streamer_;
  std::thread io_thread_;
  bool stopped_ = false;
};

}  // namespace vantage::probe
