#pragma once
// Exponential backoff with full jitter, for reconnecting and retrying.

#include <chrono>
#include <functional>
#include <random>

namespace vantage {

class Backoff {
 public:
  // `uniform` returns a number in [0, 1); injected so tests are repeatable.
  Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max,
          std::function<double()> uniform);
  // The delay before the next attempt; each call doubles the ceiling.
  std::chrono::milliseconds next();
  // After a success: start from `initial` again.
  void reset() { attempt_ = 0; }
  int attempts() const { return attempt_; }

 private:
  std::chrono::milliseconds initial_;
  std::chrono::milliseconds max_;
  std::function<double()> uniform_;
  int attempt_ = 0;
};

// A uniform [0,1) source seeded from std::random_device.
std::function<double()> random_uniform();

}  // namespace vantage
