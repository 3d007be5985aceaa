#pragma once
// Time is a dependency: nothing in the scheduler, the correlator or the
// ingest path reads the wall clock directly, so tests can script time.
// Waiting for a time goes through common/timer.h, on the same clock.

#include <atomic>
#include <chrono>

namespace vantage {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time (UTC), for timestamps that leave the process.
  virtual std::chrono::system_clock::time_point now() const = 0;
  // Monotonic time, for durations and deadlines.
  virtual std::chrono::steady_clock::time_point steady_now() const = 0;
};

class RealClock final : public Clock {
 public:
  std::chrono::system_clock::time_point now() const override {
    return std::chrono::system_clock::now();
  }
  std::chrono::steady_clock::time_point steady_now() const override {
    return std::chrono::steady_clock::now();
  }
  static RealClock& instance() {
    static RealClock clock;
    return clock;
  }
};

// A clock that only moves when told to.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(std::chrono::system_clock::time_point start = {})
      : offset_(std::chrono::duration_cast<std::chrono::nanoseconds>(
            start.time_since_epoch())) {}
  std::chrono::system_clock::time_point now() const override {
    return std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(offset_.load()));
  }
  std::chrono::steady_clock::time_point steady_now() const override {
    return std::chrono::steady_clock::time_point(
        std::chrono::duration_cast<std::chrono::steady_clock::duration>(offset_.load()));
  }
  void advance(std::chrono::nanoseconds d) { offset_ = offset_.load() + d; }

 private:
  std::atomic<std::chrono::nanoseconds> offset_;
};

}  // namespace vantage
