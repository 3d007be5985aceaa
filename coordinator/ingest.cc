#include "coordinator/ingest.h"

#include "common/backoff.h"
#include "common/log.h"

namespace vantage::coordinator {

Ingest::Ingest(storage::ResultSink& sink, CoordinatorMetrics& metrics, IngestOptions options,
               CommittedFn on_committed)
    : sink_(sink),
      metrics_(metrics),
      options_(options),
      timers_(options.timers ? *options.timers : RealTimers::instance()),
      on_committed_(std::move(on_committed)) {
  for (size_t i = 0; i < options_.writers; ++i) writers_.emplace_back([this] { write_loop(); });
}

Ingest::~Ingest() { stop(); }

Ingest::Outcome Ingest::submit(storage::ResultBatch batch, const std::function<bool()>& cancelled) {
  auto pending = std::make_shared<Pending>(Pending{std::move(batch), std::nullopt});
  const size_t n = pending->batch.results.size();
  constexpr auto kPoll = std::chrono::milliseconds(100);
  const Outcome gone{false, {}, "the stream was cancelled"};
  std::unique_lock lock(mu_);
  // Wait for room; a batch larger than the whole queue still goes in alone.
  while (!space_cv_.wait_for(lock, kPoll, [&] {
    return stopping_ || queued_results_ == 0 || queued_results_ + n <= options_.max_queued_results;
  })) {
    if (cancelled()) return gone;
  }
  if (stopping_) return {false, {}, "the coordinator is shutting down"};
  queue_.push_back(pending);
  queued_results_ += n;
  metrics_.ingest_queued_results.Set(static_cast<double>(queued_results_));
  // All: a writer backing off after a failed commit waits on this variable
  // too, and one notify could wake only it, leaving the batch to wait for
  // the end of its backoff while another writer sits idle.
  work_cv_.notify_all();
  while (!done_cv_.wait_for(lock, kPoll, [&] { return pending->outcome.has_value(); })) {
    if (cancelled()) return gone;
  }
  return *pending->outcome;
}

std::vector<Ingest::PendingPtr> Ingest::take_work() {
  std::vector<PendingPtr> work;
  size_t results = 0;
  while (!queue_.empty() &&
         (work.empty() || results + queue_.front()->batch.results.size() <= options_.max_commit_results)) {
    results += queue_.front()->batch.results.size();
    work.push_back(queue_.front());
    queue_.pop_front();
  }
  return work;
}

void Ingest::finish(const std::vector<PendingPtr>& work, const std::vector<storage::WriteOutcome>* written,
                    const std::string& error) {
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < work.size(); ++i) {
    queued_results_ -= work[i]->batch.results.size();
    work[i]->outcome = written ? Outcome{true, (*written)[i], {}} : Outcome{false, {}, error};
  }
  metrics_.ingest_queued_results.Set(static_cast<double>(queued_results_));
  done_cv_.notify_all();
  space_cv_.notify_all();
}

void Ingest::write_loop() {
  Backoff backoff(options_.retry_initial, options_.retry_max, random_uniform());
  for (;;) {
    std::vector<PendingPtr> work;
    {
      std::unique_lock lock(mu_);
      work_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      work = take_work();
    }
    // Defence in depth: results are validated before they are queued, but
    // should PostgreSQL still refuse a merged transaction's data, each probe's
    // batch is tried alone, so that one probe never fails another's write.
    if (!write(work, backoff, /*split_on_refusal=*/work.size() > 1)) {
      log::warn("a merged write was refused; storing each batch alone", "batches", work.size());
      for (const auto& pending : work) write({pending}, backoff, /*split_on_refusal=*/false);
    }
  }
}

bool Ingest::write(const std::vector<PendingPtr>& work, Backoff& backoff, bool split_on_refusal) {
  std::vector<const storage::ResultBatch*> batches;
  size_t results = 0;
  for (const auto& p : work) {
    batches.push_back(&p->batch);
    results += p->batch.results.size();
  }
  // Retry while the database is unavailable: the batches stay accepted.
  for (;;) {
    try {
      const auto start = timers_.clock().steady_now();
      auto written = sink_.write_results(batches);
      metrics_.ingest_commit_seconds.Observe(
          std::chrono::duration<double>(timers_.clock().steady_now() - start).count());
      metrics_.ingest_commit_results.Observe(static_cast<double>(results));
      metrics_.ingest_batches.Increment();
      for (size_t i = 0; i < work.size(); ++i) {
        metrics_.ingest_results.Add({{"region", work[i]->batch.probe.region}})
            .Increment(static_cast<double>(written[i].inserted));
        metrics_.ingest_duplicates.Increment(static_cast<double>(written[i].duplicates));
      }
      if (backoff.attempts() > 0) log::info("storing results again", "after_attempts", backoff.attempts());
      backoff.reset();
      if (on_committed_) on_committed_(batches);
      finish(work, &written, {});
      return true;
    } catch (const storage::StorageError& e) {
      const bool retry = e.kind() == storage::StorageError::Kind::kUnavailable;
      metrics_.ingest_errors.Add({{"reason", retry ? "storage_unavailable" : "storage_error"}}).Increment();
      bool stopping;
      {
        std::lock_guard lock(mu_);
        stopping = stopping_;
      }
      if (!retry && split_on_refusal && !stopping) return false;
      if (!retry || stopping) {
        log::error("cannot store results; the probes will send them again", "error", e.what(), "probe",
                   work.size() == 1 ? work.front()->batch.probe.name : std::string("(several)"));
        finish(work, nullptr, e.what());
        return true;
      }
      const auto delay = backoff.next();
      if (backoff.attempts() == 1 || backoff.attempts() % 10 == 0) {
        log::warn("database unavailable, retrying; probes keep their results meanwhile", "error", e.what(),
                  "attempt", backoff.attempts(), "next_in_ms", delay.count());
      }
      std::unique_lock lock(mu_);
      work_cv_.wait_for(lock, delay, [&] { return stopping_; });
    }
  }
}

void Ingest::stop() {
  std::vector<PendingPtr> orphans;
  {
    std::lock_guard lock(mu_);
    if (stopping_ && writers_.empty()) return;
    stopping_ = true;
    orphans.assign(queue_.begin(), queue_.end());
    queue_.clear();
  }
  work_cv_.notify_all();
  space_cv_.notify_all();
  finish(orphans, nullptr, "the coordinator is shutting down");
  for (auto& t : writers_) t.join();
  writers_.clear();
}

}  // namespace vantage::coordinator
