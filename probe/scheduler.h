#pragma once
// Runs every assigned check on its interval, spread over the interval with
// jitter so a probe's checks do not fire together, and runs a check at once
// when the coordinator asks for a re-check. All state lives on one executor;
// the public methods may be called from any thread.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "probe/http_check.h"
#include "vantage/v1/probe_service.pb.h"

namespace vantage::probe {

class Scheduler {
 public:
  using ResultFn = std::function<void(v1::CheckResult)>;
  // `uniform` draws from [0, 1) for the jitter.
  Scheduler(boost::asio::any_io_executor executor, const Clock& clock, HttpLimits limits,
            std::function<double()> uniform, ResultFn on_result);
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

  boost::asio::any_io_executor executor_;
  const Clock& clock_;
  HttpLimits limits_;
  std::function<double()> uniform_;
  ResultFn on_result_;
  std::map<int64_t, std::shared_ptr<Task>> tasks_;  // touched on executor_ only
};

}  // namespace vantage::probe
