#include "common/timer.h"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <algorithm>

namespace vantage {

namespace asio = boost::asio;

ClockCondition::ClockCondition(Timers& timers, std::mutex& mutex) : timers_(timers), mutex_(mutex) {
  timers_.attach(*this);
}

ClockCondition::~ClockCondition() { timers_.detach(*this); }

namespace {

class RealTimer final : public Timer {
 public:
  explicit RealTimer(asio::any_io_executor executor) : timer_(std::move(executor)) {}
  asio::awaitable<bool> wait_until(TimePoint deadline) override {
    timer_.expires_at(deadline);
    boost::system::error_code ec;  // operation_aborted: cancelled
    co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    co_return !ec;
  }
  void cancel() override { timer_.cancel(); }

 private:
  asio::steady_timer timer_;
};

}  // namespace

std::unique_ptr<Timer> RealTimers::make_timer(asio::any_io_executor executor) {
  return std::make_unique<RealTimer>(std::move(executor));
}

RealTimers& RealTimers::instance() {
  static RealTimers timers;
  return timers;
}

void RealTimers::block(std::condition_variable& cv, std::unique_lock<std::mutex>& lock, Timer::TimePoint deadline) {
  cv.wait_until(lock, deadline);  // RealClock's steady time is steady_clock's
}

// Waits on an asio timer that never expires by itself: advance() ends the
// wait by cancelling it after marking it fired.
class FakeTimers::FakeTimer final : public Timer {
 public:
  FakeTimer(FakeTimers& owner, asio::any_io_executor executor)
      : owner_(owner), signal_(std::move(executor), TimePoint::max()) {}
  ~FakeTimer() override { owner_.remove(this); }

  asio::awaitable<bool> wait_until(TimePoint deadline) override {
    if (deadline <= owner_.clock_.steady_now()) co_return true;
    fired_ = false;
    owner_.add(this, deadline);
    signal_.expires_at(TimePoint::max());
    boost::system::error_code ignored;  // always cancelled: by fire() or cancel()
    co_await signal_.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    owner_.remove(this);
    co_return fired_;
  }
  void cancel() override {
    owner_.remove(this);
    signal_.cancel();
  }
  void fire() {
    fired_ = true;
    signal_.cancel();
  }

 private:
  FakeTimers& owner_;
  asio::steady_timer signal_;  // used as a wake-up, never for its own expiry
  bool fired_ = false;
};

FakeTimers::FakeTimers(FakeClock& clock, asio::io_context* io) : clock_(clock), io_(io) {}

FakeTimers::~FakeTimers() = default;

std::unique_ptr<Timer> FakeTimers::make_timer(asio::any_io_executor executor) {
  return std::make_unique<FakeTimer>(*this, std::move(executor));
}

void FakeTimers::add(FakeTimer* timer, Timer::TimePoint deadline) {
  std::lock_guard lock(mu_);
  pending_.push_back({deadline, next_order_++, timer});
}

void FakeTimers::remove(FakeTimer* timer) {
  std::lock_guard lock(mu_);
  std::erase_if(pending_, [&](const Pending& p) { return p.timer == timer; });
}

size_t FakeTimers::pending() const {
  std::lock_guard lock(mu_);
  return pending_.size();
}

void FakeTimers::settle() {
  if (!io_) return;
  io_->restart();  // poll() on a context that ran out of work returns at once
  io_->poll();
}

void FakeTimers::move_clock_to(Timer::TimePoint t) {
  const auto now = clock_.steady_now();
  if (t > now) clock_.advance(t - now);
  // Threads waiting on a ClockCondition look at the clock again.
  std::lock_guard lock(mu_);
  for (auto* condition : conditions_) {
    std::lock_guard condition_lock(condition->mutex_);
    condition->cv_.notify_all();
  }
}

void FakeTimers::advance(std::chrono::nanoseconds d) {
  const auto target = clock_.steady_now() + d;
  settle();
  for (;;) {
    FakeTimer* due = nullptr;
    Timer::TimePoint at;
    {
      std::lock_guard lock(mu_);
      auto earliest = std::min_element(pending_.begin(), pending_.end(), [](const Pending& a, const Pending& b) {
        return a.deadline != b.deadline ? a.deadline < b.deadline : a.order < b.order;
      });
      if (earliest == pending_.end() || earliest->deadline > target) break;
      due = earliest->timer;
      at = earliest->deadline;
      pending_.erase(earliest);
    }
    move_clock_to(at);
    due->fire();
    settle();
  }
  move_clock_to(target);
  settle();
}

void FakeTimers::block(std::condition_variable& cv, std::unique_lock<std::mutex>& lock, Timer::TimePoint) {
  cv.wait(lock);  // move_clock_to() notifies
}

void FakeTimers::attach(ClockCondition& condition) {
  std::lock_guard lock(mu_);
  conditions_.push_back(&condition);
}

void FakeTimers::detach(ClockCondition& condition) {
  std::lock_guard lock(mu_);
  std::erase(conditions_, &condition);
}

}  // namespace vantage
