// Check.cache_busting_param through the attempt against the fault lab: the
// lab origin's /target shows the query each request arrived with, and the lab
// edge's cache mode (a stored copy served as STALE while the origin fails)
// shows what busting is for: each attempt is a new resource to the edge, so
// the origin's failure is seen instead of the copy.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <fmt/format.h>

#include "common/check_config.h"
#include "probe/attempt.h"
#include "tools/lab/edge.h"
#include "tools/lab/origin.h"

namespace vantage::probe {
namespace {

namespace asio = boost::asio;

v1::Check busting_check(const std::string& url, const std::string& param) {
  v1::Check check;
  check.set_name("busting");
  check.set_url(url);
  check.set_cache_busting_param(param);
  *check.mutable_timeout() = to_duration(std::chrono::seconds(5));
  *check.mutable_interval() = to_duration(std::chrono::seconds(60));
  std::string problem;
  EXPECT_TRUE(normalize_check(check, &problem)) << problem;
  return check;
}

template <typename T>
T run_on_io(asio::awaitable<T> work) {
  asio::io_context io;
  auto future = asio::co_spawn(io, std::move(work), asio::use_future);
  io.run();
  return future.get();
}

v1::CheckResult run(const v1::Check& check, AttemptOptions options = {}) {
  return run_on_io(run_attempt(check, RealClock::instance(), HttpLimits{}, std::move(options)));
}

// The edge leg as run_attempt plans it, and the body the origin answered.
std::pair<v1::LegResult, std::string> edge_leg_with_body(const v1::Check& check) {
  const auto plan = plan_attempt(check, HttpLimits{}, {});
  std::string body;
  auto leg = run_on_io(run_leg(plan.edge, RealClock::instance(), &body));
  return {std::move(leg), std::move(body)};
}

// The value after "NAME=" in `url`, or empty.
std::string value_in(const std::string& url, const std::string& name) {
  const auto at = url.find(name + "=");
  return at == std::string::npos ? "" : url.substr(at + name.size() + 1);
}

TEST(CacheBusting, EachAttemptAsksWithAFreshValueAddedToTheQuery) {
  lab::Origin origin("127.0.0.1", 0);
  const auto base = fmt::format("http://127.0.0.1:{}/target?lang=en", origin.port());
  const auto check = busting_check(base, "vantage_cb");
  const auto first = run(check);
  const auto second = run(check);
  for (const auto* result : {&first, &second}) {
    EXPECT_EQ(result->edge().failure_class(), v1::FAILURE_CLASS_OK) << result->edge().error();
    EXPECT_TRUE(result->edge().url().starts_with(base + "&vantage_cb=")) << result->edge().url();
    EXPECT_EQ(value_in(result->edge().url(), "vantage_cb").size(), 16u) << result->edge().url();
  }
  EXPECT_NE(first.edge().url(), second.edge().url());
  EXPECT_EQ(origin.requests(), 2u);
}

TEST(CacheBusting, TheOriginSeesTheQueryTheLegSays) {
  lab::Origin origin("127.0.0.1", 0);
  const auto host = fmt::format("127.0.0.1:{}", origin.port());
  for (const char* path : {"/target", "/target?lang=en"}) {
    const auto check = busting_check(fmt::format("http://{}{}", host, path), "cb");
    const auto [one, one_body] = edge_leg_with_body(check);
    const auto [two, two_body] = edge_leg_with_body(check);
    ASSERT_EQ(one.failure_class(), v1::FAILURE_CLASS_OK) << one.error();
    ASSERT_EQ(two.failure_class(), v1::FAILURE_CLASS_OK) << two.error();
    // /target answers with the target it received.
    EXPECT_EQ(one.url(), fmt::format("http://{}{}", host, one_body.substr(0, one_body.size() - 1)));
    EXPECT_EQ(two.url(), fmt::format("http://{}{}", host, two_body.substr(0, two_body.size() - 1)));
    EXPECT_TRUE(one_body.starts_with(std::string(path) + (std::string(path).find('?') == std::string::npos ? "?cb=" : "&cb=")))
        << one_body;
    EXPECT_NE(one_body, two_body) << "two attempts, two values";
  }
}

TEST(CacheBusting, BothLegsAskForTheSameResource) {
  lab::Origin origin("127.0.0.1", 0);
  auto check = busting_check(fmt::format("http://127.0.0.1:{}/target", origin.port()), "cb");
  check.mutable_origin()->set_address(fmt::format("127.0.0.1:{}", origin.port()));
  AttemptOptions both;
  both.origin_always = true;
  const auto result = run(check, both);
  ASSERT_TRUE(result.has_origin());
  EXPECT_EQ(result.origin().failure_class(), v1::FAILURE_CLASS_OK) << result.origin().error();
  EXPECT_EQ(result.origin().url(), result.edge().url());
  EXPECT_EQ(value_in(result.origin().url(), "cb").size(), 16u);
}

TEST(CacheBusting, ACheckWithoutItSendsItsUrlAsWritten) {
  lab::Origin origin("127.0.0.1", 0);
  const auto url = fmt::format("http://127.0.0.1:{}/target?lang=en", origin.port());
  const auto [leg, body] = edge_leg_with_body(busting_check(url, ""));
  EXPECT_EQ(leg.url(), url);
  EXPECT_EQ(body, "/target?lang=en\n");
}

// The lab edge's cache keeps a GET's 200 and serves it (STALE) when the
// origin later fails: a plain check sees a healthy site, a busting check the
// failure, since each of its attempts is a resource the edge never stored.
TEST(CacheBusting, TheEdgesStoredCopyNoLongerHidesAFailingOrigin) {
  lab::Origin origin("127.0.0.1", 0);
  lab::EdgeSettings settings;
  settings.origin_port = origin.port();
  settings.cache = true;
  lab::Edge edge(settings);
  const auto url = fmt::format("http://127.0.0.1:{}/fail", edge.port("FRA"));
  const auto plain = busting_check(url, "");
  const auto busting = busting_check(url, "cb");

  for (const auto* check : {&plain, &busting}) {
    const auto fresh = run(*check);
    EXPECT_EQ(fresh.edge().failure_class(), v1::FAILURE_CLASS_OK) << fresh.edge().error();
    EXPECT_EQ(fresh.edge().response().cf_cache_status(), "MISS");
  }
  origin.set_fail_status(500);
  const uint64_t before = origin.requests();
  const auto hidden = run(plain);
  EXPECT_EQ(hidden.edge().failure_class(), v1::FAILURE_CLASS_OK);
  EXPECT_EQ(hidden.edge().response().cf_cache_status(), "STALE");
  for (int attempt = 0; attempt < 2; ++attempt) {
    const auto seen = run(busting);
    EXPECT_EQ(seen.edge().response().status(), 500u) << attempt;
    EXPECT_NE(seen.edge().failure_class(), v1::FAILURE_CLASS_OK) << attempt;
    EXPECT_NE(seen.edge().response().cf_cache_status(), "STALE") << attempt;
  }
  EXPECT_EQ(origin.requests() - before, 3u) << "every attempt reached the origin";
}

}  // namespace
}  // namespace vantage::probe
