#include "probe/scheduler.h"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <deque>
#include <optional>

#include "common/check_config.h"
#include "common/log.h"
#include "probe/attempt.h"

namespace vantage::probe {

namespace asio = boost::asio;

struct Scheduler::Task {
  Task(asio::any_io_executor ex, v1::Check c) : check(std::move(c)), timer(ex), keep_alive_timer(ex) {}
  v1::Check check;
  asio::steady_timer timer;
  // Request ids waiting to run. Rarely more than one: a vector, since an
  // empty std::deque already allocates about 600 bytes, for every check.
  std::vector<std::string> rechecks;
  bool stopped = false;
  // When the origin leg last ran, for OriginTarget.interval.
  std::optional<std::chrono::steady_clock::time_point> last_origin_leg;
  asio::steady_timer keep_alive_timer;
  std::shared_ptr<KeepAliveCancel> keep_alive_cancel = std::make_shared<KeepAliveCancel>();
  // The latest measurement, until the next result carries it: one at most.
  std::optional<v1::KeepAliveMeasurement> keep_alive;

  void stop() {
    stopped = true;
    timer.cancel();
    keep_alive_timer.cancel();
    keep_alive_cancel->cancel();
  }
};

Scheduler::Scheduler(asio::any_io_executor executor, const Clock& clock, SchedulerOptions options,
                     std::function<double()> uniform, ResultFn on_result, LagFn on_lag)
    : executor_(std::move(executor)),
      clock_(clock),
      options_(options),
      uniform_(std::move(uniform)),
      on_result_(std::move(on_result)),
      on_lag_(std::move(on_lag)) {}

asio::awaitable<void> Scheduler::acquire_slot() {
  while (running_ >= options_.max_concurrent) {
    asio::steady_timer wake(executor_, asio::steady_timer::time_point::max());
    waiting_.push_back(&wake);
    boost::system::error_code ignored;  // cancelled: a slot is free
    co_await wake.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    std::erase(waiting_, &wake);
  }
  ++running_;
}

void Scheduler::release_slot() {
  --running_;
  if (!waiting_.empty()) waiting_.front()->cancel();
}

Scheduler::~Scheduler() = default;

void Scheduler::assign(std::vector<v1::Check> checks) {
  asio::post(executor_, [this, checks = std::move(checks)]() mutable {
    // Points into `checks`: no second copy of every check while assigning.
    std::map<int64_t, v1::Check*> wanted;
    for (auto& c : checks) wanted.emplace(c.id(), &c);
    for (auto it = tasks_.begin(); it != tasks_.end();) {
      auto next = std::next(it);
      auto w = wanted.find(it->first);
      if (w == wanted.end()) {
        remove(it->first);
      } else if (w->second->version() == it->second->check.version()) {
        wanted.erase(w);  // unchanged: keep its place in the schedule
      }
      it = next;
    }
    for (auto& [id, check] : wanted) start(std::move(*check));
    log::info("checks assigned", "count", tasks_.size());
  });
}

void Scheduler::apply(const v1::CheckAssignmentDiff& diff) {
  asio::post(executor_, [this, diff] {
    for (auto id : diff.removed_check_ids()) remove(id);
    for (const auto& c : diff.added()) start(c);
    for (const auto& c : diff.updated()) start(c);
    log::info("check assignment changed", "added", diff.added_size(), "updated",
              diff.updated_size(), "removed", diff.removed_check_ids_size());
  });
}

void Scheduler::recheck(int64_t check_id, std::string request_id) {
  asio::post(executor_, [this, check_id, request_id = std::move(request_id)]() mutable {
    auto it = tasks_.find(check_id);
    if (it == tasks_.end()) {
      log::debug("re-check of an unassigned check ignored", "check_id", check_id);
      return;
    }
    it->second->rechecks.push_back(std::move(request_id));
    it->second->timer.cancel();
  });
}

void Scheduler::stop() {
  asio::dispatch(executor_, [this] {
    for (auto& [id, task] : tasks_) task->stop();
    tasks_.clear();
  });
}

void Scheduler::start(v1::Check check) {
  remove(check.id());
  auto task = std::make_shared<Task>(executor_, std::move(check));
  tasks_[task->check.id()] = task;
  asio::co_spawn(executor_, run(task), asio::detached);
  if (options_.keep_alive_interval.count() > 0 && !task->check.origin().address().empty()) {
    asio::co_spawn(executor_, measure_keep_alive_loop(task), asio::detached);
  }
}

void Scheduler::remove(int64_t check_id) {
  auto it = tasks_.find(check_id);
  if (it == tasks_.end()) return;
  it->second->stop();
  tasks_.erase(it);
}

asio::awaitable<void> Scheduler::run(std::shared_ptr<Task> task) {
  const auto interval = to_millis(task->check.interval());
  // First run somewhere in the first interval: spreads a probe's checks.
  auto due = std::chrono::steady_clock::now() +
             std::chrono::milliseconds(static_cast<long long>(uniform_() * interval.count()));
  task->timer.expires_at(due);
  while (!task->stopped) {
    boost::system::error_code ignored;  // cancelled: stopped or a re-check
    co_await task->timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    if (task->stopped) break;
    std::string request_id;
    if (!task->rechecks.empty()) {
      request_id = std::move(task->rechecks.front());
      task->rechecks.erase(task->rechecks.begin());
    } else if (std::chrono::steady_clock::now() < due) {
      task->timer.expires_at(due);  // woken early without a re-check
      continue;
    } else {
      // A scheduled run: the next one is one interval later, skipping any
      // that a long attempt made us miss.
      while (due <= std::chrono::steady_clock::now()) due += interval;
    }
    const bool scheduled = request_id.empty();
    const auto scheduled_at = due - interval;
    co_await acquire_slot();
    if (scheduled && on_lag_) on_lag_(std::chrono::steady_clock::now() - scheduled_at);
    // The origin leg on its own schedule (OriginTarget.interval): at most
    // once per interval when the edge is fine; a failing edge leg always
    // brings one, which counts as well.
    AttemptOptions attempt_options;
    attempt_options.resolve = options_.resolve;
    const auto origin_interval = to_millis(task->check.origin().interval());
    const auto started = std::chrono::steady_clock::now();
    attempt_options.origin_always = origin_interval.count() > 0 && !task->check.origin().address().empty() &&
                                    (!task->last_origin_leg || started - *task->last_origin_leg >= origin_interval);
    auto result = co_await run_attempt(task->check, clock_, options_.limits, attempt_options);
    release_slot();
    if (result.has_origin()) task->last_origin_leg = started;
    result.set_recheck_request_id(request_id);
    if (task->stopped) break;  // removed or changed while running: its result is stale
    if (task->keep_alive) {
      *result.mutable_keep_alive() = std::move(*task->keep_alive);
      task->keep_alive.reset();
    }
    on_result_(std::move(result));
    task->timer.expires_at(task->rechecks.empty() ? due : std::chrono::steady_clock::now());
  }
}

asio::awaitable<void> Scheduler::measure_keep_alive_loop(std::shared_ptr<Task> task) {
  const auto interval = options_.keep_alive_interval;
  // The first one somewhere in the first interval, like the checks.
  task->keep_alive_timer.expires_after(
      std::chrono::milliseconds(static_cast<long long>(uniform_() * static_cast<double>(interval.count()))));
  while (!task->stopped) {
    boost::system::error_code ignored;  // cancelled: stopped
    co_await task->keep_alive_timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    if (task->stopped) break;
    task->keep_alive_timer.expires_after(interval);
    co_await acquire_slot();
    // The slot is held while requests are sent, and given back when the
    // measurement only waits for the server to close an idle connection.
    bool holding = true;
    auto release = [this, &holding] {
      if (!holding) return;
      holding = false;
      release_slot();
    };
    KeepAliveOptions keep_alive = options_.keep_alive;
    keep_alive.on_idle = release;
    keep_alive.cancel = task->keep_alive_cancel;
    auto measurement = co_await measure_keep_alive(task->check, clock_, keep_alive_target(task->check, {.resolve = options_.resolve}), keep_alive);
    release();
    if (task->stopped) break;
    if (!measurement.error().empty()) {
      log::debug("keep-alive measurement failed", "check_id", task->check.id(), "error", measurement.error());
    }
    task->keep_alive = std::move(measurement);
  }
}

}  // namespace vantage::probe
