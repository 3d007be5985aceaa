#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "common/check_config.h"
#include "common/url.h"
#include "tests/support/process.h"

namespace vantage {
namespace {

using namespace std::string_literals;
using std::chrono::milliseconds;

std::string error_of(std::string_view yaml) {
  try {
    parse_checks_yaml(yaml, "checks.yaml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
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

TEST(Duration, RefusesWhatWouldOverflowInsteadOfWrappingAround) {
  // 2562047788016h is the first whole hour past INT64_MAX milliseconds;
  // 3000000h (342 years) fits in milliseconds but not in a steady_clock's nanoseconds.
  EXPECT_FALSE(parse_duration("2562047788016h"));
  EXPECT_FALSE(parse_duration("99999999999999999999h"));  // past unsigned 64 bits
  EXPECT_FALSE(parse_duration("9223372036854775807ms"));
  EXPECT_FALSE(parse_duration("1000000h1000000h"));  // each term fits, the sum is past 100 years
  EXPECT_FALSE(parse_duration("3000000h"));
  EXPECT_EQ(parse_duration("100000h"), milliseconds(100'000LL * 3'600'000));  // 11 years: for a range check to refuse
  EXPECT_FALSE(parse_duration("99999999999999999999hx")) << "malformed, whatever the size";
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

TEST(ChecksFile, TheShippedExampleIsValid) {
  const auto checks = load_checks_file(std::string(VANTAGE_SOURCE_DIR) + "/examples/checks.local.yaml");
  EXPECT_FALSE(checks.empty());
}

struct BadFile {
  std::string yaml;
  std::string expected;  // a part of the error, with its file:line:column
};

std::ostream& operator<<(std::ostream& out, const BadFile& bad) { return out << bad.expected; }

class ChecksFileErrors : public ::testing::TestWithParam<BadFile> {};

TEST_P(ChecksFileErrors, NameTheLineAndTheField) {
  auto error = error_of(GetParam().yaml);
  EXPECT_NE(error.find(GetParam().expected), std::string::npos) << "error was: " << error;
  EXPECT_EQ(error.find('\n'), std::string::npos) << "one problem, one line: " << error;
  for (char ch : error) EXPECT_FALSE(static_cast<unsigned char>(ch) < 0x20) << "a control character in: " << error;
}

// The lines every case below starts with.
const std::string kCheck = "checks:\n  - name: a\n    url: http://x/\n";

INSTANTIATE_TEST_SUITE_P(
    Cases, ChecksFileErrors,
    ::testing::Values(
        BadFile{"", "checks.yaml: the file is empty"},
        BadFile{"checks: [", "checks.yaml:1:"},
        BadFile{kCheck + "    intervall: 5s\n", "checks.yaml:4:5: unknown field \"intervall\""},
        BadFile{kCheck + "    interval: 10x\n", "checks.yaml:4:15: interval: \"10x\" is not a duration"},
        BadFile{kCheck + "    interval: 5s\n    timeout: 10s\n",
                "checks.yaml:5:14: check \"a\": timeout: 10s is longer than the interval 5s"},
        BadFile{"checks:\n  - name: a\n    url: ftp://x/\n", "checks.yaml:3:10: check \"a\": url: \"ftp://x/\": scheme \"ftp\""},
        BadFile{"checks:\n  - name: Bad_Name\n    url: http://x/\n", "checks.yaml:2:11: check \"Bad_Name\": name: \"Bad_Name\""},
        BadFile{kCheck + "  - name: a\n    url: http://y/\n", "checks.yaml:4:5: check name \"a\" is used twice"},
        BadFile{"checks:\n  - url: http://x/\n", "checks.yaml:2:5: a check needs a name"},
        BadFile{kCheck + "    expected_status: [700]\n", "checks.yaml:4:23: expected_status: \"700\""},
        BadFile{kCheck + "    origin: {address: \"1.2.3.4:0\"}\n",
                "checks.yaml:4:23: check \"a\": origin.address: port \"0\""},
        BadFile{kCheck + "    interval: 500ms\n", "checks.yaml:4:15: check \"a\": interval: 500ms is outside the range 1s to 24h"},
        BadFile{"check: []\n", "unknown field \"check\" in the top level"},
        BadFile{kCheck + "    correlation: {confirm_consecutiv: 3}\n",
                "checks.yaml:4:19: unknown field \"confirm_consecutiv\" in correlation"},
        BadFile{kCheck + "    correlation:\n      resolve_consecutive: 0\n",
                "checks.yaml:5:28: correlation.resolve_consecutive: \"0\" is not a whole number from 1 to 1000"},
        BadFile{kCheck + "    correlation:\n      global_quorum: two\n",
                "checks.yaml:5:22: correlation.global_quorum: \"two\" is not a whole number"},
        BadFile{kCheck + "    correlation:\n      stale_after: soon\n",
                "checks.yaml:5:20: correlation.stale_after: \"soon\" is not a duration"},
        BadFile{kCheck + "    correlation: {recheck_min_interval: 0s}\n",
                "checks.yaml:4:41: check \"a\": correlation.recheck_min_interval: 0s is outside the range 1s to 168h"},
        BadFile{kCheck + "    correlation: 3\n", "checks.yaml:4:18: correlation must be a mapping"},
        BadFile{"defaults:\n  correlation: {recurring_min: -1}\nchecks:\n  - name: a\n    url: http://x/\n",
                "checks.yaml:2:32: correlation.recurring_min: \"-1\""},

        // Durations: bounded, and an overflow is "too long", never a negative number.
        BadFile{kCheck + "    interval: 3000000h\n",
                "checks.yaml:4:15: interval: \"3000000h\" is outside the range 1s to 24h"},
        BadFile{kCheck + "    interval: 100000h\n",
                "checks.yaml:4:15: check \"a\": interval: 100000h is outside the range 1s to 24h"},
        BadFile{kCheck + "    interval: 25h\n", "checks.yaml:4:15: check \"a\": interval: 25h is outside the range 1s to 24h"},
        BadFile{kCheck + "    interval: 99999999999999999999h\n",
                "checks.yaml:4:15: interval: \"99999999999999999999h\" is outside the range 1s to 24h"},
        BadFile{kCheck + "    interval: 2562047788016h\n",
                "checks.yaml:4:15: interval: \"2562047788016h\" is outside the range 1s to 24h"},
        BadFile{kCheck + "    timeout: 50ms\n", "checks.yaml:4:14: check \"a\": timeout: 50ms is outside the range 100ms to 5m"},
        BadFile{kCheck + "    interval: 10m\n    timeout: 6m\n",
                "checks.yaml:5:14: check \"a\": timeout: 6m is outside the range 100ms to 5m"},
        BadFile{"defaults:\n  timeout: 9999999h\n" + kCheck,
                "checks.yaml:2:12: timeout: \"9999999h\" is outside the range 100ms to 5m"},
        BadFile{kCheck + "    origin: {address: 1.2.3.4, interval: 48h}\n",
                "checks.yaml:4:42: check \"a\": origin.interval: 48h is outside the range 1s to 24h"},
        BadFile{kCheck + "    correlation:\n      stale_after: 720h\n",
                "checks.yaml:5:20: check \"a\": correlation.stale_after: 720h is outside the range 1s to 168h"},
        BadFile{kCheck + "    correlation:\n      reopen_within: 99999999999999h\n",
                "checks.yaml:5:22: correlation.reopen_within: \"99999999999999h\" is outside the range 1s to 168h"},
        BadFile{kCheck + "    correlation: {recurring_min: 5000}\n",
                "checks.yaml:4:34: correlation.recurring_min: \"5000\" is not a whole number from 1 to 1000"},
        BadFile{kCheck + "    correlation: {confirm_consecutive: 99999999999}\n",
                "checks.yaml:4:40: correlation.confirm_consecutive: \"99999999999\" is not a whole number from 1 to 1000"},

        // A key twice in one mapping, at every level.
        BadFile{"checks: []\nchecks: []\n",
                "checks.yaml:2:1: \"checks\" is repeated in this mapping (first at line 1, column 1)"},
        BadFile{kCheck + "    url: http://y/\n", "checks.yaml:4:5: \"url\" is repeated in this mapping (first at line 3, column 5)"},
        BadFile{kCheck + "    'url': http://y/\n", "checks.yaml:4:5: \"url\" is repeated"},
        BadFile{kCheck + "    headers: {X-A: 1, X-A: 2}\n",
                "checks.yaml:4:23: \"X-A\" is repeated in this mapping (first at line 4, column 15)"},
        BadFile{kCheck + "    labels:\n      team: a\n      team: b\n",
                "checks.yaml:6:7: \"team\" is repeated in this mapping (first at line 5, column 7)"},
        BadFile{kCheck + "    correlation: {recurring_min: 2, recurring_min: 3}\n",
                "checks.yaml:4:37: \"recurring_min\" is repeated in this mapping (first at line 4, column 19)"},
        BadFile{kCheck + "    origin: {address: \"1.2.3.4\", address: \"5.6.7.8\"}\n",
                "checks.yaml:4:34: \"address\" is repeated in this mapping (first at line 4, column 14)"},
        BadFile{"defaults:\n  interval: 30s\n  interval: 60s\nchecks: []\n",
                "checks.yaml:3:3: \"interval\" is repeated in this mapping (first at line 2, column 3)"},
        BadFile{"defaults:\n  correlation:\n    stale_after: 1m\n    stale_after: 2m\nchecks: []\n",
                "checks.yaml:4:5: \"stale_after\" is repeated in this mapping (first at line 3, column 5)"},
        BadFile{"checks: []\n---\nchecks: []\n", "checks.yaml: more than one YAML document"},

        // Bytes: UTF-8 only, no control characters (tab, CR, LF aside).
        BadFile{kCheck + "    regions: [eu, \"w\xffst\"]\n", "checks.yaml:4:21: byte 0xff is not valid UTF-8"},
        BadFile{kCheck + "    regions: [eu, w\xc3]\n", "checks.yaml:4:20: byte 0xc3 is not valid UTF-8"},
        BadFile{"checks:\n  - name: a\0b\n    url: http://x/\n"s,
                "checks.yaml:2:12: the control character 0x00 is not allowed in a checks file"},
        BadFile{"# \x1b[31m\nchecks: []\n", "checks.yaml:1:3: the control character 0x1b"},

        // Header and URL injection.
        BadFile{kCheck + "    headers:\n      X-A: \"ok\\r\\nX-Injected: 1\"\n",
                "checks.yaml:5:7: check \"a\": headers.X-A: the value contains the control character 0x0d"},
        BadFile{kCheck + "    headers:\n      X-A: \"ok\\0\"\n",
                "checks.yaml:5:7: check \"a\": headers.X-A: the value contains the control character 0x00"},
        BadFile{kCheck + "    headers:\n      \"X Bad\": 1\n",
                "checks.yaml:5:7: check \"a\": headers.X Bad: the name is not an HTTP field name"},
        BadFile{kCheck + "    headers: {\"X-A:\": 1}\n", "checks.yaml:4:15: check \"a\": headers.X-A:: the name is not"},
        BadFile{kCheck + "    headers: {Host: \"a.com\\r\\nX: 1\"}\n",
                "checks.yaml:4:15: check \"a\": headers.Host: the value contains the control character 0x0d"},
        BadFile{kCheck + "    headers: {Host: a.com/evil}\n",
                "checks.yaml:4:15: check \"a\": headers.Host: the value is not a host[:port]"},
        BadFile{kCheck + "    headers: {Content-Length: 5}\n", "headers.Content-Length: the probe sends no body"},
        BadFile{kCheck + "    headers: {X-A: 1, x-a: 2}\n", "(names are case-insensitive)"},
        BadFile{"checks:\n  - name: a\n    url: \"http://a.com\\r\\nX-Injected: 1/\"\n",
                "checks.yaml:3:10: check \"a\": url: contains the control character 0x0d at offset 12"},
        BadFile{"checks:\n  - name: a\n    url: \"http://a b.com/\"\n",
                "checks.yaml:3:10: check \"a\": url: \"http://a b.com/\": host \"a b.com\" contains ' '"},
        BadFile{"checks:\n  - name: a\n    url: 'http://a.com\\@b.com/'\n", "checks.yaml:3:10: check \"a\": url:"},
        BadFile{"checks:\n  - name: a\n    url: 'http://a.com%40b.com/'\n", "host \"a.com%40b.com\" contains '%'"},
        BadFile{"checks:\n  - name: a\n    url: 'http://[::1 ]/'\n", "is not an IPv6 address"},
        BadFile{kCheck + "    origin: {address: 1.2.3.4, host: \"a.com\\nX: 1\"}\n",
                "checks.yaml:4:38: check \"a\": origin.host: not a host[:port] for the Host header"},
        BadFile{kCheck + "    origin: {address: 1.2.3.4, sni: \"a b\"}\n",
                "checks.yaml:4:37: check \"a\": origin.sni: not a TLS server name"},

        // Sizes.
        BadFile{kCheck + "    headers: {X-A: " + std::string(9000, 'v') + "}\n",
                "checks.yaml:4:15: check \"a\": headers.X-A: the value is 9000 bytes long, over the limit of 8192"},
        BadFile{"checks:\n  - name: a\n    url: http://x/" + std::string(5000, 'p') + "\n",
                "checks.yaml:3:10: check \"a\": url: is 5009 bytes long, over the limit of 4096"},
        BadFile{kCheck + "    regions: [" + [] {
          std::string list;
          for (int i = 0; i < 65; ++i) list += "r" + std::to_string(i) + ",";
          return list;
        }() + "]\n",
                "checks.yaml:4:14: regions: 65 entries, over the limit of 64"},
        BadFile{kCheck + "    headers: {" + [] {
          std::string map;
          for (int i = 0; i < 10; ++i) map += "X-" + std::to_string(i) + ": " + std::string(8000, 'v') + ", ";
          return map;
        }() + "}\n",
                "checks.yaml:2:5: check \"a\": the check is 80"}));

TEST(ChecksFile, AnOversizedCheckSaysTheLimit) {
  std::string yaml = kCheck + "    labels: {";
  for (int i = 0; i < 64; ++i) yaml += "l" + std::to_string(i) + ": " + std::string(1024, 'v') + ", ";
  yaml += "}\n";
  const auto error = error_of(yaml);
  EXPECT_NE(error.find("checks.yaml:2:5: check \"a\": the check is "), std::string::npos) << error;
  EXPECT_NE(error.find("bytes encoded, over the limit of 65536"), std::string::npos) << error;
}

TEST(ChecksFile, TooManyChecksOrTooLargeAFileSaysTheLimit) {
  std::string yaml = "checks:\n";
  for (int i = 0; i <= 10'000; ++i) yaml += "  - {name: c" + std::to_string(i) + ", url: http://x/}\n";
  EXPECT_NE(error_of(yaml).find("checks.yaml:2:3: checks: 10001 checks, over the limit of 10000 per file"),
            std::string::npos);

  const std::string huge = "# " + std::string(16 * 1024 * 1024, 'x') + "\nchecks: []\n";
  EXPECT_NE(error_of(huge).find("checks.yaml: the file is " + std::to_string(huge.size()) +
                                " bytes, over the limit of 16777216"),
            std::string::npos);
}

TEST(ChecksFile, ReportsTheProblemsOfEveryCheckEachWithItsPosition) {
  const auto error = error_of(
      "checks:\n"
      "  - name: a\n"
      "    url: http://x/\n"
      "    interval: 1000h\n"
      "  - name: b\n"
      "    url: http://x/\n"
      "    headers: {\"X Y\": 1}\n"
      "  - name: ok\n"
      "    url: http://x/\n"
      "  - name: c\n"
      "    url: http://x/\n"
      "    timeout: 1ms\n"
      "    regions: [\"\"]\n");
  const auto lines = lines_of(error);
  ASSERT_EQ(lines.size(), 4u) << error;
  EXPECT_EQ(lines[0], "checks.yaml:4:15: check \"a\": interval: 1000h is outside the range 1s to 24h");
  EXPECT_EQ(lines[1],
            "checks.yaml:7:15: check \"b\": headers.X Y: the name is not an HTTP field name (letters, digits and "
            "!#$%&'*+-.^_`|~ only, no spaces or control characters; RFC 9110 section 5.1)");
  EXPECT_EQ(lines[2], "checks.yaml:12:14: check \"c\": timeout: 1ms is outside the range 100ms to 5m");
  EXPECT_EQ(lines[3], "checks.yaml:13:15: check \"c\": regions[0]: an empty region name");
}

TEST(ChecksFile, ReportsEveryRepeatedKeyAndEveryBadByte) {
  auto lines = lines_of(error_of(kCheck + "    url: http://y/\n    labels: {a: 1, a: 2}\n"));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[1].find("checks.yaml:5:20: \"a\" is repeated"), std::string::npos) << lines[1];
  lines = lines_of(error_of("checks:\n  - name: a\xff\n    url: http://x/\x01\n"));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[0].find("checks.yaml:2:12: byte 0xff"), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find("checks.yaml:3:19: the control character 0x01"), std::string::npos) << lines[1];
}

TEST(ChecksFile, AnAliasCannotMultiplyALargeList) {
  // A list is measured before it is copied into a check, however often an alias repeats it.
  std::string yaml = "defaults:\n  regions: &big [";
  for (int i = 0; i < 1000; ++i) yaml += "r" + std::to_string(i) + ",";
  yaml += "]\nchecks:\n";
  for (int i = 0; i < 3; ++i) yaml += "  - {name: c" + std::to_string(i) + ", url: http://x/, regions: *big}\n";
  const auto lines = lines_of(error_of(yaml));
  ASSERT_EQ(lines.size(), 3u);
  for (const auto& line : lines) EXPECT_NE(line.find("regions: 1000 entries, over the limit of 64"), std::string::npos) << line;
}

TEST(ChecksFile, UnreadableFileSaysSo) {
  try {
    load_checks_file("/nonexistent/checks.yaml");
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/checks.yaml: cannot read"), std::string::npos) << e.what();
  }
}

// --- validate_check: the API's entry, a Check as sent -----------------------

v1::Check valid_check() {
  v1::Check check;
  check.set_name("a");
  check.set_url("https://shop.example.com/");
  return check;
}

std::string problems_of(v1::Check check) {
  std::string out;
  for (const auto& p : validate_check(check)) out += "[" + p.field + "] " + p.message + "\n";
  return out;
}

TEST(ValidateCheck, FillsTheDefaultsOfAValidCheck) {
  auto check = valid_check();
  EXPECT_TRUE(validate_check(check).empty());
  EXPECT_EQ(check.method(), "GET");
  EXPECT_EQ(to_millis(check.interval()), milliseconds(60'000));
  EXPECT_EQ(to_millis(check.timeout()), milliseconds(10'000));
  std::string problem;
  EXPECT_TRUE(normalize_check(check, &problem)) << problem;
}

TEST(ValidateCheck, DurationsOfAnySizeAreRangeCheckedWithoutOverflow) {
  auto check = valid_check();
  check.mutable_interval()->set_seconds(std::numeric_limits<int64_t>::max());
  check.mutable_timeout()->set_nanos(-1);
  check.mutable_correlation()->mutable_stale_after()->set_seconds(std::numeric_limits<int64_t>::max() / 1000 + 1);
  const auto text = problems_of(check);
  EXPECT_NE(text.find("[interval] 9223372036854775807s is outside the range 1s to 24h"), std::string::npos) << text;
  EXPECT_NE(text.find("[timeout] is negative or not a valid duration; the range is 100ms to 5m"), std::string::npos)
      << text;
  EXPECT_NE(text.find("[correlation.stale_after] 9223372036854776s is outside the range 1s to 168h"),
            std::string::npos)
      << text;
}

TEST(ValidateCheck, ReturnsEveryProblemWithItsField) {
  auto check = valid_check();
  check.set_name("A");
  check.set_url("http://a\r\n.com/");
  check.add_regions("w\xff");
  (*check.mutable_labels())["team"] = "x\0y"s;
  (*check.mutable_headers())["X-A"] = "1\n";
  check.mutable_correlation()->set_global_quorum(0);
  auto* assertion = check.add_assertions();
  assertion->set_target(v1::Assertion::TARGET_HEADER);
  assertion->set_header_name("bad name");
  auto problems = validate_check(check);
  std::vector<std::string> fields;
  for (const auto& p : problems) fields.push_back(p.field);
  EXPECT_EQ(fields, (std::vector<std::string>{"name", "url", "regions[0]", "headers.X-A", "labels.team",
                                              "correlation.global_quorum", "assertions[0].header_name",
                                              "assertions[0].pattern"}))
      << problems_of(check);
  std::string problem;
  EXPECT_FALSE(normalize_check(check, &problem));
  EXPECT_NE(problem.find("name: \"A\" must be"), std::string::npos);
}

TEST(ValidateCheck, OriginFieldsAreHostsAndTheOriginNeedsAnAddress) {
  auto check = valid_check();
  check.mutable_origin()->set_sni("shop.example.com");
  EXPECT_NE(problems_of(check).find("[origin.address] missing"), std::string::npos);
  check.mutable_origin()->set_address("[::1]:8443");
  check.mutable_origin()->set_host("shop.example.com:8443");
  EXPECT_EQ(problems_of(check), "");
  check.mutable_origin()->set_scheme("gopher");
  EXPECT_NE(problems_of(check).find("[origin.scheme] \"gopher\" is not http or https"), std::string::npos);
}

// Serve stores each check as proto JSON in a jsonb column (storage/pg_store.cc)
// and reads it back: whatever validation accepts must survive that, or serve
// would refuse what check-config accepted.
TEST(ValidateCheck, AnAcceptedCheckSurvivesTheStoragesJsonRoundTrip) {
  auto checks = parse_checks_yaml(R"(
defaults:
  interval: 24h
  headers: {User-Agent: "vantage \t tab", X-Unicode: "caf\u00e9 \U0001F600"}
checks:
  - name: edge
    url: "https://[2001:db8::1]:8443/p?q=1"
    timeout: 1m
    regions: ["\u00e9u"]
    labels: {team: "\u00fcber"}
    origin: {address: "203.0.113.10:443", host: shop.example.com, sni: shop.example.com, interval: 24h}
    correlation: {stale_after: 168h, reopen_within: 1s, confirm_consecutive: 1000}
)", "checks.yaml");
  ASSERT_EQ(checks.size(), 1u);
  std::string json;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(checks[0], &json).ok());
  EXPECT_EQ(json.find("\\u0000"), std::string::npos);  // PostgreSQL's jsonb refuses it
  v1::Check back;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &back).ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(back, checks[0]));
}

TEST(Host, NamesAndAddressLiteralsOnly) {
  std::string error;
  for (const char* good : {"a", "shop.example.com", "shop.example.com.", "_dmarc.x", "1.2.3.4", "::1", "2001:db8::1"}) {
    EXPECT_TRUE(valid_host(good, &error)) << good << ": " << error;
  }
  for (const char* bad : {"", "a b", "a\r\nb", "a..b", ".a", "a/b", "a@b", "caf\xc3\xa9.com", "1::2::3", "fe80::1%eth0"}) {
    EXPECT_FALSE(valid_host(bad, &error)) << bad;
  }
  EXPECT_FALSE(valid_host(std::string(64, 'a') + ".com", &error));
  EXPECT_FALSE(valid_host("::1\0x"s, &error));
  EXPECT_TRUE(parse_host_port("[::1]:80", 1, &error));
  EXPECT_FALSE(parse_host_port("[a b]:80", 1, &error));
  EXPECT_FALSE(parse_host_port("a\tb:80", 1, &error));
}

// --- check-config and serve agree: the real binary on the same bad files -------

class CoordinatorOnBadFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/vantage-check-config-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    const auto path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }
  // The lines of a run that name the checks file.
  static std::vector<std::string> problem_lines(const std::string& output, const std::string& path) {
    std::vector<std::string> out;
    for (const auto& line : lines_of(output)) {
      if (line.find(path) != std::string::npos) out.push_back(line);
    }
    return out;
  }
  std::string dir_;
};

TEST_F(CoordinatorOnBadFiles, CheckConfigAndServeRefuseTheSameFilesWithTheSameLines) {
  const std::vector<std::pair<std::string, std::string>> files{
      {"interval.yaml", kCheck + "    interval: 3000000h\n"},
      {"overflow.yaml", kCheck + "    interval: 99999999999999999999h\n"},
      {"nul.yaml", "checks:\n  - name: a\0b\n    url: http://x/\n"s},
      {"utf8.yaml", kCheck + "    regions: [\"eu\xff\"]\n"},
      {"repeated.yaml", kCheck + "    headers: {X-A: 1, X-A: 2}\n"},
      {"crlf.yaml", kCheck + "    headers: {X-A: \"1\\r\\nX-B: 2\"}\n"},
      {"host.yaml", "checks:\n  - name: a\n    url: \"http://a.com\\r\\n/\"\n"},
      {"big.yaml", kCheck + "    headers: {X-A: " + std::string(70'000, 'v') + "}\n"},
  };
  const std::vector<std::string> expected{
      ":4:15: interval: \"3000000h\" is outside the range 1s to 24h",
      ":4:15: interval: \"99999999999999999999h\" is outside the range 1s to 24h",
      ":2:12: the control character 0x00 is not allowed in a checks file",
      ":4:18: byte 0xff is not valid UTF-8",
      ":4:23: \"X-A\" is repeated in this mapping (first at line 4, column 15)",
      ":4:15: check \"a\": headers.X-A: the value contains the control character 0x0d",
      ":3:10: check \"a\": url: contains the control character 0x0d",
      ":4:15: check \"a\": headers.X-A: the value is 70000 bytes long, over the limit of 8192",
  };
  for (size_t i = 0; i < files.size(); ++i) {
    const auto path = write(files[i].first, files[i].second);
    SCOPED_TRACE(path);
    const auto check = testing::run_command({VANTAGE_COORDINATOR_BIN, "check-config", "--checks", path});
    EXPECT_EQ(check.exit_code, 1) << check.output;
    EXPECT_NE(check.output.find(path + expected[i]), std::string::npos) << check.output;
    // serve reads the checks before it connects to PostgreSQL: this address is never dialled.
    const auto serve = testing::run_command({VANTAGE_COORDINATOR_BIN, "serve", "--database",
                                             "postgresql://127.0.0.1:1/unused", "--checks", path,
                                             "--metrics-listen", "127.0.0.1:0", "--listen", "127.0.0.1:0"});
    EXPECT_EQ(serve.exit_code, 1) << serve.output;
    EXPECT_EQ(problem_lines(serve.output, path), problem_lines(check.output, path)) << serve.output;
    EXPECT_EQ(serve.output.find("PostgreSQL"), std::string::npos) << serve.output;
  }
}

TEST_F(CoordinatorOnBadFiles, CheckConfigPrintsEveryProblemOnItsOwnLine) {
  const auto path = write("two.yaml", kCheck + "    interval: 25h\n  - name: b\n    url: http://x/\n    timeout: 1ms\n");
  const auto run = testing::run_command({VANTAGE_COORDINATOR_BIN, "check-config", "--checks", path});
  EXPECT_EQ(run.exit_code, 1);
  const auto lines = problem_lines(run.output, path);
  ASSERT_EQ(lines.size(), 2u) << run.output;
  EXPECT_EQ(lines[0], "vantage-coordinator: " + path + ":4:15: check \"a\": interval: 25h is outside the range 1s to 24h");
  EXPECT_EQ(lines[1], "vantage-coordinator: " + path + ":7:14: check \"b\": timeout: 1ms is outside the range 100ms to 5m");

  const auto good = write("good.yaml", kCheck);
  const auto ok = testing::run_command({VANTAGE_COORDINATOR_BIN, "check-config", "--checks", good});
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_NE(ok.output.find("1 checks, valid"), std::string::npos) << ok.output;
}

}  // namespace
}  // namespace vantage
