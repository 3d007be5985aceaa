// RunWaiters (coordinator/check_runner.h): what a RunCheck caller waits for,
// fed as Ingest's commit callback would feed it; and CheckRunner with the
// probes faked: the regions asked, the bound on waits, cancellation.
#include <gtest/gtest.h>

#include <thread>

#include "common/clock.h"
#include "coordinator/check_runner.h"

namespace vantage::coordinator {
namespace {

using std::chrono::milliseconds;

storage::ResultBatch batch(const std::string& probe, const std::string& region,
                           std::vector<std::pair<int64_t, std::string>> results) {
  storage::ResultBatch b;
  b.probe.name = probe;
  b.probe.region = region;
  uint64_t sequence = 0;
  for (auto& [check_id, request_id] : results) {
    auto& r = b.results.emplace_back();
    r.set_sequence(++sequence);
    r.set_check_id(check_id);
    r.set_recheck_request_id(request_id);
  }
  return b;
}

auto soon() { return std::chrono::steady_clock::now() + milliseconds(50); }

TEST(RunWaitersTest, TakesTheFirstResultOfEachAskedRegionForItsRequestAndCheck) {
  RunWaiters waiters(4, RealClock::instance());
  auto wait = waiters.add(7, "home", {"eu", "us", "ap"});
  ASSERT_TRUE(wait);
  EXPECT_EQ(waiters.waiting(), 1u);
  const auto id = wait->request_id();
  EXPECT_TRUE(id.starts_with("run-"));
  auto us = batch("us-1", "us", {{7, id}, {7, id}});        // the second of a region is not taken
  auto other_check = batch("eu-1", "eu", {{8, id}});        // another check under the same id
  auto other_request = batch("eu-2", "eu", {{7, "run-x"}, {7, ""}});
  auto eu = batch("eu-3", "eu", {{7, id}});
  waiters.committed({&us, &other_check, &other_request});
  waiters.committed({&eu});
  auto outcome = wait->wait(soon(), nullptr);
  EXPECT_FALSE(outcome.cancelled);
  ASSERT_EQ(outcome.results.size(), 2u);
  EXPECT_EQ(outcome.results[0].probe_id(), "us-1");
  EXPECT_EQ(outcome.results[0].result().sequence(), 1u);
  EXPECT_EQ(outcome.results[0].check(), "home");
  EXPECT_EQ(outcome.results[1].probe_id(), "eu-3");
  EXPECT_EQ(outcome.timed_out, std::vector<std::string>{"ap"});
  wait.reset();
  EXPECT_EQ(waiters.waiting(), 0u);
}

TEST(RunWaitersTest, ReturnsOnceEveryRegionAnsweredAndIgnoresRegionsNotAsked) {
  RunWaiters waiters(4, RealClock::instance());
  auto wait = waiters.add(1, "c", {"eu", "us", "sa"});
  wait->expect_only({"eu", "us"});  // sa had no probe
  const auto id = wait->request_id();
  std::thread feeder([&] {
    auto eu = batch("eu-1", "eu", {{1, id}});
    auto us = batch("us-1", "us", {{1, id}});
    waiters.committed({&eu});
    std::this_thread::sleep_for(milliseconds(20));
    waiters.committed({&us});
  });
  // A long deadline: the wait ends when both regions answered.
  auto outcome = wait->wait(std::chrono::steady_clock::now() + std::chrono::minutes(5), nullptr);
  feeder.join();
  EXPECT_EQ(outcome.results.size(), 2u);
  EXPECT_TRUE(outcome.timed_out.empty());
}

TEST(RunWaitersTest, CancelledCallerStopsWaiting) {
  RunWaiters waiters(4, RealClock::instance());
  auto wait = waiters.add(1, "c", {"eu"});
  std::atomic<bool> gone{false};
  std::thread leaver([&] {
    std::this_thread::sleep_for(milliseconds(50));
    gone = true;
  });
  auto outcome = wait->wait(std::chrono::steady_clock::now() + std::chrono::minutes(5), [&] { return gone.load(); });
  leaver.join();
  EXPECT_TRUE(outcome.cancelled);
}

TEST(RunWaitersTest, BoundedAndEachWaitHasItsOwnRequestId) {
  RunWaiters waiters(2, RealClock::instance());
  auto a = waiters.add(1, "c", {"eu"});
  auto b = waiters.add(1, "c", {"eu"});
  ASSERT_TRUE(a && b);
  EXPECT_NE(a->request_id(), b->request_id());
  EXPECT_FALSE(waiters.add(1, "c", {"eu"}));
  // A result for one wait is not another's.
  auto eu = batch("eu-1", "eu", {{1, a->request_id()}});
  waiters.committed({&eu});
  EXPECT_EQ(a->wait(soon(), nullptr).results.size(), 1u);
  EXPECT_EQ(b->wait(soon(), nullptr).results.size(), 0u);
  a.reset();
  EXPECT_TRUE(waiters.add(1, "c", {"eu"}));
}

TEST(RunWaitersTest, NobodyWaitingCostsNothing) {
  RunWaiters waiters(2, RealClock::instance());
  auto eu = batch("eu-1", "eu", {{1, "run-unknown"}});
  waiters.committed({&eu});  // nothing registered: returns at once
  EXPECT_EQ(waiters.waiting(), 0u);
}

// --- CheckRunner, with the probes faked -----------------------------------------

class FakeProbes : public storage::ProbeDirectory {
 public:
  std::vector<storage::ProbeListing> probes;
  std::vector<storage::ProbeListing> list_probes(std::string_view after, std::string_view, size_t limit) override {
    std::vector<storage::ProbeListing> out;
    for (const auto& p : probes) {
      if (p.name > after && out.size() < limit) out.push_back(p);
    }
    return out;
  }
};

v1::Check check_in(std::vector<std::string> regions) {
  v1::Check check;
  check.set_id(3);
  check.set_name("shop");
  for (auto& r : regions) check.add_regions(r);
  return check;
}

TEST(CheckRunnerTest, AsksTheCheckOrTheFleetsRegionsAndSaysWhichHadNoProbe) {
  FakeProbes probes;
  probes.probes = {{"a-1", "eu", "", 0, {}}, {"b-1", "us", "", 0, {}}, {"c-1", "us", "", 0, {}}};
  std::vector<std::string> asked_for;
  CheckRunnerOptions options;
  CheckRunner runner(
      [&](int64_t, const std::vector<std::string>& regions, const std::string&) {
        asked_for = regions;
        return std::vector<std::string>{"us"};  // eu's probe is not connected
      },
      probes, RealClock::instance(), options);
  v1::RunCheckResponse response;
  // Every region: the regions of the registered probes, each once.
  auto status = runner.run(check_in({}), milliseconds(10), nullptr, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(asked_for, (std::vector<std::string>{"eu", "us"}));
  EXPECT_EQ(std::vector<std::string>(response.regions_without_probe().begin(), response.regions_without_probe().end()),
            std::vector<std::string>{"eu"});
  EXPECT_EQ(std::vector<std::string>(response.regions_timed_out().begin(), response.regions_timed_out().end()),
            std::vector<std::string>{"us"});
  EXPECT_TRUE(response.request_id().starts_with("run-"));
  EXPECT_EQ(response.results_size(), 0);
}

TEST(CheckRunnerTest, NoProbeAskedIsAFailedPreconditionNamingTheRegions) {
  FakeProbes probes;
  CheckRunner runner([](int64_t, const std::vector<std::string>&, const std::string&) { return std::vector<std::string>{}; },
                     probes, RealClock::instance());
  v1::RunCheckResponse response;
  auto status = runner.run(check_in({"ap", "sa"}), milliseconds(10), nullptr, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(status.error_message().find("no probe of the regions of check \"shop\" is connected (ap, sa)"),
            std::string::npos)
      << status.error_message();
  // Every region, and no probe registered at all.
  status = runner.run(check_in({}), milliseconds(10), nullptr, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << status.error_message();
}

TEST(CheckRunnerTest, WaitsPastTheBoundAreRefusedAndACancelledCallerFreesItsPlace) {
  FakeProbes probes;
  CheckRunnerOptions options;
  options.max_waits = 1;
  std::atomic<int> asked{0};
  CheckRunner runner(
      [&](int64_t, const std::vector<std::string>& regions, const std::string&) {
        ++asked;
        return regions;
      },
      probes, RealClock::instance(), options);
  std::atomic<bool> leave{false};
  grpc::Status first;
  std::thread waiting([&] {
    v1::RunCheckResponse response;
    first = runner.run(check_in({"eu"}), std::chrono::minutes(5), [&] { return leave.load(); }, &response);
  });
  // Poll until the first call is asked (and so registered), then try a second.
  for (int i = 0; i < 1000 && asked == 0; ++i) std::this_thread::sleep_for(milliseconds(5));
  ASSERT_EQ(asked, 1);
  v1::RunCheckResponse response;
  auto second = runner.run(check_in({"eu"}), milliseconds(10), nullptr, &response);
  EXPECT_EQ(second.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << second.error_message();
  leave = true;
  waiting.join();
  EXPECT_EQ(first.error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(runner.run(check_in({"eu"}), milliseconds(10), nullptr, &response).ok());
}

}  // namespace
}  // namespace vantage::coordinator
