// Ingest (coordinator/ingest.h) on a fake ResultSink: what a probe's batch
// goes through between its stream and its acknowledgement when the database
// is fine, down, slow, or refuses a probe's data.

#include "coordinator/ingest.h"

#include <gtest/gtest.h>

#include <atomic>
#include <deque>
#include <future>
#include <string>
#include <vector>

#include "common/proto_time.h"
#include "common/timer.h"
#include "tests/support/fake_store.h"
#include "tests/support/process.h"

namespace vantage::coordinator {
namespace {

using namespace std::chrono_literals;
using storage::StorageError;
using testing::FakeResultStore;
using testing::StorageFaults;

const storage::ProbeRecord kUs{1, "us-1", "us", 0};
const storage::ProbeRecord kEu{2, "eu-1", "eu", 0};
const storage::ProbeRecord kAp{3, "ap-1", "ap", 0};

storage::ResultBatch batch(const storage::ProbeRecord& probe, std::vector<uint64_t> sequences) {
  storage::ResultBatch b{probe, {}, 0};
  for (uint64_t seq : sequences) {
    auto& r = b.results.emplace_back();
    r.set_sequence(seq);
    r.set_check_id(7);
    *r.mutable_start_time() = to_timestamp(std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000)));
  }
  return b;
}

// Polls (the writers are threads); false after 10 s.
template <typename Fn>
bool eventually(Fn&& condition) {
  return testing::eventually(std::forward<Fn>(condition), 10s);
}

bool finishes(std::future<Ingest::Outcome>& f) { return f.wait_for(10s) == std::future_status::ready; }
bool still_waiting(std::future<Ingest::Outcome>& f) { return f.wait_for(0s) == std::future_status::timeout; }

struct IngestTest : ::testing::Test {
  IngestOptions options() {
    IngestOptions o;
    o.retry_initial = 1ms;  // retries without slowing the test
    o.retry_max = 4ms;
    return o;
  }
  void start(IngestOptions o) {
    ingest = std::make_unique<Ingest>(sink, metrics, o, [this](const std::vector<const storage::ResultBatch*>& b) {
      for (const auto* batch : b) {
        for (const auto& r : batch->results) {
          if (!sink.contains(batch->probe.key, r.sequence())) ++announced_unstored;
        }
        ++announced_batches;
      }
    });
  }
  // Submits on a thread of its own. The fixture keeps the future: TearDown
  // releases and stops first, so a failed test cannot hang in its destructor.
  std::future<Ingest::Outcome>& submit(storage::ResultBatch b,
                                       std::function<bool()> cancelled = [] { return false; }) {
    return submissions.emplace_back(std::async(std::launch::async, [this, b = std::move(b), cancelled]() mutable {
      return ingest->submit(std::move(b), cancelled);
    }));
  }
  double queued() { return metrics.ingest_queued_results.Value(); }
  double errors(const std::string& reason) { return metrics.ingest_errors.Add({{"reason", reason}}).Value(); }
  void TearDown() override {
    sink.faults.release();  // a failed expectation must not leave a writer held
    if (ingest) ingest->stop();
  }

  FakeResultStore sink;
  CoordinatorMetrics metrics{std::make_shared<prometheus::Registry>()};
  std::unique_ptr<Ingest> ingest;
  std::deque<std::future<Ingest::Outcome>> submissions;
  std::future<void> stopping;
  std::atomic<int> announced_batches = 0;
  std::atomic<int> announced_unstored = 0;  // results handed on before their commit
};

TEST_F(IngestTest, CommitsEachBatchAndHandsItOnAfterTheCommit) {
  auto o = options();
  o.writers = 1;
  start(o);
  const auto first = ingest->submit(batch(kUs, {1, 2}), [] { return false; });
  const auto second = ingest->submit(batch(kUs, {3}), [] { return false; });
  const auto third = ingest->submit(batch(kEu, {1, 2, 3}), [] { return false; });
  ASSERT_TRUE(first.ok && second.ok && third.ok);
  EXPECT_EQ(first.write.inserted, 2u);
  EXPECT_EQ(first.write.acked_sequence, 2u);
  EXPECT_EQ(second.write.acked_sequence, 3u);
  EXPECT_EQ(third.write.inserted, 3u);
  EXPECT_EQ(third.write.acked_sequence, 3u);
  const auto commits = sink.commits();
  ASSERT_EQ(commits.size(), 3u);
  EXPECT_EQ(commits[0].sequences, (std::vector<std::vector<uint64_t>>{{1, 2}}));
  EXPECT_EQ(commits[1].sequences, (std::vector<std::vector<uint64_t>>{{3}}));
  EXPECT_EQ(commits[2].probes, (std::vector<std::string>{"eu-1"}));
  EXPECT_EQ(announced_batches, 3);
  EXPECT_EQ(announced_unstored, 0);
  EXPECT_EQ(metrics.ingest_results.Add({{"region", "us"}}).Value(), 3);
  EXPECT_EQ(queued(), 0);
}

TEST_F(IngestTest, AnUnavailableDatabaseIsRetriedAndNothingIsAcknowledgedBeforeTheCommit) {
  start(options());
  sink.faults.fail_next(StorageFaults::kForever, StorageError::Kind::kUnavailable);
  auto& outcome = submit(batch(kUs, {1, 2}));
  ASSERT_TRUE(eventually([&] { return sink.faults.failed() >= 3; }));
  EXPECT_TRUE(still_waiting(outcome)) << "acknowledged while the database is down";
  EXPECT_EQ(sink.size(), 0u);
  EXPECT_EQ(announced_batches, 0);
  EXPECT_EQ(queued(), 2) << "still accepted, not dropped";

  sink.faults.stop_failing();
  ASSERT_TRUE(finishes(outcome));
  const auto stored = outcome.get();
  ASSERT_TRUE(stored.ok) << stored.error;
  EXPECT_EQ(stored.write.inserted, 2u);
  EXPECT_EQ(stored.write.acked_sequence, 2u);
  EXPECT_EQ(sink.size(), 2u);
  EXPECT_EQ(sink.commits().size(), 1u);
  EXPECT_EQ(announced_batches, 1);
  EXPECT_EQ(errors("storage_unavailable"), static_cast<double>(sink.faults.failed()));
}

TEST_F(IngestTest, TheRetryBackoffWaitsOnTheInjectedClock) {
  FakeClock clock;
  FakeTimers timers(clock);
  auto o = options();
  o.timers = &timers;
  o.retry_initial = 1h;  // on real time the retry would not come within the test
  o.retry_max = 1h;
  o.writers = 1;
  start(o);
  sink.faults.fail_next(1, StorageError::Kind::kUnavailable);
  auto& outcome = submit(batch(kUs, {1, 2}));
  ASSERT_TRUE(eventually([&] { return sink.faults.failed() == 1; }));
  EXPECT_TRUE(still_waiting(outcome));
  // An hour of simulated time (again, should the writer not be waiting yet).
  ASSERT_TRUE(eventually([&] {
    timers.advance(1h);
    return outcome.wait_for(0s) == std::future_status::ready;
  }));
  const auto result = outcome.get();
  EXPECT_TRUE(result.ok) << result.error;
  EXPECT_EQ(result.write.acked_sequence, 2u);
  EXPECT_EQ(sink.commits().size(), 1u);
  ingest.reset();  // before the timers it waits on go
}

TEST_F(IngestTest, ABatchRefusedAloneFailsAtOnceAndIngestGoesOn) {
  start(options());
  sink.refuse_probe("eu-1");
  const auto refused = ingest->submit(batch(kEu, {1}), [] { return false; });
  EXPECT_FALSE(refused.ok);
  EXPECT_NE(refused.error.find("refused"), std::string::npos) << refused.error;
  EXPECT_EQ(sink.faults.calls(), 1u) << "a refusal is not retried";
  EXPECT_EQ(sink.size(), 0u);
  EXPECT_EQ(announced_batches, 0);
  EXPECT_EQ(errors("storage_error"), 1);

  const auto next = ingest->submit(batch(kUs, {1}), [] { return false; });
  EXPECT_TRUE(next.ok) << next.error;
  EXPECT_EQ(queued(), 0);
}

TEST_F(IngestTest, ARefusedMergedWriteIsTriedBatchByBatchAndOnlyTheRefusedProbeFails) {
  auto o = options();
  o.writers = 1;
  start(o);
  sink.refuse_probe("eu-1");
  sink.faults.hold_next(1);  // the first commit stalls while the others queue up
  auto& first = submit(batch(kUs, {1}));
  ASSERT_TRUE(eventually([&] { return sink.faults.held() == 1; }));
  auto& good = submit(batch(kAp, {1, 2}));
  ASSERT_TRUE(eventually([&] { return queued() == 3; }));
  auto& poisoned = submit(batch(kEu, {1}));
  ASSERT_TRUE(eventually([&] { return queued() == 4; }));
  sink.faults.release();

  ASSERT_TRUE(finishes(first) && finishes(good) && finishes(poisoned));
  EXPECT_TRUE(first.get().ok);
  const auto stored = good.get();
  EXPECT_TRUE(stored.ok) << stored.error;
  EXPECT_EQ(stored.write.inserted, 2u);
  EXPECT_EQ(stored.write.acked_sequence, 2u);
  EXPECT_FALSE(poisoned.get().ok);
  // us-1 alone, ap-1 + eu-1 merged (refused), then ap-1 and eu-1 alone.
  EXPECT_EQ(sink.faults.calls(), 4u);
  const auto commits = sink.commits();
  ASSERT_EQ(commits.size(), 2u);
  EXPECT_EQ(commits[1].probes, (std::vector<std::string>{"ap-1"}));
  EXPECT_EQ(sink.last_sequence(kEu.key), 0u);
  EXPECT_EQ(errors("storage_error"), 2);
  EXPECT_EQ(announced_batches, 2);
  EXPECT_EQ(announced_unstored, 0);
}

TEST_F(IngestTest, ASlowCommitHoldsOnlyItsOwnWriter) {
  auto o = options();
  o.writers = 2;
  start(o);
  sink.faults.hold_next(1);
  auto& slow = submit(batch(kUs, {1}));
  ASSERT_TRUE(eventually([&] { return sink.faults.held() == 1; }));
  auto& other = submit(batch(kEu, {1}));
  ASSERT_TRUE(finishes(other)) << "another probe's batch waited for the slow commit";
  EXPECT_TRUE(other.get().ok);
  EXPECT_TRUE(still_waiting(slow));
  EXPECT_FALSE(sink.contains(kUs.key, 1));

  sink.faults.release();
  ASSERT_TRUE(finishes(slow));
  EXPECT_TRUE(slow.get().ok);
  const auto commits = sink.commits();
  ASSERT_EQ(commits.size(), 2u);
  EXPECT_EQ(commits[0].probes, (std::vector<std::string>{"eu-1"}));
  EXPECT_EQ(commits[1].probes, (std::vector<std::string>{"us-1"}));
}

TEST_F(IngestTest, WithOneWriterTheNextBatchWaitsForTheSlowCommitThenCommits) {
  auto o = options();
  o.writers = 1;
  start(o);
  sink.faults.hold_next(1);
  auto& slow = submit(batch(kUs, {1}));
  ASSERT_TRUE(eventually([&] { return sink.faults.held() == 1; }));
  auto& next = submit(batch(kEu, {1}));
  ASSERT_TRUE(eventually([&] { return queued() == 2; }));
  EXPECT_TRUE(still_waiting(next));
  sink.faults.release();
  ASSERT_TRUE(finishes(slow) && finishes(next));
  EXPECT_TRUE(slow.get().ok);
  EXPECT_TRUE(next.get().ok);
  const auto commits = sink.commits();
  ASSERT_EQ(commits.size(), 2u);
  EXPECT_EQ(commits[0].probes, (std::vector<std::string>{"us-1"}));
}

struct FullQueue : IngestTest {
  // max_queued_results 3: a held commit of 2 and a queued batch of 1 fill it.
  void fill() {
    auto o = options();
    o.writers = 1;
    o.max_queued_results = 3;
    start(o);
    sink.faults.hold_next(1);
    held = &submit(batch(kUs, {1, 2}));
    ASSERT_TRUE(eventually([&] { return sink.faults.held() == 1; }));
    queued_one = &submit(batch(kEu, {1}));
    ASSERT_TRUE(eventually([&] { return queued() == 3; }));
  }
  std::future<Ingest::Outcome>* held = nullptr;
  std::future<Ingest::Outcome>* queued_one = nullptr;
  std::atomic<int> polls = 0;      // of a waiting submitter's cancellation
  std::atomic<bool> gone = false;  // the waiting submitter's stream
};

TEST_F(FullQueue, ASubmitterWaitsForRoomWithoutQueueing) {
  ASSERT_NO_FATAL_FAILURE(fill());
  auto& waiting = submit(batch(kAp, {1}), [&] {
    ++polls;
    return false;
  });
  // Its cancellation is polled while it waits; it has not gone in.
  ASSERT_TRUE(eventually([&] { return polls >= 2; }));
  EXPECT_EQ(queued(), 3);
  EXPECT_TRUE(still_waiting(waiting));

  sink.faults.release();
  ASSERT_TRUE(finishes(*held) && finishes(*queued_one) && finishes(waiting));
  EXPECT_TRUE(held->get().ok);
  EXPECT_TRUE(queued_one->get().ok);
  EXPECT_TRUE(waiting.get().ok);
  EXPECT_EQ(sink.size(), 4u);
  EXPECT_EQ(queued(), 0);
}

TEST_F(FullQueue, ASubmitterThatLeavesWhileWaitingForRoomStoresNothing) {
  ASSERT_NO_FATAL_FAILURE(fill());
  auto& leaving = submit(batch(kAp, {1}), [&] { return gone.load(); });
  gone = true;
  ASSERT_TRUE(finishes(leaving));
  const auto outcome = leaving.get();
  EXPECT_FALSE(outcome.ok);
  EXPECT_NE(outcome.error.find("cancelled"), std::string::npos) << outcome.error;

  sink.faults.release();
  ASSERT_TRUE(finishes(*held) && finishes(*queued_one));
  EXPECT_TRUE(held->get().ok);
  EXPECT_TRUE(queued_one->get().ok);
  EXPECT_FALSE(sink.contains(kAp.key, 1));
  EXPECT_EQ(queued(), 0);
}

TEST_F(IngestTest, ABatchLargerThanTheWholeQueueGoesInAlone) {
  auto o = options();
  o.max_queued_results = 3;
  start(o);
  const auto outcome = ingest->submit(batch(kUs, {1, 2, 3, 4, 5}), [] { return false; });
  EXPECT_TRUE(outcome.ok) << outcome.error;
  EXPECT_EQ(outcome.write.inserted, 5u);
}

TEST_F(IngestTest, AReplayIsStoredOnceAndCountedAsDuplicates) {
  start(options());
  ASSERT_TRUE(ingest->submit(batch(kUs, {1, 2, 3}), [] { return false; }).ok);
  // The probe reconnected before its acknowledgement and sends 2..5 again.
  const auto replay = ingest->submit(batch(kUs, {2, 3, 4, 5}), [] { return false; });
  ASSERT_TRUE(replay.ok) << replay.error;
  EXPECT_EQ(replay.write.inserted, 2u);
  EXPECT_EQ(replay.write.duplicates, 2u);
  EXPECT_EQ(replay.write.acked_sequence, 5u);
  EXPECT_EQ(sink.size(), 5u);
  EXPECT_EQ(metrics.ingest_duplicates.Value(), 2);
  EXPECT_EQ(metrics.ingest_results.Add({{"region", "us"}}).Value(), 5);
  EXPECT_EQ(announced_batches, 2) << "the correlator sees a replay too (ingest.h)";
}

TEST_F(IngestTest, StopFailsWhatIsQueuedAndLetsTheCommitInFlightFinish) {
  auto o = options();
  o.writers = 1;
  start(o);
  sink.faults.hold_next(1);
  auto& in_flight = submit(batch(kUs, {1}));
  ASSERT_TRUE(eventually([&] { return sink.faults.held() == 1; }));
  auto& queued_batch = submit(batch(kEu, {1}));
  ASSERT_TRUE(eventually([&] { return queued() == 2; }));
  stopping = std::async(std::launch::async, [this] { ingest->stop(); });

  ASSERT_TRUE(finishes(queued_batch));
  const auto orphan = queued_batch.get();
  EXPECT_FALSE(orphan.ok);
  EXPECT_NE(orphan.error.find("shutting down"), std::string::npos) << orphan.error;
  EXPECT_TRUE(still_waiting(in_flight));

  sink.faults.release();
  ASSERT_TRUE(finishes(in_flight));
  EXPECT_TRUE(in_flight.get().ok) << "committed, so acknowledged";
  stopping.get();
  EXPECT_FALSE(sink.contains(kEu.key, 1));
  EXPECT_FALSE(ingest->submit(batch(kEu, {1}), [] { return false; }).ok);
}

TEST_F(IngestTest, StopEndsTheRetriesOfAnUnavailableDatabase) {
  start(options());
  sink.faults.fail_next(StorageFaults::kForever, StorageError::Kind::kUnavailable);
  auto& outcome = submit(batch(kUs, {1}));
  ASSERT_TRUE(eventually([&] { return sink.faults.failed() >= 2; }));
  ingest->stop();
  ASSERT_TRUE(finishes(outcome));
  EXPECT_FALSE(outcome.get().ok);
  EXPECT_EQ(sink.size(), 0u);
  EXPECT_EQ(announced_batches, 0);
}

}  // namespace
}  // namespace vantage::coordinator
