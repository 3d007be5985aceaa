#pragma once
// Between the probe streams and PostgreSQL: a bounded queue of result
// batches, drained by writer threads that merge the batches of many probes
// into one COPY transaction each. A stream handler waits for its batch's
// commit before it acknowledges it, and waits for room before it queues: when
// PostgreSQL is slow, handlers stop reading and gRPC flow control slows the
// probes down. When PostgreSQL is down, writers retry with backoff while the
// probes keep their results; nothing already accepted is dropped.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/backoff.h"
#include "common/timer.h"
#include "coordinator/metrics.h"
#include "storage/store.h"

namespace vantage::coordinator {

struct IngestOptions {
  size_t max_queued_results = 50'000;  // across all probes
  size_t max_commit_results = 5'000;   // merged into one transaction
  size_t writers = 2;
  std::chrono::milliseconds retry_initial{200};
  std::chrono::milliseconds retry_max{10'000};
  // What the retries wait on; null: real time.
  Timers* timers = nullptr;
};

class Ingest {
 public:
  // Called by a writer with the batches of each commit, after it: what the
  // correlator sees is stored (a replay's duplicates included).
  using CommittedFn = std::function<void(const std::vector<const storage::ResultBatch*>&)>;
  Ingest(storage::ResultSink& sink, CoordinatorMetrics& metrics, IngestOptions options, CommittedFn on_committed = {});
  ~Ingest();

  struct Outcome {
    bool ok = false;
    storage::WriteOutcome write;
    std::string error;  // when !ok: why (shutdown or a non-retryable storage error)
  };
  // Queues the batch and waits until it is committed (or cannot be), or until
  // `cancelled()` (polled) says the caller has gone: the batch may still be
  // committed then, and its replay will be de-duplicated.
  Outcome submit(storage::ResultBatch batch, const std::function<bool()>& cancelled);
  // Fails whatever is queued and stops the writers.
  void stop();

 private:
  struct Pending {
    storage::ResultBatch batch;
    std::optional<Outcome> outcome;
  };
  void write_loop();
  using PendingPtr = std::shared_ptr<Pending>;  // shared: a submitter may leave early
  // Writes `work` in one transaction, retrying while the database is
  // unavailable, and finishes it. Returns false, without finishing, when the
  // data were refused and `split_on_refusal` asks the caller to split.
  bool write(const std::vector<PendingPtr>& work, Backoff& backoff, bool split_on_refusal);
  std::vector<PendingPtr> take_work();  // under mu_
  void finish(const std::vector<PendingPtr>& work, const std::vector<storage::WriteOutcome>* written,
              const std::string& error);

  storage::ResultSink& sink_;
  CoordinatorMetrics& metrics_;
  IngestOptions options_;
  Timers& timers_;
  CommittedFn on_committed_;
  std::mutex mu_;
  ClockCondition work_cv_{timers_, mu_};  // writers wait for batches, and out their retry backoff
  std::condition_variable space_cv_;  // submitters wait for room
  std::condition_variable done_cv_;   // submitters wait for their outcome
  std::deque<PendingPtr> queue_;
  size_t queued_results_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> writers_;
};

}  // namespace vantage::coordinator
