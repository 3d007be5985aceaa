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
#include "tests/support/test_certs.h"

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

// One valid check; cases append keys to it (from line 4).
const std::string kCheck = "checks:\n  - name: a\n    url: http://x/\n";

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

// PEM text as a YAML block scalar under a key indented by `indent` spaces.
std::string yaml_block(const std::string& pem, int indent) {
  std::string out = "|\n";
  std::istringstream in(pem);
  for (std::string line; std::getline(in, line);) out += std::string(indent + 2, ' ') + line + "\n";
  return out;
}

TEST(ChecksFile, ReadsAssertionsRedirectsTlsIpFamilyAndCacheBusting) {
  const testing::TestCa ca("config-test-ca");
  const auto checks = parse_checks_yaml(R"(
checks:
  - name: full
    url: https://shop.example.com/
    assertions:
      - body: '"status":\s*"ok"'
      - body: maintenance
        negate: true
      - header: Content-Type
        pattern: "^application/json"
        negate: false
    body_limit: 64KiB
    follow_redirects: 5
    tls:
      skip_verify: true
      ca_pem: )" + yaml_block(ca.pem, 6) + R"(
    ip_family: prefer_ipv6
    cache_busting_param: _cb.v-1~
)", "checks.yaml");
  ASSERT_EQ(checks.size(), 1u);
  const auto& c = checks[0];
  ASSERT_EQ(c.assertions_size(), 3);
  EXPECT_EQ(c.assertions(0).target(), v1::Assertion::TARGET_BODY);
  EXPECT_EQ(c.assertions(0).pattern(), "\"status\":\\s*\"ok\"");
  EXPECT_FALSE(c.assertions(0).negate());
  EXPECT_EQ(c.assertions(1).pattern(), "maintenance");
  EXPECT_TRUE(c.assertions(1).negate());
  EXPECT_EQ(c.assertions(2).target(), v1::Assertion::TARGET_HEADER);
  EXPECT_EQ(c.assertions(2).header_name(), "Content-Type");
  EXPECT_EQ(c.assertions(2).pattern(), "^application/json");
  EXPECT_FALSE(c.assertions(2).negate());
  EXPECT_EQ(c.body_limit_bytes(), 64u * 1024);
  EXPECT_EQ(c.follow_redirects(), 5u);
  EXPECT_EQ(c.tls().ca_pem(), ca.pem);
  EXPECT_TRUE(c.tls().skip_verify());
  EXPECT_EQ(c.ip_family(), v1::IP_FAMILY_PREFER_V6);
  EXPECT_EQ(c.cache_busting_param(), "_cb.v-1~");
}

TEST(ChecksFile, UnsetNewKeysLeaveTheProbesDefaults) {
  const auto checks = parse_checks_yaml(kCheck, "checks.yaml");
  ASSERT_EQ(checks.size(), 1u);
  EXPECT_EQ(checks[0].assertions_size(), 0);
  EXPECT_EQ(checks[0].body_limit_bytes(), 0u);
  EXPECT_EQ(checks[0].follow_redirects(), 0u);
  EXPECT_FALSE(checks[0].has_tls());
  EXPECT_EQ(checks[0].ip_family(), v1::IP_FAMILY_UNSPECIFIED);
  EXPECT_EQ(checks[0].cache_busting_param(), "");
}

TEST(ChecksFile, ReadsEveryIpFamilyAndBodyLimitForm) {
  const std::vector<std::pair<std::string, v1::IpFamily>> families{{"any", v1::IP_FAMILY_UNSPECIFIED},
                                                                   {"prefer_ipv4", v1::IP_FAMILY_PREFER_V4},
                                                                   {"prefer_ipv6", v1::IP_FAMILY_PREFER_V6},
                                                                   {"ipv4", v1::IP_FAMILY_ONLY_V4},
                                                                   {"ipv6", v1::IP_FAMILY_ONLY_V6}};
  for (const auto& [name, family] : families) {
    const auto checks = parse_checks_yaml(kCheck + "    ip_family: " + name + "\n", "checks.yaml");
    EXPECT_EQ(checks.at(0).ip_family(), family) << name;
  }
  const std::vector<std::pair<std::string, uint32_t>> sizes{
      {"1024", 1024}, {"1KiB", 1024}, {"65536", 65536}, {"1MiB", 1 << 20}, {"16MiB", 16u << 20}};
  for (const auto& [text, bytes] : sizes) {
    const auto checks = parse_checks_yaml(kCheck + "    body_limit: " + text + "\n", "checks.yaml");
    EXPECT_EQ(checks.at(0).body_limit_bytes(), bytes) << text;
  }
  const auto checks = parse_checks_yaml(kCheck + "    follow_redirects: 20\n", "checks.yaml");
  EXPECT_EQ(checks.at(0).follow_redirects(), 20u);
}

TEST(ChecksFile, TheNewKeysComeFromTheDefaultsAndACheckReplacesThem) {
  const auto checks = parse_checks_yaml(R"(
defaults:
  assertions: [{body: ok}]
  body_limit: 2KiB
  follow_redirects: 3
  tls: {skip_verify: true}
  ip_family: ipv4
  cache_busting_param: cb
checks:
  - name: inherits
    url: https://a.example.com/
  - name: own
    url: https://b.example.com/
    assertions: [{header: Server, pattern: nginx, negate: true}]
    follow_redirects: 0
    tls: {}
    ip_family: any
)", "checks.yaml");
  ASSERT_EQ(checks.size(), 2u);
  const auto& inherits = checks[0];
  ASSERT_EQ(inherits.assertions_size(), 1);
  EXPECT_EQ(inherits.assertions(0).pattern(), "ok");
  EXPECT_EQ(inherits.body_limit_bytes(), 2048u);
  EXPECT_EQ(inherits.follow_redirects(), 3u);
  EXPECT_TRUE(inherits.tls().skip_verify());
  EXPECT_EQ(inherits.ip_family(), v1::IP_FAMILY_ONLY_V4);
  EXPECT_EQ(inherits.cache_busting_param(), "cb");
  const auto& own = checks[1];
  ASSERT_EQ(own.assertions_size(), 1) << "replaced, not appended";
  EXPECT_EQ(own.assertions(0).header_name(), "Server");
  EXPECT_TRUE(own.assertions(0).negate());
  EXPECT_EQ(own.body_limit_bytes(), 2048u);
  EXPECT_EQ(own.follow_redirects(), 0u);
  EXPECT_FALSE(own.tls().skip_verify()) << "a check's tls block replaces the defaults' whole";
  EXPECT_EQ(own.ip_family(), v1::IP_FAMILY_UNSPECIFIED);
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

        // Assertions, body_limit, follow_redirects, tls, ip_family, cache_busting_param.
        BadFile{kCheck + "    assertions: [{body: \"a(\"}]\n",
                "checks.yaml:4:25: check \"a\": assertions[0].pattern: is not an RE2 regular expression: missing )"},
        BadFile{kCheck + "    assertions:\n      - header: Server\n        pattern: \"[z-a]\"\n",
                "checks.yaml:6:18: check \"a\": assertions[0].pattern: is not an RE2 regular expression: "
                "invalid character class range"},
        BadFile{kCheck + "    assertions: [{header: \"X Bad\", pattern: x}]\n",
                "checks.yaml:4:27: check \"a\": assertions[0].header: \"X Bad\" is not an HTTP field name"},
        BadFile{kCheck + "    assertions: [{body: \"\"}]\n", "checks.yaml:4:25: check \"a\": assertions[0].pattern: is empty"},
        BadFile{kCheck + "    assertions: [{body: x, negat: true}]\n",
                "checks.yaml:4:28: unknown field \"negat\" in assertions[0]"},
        BadFile{kCheck + "    assertions: [{body: x, negate: yes}]\n", "checks.yaml:4:36: assertions[0].negate must be true or false"},
        BadFile{kCheck + "    assertions: [{pattern: x}]\n", "checks.yaml:4:18: assertions[0] needs body: or header:"},
        BadFile{kCheck + "    assertions: [{header: Server}]\n", "checks.yaml:4:18: assertions[0]: a header assertion needs a pattern"},
        BadFile{kCheck + "    assertions: [{body: x, header: Server, pattern: y}]\n",
                "checks.yaml:4:36: assertions[0]: body and header together"},
        BadFile{kCheck + "    assertions: {body: x}\n", "checks.yaml:4:17: assertions must be a list of {body: PATTERN}"},
        BadFile{kCheck + "    body_limit: 512\n",
                "checks.yaml:4:17: check \"a\": body_limit: 512 bytes is outside the range 1024 (1KiB) to 16777216 (16MiB)"},
        BadFile{kCheck + "    body_limit: 17MiB\n",
                "checks.yaml:4:17: check \"a\": body_limit: 17825792 bytes is outside the range 1024 (1KiB)"},
        BadFile{kCheck + "    body_limit: 99999999999MiB\n",
                "checks.yaml:4:17: body_limit: \"99999999999MiB\" is outside the range 1KiB to 16MiB"},
        BadFile{kCheck + "    body_limit: 64kb\n", "checks.yaml:4:17: body_limit: \"64kb\" is not a size in bytes"},
        BadFile{kCheck + "    body_limit: KiB\n", "checks.yaml:4:17: body_limit: \"KiB\" is not a size in bytes"},
        BadFile{kCheck + "    follow_redirects: 21\n",
                "checks.yaml:4:23: check \"a\": follow_redirects: 21 is outside the range 0 to 20"},
        BadFile{kCheck + "    follow_redirects: -1\n",
                "checks.yaml:4:23: follow_redirects: \"-1\" is not a whole number from 0 to 20"},
        BadFile{"defaults:\n  follow_redirects: 30\n" + kCheck,
                "checks.yaml:2:21: check \"a\": follow_redirects: 30 is outside the range 0 to 20"},
        BadFile{kCheck + "    tls: {ca_file: /nonexistent/ca.pem}\n",
                "checks.yaml:4:20: tls.ca_file: \"/nonexistent/ca.pem\": cannot read it: No such file or directory"},
        BadFile{kCheck + "    tls: {ca_pem: garbage}\n",
                "checks.yaml:4:19: check \"a\": tls.ca_pem: holds no PEM certificate"},
        BadFile{kCheck + "    tls: {ca_pem: \"-----BEGIN CERTIFICATE-----\\nAAAA\\n-----END CERTIFICATE-----\\n\"}\n",
                "checks.yaml:4:19: check \"a\": tls.ca_pem: certificate 1 does not parse"},
        BadFile{kCheck + "    tls: {ca_pem: \"-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----\\n\"}\n",
                "checks.yaml:4:19: check \"a\": tls.ca_pem: holds a private key"},
        BadFile{kCheck + "    tls: {ca_pem: " + std::string(40'000, 'A') + "}\n",
                "checks.yaml:4:19: check \"a\": tls.ca_pem: is 40000 bytes long, over the limit of 32768"},
        BadFile{kCheck + "    tls: {ca_file: x.pem, ca_pem: y}\n", "checks.yaml:4:35: tls: ca_file and ca_pem together"},
        BadFile{kCheck + "    tls: {skip_verify: maybe}\n", "checks.yaml:4:24: tls.skip_verify must be true or false"},
        BadFile{kCheck + "    tls: {verify: false}\n", "checks.yaml:4:11: unknown field \"verify\" in tls"},
        BadFile{kCheck + "    ip_family: ipv5\n",
                "checks.yaml:4:16: ip_family: \"ipv5\" is not one of any, prefer_ipv4, prefer_ipv6, ipv4, ipv6"},
        BadFile{kCheck + "    cache_busting_param: \"a b\"\n",
                "checks.yaml:4:26: check \"a\": cache_busting_param: \"a b\" is not a query parameter name"},
        BadFile{kCheck + "    cache_busting_param: \"cb=1\"\n",
                "checks.yaml:4:26: check \"a\": cache_busting_param: \"cb=1\" is not a query parameter name"},
        BadFile{kCheck + "    cache_busting_param: " + std::string(65, 'p') + "\n",
                "checks.yaml:4:26: check \"a\": cache_busting_param: \"ppp"},

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

// A temporary directory for files a test writes, removed after it.
class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/vantage-check-config-ca-XXXXXX";
    if (mkdtemp(pattern) != nullptr) path_ = pattern;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string write(const std::string& name, const std::string& text) const {
    const auto path = path_ + "/" + name;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(ChecksFile, ACaFileIsReadRelativeToTheChecksFilesDirectory) {
  const testing::TestCa ca("config-test-ca");
  const TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  dir.write("ca/internal.pem", ca.pem);
  const auto yaml = "defaults:\n  tls: {ca_file: ca/internal.pem}\n" + kCheck +
                    "  - name: b\n    url: https://y/\n    tls: {ca_file: ca/internal.pem, skip_verify: true}\n";
  const auto path = dir.write("checks.yaml", yaml);
  // The working directory is elsewhere: the path is the checks file's.
  ASSERT_NE(std::filesystem::current_path().string(), dir.path());
  const auto checks = load_checks_file(path);
  ASSERT_EQ(checks.size(), 2u);
  EXPECT_EQ(checks[0].tls().ca_pem(), ca.pem);
  EXPECT_EQ(checks[1].tls().ca_pem(), ca.pem);
  EXPECT_TRUE(checks[1].tls().skip_verify());

  // From text, relative to the base directory given (vantagectl and the coordinator go through load_checks_file).
  const auto from_text = parse_checks_yaml(yaml, "inline", dir.path());
  EXPECT_EQ(from_text.at(0).tls().ca_pem(), ca.pem);
  // An absolute path is itself, whatever the base.
  const auto absolute = parse_checks_yaml(kCheck + "    tls: {ca_file: \"" + dir.path() + "/ca/internal.pem\"}\n",
                                          "inline", "/nonexistent");
  EXPECT_EQ(absolute.at(0).tls().ca_pem(), ca.pem);
}

TEST(ChecksFile, ABadCaFileIsNamedByItsPath) {
  const TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  dir.write("garbage.pem", "not a certificate\n");
  dir.write("empty.pem", "");
  dir.write("big.pem", std::string(1 << 20, 'A'));
  dir.write("der.pem", std::string("\x30\x82\x01\x0a\xff\x00", 6));
  std::filesystem::create_directories(dir.path() + "/adir");
  const std::vector<std::pair<std::string, std::string>> cases{
      {"garbage.pem", "holds no PEM certificate"},
      {"empty.pem", "the file is empty"},
      {"big.pem", "the file is over the limit of 32768 bytes"},
      {"der.pem", "is not PEM text (byte 0x82 at offset 1"},
      {"adir", "cannot read it: Is a directory"},
      {"missing.pem", "cannot read it: No such file or directory"},
  };
  for (const auto& [name, expected] : cases) {
    const auto path = dir.write("checks.yaml", kCheck + "    tls: {ca_file: " + name + "}\n");
    std::string error;
    try {
      load_checks_file(path);
    } catch (const ConfigError& e) {
      error = e.what();
    }
    const auto prefix = path + ":4:20: ";
    EXPECT_EQ(error.rfind(prefix, 0), 0u) << error;
    EXPECT_NE(error.find("tls.ca_file: \"" + dir.path() + "/" + name + "\": " + expected), std::string::npos) << error;
  }
}

TEST(ValidateCheck, TheNewFieldsAreBoundedAsTheApiSendsThem) {
  const testing::TestCa ca("config-test-ca");
  auto check = valid_check();
  auto* body = check.add_assertions();
  body->set_target(v1::Assertion::TARGET_BODY);
  body->set_pattern("(?i)welcome");
  auto* header = check.add_assertions();
  header->set_target(v1::Assertion::TARGET_HEADER);
  header->set_header_name("X-Cache");
  header->set_pattern("^HIT$");
  header->set_negate(true);
  check.set_body_limit_bytes(16u << 20);
  check.set_follow_redirects(20);
  check.mutable_tls()->set_ca_pem(ca.pem + ca.pem);  // a bundle
  check.set_ip_family(v1::IP_FAMILY_ONLY_V6);
  check.set_cache_busting_param("cb");
  EXPECT_EQ(problems_of(check), "");

  auto bad = check;
  bad.mutable_assertions(0)->set_pattern("a{2,1}");
  bad.mutable_assertions(0)->set_header_name("X-Stray");
  bad.mutable_assertions(1)->set_header_name("");
  bad.set_body_limit_bytes(1023);
  bad.set_follow_redirects(21);
  bad.mutable_tls()->set_ca_pem(ca.pem + "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n");
  bad.set_ip_family(static_cast<v1::IpFamily>(99));
  bad.set_cache_busting_param("c&b");
  const auto text = problems_of(bad);
  for (const char* expected : {"[assertions[0].header_name] is only for a header assertion",
                               "[assertions[0].pattern] is not an RE2 regular expression: invalid repetition size: {2,1}",
                               "[assertions[1].header_name] \"\" is not an HTTP field name",
                               "[body_limit_bytes] 1023 bytes is outside the range 1024 (1KiB) to 16777216 (16MiB)",
                               "[follow_redirects] 21 is outside the range 0 to 20",
                               "[tls.ca_pem] certificate 2 does not parse",
                               "[ip_family] 99 is not an IpFamily",
                               "[cache_busting_param] \"c&b\" is not a query parameter name"}) {
    EXPECT_NE(text.find(expected), std::string::npos) << expected << " not in:\n" << text;
  }
  bad = check;
  bad.set_ip_family(static_cast<v1::IpFamily>(-1));
  EXPECT_NE(problems_of(bad).find("[ip_family] -1 is not an IpFamily"), std::string::npos) << problems_of(bad);
}

// As AnAcceptedCheckSurvivesTheStoragesJsonRoundTrip, for the new fields.
TEST(ValidateCheck, TheNewFieldsSurviveTheStoragesJsonRoundTrip) {
  const testing::TestCa ca("config-test-ca");
  auto checks = parse_checks_yaml(kCheck + "    assertions: [{header: X-A, pattern: \"^\\\\d+\\t$\", negate: true}]\n"
                                  "    body_limit: 1MiB\n    follow_redirects: 7\n    ip_family: ipv6\n"
                                  "    cache_busting_param: cb\n    tls:\n      skip_verify: true\n      ca_pem: " +
                                      yaml_block(ca.pem, 6),
                                  "checks.yaml");
  ASSERT_EQ(checks.size(), 1u);
  std::string json;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(checks[0], &json).ok());
  v1::Check back;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &back).ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(back, checks[0])) << json;
  EXPECT_EQ(back.tls().ca_pem(), ca.pem);
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

TEST_F(CoordinatorOnBadFiles, CheckConfigReadsACaFileBesideTheChecksFile) {
  const testing::TestCa ca("config-test-ca");
  write("ca.pem", ca.pem);
  const auto good = write("tls.yaml", kCheck + "    tls: {ca_file: ca.pem}\n");
  const auto ok = testing::run_command({VANTAGE_COORDINATOR_BIN, "check-config", "--checks", good});
  EXPECT_EQ(ok.exit_code, 0) << ok.output;

  const auto bad = write("missing-ca.yaml", kCheck + "    tls: {ca_file: other.pem}\n");
  const auto run = testing::run_command({VANTAGE_COORDINATOR_BIN, "check-config", "--checks", bad});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_NE(run.output.find(bad + ":4:20: tls.ca_file: \"" + dir_ + "/other.pem\": cannot read it: No such file"),
            std::string::npos)
      << run.output;
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


TEST(ValidateCheck, AnOnlyFamilyBesideAnAddressLiteralOfTheOtherIsRefused) {
  auto check_with = [](std::string url, std::string origin, v1::IpFamily family) {
    v1::Check c;
    c.set_name("literal");
    c.set_url(std::move(url));
    if (!origin.empty()) c.mutable_origin()->set_address(std::move(origin));
    c.set_ip_family(family);
    return c;
  };
  auto problems_of = [](v1::Check c) {
    std::string all;
    for (const auto& p : validate_check(c)) all += p.describe() + "\n";
    return all;
  };
  EXPECT_EQ(problems_of(check_with("http://203.0.113.7/", "", v1::IP_FAMILY_ONLY_V6)),
            "url: 203.0.113.7 is an IPv4 address and ip_family is ipv6\n");
  EXPECT_EQ(problems_of(check_with("https://shop.example.com/", "[2001:db8::1]:443", v1::IP_FAMILY_ONLY_V4)),
            "origin.address: 2001:db8::1 is an IPv6 address and ip_family is ipv4\n");
  // Names, the right family, and preferences are fine.
  EXPECT_EQ(problems_of(check_with("http://203.0.113.7/", "shop.internal:8080", v1::IP_FAMILY_ONLY_V4)), "");
  EXPECT_EQ(problems_of(check_with("http://[2001:db8::1]/", "", v1::IP_FAMILY_PREFER_V4)), "");
  EXPECT_EQ(problems_of(check_with("http://shop.example.com/", "203.0.113.7", v1::IP_FAMILY_ONLY_V6)),
            "origin.address: 203.0.113.7 is an IPv4 address and ip_family is ipv6\n");
}

}  // namespace
}  // namespace vantage
