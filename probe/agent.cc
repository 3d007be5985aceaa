#include "probe/agent.h"

#include "common/backoff.h"
#include "common/log.h"

namespace vantage::probe {

Agent::Agent(AgentOptions options, const Clock& clock)
    : options_(std::move(options)),
      work_(boost::asio::make_work_guard(io_)),
      buffer_(options_.max_buffered_results) {
  scheduler_ = std::make_unique<Scheduler>(
      io_.get_executor(), clock, options_.limits, random_uniform(),
      [this](v1::CheckResult result) { buffer_.append(std::move(result)); });
  streamer_ = std::make_unique<Streamer>(options_.stream, buffer_, *scheduler_, random_uniform());
}

Agent::~Agent() { stop(); }

void Agent::start() {
  io_thread_ = std::thread([this] { io_.run(); });
  streamer_->start();
}

void Agent::stop() {
  if (stopped_) return;
  stopped_ = true;
  scheduler_->stop();
  const auto deadline = std::chrono::steady_clock::now() + options_.drain_timeout;
  // The streamer may be between two streams: give it the whole timeout.
  while (buffer_.size() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (buffer_.size() > 0) {
    log::warn("stopping with unacknowledged results", "count", buffer_.size());
  }
  streamer_->stop();
  work_.reset();
  io_.stop();
  if (io_thread_.joinable()) io_thread_.join();
}

}  // namespace vantage::probe
