// Timers on the injected clock (common/timer.h): the fake fires in time order
// with the clock at each deadline; cancel ends a wait; ClockCondition waits
// end on the fake clock; the real timers wait on real time.
#include "common/timer.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <thread>

namespace vantage {
namespace {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using std::chrono::seconds;

int64_t ms(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count();
}

class FakeTimersTest : public ::testing::Test {
 protected:
  // Waits on a timer of its own until `at` ms; records (name, clock ms, fired).
  void wait(std::string name, int64_t at_ms, Timer** handle = nullptr) {
    auto timer = timers_.make_timer(io_.get_executor());
    if (handle) *handle = timer.get();
    asio::co_spawn(
        io_,
        [this, name, at_ms, timer = std::move(timer)]() -> asio::awaitable<void> {
          const bool fired = co_await timer->wait_until(std::chrono::steady_clock::time_point(milliseconds(at_ms)));
          log_.push_back({name, ms(clock_.steady_now()), fired});
        },
        asio::detached);
    timers_.settle();
  }
  struct Event {
    std::string name;
    int64_t at_ms;
    bool fired;
    bool operator==(const Event&) const = default;
  };

  FakeClock clock_;
  FakeTimers timers_{clock_, &io_};
  asio::io_context io_;
  std::vector<Event> log_;
};

TEST_F(FakeTimersTest, FiresInDeadlineOrderWithTheClockAtEachDeadline) {
  wait("c", 300);
  wait("a", 100);
  wait("b", 200);
  wait("b2", 200);  // the same deadline: in the order they were set
  EXPECT_EQ(timers_.pending(), 4u);
  timers_.advance(milliseconds(250));
  EXPECT_EQ(log_, (std::vector<Event>{{"a", 100, true}, {"b", 200, true}, {"b2", 200, true}}));
  EXPECT_EQ(ms(clock_.steady_now()), 250);
  timers_.advance(milliseconds(50));
  EXPECT_EQ(log_.back(), (Event{"c", 300, true}));
  EXPECT_EQ(timers_.pending(), 0u);
}

TEST_F(FakeTimersTest, ATimerSetByAFiringOneFiresInTheSameAdvance) {
  auto timer = timers_.make_timer(io_.get_executor());
  asio::co_spawn(
      io_,
      [&]() -> asio::awaitable<void> {
        // A periodic task: every 10 s.
        for (int i = 0; i < 100; ++i) {
          co_await timer->wait_until(clock_.steady_now() + seconds(10));
          log_.push_back({"tick", ms(clock_.steady_now()), true});
        }
      },
      asio::detached);
  timers_.advance(seconds(35));
  EXPECT_EQ(log_, (std::vector<Event>{{"tick", 10'000, true}, {"tick", 20'000, true}, {"tick", 30'000, true}}));
  timers_.advance(std::chrono::hours(1));
  EXPECT_EQ(log_.size(), 100u) << "hours pass in one call";
}

TEST_F(FakeTimersTest, ACancelledWaitEndsAtOnceAndNeverFires) {
  Timer* handle = nullptr;
  wait("cancelled", 100, &handle);
  wait("kept", 200);
  handle->cancel();
  timers_.settle();
  EXPECT_EQ(log_, (std::vector<Event>{{"cancelled", 0, false}}));
  timers_.advance(milliseconds(500));
  EXPECT_EQ(log_, (std::vector<Event>{{"cancelled", 0, false}, {"kept", 200, true}}));
}

TEST_F(FakeTimersTest, ADeadlineAlreadyPastCompletesAtOnce) {
  timers_.advance(seconds(1));
  wait("past", 500);
  EXPECT_EQ(log_, (std::vector<Event>{{"past", 1'000, true}}));
}

TEST(ClockCondition, AWaitOnAnotherThreadEndsWhenTheFakeClockPassesItsDeadline) {
  FakeClock clock;
  FakeTimers timers(clock);
  std::mutex mu;
  ClockCondition condition(timers, mu);
  const auto deadline = clock.steady_now() + std::chrono::hours(6);
  bool done = false;
  std::optional<bool> result;
  std::thread waiter([&] {
    std::unique_lock lock(mu);
    result = condition.wait_until(lock, deadline, [&] { return done; });
  });
  timers.advance(std::chrono::hours(5));  // not yet: the waiter goes on waiting
  timers.advance(std::chrono::hours(1));
  waiter.join();
  EXPECT_EQ(result, false) << "ended by the deadline, not the predicate";
}

TEST(ClockCondition, ANotifiedWaitEndsWhenItsPredicateHolds) {
  FakeClock clock;
  FakeTimers timers(clock);
  std::mutex mu;
  ClockCondition condition(timers, mu);
  bool done = false;
  std::optional<bool> result;
  std::thread waiter([&] {
    std::unique_lock lock(mu);
    result = condition.wait_for(lock, std::chrono::hours(1), [&] { return done; });
  });
  {
    std::lock_guard lock(mu);
    done = true;
  }
  condition.notify_all();
  waiter.join();
  EXPECT_EQ(result, true);
  EXPECT_EQ(ms(clock.steady_now()), 0) << "no time passed";
}

TEST(RealTimers, WaitOnRealTimeAndCancel) {
  asio::io_context io;
  auto& timers = RealTimers::instance();
  auto timer = timers.make_timer(io.get_executor());
  std::vector<bool> fired;
  const auto started = std::chrono::steady_clock::now();
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        fired.push_back(co_await timer->wait_until(timers.clock().steady_now() + milliseconds(20)));
        EXPECT_GE(std::chrono::steady_clock::now() - started, milliseconds(20));
        asio::post(io, [&] { timer->cancel(); });  // runs once the next wait has begun
        fired.push_back(co_await timer->wait_until(std::chrono::steady_clock::time_point::max()));
      },
      asio::detached);
  io.run();
  EXPECT_EQ(fired, (std::vector<bool>{true, false})) << "cancel ends a wait on no deadline";

  std::mutex mu;
  ClockCondition condition(timers, mu);
  std::unique_lock lock(mu);
  EXPECT_FALSE(condition.wait_for(lock, milliseconds(10), [] { return false; }));
}

}  // namespace
}  // namespace vantage
