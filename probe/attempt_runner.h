#pragma once
// The scheduler's seam to the network: what it runs when a check comes due
// or its keep-alive measurement does. NetworkAttemptRunner is the real one;
// tests give the scheduler attempts of their own, on simulated time.

#include <boost/asio/awaitable.hpp>

#include "common/clock.h"
#include "probe/attempt.h"
#include "probe/http_check.h"
#include "vantage/v1/types.pb.h"

namespace vantage::probe {

class AttemptRunner {
 public:
  virtual ~AttemptRunner() = default;
  // One attempt (run_attempt). Never throws.
  virtual boost::asio::awaitable<v1::CheckResult> attempt(const v1::Check& check, AttemptOptions options) = 0;
  // One keep-alive measurement (measure_keep_alive) of the check's
  // keep_alive_target under `options`. Never throws.
  virtual boost::asio::awaitable<v1::KeepAliveMeasurement> keep_alive(const v1::Check& check, AttemptOptions options,
                                                                      KeepAliveOptions keep_alive) = 0;
};

class NetworkAttemptRunner final : public AttemptRunner {
 public:
  NetworkAttemptRunner(const Clock& clock, HttpLimits limits) : clock_(clock), limits_(std::move(limits)) {}
  boost::asio::awaitable<v1::CheckResult> attempt(const v1::Check& check, AttemptOptions options) override {
    co_return co_await run_attempt(check, clock_, limits_, std::move(options));
  }
  boost::asio::awaitable<v1::KeepAliveMeasurement> keep_alive(const v1::Check& check, AttemptOptions options,
                                                              KeepAliveOptions keep_alive) override {
    co_return co_await measure_keep_alive(check, clock_, keep_alive_target(check, options), std::move(keep_alive));
  }

 private:
  const Clock& clock_;
  HttpLimits limits_;
};

}  // namespace vantage::probe
