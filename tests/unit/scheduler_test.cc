// The scheduler on simulated time, with attempts of the test's own (no
// network): schedules of hours run in milliseconds and every time is exact.
// The io_context runs on the test thread, inside FakeTimers::advance/settle.
#include "probe/scheduler.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>
#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "common/check_config.h"
#include "common/timer.h"

namespace vantage::probe {
namespace {

namespace asio = boost::asio;
using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::seconds;

v1::Check check(int64_t id, milliseconds interval) {
  v1::Check c;
  c.set_id(id);
  c.set_version(1);
  c.set_name("c" + std::to_string(id));
  c.set_url("http://127.0.0.1:9/?c=" + std::to_string(id));
  *c.mutable_timeout() = to_duration(milliseconds(1000));
  *c.mutable_interval() = to_duration(std::max(interval, milliseconds(1000)));
  std::string problem;
  EXPECT_TRUE(normalize_check(c, &problem)) << problem;
  *c.mutable_interval() = to_duration(interval);  // the scheduler takes intervals under the config's 1 s minimum
  return c;
}

// A check with an origin address, whose keep-alive behaviour is measured.
v1::Check origin_check(int64_t id, milliseconds interval) {
  auto c = check(id, interval);
  c.mutable_origin()->set_address("127.0.0.1:9");
  return c;
}

// Milliseconds of simulated time (the fake clock starts at 0).
int64_t ms(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count();
}
int64_t start_ms(const v1::CheckResult& r) {
  return r.start_time().seconds() * 1000 + r.start_time().nanos() / 1'000'000;
}

// Attempts that take simulated time and succeed; records what ran and when.
class FakeAttempts final : public AttemptRunner {
 public:
  explicit FakeAttempts(Timers& timers) : timers_(timers) {}

  milliseconds attempt_takes{0};
  // A keep-alive measurement: requests for `requests_take` (holding its
  // slot), then an idle connection until the server closes it.
  milliseconds requests_take{100};
  milliseconds idle_close{1450};

  struct Span {
    int64_t check_id;
    int64_t start_ms, end_ms;
  };
  std::vector<Span> attempts;
  size_t attempts_started = 0;
  std::vector<int64_t> keep_alive_starts;  // ms
  size_t keep_alives_cancelled = 0;
  size_t in_flight = 0;
  size_t max_in_flight = 0;

  asio::awaitable<v1::CheckResult> attempt(const v1::Check& check, AttemptOptions options) override {
    const auto started = timers_.clock().steady_now();
    ++attempts_started;
    max_in_flight = std::max(max_in_flight, ++in_flight);
    v1::CheckResult result;
    result.set_check_id(check.id());
    result.set_check_version(check.version());
    const auto wall = timers_.clock().now().time_since_epoch();
    result.mutable_start_time()->set_seconds(std::chrono::duration_cast<seconds>(wall).count());
    result.mutable_start_time()->set_nanos(static_cast<int32_t>((wall % seconds(1)) / std::chrono::nanoseconds(1)));
    result.mutable_edge()->set_failure_class(v1::FAILURE_CLASS_OK);
    if (options.origin_always) result.mutable_origin()->set_failure_class(v1::FAILURE_CLASS_OK);
    co_await sleep(started + attempt_takes);
    --in_flight;
    attempts.push_back({check.id(), ms(started), ms(timers_.clock().steady_now())});
    co_return result;
  }

  asio::awaitable<v1::KeepAliveMeasurement> keep_alive(const v1::Check&, AttemptOptions,
                                                       KeepAliveOptions options) override {
    const auto started = timers_.clock().steady_now();
    keep_alive_starts.push_back(ms(started));
    co_await sleep(started + requests_take);
    options.on_idle();
    auto idle = timers_.make_timer(co_await asio::this_coro::executor);
    options.cancel->set_on_cancel([&] { idle->cancel(); });
    const bool closed = co_await idle->wait_until(timers_.clock().steady_now() + idle_close);
    options.cancel->set_on_cancel({});
    v1::KeepAliveMeasurement measurement;
    if (!closed) {
      ++keep_alives_cancelled;
      measurement.set_error("cancelled");
      co_return measurement;
    }
    *measurement.mutable_idle_close_after() = to_duration(idle_close);
    measurement.set_requests_per_connection(3);
    co_return measurement;
  }

 private:
  asio::awaitable<void> sleep(std::chrono::steady_clock::time_point until) {
    auto timer = timers_.make_timer(co_await asio::this_coro::executor);
    co_await timer->wait_until(until);
  }
  Timers& timers_;
};

class SchedulerTest : public ::testing::Test {
 protected:
  // Without jitter every check is first due at once.
  void start(SchedulerOptions options, std::function<double()> jitter = [] { return 0.0; }) {
    scheduler_ = std::make_unique<Scheduler>(
        io_.get_executor(), timers_, attempts_, options, std::move(jitter),
        [this](v1::CheckResult r) { results_.push_back(std::move(r)); },
        [this](std::chrono::steady_clock::duration lag) {
          lags_ms_.push_back(std::chrono::duration_cast<milliseconds>(lag).count());
        });
    timers_.settle();
  }
  void TearDown() override {
    if (!scheduler_) return;
    scheduler_->stop();
    timers_.settle();
  }
  void assign(const std::vector<v1::Check>& checks, bool first = true, bool last = true) {
    auto applied = scheduler_->assign({checks.begin(), checks.end()}, first, last);
    timers_.settle();
    ASSERT_EQ(applied.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  }
  void apply(const v1::CheckAssignmentDiff& diff) {
    scheduler_->apply(diff);
    timers_.settle();
  }
  void advance(std::chrono::nanoseconds d) { timers_.advance(d); }
  int64_t now_ms() const { return ms(clock_.steady_now()); }
  // The ids that produced a result since `from` (an index into results_).
  std::set<int64_t> ran_since(size_t from) const {
    std::set<int64_t> ids;
    for (size_t i = from; i < results_.size(); ++i) ids.insert(results_[i].check_id());
    return ids;
  }
  // The start times (ms) of each check's results.
  std::map<int64_t, std::vector<int64_t>> starts_by_check() const {
    std::map<int64_t, std::vector<int64_t>> starts;
    for (const auto& r : results_) starts[r.check_id()].push_back(start_ms(r));
    return starts;
  }

  // Destroyed in reverse: the scheduler, then the io_context (with the
  // coroutines still suspended on fake timers), then the timers.
  FakeClock clock_;
  FakeTimers timers_{clock_, &io_};
  asio::io_context io_;
  FakeAttempts attempts_{timers_};
  std::vector<v1::CheckResult> results_;
  std::vector<int64_t> lags_ms_;
  std::unique_ptr<Scheduler> scheduler_;
};

TEST_F(SchedulerTest, AnAssignedCheckThatCannotBeScheduledIsRefusedAndTheOthersRun) {
  start(SchedulerOptions{});
  auto centuries = check(1, milliseconds(60'000));
  centuries.mutable_interval()->set_seconds(300LL * 365 * 24 * 3600);  // overflows a steady_clock schedule
  auto negative = check(2, milliseconds(60'000));
  negative.mutable_timeout()->set_seconds(-5);
  auto fine = check(3, milliseconds(60'000));
  assign({centuries, negative, fine});
  ASSERT_EQ(results_.size(), 1u);
  EXPECT_EQ(ran_since(0), std::set<int64_t>{3});
  EXPECT_EQ(scheduler_->size(), 1u);
}

TEST_F(SchedulerTest, AttemptsInFlightStayWithinTheBoundAndTheWaitIsLag) {
  SchedulerOptions options;
  options.max_concurrent = 1;
  start(options);
  attempts_.attempt_takes = milliseconds(250);
  assign({check(1, milliseconds(60'000)), check(2, milliseconds(60'000)), check(3, milliseconds(60'000))});
  advance(seconds(1));
  ASSERT_EQ(results_.size(), 3u);
  EXPECT_EQ(attempts_.max_in_flight, 1u);
  // One at a time: each starts as the one before ends.
  std::vector<std::pair<int64_t, int64_t>> spans;
  for (const auto& a : attempts_.attempts) spans.emplace_back(a.start_ms, a.end_ms);
  std::sort(spans.begin(), spans.end());
  EXPECT_EQ(spans, (std::vector<std::pair<int64_t, int64_t>>{{0, 250}, {250, 500}, {500, 750}}));
  std::sort(lags_ms_.begin(), lags_ms_.end());
  EXPECT_EQ(lags_ms_, (std::vector<int64_t>{0, 250, 500})) << "the last waited for two attempts";
}

TEST_F(SchedulerTest, SlowAttemptsBeyondMaxConcurrentWaitTheirTurnInOrder) {
  SchedulerOptions options;
  options.max_concurrent = 3;
  start(options);
  attempts_.attempt_takes = seconds(10);
  std::vector<v1::Check> checks;
  for (int i = 1; i <= 10; ++i) checks.push_back(check(i, seconds(60)));
  assign(checks);
  EXPECT_EQ(attempts_.in_flight, 3u);
  advance(seconds(45));
  ASSERT_EQ(results_.size(), 10u);
  EXPECT_EQ(attempts_.max_in_flight, 3u);
  std::sort(lags_ms_.begin(), lags_ms_.end());
  EXPECT_EQ(lags_ms_, (std::vector<int64_t>{0, 0, 0, 10'000, 10'000, 10'000, 20'000, 20'000, 20'000, 30'000}));
  // The next round is due at 60 s for all; nothing ran in between.
  advance(seconds(14));
  EXPECT_EQ(results_.size(), 10u);
  advance(seconds(1));
  EXPECT_EQ(attempts_.in_flight, 3u);
}

TEST_F(SchedulerTest, ARecheckRunsAtOnceAndCarriesItsRequestId) {
  start(SchedulerOptions{});
  assign({check(7, milliseconds(3'600'000))});
  ASSERT_EQ(results_.size(), 1u);
  scheduler_->recheck(7, "req-1");
  timers_.settle();
  ASSERT_EQ(results_.size(), 2u) << "a re-check does not wait for the hour";
  EXPECT_EQ(now_ms(), 0);
  EXPECT_EQ(results_[1].recheck_request_id(), "req-1");
  EXPECT_EQ(results_[1].check_id(), 7);
  EXPECT_EQ(lags_ms_.size(), 1u) << "re-checks are not scheduled runs";
  // The hourly schedule is unchanged by it.
  advance(hours(1) - milliseconds(1));
  EXPECT_EQ(results_.size(), 2u);
  advance(milliseconds(1));
  EXPECT_EQ(results_.size(), 3u);
}

TEST_F(SchedulerTest, ARecheckOfAnUnassignedCheckIsIgnored) {
  start(SchedulerOptions{});
  assign({check(1, hours(1))});
  scheduler_->recheck(2, "req-x");
  timers_.settle();
  EXPECT_EQ(ran_since(0), std::set<int64_t>{1});
  EXPECT_EQ(results_.size(), 1u);
}

TEST_F(SchedulerTest, RemovedChecksStopAndUpdatedOnesRestart) {
  start(SchedulerOptions{});
  assign({check(1, milliseconds(1'000)), check(2, milliseconds(1'000))});
  ASSERT_EQ(results_.size(), 2u);
  v1::CheckAssignmentDiff diff;
  diff.add_removed_check_ids(2);
  apply(diff);
  const auto before = results_.size();
  advance(milliseconds(2'200));
  EXPECT_EQ(ran_since(before), std::set<int64_t>{1}) << "check 2 is gone";
  EXPECT_EQ(results_.size() - before, 2u) << "check 1 goes on, at 1 s and 2 s";
  EXPECT_EQ(scheduler_->size(), 1u);
}

TEST_F(SchedulerTest, ADiffAddsAChecksThatRunsOnItsInterval) {
  start(SchedulerOptions{});
  assign({check(1, hours(1))});
  v1::CheckAssignmentDiff diff;
  *diff.add_added() = check(5, seconds(10));
  apply(diff);
  advance(seconds(60));
  EXPECT_EQ(starts_by_check()[5], (std::vector<int64_t>{0, 10'000, 20'000, 30'000, 40'000, 50'000, 60'000}));
  EXPECT_EQ(scheduler_->size(), 2u);
}

TEST_F(SchedulerTest, UpdatedChecksRunTheirNewVersionOnTheSameSchedule) {
  start(SchedulerOptions{});
  auto original = check(1, milliseconds(400));
  assign({original});
  advance(milliseconds(400));
  ASSERT_EQ(results_.size(), 2u);
  auto updated = original;
  updated.set_url("http://127.0.0.1:9/?v=2");
  updated.set_version(2);
  v1::CheckAssignmentDiff diff;
  *diff.add_updated() = updated;
  apply(diff);
  ASSERT_EQ(results_.size(), 3u) << "the new version starts at once (no jitter)";
  EXPECT_EQ(results_.back().check_version(), 2);
  const auto before = results_.size();
  advance(milliseconds(2'000));
  for (size_t i = before; i < results_.size(); ++i) EXPECT_EQ(results_[i].check_version(), 2);
  // Five intervals: the old version's schedule is gone, not running beside the new one.
  EXPECT_EQ(results_.size() - before, 5u);
}

TEST_F(SchedulerTest, AnUnchangedCheckInANewSetKeepsItsPlaceInTheSchedule) {
  start(SchedulerOptions{}, [] { return 0.5; });
  assign({check(1, seconds(10))});
  advance(seconds(7));
  ASSERT_EQ(starts_by_check()[1], (std::vector<int64_t>{5'000}));
  assign({check(1, seconds(10))});  // the same version again (a new stream's assignment)
  advance(seconds(7));              // a restarted check would have run at 12 s
  EXPECT_EQ(starts_by_check()[1], (std::vector<int64_t>{5'000}));
  advance(seconds(1));
  EXPECT_EQ(starts_by_check()[1], (std::vector<int64_t>{5'000, 15'000}));
}

TEST_F(SchedulerTest, ARecheckDuringAnAttemptRunsRightAfterItAndTheScheduleGoesOn) {
  SchedulerOptions options;
  options.max_concurrent = 1;
  start(options);
  attempts_.attempt_takes = milliseconds(250);
  assign({check(9, milliseconds(1'000))});
  advance(milliseconds(250));
  ASSERT_EQ(results_.size(), 1u);
  advance(milliseconds(850));  // 1.1 s: the second scheduled attempt is in flight
  ASSERT_EQ(attempts_.in_flight, 1u);
  scheduler_->recheck(9, "req-a");
  scheduler_->recheck(9, "req-b");
  timers_.settle();
  advance(milliseconds(2'900));  // 4 s
  std::vector<std::string> rechecks;
  std::vector<int64_t> recheck_starts;
  std::vector<int64_t> scheduled_starts;
  for (const auto& r : results_) {
    if (r.recheck_request_id().empty()) {
      scheduled_starts.push_back(start_ms(r));
    } else {
      rechecks.push_back(r.recheck_request_id());
      recheck_starts.push_back(start_ms(r));
    }
  }
  EXPECT_EQ(rechecks, (std::vector<std::string>{"req-a", "req-b"})) << "each once, in order";
  EXPECT_EQ(recheck_starts, (std::vector<int64_t>{1'250, 1'500})) << "right after the attempt in flight";
  // Scheduled at 0, 1, 2 and 3 s: the re-checks take no scheduled run's place.
  EXPECT_EQ(scheduled_starts, (std::vector<int64_t>{0, 1'000, 2'000, 3'000}));
  // A lag is recorded when an attempt starts, its result when it ends: the one at 4 s is in flight.
  EXPECT_EQ(lags_ms_, (std::vector<int64_t>{0, 0, 0, 0, 0}));
}

TEST_F(SchedulerTest, ThousandsOfChecksEachRunOncePerInterval) {
  SchedulerOptions options;
  options.max_concurrent = 64;
  // Real jitter: the checks spread over their interval.
  std::mt19937 random(42);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  start(options, [&] { return uniform(random); });
  attempts_.attempt_takes = milliseconds(20);
  constexpr int kChecks = 1'000;
  std::vector<v1::Check> checks;
  for (int i = 1; i <= kChecks; ++i) checks.push_back(check(i, milliseconds(1'000)));
  assign(checks);
  advance(milliseconds(3'500));
  scheduler_->stop();
  timers_.settle();
  const auto starts = starts_by_check();
  ASSERT_EQ(starts.size(), static_cast<size_t>(kChecks)) << "every check ran";
  size_t runs = 0;
  for (const auto& [id, times] : starts) {
    // First within the first interval, then exactly one interval apart: 3
    // or 4 runs in 3.5 s (the last may still be in flight at the stop).
    ASSERT_FALSE(times.empty());
    EXPECT_LT(times.front(), 1'000) << "check " << id;
    EXPECT_GE(times.size(), 3u) << "check " << id;
    EXPECT_LE(times.size(), 4u) << "check " << id;
    for (size_t i = 1; i < times.size(); ++i) EXPECT_EQ(times[i] - times[i - 1], 1'000) << "check " << id;
    runs += times.size();
  }
  EXPECT_LE(attempts_.max_in_flight, 64u);
  EXPECT_EQ(*std::max_element(lags_ms_.begin(), lags_ms_.end()), 0) << "64 slots are plenty";
  EXPECT_GE(runs, 3u * kChecks);
}

// Wake-ups coalesced (SchedulerOptions::wake_slack, 10 ms by default, which
// the other tests run with: their times are whole slots). Four checks due at
// 12, 15, 19 and 25 ms (the jitter) on a 1 s interval; the start times (ms)
// of each check's runs in 2.5 s, sorted (the checks draw their jitter in
// some order).
std::vector<std::vector<int64_t>> starts_with_slack(milliseconds slack) {
  // Torn down as the fixture is: the scheduler, the io_context (its
  // coroutines suspended on fake timers), then the timers.
  FakeClock clock;
  auto io = std::make_unique<asio::io_context>();
  FakeTimers timers(clock, io.get());
  FakeAttempts attempts(timers);
  attempts.attempt_takes = milliseconds(3);
  const std::vector<double> jitters = {0.0125, 0.0155, 0.0195, 0.0255};
  size_t next = 0;
  SchedulerOptions options;
  options.wake_slack = slack;
  std::vector<int64_t> lags;
  auto scheduler = std::make_unique<Scheduler>(
      io->get_executor(), timers, attempts, options, [&] { return jitters[next++]; }, [](v1::CheckResult) {},
      [&](std::chrono::steady_clock::duration lag) {
        lags.push_back(std::chrono::duration_cast<milliseconds>(lag).count());
      });
  std::vector<v1::Check> checks;
  for (int i = 1; i <= 4; ++i) checks.push_back(check(i, milliseconds(1'000)));
  auto applied = scheduler->assign({checks.begin(), checks.end()});
  timers.settle();
  timers.advance(milliseconds(2'500));
  scheduler->stop();
  timers.settle();
  EXPECT_EQ(lags, std::vector<int64_t>(12, 0)) << "an early start within the slot is not lag";
  std::map<int64_t, std::vector<int64_t>> starts;
  for (const auto& a : attempts.attempts) starts[a.check_id].push_back(a.start_ms);
  scheduler.reset();
  io.reset();
  std::vector<std::vector<int64_t>> sorted;
  for (auto& [id, times] : starts) sorted.push_back(std::move(times));
  std::sort(sorted.begin(), sorted.end());
  return sorted;
}

TEST(SchedulerSlack, ChecksDueWithinOneSlotStartTogetherAtItsStartAndKeepTheirInterval) {
  const auto starts = starts_with_slack(milliseconds(10));
  // 12, 15 and 19 ms are in the slot [10, 20): one wake at 10 ms starts all
  // three; 25 ms is in the next one. Each then runs exactly 1 s apart.
  EXPECT_EQ(starts, (std::vector<std::vector<int64_t>>{
                        {10, 1'010, 2'010}, {10, 1'010, 2'010}, {10, 1'010, 2'010}, {20, 1'020, 2'020}}));
}

TEST(SchedulerSlack, WithoutASlackEachRunStartsAtItsOwnTime) {
  const auto starts = starts_with_slack(milliseconds(0));
  EXPECT_EQ(starts, (std::vector<std::vector<int64_t>>{
                        {12, 1'012, 2'012}, {15, 1'015, 2'015}, {19, 1'019, 2'019}, {25, 1'025, 2'025}}));
}

TEST_F(SchedulerTest, AnHourlyCheckRunsTwentyFourTimesADayAtItsPlaceInTheHour) {
  const std::vector<double> jitters = {0.0, 0.25, 0.5, 0.75, 0.999};
  size_t next = 0;
  SchedulerOptions options;
  options.keep_alive_interval = milliseconds(0);
  start(options, [&] { return jitters[next++]; });
  std::vector<v1::Check> checks;
  for (int i = 1; i <= 5; ++i) checks.push_back(check(i, hours(1)));
  assign(checks);
  advance(hours(24) - milliseconds(1));  // one day: [0, 24 h)
  const auto starts = starts_by_check();
  ASSERT_EQ(starts.size(), 5u);
  std::set<int64_t> first_runs;
  for (const auto& [id, times] : starts) {
    ASSERT_EQ(times.size(), 24u) << "check " << id;
    first_runs.insert(times.front());
    for (size_t i = 1; i < times.size(); ++i) EXPECT_EQ(times[i] - times[i - 1], 3'600'000) << "check " << id;
  }
  // Each first run at its jitter's share of the hour (the checks are
  // started in some order; the set of places is what the jitter drew).
  EXPECT_EQ(first_runs, (std::set<int64_t>{0, 900'000, 1'800'000, 2'700'000, 3'596'400}));
  EXPECT_EQ(std::count(lags_ms_.begin(), lags_ms_.end(), 0), 5 * 24);
}

TEST_F(SchedulerTest, TheOriginLegRunsOnItsOwnIntervalWhileTheEdgeIsFine) {
  SchedulerOptions options;
  options.keep_alive_interval = milliseconds(0);
  start(options);
  auto c = origin_check(3, milliseconds(200));
  *c.mutable_origin()->mutable_interval() = to_duration(milliseconds(1000));
  assign({c});
  advance(milliseconds(2600));
  std::vector<int64_t> origin_starts;
  for (const auto& r : results_) {
    if (r.has_origin()) origin_starts.push_back(start_ms(r));
  }
  EXPECT_EQ(results_.size(), 14u) << "every 200 ms from 0 to 2.6 s";
  EXPECT_EQ(origin_starts, (std::vector<int64_t>{0, 1'000, 2'000})) << "at most one origin leg per interval";
}

TEST_F(SchedulerTest, AKeepAliveMeasurementRidesOnTheNextResultAndFreesItsSlotWhileIdle) {
  SchedulerOptions options;
  options.max_concurrent = 1;
  options.keep_alive_interval = std::chrono::hours(1);  // with no jitter: the first at once
  start(options);
  attempts_.attempt_takes = milliseconds(10);
  // Requests for 100 ms, then 1.45 s idle: the measurement ends at about 1.56 s.
  assign({origin_check(4, milliseconds(200))});
  advance(milliseconds(2'000));
  ASSERT_EQ(attempts_.keep_alive_starts.size(), 1u);
  size_t before = 0;
  size_t carrying = 0;
  for (const auto& r : results_) {
    if (r.has_keep_alive()) {
      ++carrying;
      EXPECT_EQ(r.keep_alive().error(), "");
      EXPECT_EQ(r.keep_alive().requests_per_connection(), 3u);
      EXPECT_EQ(to_millis(r.keep_alive().idle_close_after()), milliseconds(1450));
      EXPECT_EQ(r.check_id(), 4);
      EXPECT_EQ(start_ms(r), 1'600) << "the first result after the measurement";
      EXPECT_EQ(r.edge().failure_class(), v1::FAILURE_CLASS_OK) << "a whole result, not only the measurement";
    } else if (carrying == 0) {
      ++before;
    }
  }
  EXPECT_EQ(carrying, 1u);
  // One slot in all: had the idle wait held it, no attempt could have run
  // during those 1.45 s. Every 200 ms ran, from 0 to 1.4 s.
  EXPECT_EQ(before, 8u);
}

TEST_F(SchedulerTest, TheKeepAliveIsMeasuredEverySixHours) {
  // The default cadence; the first at half of it (the jitter), then every 6 h.
  start(SchedulerOptions{}, [] { return 0.5; });
  assign({origin_check(1, hours(1))});
  advance(hours(24));
  EXPECT_EQ(attempts_.keep_alive_starts,
            (std::vector<int64_t>{3 * 3'600'000, 9 * 3'600'000, 15 * 3'600'000, 21 * 3'600'000}));
  std::vector<int64_t> carrying;
  for (const auto& r : results_) {
    if (r.has_keep_alive()) carrying.push_back(start_ms(r));
  }
  // Each rides on the hourly result that follows it (at half past).
  EXPECT_EQ(carrying, (std::vector<int64_t>{3'600'000 * 7 / 2, 3'600'000 * 19 / 2, 3'600'000 * 31 / 2,
                                            3'600'000 * 43 / 2}));
  EXPECT_EQ(results_.size(), 24u);
}

TEST_F(SchedulerTest, StopEndsTheScheduleDropsResultsInFlightAndCancelsMeasurements) {
  SchedulerOptions options;
  options.keep_alive_interval = hours(6);
  start(options);
  attempts_.attempt_takes = milliseconds(300);
  attempts_.idle_close = seconds(30);
  assign({origin_check(1, seconds(1)), check(2, seconds(1))});
  advance(milliseconds(1'100));  // the second round in flight; the measurement idle
  ASSERT_EQ(results_.size(), 2u);
  ASSERT_EQ(attempts_.in_flight, 2u);
  scheduler_->stop();
  timers_.settle();
  EXPECT_EQ(attempts_.keep_alives_cancelled, 1u) << "the idle connection is not held after a stop";
  const auto started = attempts_.attempts_started;
  advance(seconds(10));
  EXPECT_EQ(results_.size(), 2u) << "the attempts in flight at the stop are dropped";
  EXPECT_EQ(attempts_.in_flight, 0u);
  EXPECT_EQ(attempts_.attempts_started, started) << "nothing new started";
  EXPECT_EQ(scheduler_->size(), 0u);
}

TEST_F(SchedulerTest, ASetInPartsStartsEachPartAsItComesAndStopsTheRestWithTheLast) {
  start(SchedulerOptions{});
  auto fast = [&](int64_t id) { return check(id, milliseconds(200)); };
  assign({fast(4)});
  EXPECT_TRUE(ran_since(0).contains(4));
  auto mark = results_.size();
  assign({fast(1), fast(2)}, /*first=*/true, /*last=*/false);
  advance(milliseconds(200));
  EXPECT_EQ(ran_since(mark), (std::set<int64_t>{1, 2, 4}))
      << "the first part runs, and the old set goes on until the last part";
  assign({fast(3)}, /*first=*/false, /*last=*/true);
  mark = results_.size();
  advance(milliseconds(1'000));
  EXPECT_EQ(ran_since(mark), (std::set<int64_t>{1, 2, 3}));
  // A set abandoned after one part (its stream broke): the next set replaces it whole.
  assign({fast(5)}, /*first=*/true, /*last=*/false);
  assign({fast(6)}, /*first=*/true, /*last=*/true);
  mark = results_.size();
  advance(milliseconds(1'000));
  EXPECT_EQ(ran_since(mark), (std::set<int64_t>{6}));
}

// --- The fleet-phased schedule (CheckPhase) ---------------------------------

// A wall-clock time that is on no minute's boundary: 2026-11-30 19:00:07.300 UTC.
constexpr milliseconds kWallStart{1'796'065'207'300};
constexpr milliseconds kMinute{60'000};

v1::CheckPhase phase(int64_t check_id, milliseconds offset) {
  v1::CheckPhase p;
  p.set_check_id(check_id);
  *p.mutable_offset() = to_duration(offset);
  return p;
}

class PhasedSchedulerTest : public SchedulerTest {
 protected:
  void SetUp() override { clock_.advance(kWallStart); }  // nothing waits yet: the clock alone moves
  void assign_phased(const std::vector<v1::Check>& checks, const std::vector<v1::CheckPhase>& phases) {
    auto applied = scheduler_->assign({checks.begin(), checks.end()}, true, true, {phases.begin(), phases.end()});
    timers_.settle();
    ASSERT_EQ(applied.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  }
  void apply_phases(const std::vector<v1::CheckPhase>& phases) {
    v1::CheckAssignmentDiff diff;
    for (const auto& p : phases) *diff.add_phases() = p;
    apply(diff);
  }
  // The wall-clock start times (ms since the epoch) of the check's runs.
  std::vector<int64_t> starts(int64_t check_id) { return starts_by_check()[check_id]; }
  // The first time at or after `t` whose offset into the minute is `offset`.
  static int64_t on_grid(int64_t t, milliseconds offset) {
    const int64_t into = ((t - offset.count()) % kMinute.count() + kMinute.count()) % kMinute.count();
    return into == 0 ? t : t + kMinute.count() - into;
  }
};

TEST_F(PhasedSchedulerTest, APhasedCheckRunsExactlyAtItsAlignedWallTimesAndOneWithoutKeepsItsOwn) {
  start(SchedulerOptions{}, [] { return 0.5; });
  // Check 1 with the phase 7 s; check 2 without one (the probe's own schedule).
  assign_phased({check(1, kMinute), check(2, kMinute)}, {phase(1, seconds(7))});
  advance(std::chrono::minutes(5));
  const int64_t t0 = kWallStart.count();
  const int64_t first = on_grid(t0, seconds(7));
  EXPECT_EQ(starts(1),
            (std::vector<int64_t>{first, first + 60'000, first + 120'000, first + 180'000, first + 240'000}));
  for (auto t : starts(1)) EXPECT_EQ(t % 60'000, 7'000) << "(t - epoch) mod interval == offset";
  // The jitter's half interval after the assignment, then every minute.
  EXPECT_EQ(starts(2), (std::vector<int64_t>{t0 + 30'000, t0 + 90'000, t0 + 150'000, t0 + 210'000, t0 + 270'000}));
}

TEST_F(PhasedSchedulerTest, APhaseChangeMovesTheNextRunButNeverWithinHalfAnIntervalOfTheLast) {
  start(SchedulerOptions{}, [] { return 0.5; });
  assign_phased({check(1, kMinute)}, {phase(1, seconds(7))});
  const int64_t x = on_grid(kWallStart.count(), seconds(7));
  advance(milliseconds(x - kWallStart.count() + 1'000));  // one second after its first run
  ASSERT_EQ(starts(1), std::vector<int64_t>{x});
  // A probe left: the turn moves half a minute on. Half an interval after
  // the last run is just that time: no run is lost.
  apply_phases({phase(1, seconds(37))});
  advance(seconds(90));  // to x + 91 s
  EXPECT_EQ(starts(1), (std::vector<int64_t>{x, x + 30'000, x + 90'000}));
  // A move of one second just after a run: the new grid's next time (x + 91 s)
  // is too close to the run at x + 90 s; the one after it is taken.
  apply_phases({phase(1, seconds(38))});
  advance(seconds(150));
  EXPECT_EQ(starts(1), (std::vector<int64_t>{x, x + 30'000, x + 90'000, x + 151'000, x + 211'000}));
  // The same phase again changes nothing.
  apply_phases({phase(1, seconds(38))});
  advance(seconds(60));
  EXPECT_EQ(starts(1).back(), x + 271'000);
}

TEST_F(PhasedSchedulerTest, APhaseThatChangesDuringARunPlacesTheRunAfterIt) {
  start(SchedulerOptions{}, [] { return 0.5; });
  attempts_.attempt_takes = seconds(2);
  assign_phased({check(1, kMinute)}, {phase(1, seconds(7))});
  const int64_t x = on_grid(kWallStart.count(), seconds(7));
  advance(milliseconds(x - kWallStart.count() + 1'000));  // the attempt is in flight
  ASSERT_EQ(attempts_.attempts_started, 1u);
  apply_phases({phase(1, seconds(47))});
  advance(seconds(120));
  EXPECT_EQ(starts(1), (std::vector<int64_t>{x, x + 40'000, x + 100'000}));
}

TEST_F(PhasedSchedulerTest, ARecheckOfAPhasedCheckRunsAtOnceAndLeavesItsTurns) {
  start(SchedulerOptions{}, [] { return 0.5; });
  assign_phased({check(1, kMinute)}, {phase(1, seconds(7))});
  const int64_t x = on_grid(kWallStart.count(), seconds(7));
  advance(milliseconds(x - kWallStart.count() + 10'000));
  scheduler_->recheck(1, "r1");
  timers_.settle();
  advance(seconds(60));
  EXPECT_EQ(starts(1), (std::vector<int64_t>{x, x + 10'000, x + 60'000}));
  EXPECT_EQ(results_[1].recheck_request_id(), "r1");
}

TEST_F(PhasedSchedulerTest, ANewSetMovesAnUnchangedCheckToItsNewPhaseOrLeavesItWithout) {
  start(SchedulerOptions{}, [] { return 0.5; });
  assign_phased({check(1, kMinute)}, {phase(1, seconds(7))});
  const int64_t x = on_grid(kWallStart.count(), seconds(7));
  advance(milliseconds(x - kWallStart.count() + 1'000));
  // A new stream's assignment (the probe reconnected): same check, new phase.
  assign_phased({check(1, kMinute)}, {phase(1, seconds(40))});
  advance(seconds(60));
  EXPECT_EQ(starts(1), (std::vector<int64_t>{x, x + 33'000}));
  // A coordinator that sends no phase: the check stays where it is, every minute.
  assign_phased({check(1, kMinute)}, {});
  advance(seconds(120));
  EXPECT_EQ(starts(1), (std::vector<int64_t>{x, x + 33'000, x + 93'000, x + 153'000}));
}

TEST_F(PhasedSchedulerTest, APhaseOutsideTheIntervalIsRefusedAndTheCheckKeepsItsOwnSchedule) {
  start(SchedulerOptions{}, [] { return 0.5; });
  v1::CheckPhase negative = phase(2, seconds(0));
  negative.mutable_offset()->set_seconds(-5);
  v1::CheckPhase huge = phase(3, seconds(0));
  huge.mutable_offset()->set_seconds(INT64_MAX);
  assign_phased({check(1, kMinute), check(2, kMinute), check(3, kMinute), check(4, kMinute)},
                {phase(1, kMinute), negative, huge, phase(99, seconds(1))});
  advance(seconds(60));
  const int64_t t0 = kWallStart.count();
  for (int64_t id : {1, 2, 3, 4}) EXPECT_EQ(starts(id), std::vector<int64_t>{t0 + 30'000}) << id;
  EXPECT_EQ(scheduler_->size(), 4u) << "a phase of an unknown check is ignored";
}

TEST_F(PhasedSchedulerTest, AnAddedCheckTakesThePhaseOfItsDiff) {
  start(SchedulerOptions{}, [] { return 0.5; });
  v1::CheckAssignmentDiff diff;
  *diff.add_added() = check(5, kMinute);
  *diff.add_phases() = phase(5, seconds(59));
  apply(diff);
  advance(seconds(120));
  const int64_t first = on_grid(kWallStart.count(), seconds(59));
  EXPECT_EQ(starts(5), (std::vector<int64_t>{first, first + 60'000}));
}

TEST_F(SchedulerTest, AKeepAliveMeasurementOfAProbeWithAddressOverridesEndsCleanly) {
  // Long strings (on the heap): freed twice, as they were when a braced
  // temporary carried them into the measurement, the allocator aborts (or
  // AddressSanitizer reports it).
  SchedulerOptions options;
  options.keep_alive_interval = std::chrono::hours(1);
  const std::string host(64, 'h'), address(64, 'a');
  options.resolve = {ResolveOverride{.host = host, .port = 443, .address = address}};
  start(options);
  assign({origin_check(4, milliseconds(200))});
  advance(milliseconds(2'000));
  ASSERT_EQ(attempts_.keep_alive_starts.size(), 1u);
  EXPECT_EQ(std::count_if(results_.begin(), results_.end(), [](const auto& r) { return r.has_keep_alive(); }), 1);
  EXPECT_EQ(host, std::string(64, 'h'));
}

}  // namespace
}  // namespace vantage::probe
