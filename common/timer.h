#pragma once
// Waiting on the injected clock (common/clock.h). Everything that waits for
// a time — the scheduler's schedule, the streamer's backoff and linger, the
// agent's drain, the coordinator's upkeep — waits through a Timers, so tests
// run hours of schedule on simulated time, without sleeping.
//
// One source of time, two kinds of waiter:
//  - Timer, for code on an Asio executor: `co_await wait_until(deadline)`
//    ends at the deadline (true) or on cancel() (false).
//  - ClockCondition, for code on a thread of its own: a condition variable
//    whose timed waits end at a deadline of the same clock.
//
// RealTimers waits on std::chrono::steady_clock (RealClock). FakeTimers waits
// on a FakeClock that moves only through FakeTimers::advance, which fires the
// timers that came due in time order, each with the clock at its deadline,
// and runs what each firing made ready on the io_context before the next, so
// a test sees exactly what real time would have done, in no time at all.
// (FakeClock::advance alone moves the clock without firing or waking anyone:
// a test that wants time to pass for its waiters calls FakeTimers::advance.)

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "common/clock.h"

namespace vantage {

class ClockCondition;

class Timer {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  virtual ~Timer() = default;
  // Completes when the clock reaches `deadline` (true; at once if it has)
  // or when cancel() ends the wait (false). One wait at a time.
  virtual boost::asio::awaitable<bool> wait_until(TimePoint deadline) = 0;
  // Ends the wait in progress, if any; a later wait is not affected.
  // On the timer's executor only.
  virtual void cancel() = 0;
};

class Timers {
 public:
  virtual ~Timers() = default;
  // The clock the deadlines are on (its steady_now()).
  virtual const Clock& clock() const = 0;
  virtual std::unique_ptr<Timer> make_timer(boost::asio::any_io_executor executor) = 0;

 private:
  friend class ClockCondition;
  // Blocks on `cv` (with `lock` released) until notified or, perhaps, the
  // deadline; the caller checks again either way.
  virtual void block(std::condition_variable& cv, std::unique_lock<std::mutex>& lock, Timer::TimePoint deadline) = 0;
  // A fake clock wakes the conditions attached to it when it moves.
  virtual void attach(ClockCondition&) {}
  virtual void detach(ClockCondition&) {}
};

// A condition variable for `mutex` whose timed waits are on the clock of a
// Timers. Create and destroy it without holding `mutex`.
class ClockCondition {
 public:
  ClockCondition(Timers& timers, std::mutex& mutex);
  ~ClockCondition();
  ClockCondition(const ClockCondition&) = delete;
  ClockCondition& operator=(const ClockCondition&) = delete;

  // With `lock` holding the mutex: waits until `done()` holds (true) or the
  // clock reaches `deadline` (false).
  template <class Predicate>
  bool wait_until(std::unique_lock<std::mutex>& lock, Timer::TimePoint deadline, Predicate done) {
    while (!done()) {
      if (timers_.clock().steady_now() >= deadline) return false;
      timers_.block(cv_, lock, deadline);
    }
    return true;
  }
  template <class Predicate>
  bool wait_for(std::unique_lock<std::mutex>& lock, std::chrono::nanoseconds timeout, Predicate done) {
    return wait_until(lock, timers_.clock().steady_now() + timeout, std::move(done));
  }
  template <class Predicate>
  void wait(std::unique_lock<std::mutex>& lock, Predicate done) {
    wait_until(lock, Timer::TimePoint::max(), std::move(done));
  }
  // Wakes the waiters to check their predicate again.
  void notify_all() { cv_.notify_all(); }
  void notify_one() { cv_.notify_one(); }

 private:
  friend class FakeTimers;
  Timers& timers_;
  std::mutex& mutex_;
  std::condition_variable cv_;
};

// Real time: asio::steady_timer and std::condition_variable.
class RealTimers final : public Timers {
 public:
  const Clock& clock() const override { return RealClock::instance(); }
  std::unique_ptr<Timer> make_timer(boost::asio::any_io_executor executor) override;
  static RealTimers& instance();

 private:
  void block(std::condition_variable& cv, std::unique_lock<std::mutex>& lock, Timer::TimePoint deadline) override;
};

// Simulated time, for tests. The Asio side is single-threaded: timers fire
// on the thread that calls advance(), which also runs the io_context given
// here (so the test runs no io thread of its own). ClockConditions may wait
// on other threads: advance() wakes them at each step, and they see the
// clock as it is when they look (a thread is not held to time order).
class FakeTimers final : public Timers {
 public:
  // `io`: where the code under test runs; advance() and settle() run its
  // ready handlers. Null when only ClockConditions are used.
  explicit FakeTimers(FakeClock& clock, boost::asio::io_context* io = nullptr);
  ~FakeTimers() override;

  const Clock& clock() const override { return clock_; }
  std::unique_ptr<Timer> make_timer(boost::asio::any_io_executor executor) override;

  // Moves the clock forward by `d`: each timer that comes due fires with
  // the clock at its deadline (earliest first; equal deadlines in the order
  // they were set), and what it started runs before the next one fires.
  void advance(std::chrono::nanoseconds d);
  // Runs the io_context's ready handlers until none is left; time stands still.
  void settle();
  // Timers waiting now; for tests' own checks.
  size_t pending() const;

 private:
  class FakeTimer;
  struct Pending {
    Timer::TimePoint deadline;
    uint64_t order;
    FakeTimer* timer;
  };
  void block(std::condition_variable& cv, std::unique_lock<std::mutex>& lock, Timer::TimePoint deadline) override;
  void attach(ClockCondition& condition) override;
  void detach(ClockCondition& condition) override;
  void add(FakeTimer* timer, Timer::TimePoint deadline);
  void remove(FakeTimer* timer);
  void move_clock_to(Timer::TimePoint t);

  FakeClock& clock_;
  boost::asio::io_context* io_;
  mutable std::mutex mu_;  // guards pending_, conditions_ (never held while handlers run)
  std::vector<Pending> pending_;
  uint64_t next_order_ = 0;
  std::vector<ClockCondition*> conditions_;
};

}  // namespace vantage
