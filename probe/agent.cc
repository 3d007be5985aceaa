#include "probe/agent.h"

#include <prometheus/exposer.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>

#include "common/backoff.h"
#include "common/log.h"
#include "common/option_error.h"

namespace vantage::probe {

Agent::Agent(AgentOptions options, Timers& timers)
    : options_(std::move(options)),
      timers_(timers),
      work_(boost::asio::make_work_guard(io_)),
      spool_(options_.spool, timers_),
      metrics_timer_(timers_.make_timer(io_.get_executor())),
      attempts_(timers_.clock(), options_.scheduler.limits) {
  if (!options_.metrics_listen.empty()) {
    try {
      exposer_ = std::make_unique<prometheus::Exposer>(options_.metrics_listen);
    } catch (const std::exception& e) {
      throw OptionError("metrics_listen",
                        "metrics address " + options_.metrics_listen + ": cannot listen: " + e.what());
    }
    exposer_->RegisterCollectable(metrics_.registry);
  }
  scheduler_ = std::make_unique<Scheduler>(
      io_.get_executor(), timers_, attempts_, options_.scheduler, random_uniform(),
      [this](v1::CheckResult result) {
        metrics_.count_result(result);
        spool_.append(std::move(result));
      },
      [this](std::chrono::steady_clock::duration lag) {
        metrics_.scheduler_lag.Observe(std::chrono::duration<double>(lag).count());
      });
  streamer_ = std::make_unique<Streamer>(options_.stream, spool_, *scheduler_, timers_, random_uniform());
}

Agent::~Agent() { stop(); }

int Agent::metrics_port() const {
  if (!exposer_) return 0;
  auto ports = exposer_->GetListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

boost::asio::awaitable<void> Agent::update_metrics() {
  // (Not a do-while on the co_await: g++ 12 miscompiles a co_await in a loop's condition.)
  for (;;) {
    metrics_.update(spool_.stats(), streamer_->state() == Streamer::State::kConnected, streamer_->sessions(),
                    scheduler_->size());
    const bool fired = co_await metrics_timer_->wait_until(timers_.clock().steady_now() + std::chrono::seconds(1));
    if (!fired) co_return;  // cancelled: stopping
  }
}

void Agent::start() {
  boost::asio::co_spawn(io_, update_metrics(), boost::asio::detached);
  io_thread_ = std::thread([this] { io_.run(); });
  streamer_->start();
}

void Agent::stop() {
  if (stopped_) return;
  stopped_ = true;
  scheduler_->stop();
  // The streamer may be between two streams: give it the whole timeout.
  streamer_->wait_until_drained(timers_.clock().steady_now() + options_.drain_timeout);
  const auto stats = spool_.stats();
  if (stats.results > 0) {
    log::warn("stopping with unacknowledged results", "count", stats.results, "kept_on_disk",
              !options_.spool.directory.empty());
  }
  streamer_->stop();
  boost::asio::post(io_, [this] { metrics_timer_->cancel(); });
  work_.reset();
  io_.stop();
  if (io_thread_.joinable()) io_thread_.join();
  log::info("stopped", "last_sequence", stats.last_sequence, "acked_sequence", stats.acked_sequence,
            "dropped_total", stats.dropped, "replayed_total", stats.replayed);
}

}  // namespace vantage::probe
