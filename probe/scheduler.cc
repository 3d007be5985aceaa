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
  // The due time of its attempt entry in due_, while it has one; an entry
  // of another time is stale (a phase change moved the run).
  std::optional<TimePoint> next_due;
  // When the last scheduled run that started was due.
  std::optional<TimePoint> last_due;
  // Its offset into the interval on the wall clock (CheckPhase); none: the
  // probe's own schedule.
  std::optional<std::chrono::nanoseconds> phase;
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

std::future<void> Scheduler::assign(Checks checks, bool first, bool last, Phases phases) {
  auto applied = std::make_shared<std::promise<void>>();
  auto future = applied->get_future();
  asio::post(executor_, [this, checks = std::move(checks), first, last, phases = std::move(phases), applied]() mutable {
    apply_part(std::move(checks), first, last, std::move(phases));
    applied->set_value();
  });
  return future;
}

void Scheduler::apply_part(Checks checks, bool first, bool last, Phases phases) {
  if (stopped_) return;
  if (first) assigned_.clear();
  const auto by_check = offsets(phases);
  // Each parsed check is freed as soon as its task has it serialized.
  while (!checks.empty()) {
    std::unique_ptr<v1::Check> check(checks.ReleaseLast());
    assigned_.push_back(check->id());
    auto it = tasks_.find(check->id());
    if (it == tasks_.end() || it->second->version != check->version()) {
      start(*check, by_check);
    } else {
      // Unchanged: it keeps its place in the schedule, or moves to its new
      // phase. A whole set without a phase for it: the probe's own schedule
      // from its next run on.
      set_phase(*it->second, phase_of(*it->second, by_check));
    }
  }
  log_refused_phases();
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
    auto by_check = offsets(diff.phases());
    for (const auto* checks : {&diff.added(), &diff.updated()}) {
      for (const auto& c : *checks) {
        start(c, by_check);
        by_check.erase(c.id());
      }
    }
    apply_phases(by_check);  // the checks it already ran (the fleet changed)
    log::info("check assignment changed", "added", diff.added_size(), "updated", diff.updated_size(), "removed",
              diff.removed_check_ids_size(), "phases", diff.phases_size());
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

Scheduler::Offsets Scheduler::offsets(const Phases& phases) {
  Offsets by_check;
  for (const auto& phase : phases) {
    const auto& d = phase.offset();
    // Bounded before it is multiplied: no interval is longer than a day.
    if (d.seconds() < 0 || d.seconds() > 86'400 || d.nanos() < 0 || d.nanos() >= 1'000'000'000) {
      ++phases_refused_;
      continue;
    }
    by_check[phase.check_id()] = std::chrono::seconds(d.seconds()) + std::chrono::nanoseconds(d.nanos());
  }
  return by_check;
}

std::optional<std::chrono::nanoseconds> Scheduler::phase_of(const Task& task, const Offsets& offsets) {
  auto it = offsets.find(task.id);
  if (it == offsets.end()) return std::nullopt;
  if (it->second >= task.interval) {
    ++phases_refused_;
    return std::nullopt;
  }
  return it->second;
}

void Scheduler::apply_phases(const Offsets& offsets) {
  for (const auto& [id, offset] : offsets) {
    auto it = tasks_.find(id);
    if (it == tasks_.end()) continue;  // removed meanwhile, or never assigned
    if (auto phase = phase_of(*it->second, offsets)) set_phase(*it->second, phase);
  }
  log_refused_phases();
}

void Scheduler::log_refused_phases() {
  if (phases_refused_ > 0) {
    // One line per message, however many: a coordinator of another version, or a bug.
    log::warn("assigned phases refused", "count", phases_refused_, "problem",
              "offset not within the check's interval");
    phases_refused_ = 0;
  }
}

void Scheduler::set_phase(Task& task, std::optional<std::chrono::nanoseconds> phase) {
  if (task.phase == phase) return;
  task.phase = phase;
  // Due or in flight: the run schedules its successor by the new phase.
  // Without a phase the pending run stays; the runs after it follow it.
  if (!phase || !task.next_due) return;
  auto earliest = now();
  if (task.last_due) earliest = std::max(earliest, *task.last_due + task.interval / 2);
  const auto at = aligned(task, earliest);
  if (at != *task.next_due) schedule(task, at);
}

Scheduler::TimePoint Scheduler::aligned(const Task& task, TimePoint not_before) const {
  using std::chrono::nanoseconds;
  const auto& clock = timers_.clock();
  // The wall-clock time `not_before` stands for, the two clocks read together.
  const auto wall = std::chrono::duration_cast<nanoseconds>(clock.now().time_since_epoch()) +
                    std::chrono::duration_cast<nanoseconds>(not_before - clock.steady_now());
  const nanoseconds interval = task.interval;
  auto into = (wall - *task.phase) % interval;  // negative before the epoch plus the offset
  if (into < nanoseconds::zero()) into += interval;
  if (into == nanoseconds::zero()) return not_before;
  return not_before + std::chrono::duration_cast<TimePoint::duration>(interval - into);
}

Scheduler::TimePoint Scheduler::next_after(const Task& task, TimePoint due, TimePoint started) const {
  // One interval after it was due; a phased check back on its grid (the
  // nearest point, which the wall clock may have moved a little).
  auto next = task.phase ? aligned(task, due + task.interval / 2) : due + task.interval;
  // Skipping any that a long wait made us miss.
  while (next <= started) next += task.interval;
  return next;
}

void Scheduler::schedule(Task& task, TimePoint at) {
  task.next_due = at;
  push_due({at, task.id, task.generation, Due::kAttempt});
}

void Scheduler::start(const v1::Check& check, const Offsets& offsets) {
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
  task->phase = phase_of(*task, offsets);
  if (task->phase) {
    schedule(*task, aligned(*task, now));
  } else {
    // First run somewhere in the first interval: spreads a probe's checks.
    schedule(*task, now + std::chrono::milliseconds(static_cast<long long>(
                              uniform_() * static_cast<double>(task->interval.count()))));
  }
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
    if (task.next_due != due.at) return;  // moved by a phase change
    task.next_due.reset();
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
  bool scheduled = false;
  if (!task->rechecks.empty()) {
    request_id = std::move(task->rechecks.front());
    task->rechecks.erase(task->rechecks.begin());
  } else {
    // Late from the start of its slot: a run started early within it is not late.
    if (on_lag_) on_lag_(std::max(TimePoint::duration::zero(), started - slot(*task->scheduled_due)));
    scheduled = true;
    task->last_due = task->scheduled_due;
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
    // Scheduled when the attempt ends, by the phase it has then.
    if (scheduled) schedule(*task, next_after(*task, *task->last_due, started));
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
  // A named object moved in, never a braced temporary: g++ 12 destroys a
  // temporary of a co_await's full-expression twice (the overrides' strings
  // freed twice: a probe with --connect-to died at its first measurement).
  AttemptOptions attempt_options;
  attempt_options.resolve = options_.resolve;
  auto measurement = co_await runner_.keep_alive(check, std::move(attempt_options), std::move(keep_alive));
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
