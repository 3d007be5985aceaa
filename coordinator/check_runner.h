#pragma once
// "Run now" (CheckService.RunCheck): ask one connected probe of every region
// a check runs in for an immediate attempt, under a request id of its own,
// and wait until each region's result is stored.
//
// RunWaiters is fed by Ingest's commit callback, so what a caller gets back
// is what was committed (and validated), never a result still in flight. A
// waiter is registered before the probes are asked, so a result that comes
// back at once is not missed. With nobody waiting, a commit costs one atomic
// load.

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "storage/store.h"
#include "vantage/v1/check_service.pb.h"
#include "vantage/v1/types.pb.h"

namespace vantage::coordinator {

class RunWaiters {
 public:
  struct Outcome {
    std::vector<v1::StoredResult> results;  // one per region, in the order they were stored
    std::vector<std::string> timed_out;     // regions still waited for, sorted
    bool cancelled = false;
  };

  class Wait {
   public:
    ~Wait();  // unregisters
    Wait(const Wait&) = delete;
    Wait& operator=(const Wait&) = delete;
    const std::string& request_id() const { return request_id_; }
    // Stops waiting for regions not in `asked` (their probes were not asked).
    void expect_only(const std::vector<std::string>& asked);
    // Blocks until a result of every expected region is stored, `deadline`
    // passes or `cancelled()` (polled every 100 ms) says the caller left.
    Outcome wait(std::chrono::steady_clock::time_point deadline, const std::function<bool()>& cancelled);

   private:
    friend class RunWaiters;
    struct State;
    Wait(RunWaiters& owner, std::string request_id, std::shared_ptr<State> state);
    RunWaiters& owner_;
    const std::string request_id_;
    std::shared_ptr<State> state_;
  };

  RunWaiters(size_t max_waits, const Clock& clock);

  // A wait for the results of check `check_id` (named `check_name` in the
  // results) from each of `regions`, with a fresh random request id. Null
  // when `max_waits` callers are already waiting.
  std::unique_ptr<Wait> add(int64_t check_id, const std::string& check_name, const std::vector<std::string>& regions);
  // Ingest's commit callback: results carrying a waited-for request id.
  void committed(const std::vector<const storage::ResultBatch*>& batches);
  size_t waiting() const { return waiting_.load(); }

 private:
  void remove(const std::string& request_id);

  const size_t max_waits_;
  const Clock& clock_;
  std::atomic<size_t> waiting_{0};
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<Wait::State>> waits_;  // by request id
};

struct CheckRunnerOptions {
  std::chrono::milliseconds default_timeout{30'000};
  std::chrono::milliseconds min_timeout{1'000};
  std::chrono::milliseconds max_timeout{300'000};
  // RunCheck calls waiting at once; each holds a gRPC thread while it waits.
  size_t max_waits = 64;
};

class CheckRunner {
 public:
  // Asks one connected probe of each of `regions` that runs the check for an
  // attempt under `request_id`; returns the regions asked (ProbeSessions::request_run).
  using AskFn = std::function<std::vector<std::string>(int64_t check_id, const std::vector<std::string>& regions,
                                                       const std::string& request_id)>;
  CheckRunner(AskFn ask, storage::ProbeDirectory& probes, const Clock& clock, CheckRunnerOptions options = {});

  const CheckRunnerOptions& options() const { return options_; }
  // Runs `check` (as stored) now and fills `response`; blocks for at most
  // `timeout` (already validated) or until `cancelled()`.
  grpc::Status run(const v1::Check& check, std::chrono::milliseconds timeout, const std::function<bool()>& cancelled,
                   v1::RunCheckResponse* response);
  void committed(const std::vector<const storage::ResultBatch*>& batches) { waiters_.committed(batches); }

 private:
  // The regions the check runs in: its own list, or (none listed: every
  // region) the regions of the registered probes.
  std::vector<std::string> regions_of(const v1::Check& check);

  AskFn ask_;
  storage::ProbeDirectory& probes_;
  CheckRunnerOptions options_;
  RunWaiters waiters_;
};

}  // namespace vantage::coordinator
