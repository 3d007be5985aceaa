// The scheduler against the lab origin: rechecks run at once, and the bound
// on attempts in flight holds (the wait shows as lag).
#include "probe/scheduler.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <mutex>
#include <thread>

#include "common/check_config.h"
#include "tests/support/process.h"
#include "tools/lab/origin.h"

namespace vantage::probe {
namespace {

using std::chrono::milliseconds;
using testing::eventually;

v1::Check check(int64_t id, const std::string& url, milliseconds interval) {
  v1::Check c;
  c.set_id(id);
  c.set_version(1);
  c.set_name("c" + std::to_string(id));
  c.set_url(url);
  *c.mutable_interval() = to_duration(interval);
  *c.mutable_timeout() = to_duration(milliseconds(1000));
  EXPECT_EQ(normalize_check(c), "");
  return c;
}

int64_t start_ms(const v1::CheckResult& r) { return r.start_time().seconds() * 1000 + r.start_time().nanos() / 1'000'000; }

struct Recorder {
  std::mutex mu;
  std::vector<v1::CheckResult> results;
  std::vector<double> lags;
  size_t size() {
    std::lock_guard lock(mu);
    return results.size();
  }
};

class SchedulerTest : public ::testing::Test {
 protected:
  // Without jitter every check is due at once.
  void start(SchedulerOptions options, std::function<double()> jitter = [] { return 0.0; }) {
    scheduler_ = std::make_unique<Scheduler>(
        io_.get_executor(), RealClock::instance(), options, std::move(jitter),
        [this](v1::CheckResult r) {
          std::lock_guard lock(recorder_.mu);
          recorder_.results.push_back(std::move(r));
        },
        [this](std::chrono::steady_clock::duration lag) {
          std::lock_guard lock(recorder_.mu);
          recorder_.lags.push_back(std::chrono::duration<double>(lag).count());
        });
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    scheduler_->stop();
    work_.reset();
    io_.stop();
    thread_.join();
  }
  void assign(const std::vector<v1::Check>& checks, bool first = true, bool last = true) {
    scheduler_->assign({checks.begin(), checks.end()}, first, last);
  }
  // The ids that produced a result since `from` (an index into the results).
  std::set<int64_t> ran_since(size_t from) {
    std::lock_guard lock(recorder_.mu);
    std::set<int64_t> ids;
    for (size_t i = from; i < recorder_.results.size(); ++i) ids.insert(recorder_.results[i].check_id());
    return ids;
  }
  std::string url(const std::string& path) { return "http://127.0.0.1:" + std::to_string(origin_.port()) + path; }

  lab::Origin origin_{"127.0.0.1", 0};
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{io_.get_executor()};
  Recorder recorder_;
  std::unique_ptr<Scheduler> scheduler_;
  std::thread thread_;
};

TEST_F(SchedulerTest, AnAssignedCheckThatCannotBeScheduledIsRefusedAndTheOthersRun) {
  start(SchedulerOptions{});
  auto centuries = check(1, url("/"), milliseconds(60'000));
  centuries.mutable_interval()->set_seconds(300LL * 365 * 24 * 3600);  // overflows a steady_clock schedule
  auto negative = check(2, url("/"), milliseconds(60'000));
  negative.mutable_timeout()->set_seconds(-5);
  auto fine = check(3, url("/"), milliseconds(60'000));
  assign({centuries, negative, fine});
  ASSERT_TRUE(eventually([&] { return recorder_.size() >= 1; }, std::chrono::seconds(10)));
  EXPECT_EQ(ran_since(0), std::set<int64_t>{3});
  EXPECT_EQ(scheduler_->size(), 1u);
}

TEST_F(SchedulerTest, AttemptsInFlightStayWithinTheBoundAndTheWaitIsLag) {
  SchedulerOptions options;
  options.max_concurrent = 1;
  start(options);
  // Each attempt takes about 250 ms: a head trickled 5 ms a byte.
  std::vector<v1::Check> checks;
  for (int i = 1; i <= 3; ++i) checks.push_back(check(i, url("/fault/trickle-head?delay_ms=5"), milliseconds(60'000)));
  assign(checks);
  ASSERT_TRUE(eventually([&] { return recorder_.size() == 3; }, std::chrono::seconds(10)));
  std::lock_guard lock(recorder_.mu);
  for (const auto& r : recorder_.results) EXPECT_EQ(r.edge().failure_class(), v1::FAILURE_CLASS_OK) << r.edge().error();
  // One at a time: the attempts do not overlap.
  std::vector<std::pair<int64_t, int64_t>> spans;
  for (const auto& r : recorder_.results) {
    const auto start = r.start_time().seconds() * 1'000'000 + r.start_time().nanos() / 1000;
    spans.emplace_back(start, start + static_cast<int64_t>(r.edge().timings().total_us()));
  }
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i) EXPECT_GE(spans[i].first, spans[i - 1].second - 2'000) << "overlap";
  std::sort(recorder_.lags.begin(), recorder_.lags.end());
  ASSERT_EQ(recorder_.lags.size(), 3u);
  EXPECT_GT(recorder_.lags.back(), 0.3) << "the last waited for two attempts";
}

TEST_F(SchedulerTest, ARecheckRunsAtOnceAndCarriesItsRequestId) {
  start(SchedulerOptions{});
  assign({check(7, url("/"), milliseconds(3'600'000))});
  ASSERT_TRUE(eventually([&] { return recorder_.size() == 1; }, std::chrono::seconds(5)));
  scheduler_->recheck(7, "req-1");
  ASSERT_TRUE(eventually([&] { return recorder_.size() == 2; }, std::chrono::seconds(5)))
      << "a re-check does not wait for the hour";
  std::lock_guard lock(recorder_.mu);
  EXPECT_EQ(recorder_.results[1].recheck_request_id(), "req-1");
  EXPECT_EQ(recorder_.results[1].check_id(), 7);
  EXPECT_EQ(recorder_.lags.size(), 1u) << "re-checks are not scheduled runs";
}

TEST_F(SchedulerTest, RemovedChecksStopAndUpdatedOnesRestart) {
  start(SchedulerOptions{});
  assign({check(1, url("/"), milliseconds(1'000)), check(2, url("/"), milliseconds(1'000))});
  ASSERT_TRUE(eventually([&] { return recorder_.size() >= 2; }, std::chrono::seconds(5)));
  v1::CheckAssignmentDiff diff;
  diff.add_removed_check_ids(2);
  scheduler_->apply(diff);
  std::this_thread::sleep_for(milliseconds(100));
  const auto before = recorder_.size();
  std::this_thread::sleep_for(milliseconds(2'200));
  std::lock_guard lock(recorder_.mu);
  size_t of_two = 0;
  for (size_t i = before; i < recorder_.results.size(); ++i) of_two += recorder_.results[i].check_id() == 2;
  EXPECT_EQ(of_two, 0u);
  EXPECT_GE(recorder_.results.size() - before, 2u) << "check 1 goes on";
}

TEST_F(SchedulerTest, UpdatedChecksRunTheirNewVersionOnTheSameSchedule) {
  start(SchedulerOptions{});
  auto original = check(1, url("/"), milliseconds(1'000));
  *original.mutable_interval() = to_duration(milliseconds(400));  // under the config's minimum: shorter test
  assign({original});
  ASSERT_TRUE(eventually([&] { return recorder_.size() >= 2; }, std::chrono::seconds(5)));
  auto updated = original;
  updated.set_url(url("/?v=2"));
  updated.set_version(2);
  v1::CheckAssignmentDiff diff;
  *diff.add_updated() = updated;
  scheduler_->apply(diff);
  std::this_thread::sleep_for(milliseconds(200));
  const auto before = recorder_.size();
  std::this_thread::sleep_for(milliseconds(2'000));
  std::lock_guard lock(recorder_.mu);
  const auto after = recorder_.results.size() - before;
  for (size_t i = before; i < recorder_.results.size(); ++i) EXPECT_EQ(recorder_.results[i].check_version(), 2);
  // Five intervals: the old version's schedule is gone, not running beside the new one.
  EXPECT_GE(after, 4u);
  EXPECT_LE(after, 6u);
}

TEST_F(SchedulerTest, ARecheckDuringAnAttemptRunsRightAfterItAndTheScheduleGoesOn) {
  SchedulerOptions options;
  options.max_concurrent = 1;
  start(options);
  // Each attempt takes about 250 ms; due every 1 s.
  assign({check(9, url("/fault/trickle-head?delay_ms=5"), milliseconds(1'000))});
  ASSERT_TRUE(eventually([&] { return recorder_.size() == 1; }, std::chrono::seconds(5)));
  std::this_thread::sleep_for(milliseconds(850));  // the second scheduled attempt is in flight
  scheduler_->recheck(9, "req-a");
  scheduler_->recheck(9, "req-b");
  std::this_thread::sleep_for(milliseconds(2'900));
  std::lock_guard lock(recorder_.mu);
  std::vector<std::string> rechecks;
  size_t scheduled = 0;
  for (const auto& r : recorder_.results) {
    EXPECT_EQ(r.edge().failure_class(), v1::FAILURE_CLASS_OK) << r.edge().error();
    if (r.recheck_request_id().empty()) {
      ++scheduled;
    } else {
      rechecks.push_back(r.recheck_request_id());
    }
  }
  EXPECT_EQ(rechecks, (std::vector<std::string>{"req-a", "req-b"})) << "each once, in order";
  // Scheduled at about 0, 1, 2 and 3 s: the re-checks take no scheduled run's place.
  EXPECT_GE(scheduled, 4u);
  EXPECT_LE(scheduled, 5u);
  // A lag is recorded when an attempt starts, its result when it ends: one may be in flight.
  EXPECT_GE(recorder_.lags.size(), scheduled);
  EXPECT_LE(recorder_.lags.size(), scheduled + 1);
}

TEST_F(SchedulerTest, ThousandsOfChecksEachRunOncePerInterval) {
  SchedulerOptions options;
  options.max_concurrent = 64;
  // Real jitter: the checks spread over their interval.
  std::mt19937 random(42);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  start(options, [&] { return uniform(random); });
  constexpr int kChecks = 1'000;
  std::vector<v1::Check> checks;
  for (int i = 1; i <= kChecks; ++i) checks.push_back(check(i, url("/?c=" + std::to_string(i)), milliseconds(1'000)));
  assign(checks);
  std::this_thread::sleep_for(milliseconds(3'500));
  scheduler_->stop();
  std::this_thread::sleep_for(milliseconds(200));
  std::lock_guard lock(recorder_.mu);
  std::map<int64_t, std::vector<int64_t>> starts;
  size_t failed = 0;
  for (const auto& r : recorder_.results) {
    starts[r.check_id()].push_back(start_ms(r));
    failed += r.edge().failure_class() != v1::FAILURE_CLASS_OK;
  }
  EXPECT_EQ(failed, 0u);
  ASSERT_EQ(starts.size(), static_cast<size_t>(kChecks)) << "every check ran";
  for (auto& [id, times] : starts) {
    // In 3.5 s at 1 s: 3 or 4 runs, fewer if the machine is slow (each start
    // may lag its schedule), never two close together (a check scheduled twice).
    EXPECT_GE(times.size(), 2u) << "check " << id;
    EXPECT_LE(times.size(), 4u) << "check " << id;
    std::sort(times.begin(), times.end());
    for (size_t i = 1; i < times.size(); ++i) EXPECT_GE(times[i] - times[i - 1], 500) << "check " << id;
  }
}

TEST_F(SchedulerTest, ASetInPartsStartsEachPartAsItComesAndStopsTheRestWithTheLast) {
  start(SchedulerOptions{});
  auto fast = [&](int64_t id) {
    auto c = check(id, url("/?c=" + std::to_string(id)), milliseconds(1'000));
    *c.mutable_interval() = to_duration(milliseconds(200));  // under the config's minimum: shorter test
    return c;
  };
  assign({fast(4)});
  ASSERT_TRUE(eventually([&] { return ran_since(0).contains(4); }, std::chrono::seconds(5)));
  assign({fast(1), fast(2)}, /*first=*/true, /*last=*/false);
  auto mark = recorder_.size();
  ASSERT_TRUE(eventually([&] { return ran_since(mark) == std::set<int64_t>{1, 2, 4}; }, std::chrono::seconds(5)))
      << "the first part runs, and the old set goes on until the last part";
  assign({fast(3)}, /*first=*/false, /*last=*/true);
  std::this_thread::sleep_for(milliseconds(300));  // an attempt of check 4 may still end
  mark = recorder_.size();
  std::this_thread::sleep_for(milliseconds(1'000));
  EXPECT_EQ(ran_since(mark), (std::set<int64_t>{1, 2, 3}));
  // A set abandoned after one part (its stream broke): the next set replaces it whole.
  assign({fast(5)}, /*first=*/true, /*last=*/false);
  assign({fast(6)}, /*first=*/true, /*last=*/true);
  std::this_thread::sleep_for(milliseconds(300));
  mark = recorder_.size();
  std::this_thread::sleep_for(milliseconds(1'000));
  EXPECT_EQ(ran_since(mark), (std::set<int64_t>{6}));
}

// A check with an origin address (the lab origin, which the URL also names)
// at `interval`; the scheduler takes intervals under the config's 1 s minimum.
v1::Check origin_check(int64_t id, const std::string& url, uint16_t origin_port, milliseconds interval) {
  auto c = check(id, url, milliseconds(1000));
  c.mutable_origin()->set_address("127.0.0.1:" + std::to_string(origin_port));
  *c.mutable_interval() = to_duration(interval);
  *c.mutable_timeout() = to_duration(std::min(interval, milliseconds(1000)));
  return c;
}

TEST_F(SchedulerTest, TheOriginLegRunsOnItsOwnIntervalWhileTheEdgeIsFine) {
  SchedulerOptions options;
  options.keep_alive_interval = milliseconds(0);
  start(options);
  auto c = origin_check(3, url("/"), origin_.port(), milliseconds(200));
  *c.mutable_origin()->mutable_interval() = to_duration(milliseconds(1000));
  assign({c});
  std::this_thread::sleep_for(milliseconds(2600));
  scheduler_->stop();
  std::lock_guard lock(recorder_.mu);
  std::vector<int64_t> origin_starts;
  for (const auto& r : recorder_.results) {
    EXPECT_EQ(r.edge().failure_class(), v1::FAILURE_CLASS_OK) << r.edge().error();
    if (r.has_origin()) {
      EXPECT_EQ(r.origin().failure_class(), v1::FAILURE_CLASS_OK) << r.origin().error();
      origin_starts.push_back(start_ms(r));
    }
  }
  EXPECT_GE(recorder_.results.size(), 8u);
  ASSERT_GE(origin_starts.size(), 2u) << "at 0 s and about 1 s, 2 s";
  EXPECT_LE(origin_starts.size(), 3u);
  for (size_t i = 1; i < origin_starts.size(); ++i) {
    EXPECT_GE(origin_starts[i] - origin_starts[i - 1], 950) << "at most one origin leg per interval";
  }
}

TEST_F(SchedulerTest, AKeepAliveMeasurementRidesOnTheNextResultAndFreesItsSlotWhileIdle) {
  origin_.set_idle_close(milliseconds(1500));
  origin_.set_max_requests(3);
  SchedulerOptions options;
  options.max_concurrent = 1;
  options.keep_alive_interval = std::chrono::hours(1);  // with no jitter: the first at once
  start(options);
  assign({origin_check(4, url("/"), origin_.port(), milliseconds(200))});
  ASSERT_TRUE(eventually(
      [&] {
        std::lock_guard lock(recorder_.mu);
        return std::any_of(recorder_.results.begin(), recorder_.results.end(),
                           [](const auto& r) { return r.has_keep_alive(); });
      },
      std::chrono::seconds(6)));
  std::lock_guard lock(recorder_.mu);
  size_t before = 0;
  size_t carrying = 0;
  for (const auto& r : recorder_.results) {
    if (r.has_keep_alive()) {
      ++carrying;
      EXPECT_EQ(r.keep_alive().error(), "");
      EXPECT_EQ(r.keep_alive().requests_per_connection(), 3u);
      const double idle = r.keep_alive().idle_close_after().seconds() + r.keep_alive().idle_close_after().nanos() / 1e9;
      EXPECT_GE(idle, 1.3);
      EXPECT_LE(idle, 2.2);
      EXPECT_EQ(r.check_id(), 4);
      EXPECT_EQ(r.edge().failure_class(), v1::FAILURE_CLASS_OK) << "a whole result, not only the measurement";
    } else if (carrying == 0) {
      ++before;
    }
  }
  EXPECT_EQ(carrying, 1u);
  // One slot in all: had the idle wait held it, no attempt could have run
  // during those 1.5 s.
  EXPECT_GE(before, 4u);
}

}  // namespace
}  // namespace vantage::probe
