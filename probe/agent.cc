#include "probe/agent.h"

#include <prometheus/exposer.h>

#include "common/backoff.h"
#include "common/log.h"

namespace vantage::probe {

Agent::Agent(AgentOptions options, const Clock& clock)
    : options_(std::move(options)),
      work_(boost::asio::make_work_guard(io_)),
      spool_(options_.spool),
      metrics_timer_(io_) {
  if (!options_.metrics_listen.empty()) {
    try {
      exposer_ = std::make_unique<prometheus::Exposer>(options_.metrics_listen);
    } catch (const std::exception& e) {
      throw std::runtime_error("--metrics-listen " + options_.metrics_listen + ": cannot listen: " + e.what());
    }
    exposer_->RegisterCollectable(metrics_.registry);
  }
  scheduler_ = std::make_unique<Scheduler>(
      io_.get_executor(), clock, options_.scheduler, random_uniform(),
      [this](v1::CheckResult result) {
        metrics_.count_result(result);
        spool_.append(std::move(result));
      },
      [this](std::chrono::steady_clock::duration lag) {
        metrics_.scheduler_lag.Observe(std::chrono::duration<double>(lag).count());
      });
  streamer_ = std::make_unique<Streamer>(options_.stream, spool_, *scheduler_, random_uniform());
}

Agent::~Agent() { stop(); }

int Agent::metrics_port() const {
  if (!exposer_) return 0;
  auto ports = exposer_->GetListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

void Agent::schedule_metrics_update() {
  metrics_.update(spool_.stats(), streamer_->state() == Streamer::State::kConnected, streamer_->sessions(),
                  scheduler_->size());
  metrics_timer_.expires_after(std::chrono::seconds(1));
  metrics_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) schedule_metrics_update();
  });
}

void Agent::start() {
  schedule_metrics_update();
  io_thread_ = std::thread([this] { io_.run(); });
  streamer_->start();
}

void Agent::stop() {
  if (stopped_) return;
  stopped_ = true;
  scheduler_->stop();
  const auto deadline = std::chrono::steady_clock::now() + options_.drain_timeout;
  // The streamer may be between two streams: give it the whole timeout.
  while (spool_.size() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const auto stats = spool_.stats();
  if (stats.results > 0) {
    log::warn("stopping with unacknowledged results", "count", stats.results, "kept_on_disk",
              !options_.spool.directory.empty());
  }
  streamer_->stop();
  boost::asio::post(io_, [this] { metrics_timer_.cancel(); });
  work_.reset();
  io_.stop();
  if (io_thread_.joinable()) io_thread_.join();
  log::info("stopped", "last_sequence", stats.last_sequence, "acked_sequence", stats.acked_sequence,
            "dropped_total", stats.dropped, "replayed_total", stats.replayed);
}

}  // namespace vantage::probe
