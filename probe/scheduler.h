#pragma once
// Runs every assigned check on its interval, spread over the interval with
// jitter so a probe's checks do not fire together, and runs a check at once
// when the coordinator asks for a re-check. All state lives on one executor;
// the public methods may be called from any thread.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "probe/attempt.h"
#include "probe/http_check.h"
#include "vantage/v1/probe_service.pb.h"

namespace vantage::probe {

struct SchedulerOptions {
  HttpLimits limits;
  // Attempts in flight at once; the others wait their turn (and the wait
  // shows as scheduler lag).
  size_t max_concurrent = 256;
  // How often the origin's keep-alive behaviour is measured for each check
  // with an origin address (diagnosis.md section 5); zero: never. Each
  // measurement travels with the check's next result.
  std::chrono::milliseconds keep_alive_interval = std::chrono::hours(6);
  KeepAliveOptions keep_alive;  // its on_idle and cancel are the scheduler's
  // --resolve / --connect-to: where this probe connects for a URL's host.
  std::vector<ResolveOverride> resolve;
};

class Scheduler {
 public:
  using ResultFn = std::function<void(v1::CheckResult)>;
  // How late a scheduled attempt started, for the lag metric.
  using LagFn = std::function<void(std::chrono::steady_clock::duration)>;
  // `uniform` draws from [0, 1) for the jitter.
  Scheduler(boost::asio::any_io_executor executor, const Clock& clock, SchedulerOptions options,
            std::function<double()> uniform, ResultFn on_result, LagFn on_lag = {});
  ~Scheduler();

  // Replaces the whole set of checks.
  void assign(std::vector<v1::Check> checks);
  void apply(const v1::CheckAssignmentDiff& diff);
  void recheck(int64_t check_id, std::string request_id);
  void stop();

 private:
  struct Task;
  void start(v1::Check check);
  void remove(int64_t check_id);
  boost::asio::awaitable<void> run(std::shared_ptr<Task> task);
  // The check's keep-alive measurements: a slot while requests are sent, none
  // during the idle wait.
  boost::asio::awaitable<void> measure_keep_alive_loop(std::shared_ptr<Task> task);
  // A slot among max_concurrent; wakes the next waiter when released.
  boost::asio::awaitable<void> acquire_slot();
  void release_slot();

  boost::asio::any_io_executor executor_;
  const Clock& clock_;
  SchedulerOptions options_;
  std::function<double()> uniform_;
  ResultFn on_result_;
  LagFn on_lag_;
  size_t running_ = 0;
  std::deque<boost::asio::steady_timer*> waiting_;  // executor_ only
  std::map<int64_t, std::shared_ptr<Task>> tasks_;  // touched on executor_ only
};

}  // namespace vantage::probe
