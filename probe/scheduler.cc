#include "probe/scheduler.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <algorithm>
#include <optional>

#include "common/check_config.h"
#include "common/log.h"
#include "common/text.h"

namespace vantage::probe {

namespace asio = boost::asio;

namespace {

// The check as assigned; a task holds it serialized.
v1::Check parsed(const std::string& serialized) {
  v1::Check check;
  check.ParseFromString(serialized);  // serialized by Task: it parses
  return check;
}

}  // namespace

struct Scheduler::Task {
  Task(const v1::Check& check, uint32_t g)
      : serialized(check.SerializeAsString()),
        id(check.id()),
        version(check.version()),
        interval(std::max(to_millis(check.interval()), std::chrono::milliseconds(1))),
        generation(g) {}
  std::string serialized;  // the v1::Check, parsed again for each attempt
  int64_t id;
  int64_t version;
  std::chrono::milliseconds interval;
  uint32_t generation;
  bool stopped = false;   // removed or replaced: a result in flight is stale
  bool running = false;   // an attempt is in flight
  bool queued = false;    // in ready_
  // When the scheduled run came due, until it starts (it may wait for a
  // slot, or for a re-check in flight to finish).
  std::optional<TimePoint> scheduled_due;
  // Request ids waiting to run. Rarely more than one.
  std::vector<std::string> rechecks;
  // When the origin leg last ran, for OriginTarget.interval.
  std::optional<TimePoint> last_origin_leg;
  // Only for the checks whose origin keep-alive behaviour is measured.
  struct KeepAlive {
    std::shared_ptr<KeepAliveCancel> cancel = std::make_shared<KeepAliveCancel>();
    bool measuring = false;
    // The latest measurement, until the next result carries it.
    std::optional<v1::KeepAliveMeasurement> latest;
  };
  std::unique_ptr<KeepAlive> keep_alive;

  void stop() {
    stopped = true;
    if (keep_alive) keep_alive->cancel->cancel();
  }
};

Scheduler::Scheduler(asio::any_io_executor executor, Timers& timers, AttemptRunner& runner, SchedulerOptions options,
                     std::function<double()> uniform, ResultFn on_result, LagFn on_lag)
    : executor_(std::move(executor)),
      timers_(timers),
      runner_(runner),
      options_(options),
      uniform_(std::move(uniform)),
      on_result_(std::move(on_result)),
      on_lag_(std::move(on_lag)),
      wake_(timers_.make_timer(executor_)) {
  asio::co_spawn(executor_, wake_loop(), asio::detached);
}

Scheduler::~Scheduler() = default;

std::future<void> Scheduler::assign(Checks checks, bool first, bool last) {
  auto applied = std::make_shared<std::promise<void>>();
  auto future = applied->get_future();
  asio::post(executor_, [this, checks = std::move(checks), first, last, applied]() mutable {
    apply_part(std::move(checks), first, last);
    applied->set_value();
  });
  return future;
}

void Scheduler::apply_part(Checks checks, bool first, bool last) {
  if (stopped_) return;
  if (first) assigned_.clear();
  // Each parsed check is freed as soon as its task has it serialized.
  while (!checks.empty()) {
    std::unique_ptr<v1::Check> check(checks.ReleaseLast());
    assigned_.push_back(check->id());
    auto it = tasks_.find(check->id());
    // Unchanged: it keeps its place in the schedule.
    if (it == tasks_.end() || it->second->version != check->version()) start(*check);
  }
  if (!last) return;
  std::sort(assigned_.begin(), assigned_.end());
  std::vector<int64_t> unassigned;
  for (const auto& [id, task] : tasks_) {
    if (!std::binary_search(assigned_.begin(), assigned_.end(), id)) unassigned.push_back(id);
  }
  for (auto id : unassigned) remove(id);
  assigned_.clear();
  assigned_.shrink_to_fit();
  log::info("checks assigned", "count", tasks_.size());
}

void Scheduler::apply(const v1::CheckAssignmentDiff& diff) {
  asio::post(executor_, [this, diff] {
    if (stopped_) return;
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
    make_ready(*it->second, /*urgent=*/true);
    run_ready();
  });
}

void Scheduler::stop() {
  asio::dispatch(executor_, [this] {
    stopped_ = true;
    for (auto& [id, task] : tasks_) task->stop();
    tasks_.clear();
    ready_.clear();
    due_ = {};
    wake_->cancel();
    for (auto* waiter : waiting_) waiter->cancel();
  });
}

// Why `check` cannot be scheduled, if it cannot: its durations must be
// positive and within the bounds of check_config.h.
std::optional<std::string> Scheduler::unschedulable(const v1::Check& check) {
  const auto within = [](const google::protobuf::Duration& d, std::chrono::milliseconds max) {
    return d.seconds() >= 0 && d.nanos() >= 0 && (d.seconds() > 0 || d.nanos() > 0) &&
           d.seconds() <= std::chrono::duration_cast<std::chrono::seconds>(max).count();
  };
  if (!within(check.interval(), check_limits::kMaxInterval)) return "interval: not in (0, 24h]";
  if (!within(check.timeout(), check_limits::kMaxTimeout)) return "timeout: not in (0, 5m]";
  const auto& origin_interval = check.origin().interval();  // zero: the check's own
  if ((origin_interval.seconds() != 0 || origin_interval.nanos() != 0) &&
      !within(origin_interval, check_limits::kMaxInterval)) {
    return "origin.interval: not in (0, 24h]";
  }
  return std::nullopt;
}

void Scheduler::start(const v1::Check& check) {
  remove(check.id());
  // The coordinator validated the check (validate_check); a schedule that
  // would overflow the clock or spin (a coordinator of another version, a
  // bug) is refused here rather than run. Shorter intervals than the file
  // allows are fine here (tests use them); the request itself is checked
  // again before it is sent.
  if (const auto problem = unschedulable(check)) {
    log::warn("assigned check refused", "check_id", check.id(), "check", safe_text(check.name(), 128), "problem",
              *problem);
    return;
  }
  auto task = std::make_shared<Task>(check, ++next_generation_);
  const auto id = task->id;
  const auto now = this->now();
  // First run somewhere in the first interval: spreads a probe's checks.
  push_due({now + std::chrono::milliseconds(
                      static_cast<long long>(uniform_() * static_cast<double>(task->interval.count()))),
            id, task->generation, Due::kAttempt});
  if (options_.keep_alive_interval.count() > 0 && !check.origin().address().empty()) {
    task->keep_alive = std::make_unique<Task::KeepAlive>();
    // The first one somewhere in the first interval, like the checks.
    push_due({now + std::chrono::milliseconds(static_cast<long long>(
                        uniform_() * static_cast<double>(options_.keep_alive_interval.count()))),
              id, task->generation, Due::kKeepAlive});
  }
  tasks_.emplace(id, std::move(task));
}

void Scheduler::remove(int64_t check_id) {
  // Its entries in due_ and ready_ stay until they come up: the generation
  // tells them apart from a new check with the same id.
  auto it = tasks_.find(check_id);
  if (it == tasks_.end()) return;
  it->second->stop();
  tasks_.erase(it);
}

std::shared_ptr<Scheduler::Task>* Scheduler::current(int64_t check_id, uint32_t generation) {
  auto it = tasks_.find(check_id);
  return it != tasks_.end() && it->second->generation == generation ? &it->second : nullptr;
}

Scheduler::TimePoint Scheduler::slot(TimePoint t) const {
  const auto slack = options_.wake_slack;
  if (slack.count() <= 0 || t == TimePoint::max()) return t;
  return t - t.time_since_epoch() % slack;
}

void Scheduler::push_due(Due due) {
  due_.push(due);
  if (slot(due.at) < wake_at_) wake_->cancel();  // wake_loop sets it again, earlier
}

asio::awaitable<void> Scheduler::wake_loop() {
  while (!stopped_) {
    wake_at_ = due_.empty() ? TimePoint::max() : slot(due_.top().at);
    co_await wake_->wait_until(wake_at_);  // or cancelled: an earlier entry, or stop
    wake_at_ = TimePoint::max();  // not waiting: push_due need not cancel
    // Everything due within the slot that has begun (the heap is in time
    // order, so in slot order too).
    const auto now = this->now();
    while (!stopped_ && !due_.empty() && slot(due_.top().at) <= now) {
      const Due due = due_.top();
      due_.pop();
      on_due(due);
    }
    run_ready();
  }
}

void Scheduler::on_due(const Due& due) {
  auto* found = current(due.check_id, due.generation);
  if (!found) return;
  auto& task = **found;
  if (due.kind == Due::kAttempt) {
    task.scheduled_due = due.at;
    make_ready(task, /*urgent=*/false);
    return;
  }
  const auto interval = options_.keep_alive_interval;
  push_due({due.at + interval, due.check_id, due.generation, Due::kKeepAlive});
  if (!task.keep_alive->measuring) asio::co_spawn(executor_, run_keep_alive(*found), asio::detached);
}

void Scheduler::make_ready(Task& task, bool urgent) {
  // A running check comes back here when its attempt ends.
  if (task.running || task.queued) return;
  task.queued = true;
  const Ready ready{task.id, task.generation};
  if (urgent) {
    ready_.push_front(ready);
  } else {
    ready_.push_back(ready);
  }
}

void Scheduler::run_ready() {
  // Slots promised to keep-alive measurements woken in release_slot count as taken.
  while (!stopped_ && !ready_.empty() && running_ + waiting_.size() < options_.max_concurrent) {
    const Ready ready = ready_.front();
    ready_.pop_front();
    auto* found = current(ready.check_id, ready.generation);
    if (!found) continue;
    auto& task = **found;
    task.queued = false;
    if (task.rechecks.empty() && !task.scheduled_due) continue;
    task.running = true;
    ++running_;
    asio::co_spawn(executor_, run(*found), asio::detached);
  }
}

asio::awaitable<void> Scheduler::run(std::shared_ptr<Task> task) {
  const auto started = now();
  const v1::Check check = parsed(task->serialized);
  // A waiting re-check goes first; the scheduled run, if due, follows at once.
  std::string request_id;
  std::optional<TimePoint> next_due;
  if (!task->rechecks.empty()) {
    request_id = std::move(task->rechecks.front());
    task->rechecks.erase(task->rechecks.begin());
  } else {
    const auto interval = task->interval;
    // Late from the start of its slot: a run started early within it is not late.
    if (on_lag_) on_lag_(std::max(TimePoint::duration::zero(), started - slot(*task->scheduled_due)));
    // The next run one interval later, skipping any that a long wait made us miss.
    next_due = *task->scheduled_due + interval;
    while (*next_due <= started) *next_due += interval;
    task->scheduled_due.reset();
  }
  // The origin leg on its own schedule (OriginTarget.interval): at most
  // once per interval when the edge is fine; a failing edge leg always
  // brings one, which counts as well.
  AttemptOptions attempt_options;
  attempt_options.resolve = options_.resolve;
  const auto origin_interval = to_millis(check.origin().interval());
  attempt_options.origin_always = origin_interval.count() > 0 && !check.origin().address().empty() &&
                                  (!task->last_origin_leg || started - *task->last_origin_leg >= origin_interval);
  auto result = co_await runner_.attempt(check, std::move(attempt_options));
  task->running = false;
  if (!task->stopped) {  // else removed or changed while running: its result is stale
    if (result.has_origin()) task->last_origin_leg = started;
    result.set_recheck_request_id(request_id);
    if (task->keep_alive && task->keep_alive->latest) {
      *result.mutable_keep_alive() = std::move(*task->keep_alive->latest);
      task->keep_alive->latest.reset();
    }
    on_result_(std::move(result));
    if (next_due) push_due({*next_due, task->id, task->generation, Due::kAttempt});
    if (!task->rechecks.empty() || task->scheduled_due) make_ready(*task, /*urgent=*/!task->rechecks.empty());
  }
  release_slot();
}

asio::awaitable<void> Scheduler::run_keep_alive(std::shared_ptr<Task> task) {
  auto& state = *task->keep_alive;
  state.measuring = true;
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
  keep_alive.cancel = state.cancel;
  const v1::Check check = parsed(task->serialized);
  auto measurement = co_await runner_.keep_alive(check, {.resolve = options_.resolve}, std::move(keep_alive));
  release();
  state.measuring = false;
  if (task->stopped) co_return;
  if (!measurement.error().empty()) {
    log::debug("keep-alive measurement failed", "check_id", task->id, "error", measurement.error());
  }
  state.latest = std::move(measurement);
}

asio::awaitable<void> Scheduler::acquire_slot() {
  while (running_ >= options_.max_concurrent && !stopped_) {
    const auto wake = timers_.make_timer(executor_);
    waiting_.push_back(wake.get());
    co_await wake->wait_until(TimePoint::max());  // cancelled: a slot is free
    std::erase(waiting_, wake.get());
  }
  ++running_;
}

void Scheduler::release_slot() {
  --running_;
  // Waiting measurements first: they wait rarely, and never long.
  const size_t free = options_.max_concurrent > running_ ? options_.max_concurrent - running_ : 0;
  for (size_t i = 0; i < std::min(free, waiting_.size()); ++i) waiting_[i]->cancel();
  run_ready();
}

}  // namespace vantage::probe
