#include <gtest/gtest.h>

#include "common/check_config.h"

namespace vantage {
namespace {

using std::chrono::milliseconds;

std::string error_of(std::string_view yaml) {
  try {
    parse_checks_yaml(yaml, "checks.yaml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(Duration, ParsesUnitsAndCombinations) {
  EXPECT_EQ(parse_duration("500ms"), milliseconds(500));
  EXPECT_EQ(parse_duration("30s"), milliseconds(30'000));
  EXPECT_EQ(parse_duration("5m"), milliseconds(300'000));
  EXPECT_EQ(parse_duration("1h"), milliseconds(3'600'000));
  EXPECT_EQ(parse_duration("1m30s"), milliseconds(90'000));
  EXPECT_FALSE(parse_duration("30"));
  EXPECT_FALSE(parse_duration("10x"));
  EXPECT_FALSE(parse_duration(""));
  EXPECT_FALSE(parse_duration("-5s"));
}

TEST(ChecksFile, AppliesDefaultsAndReadsEveryField) {
  auto checks = parse_checks_yaml(R"(
defaults:
  interval: 30s
  headers: {User-Agent: vantage-test}
checks:
  - name: shop-home
    url: https://shop.example.com/
    timeout: 5s
    expected_status: [200, "300-399"]
    regions: [us, eu]
    labels: {team: shop}
    origin: {address: "203.0.113.10:443", host: shop.example.com}
  - name: api
    url: http://api.example.com/health
    method: HEAD
    interval: 10s
)", "checks.yaml");
  ASSERT_EQ(checks.size(), 2u);
  const auto& shop = checks[0];
  EXPECT_EQ(shop.name(), "shop-home");
  EXPECT_EQ(shop.method(), "GET");
  EXPECT_EQ(to_millis(shop.interval()), milliseconds(30'000));
  EXPECT_EQ(to_millis(shop.timeout()), milliseconds(5'000));
  ASSERT_EQ(shop.expected_status_size(), 2);
  EXPECT_EQ(shop.expected_status(1).min(), 300u);
  EXPECT_EQ(shop.expected_status(1).max(), 399u);
  EXPECT_EQ(shop.regions_size(), 2);
  EXPECT_EQ(shop.headers().at("User-Agent"), "vantage-test");
  EXPECT_EQ(shop.labels().at("team"), "shop");
  EXPECT_EQ(shop.origin().address(), "203.0.113.10:443");
  EXPECT_EQ(shop.source(), v1::CHECK_SOURCE_FILE);

  const auto& api = checks[1];
  EXPECT_EQ(api.method(), "HEAD");
  EXPECT_EQ(to_millis(api.interval()), milliseconds(10'000));
  EXPECT_EQ(to_millis(api.timeout()), milliseconds(10'000));  // default, capped by the interval
  ASSERT_EQ(api.expected_status_size(), 1);
  EXPECT_EQ(api.expected_status(0).min(), 200u);
  EXPECT_EQ(api.expected_status(0).max(), 399u);
}

TEST(ChecksFile, ReadsCorrelationSettingsKeyByKeyOverTheDefaults) {
  auto checks = parse_checks_yaml(R"(
defaults:
  correlation: {recurring_min: 4, stale_after: 5m}
checks:
  - name: shop-home
    url: https://shop.example.com/
    correlation:
      confirm_consecutive: 3
      resolve_consecutive: 4
      stale_after: 90s
      global_quorum: 2
      reopen_within: 15m
      recurring_window: 2h
      recheck_min_interval: 1m
  - name: api
    url: http://api.example.com/health
)", "checks.yaml");
  ASSERT_EQ(checks.size(), 2u);
  const auto& shop = checks[0].correlation();
  EXPECT_EQ(shop.confirm_consecutive(), 3u);
  EXPECT_EQ(shop.resolve_consecutive(), 4u);
  EXPECT_EQ(shop.global_quorum(), 2u);
  EXPECT_EQ(shop.recurring_min(), 4u);  // from the defaults
  EXPECT_EQ(to_millis(shop.stale_after()), milliseconds(90'000));
  EXPECT_EQ(to_millis(shop.reopen_within()), milliseconds(900'000));
  EXPECT_EQ(to_millis(shop.recurring_window()), milliseconds(7'200'000));
  EXPECT_EQ(to_millis(shop.recheck_min_interval()), milliseconds(60'000));
  const auto& api = checks[1].correlation();
  EXPECT_EQ(api.recurring_min(), 4u);
  EXPECT_EQ(to_millis(api.stale_after()), milliseconds(300'000));
  EXPECT_FALSE(api.has_confirm_consecutive()) << "unset: the coordinator's default";
  EXPECT_FALSE(api.has_reopen_within());
}

TEST(ChecksFile, NoCorrelationBlockLeavesTheSettingsUnset) {
  auto checks = parse_checks_yaml("checks:\n  - name: a\n    url: http://x/\n", "checks.yaml");
  EXPECT_FALSE(checks[0].has_correlation());
}

struct BadFile {
  const char* yaml;
  const char* expected;  // a part of the one-line error
};

class ChecksFileErrors : public ::testing::TestWithParam<BadFile> {};

TEST_P(ChecksFileErrors, NameTheLineAndTheField) {
  auto error = error_of(GetParam().yaml);
  EXPECT_NE(error.find(GetParam().expected), std::string::npos) << "error was: " << error;
  EXPECT_EQ(error.find('\n'), std::string::npos) << "not one line: " << error;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ChecksFileErrors,
    ::testing::Values(
        BadFile{"", "checks.yaml: the file is empty"},
        BadFile{"checks: [", "checks.yaml:1:"},
        BadFile{"checks:\n  - name: a\n    url: http://x/\n    intervall: 5s\n",
                "checks.yaml:4:5: unknown field \"intervall\""},
        BadFile{"checks:\n  - name: a\n    url: http://x/\n    interval: 10x\n",
                "checks.yaml:4:15: interval: \"10x\" is not a duration"},
        BadFile{"checks:\n  - name: a\n    url: http://x/\n    interval: 5s\n    timeout: 10s\n",
                "timeout 10000ms is longer than the interval 5000ms"},
        BadFile{"checks:\n  - name: a\n    url: ftp://x/\n", "url \"ftp://x/\": scheme \"ftp\""},
        BadFile{"checks:\n  - name: Bad_Name\n    url: http://x/\n", "name \"Bad_Name\""},
        BadFile{"checks:\n  - name: a\n    url: http://x/\n  - name: a\n    url: http://y/\n",
                "checks.yaml:4:5: check name \"a\" is used twice"},
        BadFile{"checks:\n  - url: http://x/\n", "a check needs a name"},
        BadFile{"checks:\n  - name: a\n    url: http://x/\n    expected_status: [700]\n",
                "expected_status: \"700\""},
        BadFile{"checks:\n  - name: a\n    url: http://x/\n    origin: {address: \"1.2.3.4:0\"}\n",
                "origin.address"},
        BadFile{"checks:\n  - name: a\n    url: http://x/\n    interval: 500ms\n", "below the minimum of 1s"},
        BadFile{"check: []\n", "unknown field \"check\" in the top level"},
        BadFile{"checks:\n  - name: a\n    url: http://x/\n    correlation: {confirm_consecutiv: 3}\n",
                "checks.yaml:4:19: unknown field \"confirm_consecutiv\" in correlation"},
        BadFile{"checks:\n  - name: a\n    url: http://x/\n    correlation:\n      resolve_consecutive: 0\n",
                "checks.yaml:5:28: correlation.resolve_consecutive: \"0\" is not a whole number of at least 1"},
        BadFile{"checks:\n  - name: a\n    url: http://x/\n    correlation:\n      global_quorum: two\n",
                "checks.yaml:5:22: correlation.global_quorum: \"two\" is not a whole number"},
        BadFile{"checks:\n  - name: a\n    url: http://x/\n    correlation:\n      stale_after: soon\n",
                "checks.yaml:5:20: correlation.stale_after: \"soon\" is not a duration"},
        BadFile{"checks:\n  - name: a\n    url: http://x/\n    correlation: {recheck_min_interval: 0s}\n",
                "correlation.recheck_min_interval must be longer than 0"},
        BadFile{"checks:\n  - name: a\n    url: http://x/\n    correlation: 3\n",
                "checks.yaml:4:18: correlation must be a mapping"},
        BadFile{"defaults:\n  correlation: {recurring_min: -1}\nchecks:\n  - name: a\n    url: http://x/\n",
                "checks.yaml:2:32: correlation.recurring_min: \"-1\""}));

TEST(ChecksFile, UnreadableFileSaysSo) {
  try {
    load_checks_file("/nonexistent/checks.yaml");
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/checks.yaml: cannot read"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace vantage
