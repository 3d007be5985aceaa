#pragma once
// Runs every assigned check on its interval, spread over the interval with
// jitter so a probe's checks do not fire together, and runs a check at once
// when the coordinator asks for a re-check. All state lives on one executor;
// the public methods may be called from any thread.
//
// Memory is the scheduler's budget (thousands of checks per probe): an idle
// check is its Check serialized (a parsed v1::Check is over 400 bytes before
// its fields; parsing one again costs about a microsecond per attempt), a
// small Task and an entry in one time-ordered heap. One timer waits for the
// earliest entry; a coroutine exists only for an attempt in flight (at most
// max_concurrent) and for a keep-alive measurement.
//
// Wake-ups are coalesced (SchedulerOptions::wake_slack): time is cut into
// slots of the slack, and one wake at a slot's start begins every run due
// within that slot, up to a slack early. At 1,000 checks/s the event loop
// then wakes 100 times a second for ten checks rather than 1,000 times for
// one, and those attempts' replies are gathered by few epoll_waits. A check's
// schedule is unchanged (the next run is due one interval after this one
// was due, not after it started), so with an interval that is a multiple of
// the slack its runs stay exactly one interval apart.
//
// A check the coordinator gave a phase (CheckPhase: the fleet takes turns
// at it, architecture.md "The phased schedule") runs at the wall-clock times
// whose offset into the interval, counted from the Unix epoch, is the
// phase: the next such time is read off the wall clock and waited for on the
// steady clock, and each run's successor is aligned again, so the runs
// follow the wall clock's grid even if the two clocks drift apart. When the
// phase changes (probes joined or left), the check's pending run moves to
// the first time on the new grid that is not in the past and is at least
// half an interval after its last scheduled run: a move never brings two
// scheduled runs closer than half an interval (the gap is at most two
// intervals, once). A run due or in flight is not moved; the one after it
// follows the new phase. Re-checks run at once as always and do not count
// as scheduled runs. A check without a phase keeps the probe's own
// schedule (first run at a random point of its first interval).
//
// Time and attempts are injected: the schedule runs on a Timers (real or
// simulated time), the attempts through an AttemptRunner (the network, or a
// test's own).

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <queue>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/timer.h"
#include "probe/assignment_sink.h"
#include "probe/attempt.h"
#include "probe/attempt_runner.h"
#include "probe/http_check.h"
#include "vantage/v1/probe_service.pb.h"

namespace vantage::probe {

struct SchedulerOptions {
  HttpLimits limits;  // for the NetworkAttemptRunner the agent makes
  // Attempts in flight at once; the others wait their turn (and the wait
  // shows as scheduler lag).
  size_t max_concurrent = 256;
  // One wake-up starts every scheduled run due within the same slot of this
  // length (aligned on the clock), up to this much before it was due; zero:
  // each run at its exact time, one wake-up each. Lag is counted from the
  // start of the run's slot.
  std::chrono::milliseconds wake_slack{10};
  // How often the origin's keep-alive behaviour is measured for each check
  // with an origin address (diagnosis.md section 5); zero: never. Each
  // measurement travels with the check's next result.
  std::chrono::milliseconds keep_alive_interval = std::chrono::hours(6);
  KeepAliveOptions keep_alive;  // its on_idle and cancel are the scheduler's
  // --resolve / --connect-to: where this probe connects for a URL's host.
  std::vector<ResolveOverride> resolve;
};

class Scheduler final : public AssignmentSink {
 public:
  using ResultFn = std::function<void(v1::CheckResult)>;
  // How late a scheduled attempt started, for the lag metric.
  using LagFn = std::function<void(std::chrono::steady_clock::duration)>;
  // `uniform` draws from [0, 1) for the jitter. `timers` and `runner`
  // outlive the scheduler.
  Scheduler(boost::asio::any_io_executor executor, Timers& timers, AttemptRunner& runner, SchedulerOptions options,
            std::function<double()> uniform, ResultFn on_result, LagFn on_lag = {});
  ~Scheduler() override;

  // Replaces the whole set of checks (taken from the assignment message, not
  // copied). A set in parts: the checks of each part start as it comes, and
  // those in no part stop with the last one. A `first` part abandons an
  // unfinished set (a stream that broke in the middle of one). Ready when
  // the part is applied: a reader that waits for it before reading the next
  // part holds one part in memory, not the whole set.
  std::future<void> assign(Checks checks, bool first = true, bool last = true, Phases phases = {}) override;
  void apply(const v1::CheckAssignmentDiff& diff) override;
  void recheck(int64_t check_id, std::string request_id) override;
  void stop();
  // Checks scheduled; on the executor only.
  size_t size() const { return tasks_.size(); }

 private:
  using TimePoint = std::chrono::steady_clock::time_point;
  struct Task;
  // What the heap holds. `generation` tells an entry of a removed or
  // replaced check from a current one (the entry is simply dropped).
  struct Due {
    enum Kind : uint8_t { kAttempt, kKeepAlive };
    TimePoint at;
    int64_t check_id;
    uint32_t generation;
    Kind kind;
    bool operator>(const Due& other) const { return at > other.at; }
  };
  // A check waiting for a slot: its scheduled run came due or a re-check
  // arrived.
  struct Ready {
    int64_t check_id;
    uint32_t generation;
  };

  // A message's phases by check id: offsets of a day at most, not negative
  // (the rest are refused and counted in phases_refused_).
  using Offsets = std::unordered_map<int64_t, std::chrono::nanoseconds>;
  Offsets offsets(const Phases& phases);
  // The phase of `offsets` for the task, if there is one within its interval.
  std::optional<std::chrono::nanoseconds> phase_of(const Task& task, const Offsets& offsets);
  // Sets the phases of the tasks `offsets` names (see the header comment).
  void apply_phases(const Offsets& offsets);
  // One line for the phases of a message that were refused, if any.
  void log_refused_phases();
  void set_phase(Task& task, std::optional<std::chrono::nanoseconds> phase);
  // The first time at or after `not_before` whose wall-clock time is on the task's phase.
  TimePoint aligned(const Task& task, TimePoint not_before) const;
  // When the task runs after the scheduled run that was due at `due` and started at `started`.
  TimePoint next_after(const Task& task, TimePoint due, TimePoint started) const;
  // Makes `at` the task's one pending scheduled run.
  void schedule(Task& task, TimePoint at);

  void apply_part(Checks checks, bool first, bool last, Phases phases);
  void start(const v1::Check& check, const Offsets& offsets);
  static std::optional<std::string> unschedulable(const v1::Check& check);
  void remove(int64_t check_id);
  // The task an entry of due_ or ready_ stands for; null if removed or replaced.
  std::shared_ptr<Task>* current(int64_t check_id, uint32_t generation);
  void push_due(Due due);
  boost::asio::awaitable<void> wake_loop();
  void on_due(const Due& due);
  // Queues the task for a slot unless it is running or queued already.
  void make_ready(Task& task, bool urgent);
  // Starts ready attempts while slots are free.
  void run_ready();
  boost::asio::awaitable<void> run(std::shared_ptr<Task> task);
  boost::asio::awaitable<void> run_keep_alive(std::shared_ptr<Task> task);
  // A slot for a keep-alive measurement: waits among the slots' waiters,
  // which go before the ready attempts.
  boost::asio::awaitable<void> acquire_slot();
  void release_slot();

  TimePoint now() const { return timers_.clock().steady_now(); }
  // The start of `t`'s wake slot (wake_slack); `t` itself without a slack.
  TimePoint slot(TimePoint t) const;

  boost::asio::any_io_executor executor_;
  Timers& timers_;
  AttemptRunner& runner_;
  SchedulerOptions options_;
  std::function<double()> uniform_;
  ResultFn on_result_;
  LagFn on_lag_;
  // Everything below: executor_ only.
  bool stopped_ = false;
  uint32_t next_generation_ = 0;
  std::unordered_map<int64_t, std::shared_ptr<Task>> tasks_;
  std::vector<int64_t> assigned_;  // the ids of the parts of a set so far
  std::priority_queue<Due, std::vector<Due>, std::greater<>> due_;
  std::unique_ptr<Timer> wake_;
  TimePoint wake_at_ = TimePoint::max();  // what wake_ waits for: slot(due_.top().at) when it was set
  std::deque<Ready> ready_;
  size_t running_ = 0;
  std::deque<Timer*> waiting_;  // keep-alive measurements waiting for a slot
  size_t phases_refused_ = 0;   // in the message being applied
};

}  // namespace vantage::probe
