#include "common/backoff.h"

#include <algorithm>
#include <memory>

namespace vantage {

Backoff::Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max,
                 std::function<double()> uniform)
    : initial_(initial), max_(max), uniform_(std::move(uniform)) {}

std::chrono::milliseconds Backoff::next() {
  // ceiling = initial * 2^attempt, capped; the delay is drawn from
  // [ceiling/2, ceiling] so a fleet that lost its coordinator does not
  // reconnect in lockstep, yet never retries in a hot loop.
  const int shift = std::min(attempt_, 20);
  const auto ceiling = std::min<std::chrono::milliseconds::rep>(
      initial_.count() << shift, max_.count());
  ++attempt_;
  const double fraction = 0.5 + 0.5 * uniform_();
  return std::chrono::milliseconds(static_cast<long long>(ceiling * fraction));
}

std::function<double()> random_uniform() {
  auto engine = std::make_shared<std::mt19937_64>(std::random_device{}());
  return [engine] { return std::uniform_real_distribution<double>(0.0, 1.0)(*engine); };
}

}  // namespace vantage
